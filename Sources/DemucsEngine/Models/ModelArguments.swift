import Foundation

/// The constructor arguments of a demucs model, as stored in a checkpoint's metadata (`kwargs` as
/// JSON, fractions as `{"_type": "fraction", "numerator": n, "denominator": d}`), read with the
/// meaning Python gives them in demucs's constructors.
///
/// This is the one reader of `kwargs`: each model family's configuration (`HTDemucsConfig`, …)
/// reads every key it knows with demucs's default, once, and both the model and its parameter
/// layout (`ParameterLayout`, the order a diffq state is restored in) are built from that
/// configuration, so they cannot disagree about what a checkpoint says. `rejectUnknown` at the
/// end refuses a key the family does not know rather than compute a model wrongly.
///
/// The rules: a key that is absent takes the default; `null` is Python's `None` — false for a
/// flag, "not set" for an optional value or list, the default for a number or string (demucs
/// could not build a model with `None` there); a flag follows Python truthiness; an integer may
/// be given as an integral float or a bool (Python's bool is an int).
struct ModelArguments {
    let values: JSONValue
    let source: String
    private(set) var used: Set<String> = []

    init(json: String, source: String) throws {
        let parsed: JSONValue
        do {
            parsed = try JSONValue.parse(json)
        } catch {
            throw EngineError(.invalidModelFile, "model file \(source): kwargs metadata is not valid JSON (\(error))")
        }
        guard case .object = parsed else {
            throw EngineError(.invalidModelFile, "model file \(source): kwargs metadata is not a JSON object")
        }
        values = parsed
        self.source = source
    }

    private func bad(_ key: String, _ expected: String) -> EngineError {
        EngineError(.invalidModelFile, "model file \(source): argument \(key) should be \(expected), found \(values[key].map(Self.describe) ?? "nothing")")
    }

    private static func describe(_ value: JSONValue) -> String {
        switch value {
        case .null: return "null"
        case .bool(let b): return "\(b)"
        case .int(let i): return "\(i)"
        case .double(let d): return "\(d)"
        case .string(let s): return "\"\(s)\""
        case .array(let a): return "a list of \(a.count)"
        case .object: return "an object"
        }
    }

    /// The value of `key` unless it is absent or null.
    private mutating func present(_ key: String) -> JSONValue? {
        used.insert(key)
        guard let v = values[key], v != .null else { return nil }
        return v
    }

    /// Integers beyond this are refused: every size the engine computes from them must fit.
    private static let largest = 1 << 40

    private static func integer(_ v: JSONValue) -> Int? {
        switch v {
        case .int(let i) where abs(i) <= largest: return i
        case .bool(let b): return b ? 1 : 0
        case .double(let d) where d == d.rounded() && abs(d) <= Double(largest): return Int(d)
        default: return nil
        }
    }

    mutating func int(_ key: String, _ fallback: Int) throws -> Int {
        guard let v = present(key) else { return fallback }
        guard let i = Self.integer(v) else { throw bad(key, "an integer") }
        return i
    }

    mutating func optionalInt(_ key: String) throws -> Int? {
        guard present(key) != nil else { return nil }
        return try int(key, 0)
    }

    mutating func double(_ key: String, _ fallback: Double) throws -> Double {
        guard let v = present(key) else { return fallback }
        switch v {
        case .int(let i): return Double(i)
        case .double(let d) where d.isFinite: return d
        case .bool(let b): return b ? 1 : 0
        default:
            if let f = try fractionValue(key, v) { return f.doubleValue }
            throw bad(key, "a number")
        }
    }

    /// A number kept as an exact fraction when stored as one (demucs's `segment`).
    mutating func fraction(_ key: String, _ fallback: Fraction) throws -> Fraction {
        guard let v = present(key) else { return fallback }
        if let f = try fractionValue(key, v) { return f }
        if let i = Self.integer(v), abs(i) <= Fraction.largestPart { return Fraction(i, 1) }
        if case .double(let d) = v, d.isFinite, abs(d) <= 1e4 { return Fraction(decimal: d) }
        throw bad(key, "a number or fraction")
    }

    private func fractionValue(_ key: String, _ v: JSONValue) throws -> Fraction? {
        guard v["_type"] == .string("fraction") else { return nil }
        guard let num = v["numerator"].flatMap(Self.integer), let den = v["denominator"].flatMap(Self.integer),
              den > 0, abs(num) <= Fraction.largestPart, den <= Fraction.largestPart else {
            throw bad(key, "a fraction with a positive denominator, both parts at most \(Fraction.largestPart)")
        }
        return Fraction(num, den)
    }

    /// A flag, with Python truthiness (`if x:`): null, 0, "" and empty lists are false.
    mutating func bool(_ key: String, _ fallback: Bool) throws -> Bool {
        used.insert(key)
        switch values[key] {
        case nil: return fallback
        case .null?: return false
        case .bool(let b)?: return b
        case .int(let i)?: return i != 0
        case .double(let d)?: return d != 0
        case .string(let s)?: return !s.isEmpty
        case .array(let a)?: return !a.isEmpty
        case .object(let o)?: return !o.isEmpty
        }
    }

    mutating func string(_ key: String, _ fallback: String) throws -> String {
        guard let v = present(key) else { return fallback }
        guard case .string(let s) = v else { throw bad(key, "a string") }
        return s
    }

    mutating func strings(_ key: String) throws -> [String] {
        guard case .array(let list)? = present(key) else { throw bad(key, "a list of strings") }
        return try list.map {
            guard case .string(let s) = $0 else { throw bad(key, "a list of strings") }
            return s
        }
    }

    /// A list of numbers; empty when the key is absent or null.
    mutating func doubles(_ key: String) throws -> [Double] {
        guard let v = present(key) else { return [] }
        guard case .array(let list) = v else { throw bad(key, "a list of numbers") }
        return try list.map {
            switch $0 {
            case .int(let i): return Double(i)
            case .double(let d) where d.isFinite: return d
            default: throw bad(key, "a list of numbers")
            }
        }
    }

    /// Whether `key` is present and null (Python's `None`, where demucs tests `is None`).
    mutating func isNull(_ key: String) -> Bool {
        used.insert(key)
        return values[key] == .null
    }

    /// Marks keys that only matter for training or initialisation.
    mutating func ignore(_ keys: String...) { for k in keys { used.insert(k) } }

    func rejectUnknown(model: String) throws {
        guard case .object(let pairs) = values else { return }
        if let first = pairs.map(\.0).filter({ !used.contains($0) }).sorted().first {
            throw EngineError(.unsupportedModel, "model file \(source): \(model) option \(first) is not supported by this engine")
        }
    }
}

/// An exact rational number (demucs stores segment lengths such as 39/5 seconds as fractions, and
/// `int(segment * samplerate)` must round exactly as Python's `Fraction` does).
public struct Fraction: Sendable, Equatable, CustomStringConvertible {
    public let numerator: Int
    public let denominator: Int

    /// The largest numerator or denominator a model file may give: `timesTruncated` multiplies
    /// by sample counts, and the product must fit.
    static let largestPart = 1 << 31

    public init(_ numerator: Int, _ denominator: Int) {
        var a = abs(numerator), b = abs(denominator)
        while b != 0 { (a, b) = (b, a % b) }
        let g = max(a, 1)
        let sign = denominator < 0 ? -1 : 1
        self.numerator = sign * numerator / g
        self.denominator = sign * denominator / g
    }

    /// The fraction of a decimal number given as a double (e.g. `--segment 7.5`).
    public init(decimal: Double) {
        let scale = 1_000_000
        self.init(Int((decimal * Double(scale)).rounded()), scale)
    }

    public var doubleValue: Double { Double(numerator) / Double(denominator) }

    /// `int(self * n)` in Python: the product truncated toward zero.
    public func timesTruncated(_ n: Int) -> Int { (numerator * n) / denominator }

    public var description: String { denominator == 1 ? "\(numerator)" : "\(numerator)/\(denominator)" }
}
