import Foundation
import Yams

/// A bag definition `<name>.yaml`: `models` (signatures), optional `weights` (one row per model,
/// one column per source) and optional `segment` (seconds).
public struct BagFile: Sendable, Equatable {
    public var models: [String]
    public var weights: [[Double]]?
    public var segment: Fraction?

    public init(models: [String], weights: [[Double]]? = nil, segment: Fraction? = nil) {
        self.models = models
        self.weights = weights
        self.segment = segment
    }

    public init(path: String) throws {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw EngineError(.modelNotFound, "cannot read bag file \(path)")
        }
        try self.init(yaml: text, source: path)
    }

    /// Parses a bag's YAML. It walks the document's node tree (`Yams.compose`) and converts only
    /// scalars: Yams's conversion of a whole document (`Yams.load`) traps on a mapping whose key
    /// is not a string (`[1, 2]: x`, found by the bagyaml fuzz target).
    public init(yaml text: String, source: String) throws {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw EngineError(.invalidModelFile, "bag file \(source) is not valid YAML: \(error)")
        }
        var fields: [String: Node] = [:]
        for (key, value) in root?.mapping ?? [:] {
            guard let name = key.scalar?.string else {
                throw EngineError(.invalidModelFile, "bag file \(source) has a key that is not a name")
            }
            fields[name] = value
        }
        guard let models = fields["models"]?.sequence, !models.isEmpty else {
            throw EngineError(.invalidModelFile, "bag file \(source) has no 'models' list")
        }
        self.models = try models.map { item in
            // A signature is a name whatever YAML would make of it (0123 is octal 83 to YAML 1.1,
            // 955717e8 a float): the scalar's text as written.
            guard let text = item.scalar?.string, !text.isEmpty else {
                throw EngineError(.invalidModelFile, "bag file \(source): model entry \(item) is not a signature")
            }
            return text
        }
        if let w = fields["weights"] {
            guard let rows = w.sequence?.map({ $0.sequence }), rows.allSatisfy({ $0 != nil }) else {
                throw EngineError(.invalidModelFile, "bag file \(source): 'weights' must be a list of lists of numbers")
            }
            weights = try rows.map { row in
                try row!.map { v in
                    guard let d = Self.number(v) else {
                        throw EngineError(.invalidModelFile, "bag file \(source): weight \(v.scalar?.string ?? "\(v)") is not a finite decimal number")
                    }
                    return d
                }
            }
        }
        if let s = fields["segment"] {
            switch Self.number(s) {
            case let d? where d > 0 && d <= 3600:
                segment = d == d.rounded() ? Fraction(Int(d), 1) : Fraction(decimal: d)
            default: throw EngineError(.invalidModelFile, "bag file \(source): 'segment' must be a number of seconds (0..3600)")
            }
        }
    }

    /// A plain (unquoted) scalar written as a decimal number (`1`, `-0.5`, `.25`, `1.5e-3`), if it
    /// is finite. Bags hold nothing else; Yams's own conversion is not used because it reads
    /// YAML 1.1's other forms too and traps on some (a base-60 integer that overflows, such as
    /// `999999995999995995:9`, found by the bagyaml fuzz target).
    private static func number(_ node: Node) -> Double? {
        guard let scalar = node.scalar, scalar.style == .plain || scalar.style == .any else { return nil }
        let text = scalar.string
        guard !text.isEmpty, text.unicodeScalars.allSatisfy({ "0123456789+-.eE".unicodeScalars.contains($0) }),
              text.contains(where: \.isNumber), let value = Double(text), value.isFinite else { return nil }
        return value
    }
}
