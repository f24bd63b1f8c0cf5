import Foundation

/// The constructor arguments of a demucs model, as stored in a checkpoint's metadata (`kwargs` as
/// JSON, fractions as `{"_type": "fraction", "numerator": n, "denominator": d}`).
///
/// Each model config reads the keys it knows with their demucs defaults and calls
/// `rejectUnknown` at the end, so a checkpoint with an option this engine does not implement is
/// refused by name rather than silently computed wrong.
struct ModelArguments {
    let values: [String: Any]
    let source: String
    private(set) var used: Set<String> = []

    init(json: String, source: String) throws {
        guard let data = json.data(using: .utf8),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw EngineError(.invalidModelFile, "model file \(source): kwargs metadata is not a JSON object")
        }
        values = object
        self.source = source
    }

    private func bad(_ key: String, _ expected: String) -> EngineError {
        EngineError(.invalidModelFile, "model file \(source): argument \(key) should be \(expected), found \(String(describing: values[key]!))")
    }

    private func present(_ key: String) -> Any? {
        guard let v = values[key], !(v is NSNull) else { return nil }
        return v
    }

    mutating func int(_ key: String, _ fallback: Int) throws -> Int {
        used.insert(key)
        guard let v = present(key) else { return fallback }
        if let n = v as? NSNumber, Double(n.intValue) == n.doubleValue { return n.intValue }
        throw bad(key, "an integer")
    }

    mutating func optionalInt(_ key: String) throws -> Int? {
        used.insert(key)
        guard present(key) != nil else { return nil }
        return try int(key, 0)
    }

    mutating func double(_ key: String, _ fallback: Double) throws -> Double {
        used.insert(key)
        guard let v = present(key) else { return fallback }
        if let n = v as? NSNumber { return n.doubleValue }
        if let d = v as? [String: Any], d["_type"] as? String == "fraction",
           let num = d["numerator"] as? NSNumber, let den = d["denominator"] as? NSNumber, den.doubleValue != 0 {
            return num.doubleValue / den.doubleValue
        }
        throw bad(key, "a number")
    }

    /// A number kept as an exact fraction when stored as one (demucs's `segment`).
    mutating func fraction(_ key: String, _ fallback: Fraction) throws -> Fraction {
        used.insert(key)
        guard let v = present(key) else { return fallback }
        if let d = v as? [String: Any], d["_type"] as? String == "fraction",
           let num = d["numerator"] as? NSNumber, let den = d["denominator"] as? NSNumber, den.intValue > 0 {
            return Fraction(num.intValue, den.intValue)
        }
        if let n = v as? NSNumber {
            if Double(n.intValue) == n.doubleValue { return Fraction(n.intValue, 1) }
            return Fraction(decimal: n.doubleValue)
        }
        throw bad(key, "a number or fraction")
    }

    mutating func bool(_ key: String, _ fallback: Bool) throws -> Bool {
        used.insert(key)
        guard let v = present(key) else { return fallback }
        if let n = v as? NSNumber { return n.doubleValue != 0 }
        throw bad(key, "a boolean")
    }

    mutating func string(_ key: String, _ fallback: String) throws -> String {
        used.insert(key)
        guard let v = present(key) else { return fallback }
        if let s = v as? String { return s }
        throw bad(key, "a string")
    }

    mutating func strings(_ key: String) throws -> [String] {
        used.insert(key)
        guard let v = present(key) as? [Any] else { throw bad(key, "a list of strings") }
        let s = v.compactMap { $0 as? String }
        guard s.count == v.count else { throw bad(key, "a list of strings") }
        return s
    }

    /// A list of numbers; `nil` (or an empty list) when the key is absent or null.
    mutating func doubles(_ key: String) throws -> [Double] {
        used.insert(key)
        guard let v = present(key) else { return [] }
        guard let list = v as? [Any] else { throw bad(key, "a list of numbers") }
        let d = list.compactMap { ($0 as? NSNumber)?.doubleValue }
        guard d.count == list.count else { throw bad(key, "a list of numbers") }
        return d
    }

    /// Marks keys that only matter for training or initialisation.
    mutating func ignore(_ keys: String...) { for k in keys { used.insert(k) } }

    /// Whether `key` is absent or null (for list options that must be unset).
    mutating func isUnset(_ key: String) -> Bool {
        used.insert(key)
        guard let v = present(key) else { return true }
        if let list = v as? [Any] { return list.isEmpty }
        return false
    }

    func rejectUnknown(model: String) throws {
        let unknown = Set(values.keys).subtracting(used).sorted()
        if let first = unknown.first {
            throw EngineError(.unsupportedModel, "model file \(source): \(model) option \(first) is not supported by this engine")
        }
    }
}

/// An exact rational number (demucs stores segment lengths such as 39/5 seconds as fractions, and
/// `int(segment * samplerate)` must round exactly as Python's `Fraction` does).
public struct Fraction: Sendable, Equatable, CustomStringConvertible {
    public let numerator: Int
    public let denominator: Int

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
