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
            switch Self.scalar(item) {
            case let s as String: return s
            case let i as Int: return String(i)
            default: throw EngineError(.invalidModelFile, "bag file \(source): model entry \(item) is not a signature")
            }
        }
        if let w = fields["weights"] {
            guard let rows = w.sequence?.map({ $0.sequence }), rows.allSatisfy({ $0 != nil }) else {
                throw EngineError(.invalidModelFile, "bag file \(source): 'weights' must be a list of lists of numbers")
            }
            weights = try rows.map { row in
                try row!.map { v in
                    switch Self.scalar(v) {
                    case let d as Double: return d
                    case let i as Int: return Double(i)
                    default: throw EngineError(.invalidModelFile, "bag file \(source): weight \(v) is not a number")
                    }
                }
            }
        }
        if let s = fields["segment"] {
            switch Self.scalar(s) {
            case let i as Int where (1...3600).contains(i): segment = Fraction(i, 1)
            case let d as Double where d.isFinite && d > 0 && d <= 3600: segment = Fraction(decimal: d)
            default: throw EngineError(.invalidModelFile, "bag file \(source): 'segment' must be a number of seconds (0..3600)")
            }
        }
    }

    /// A scalar node's value (string, integer, number, ...); nil for a list or mapping.
    private static func scalar(_ node: Node) -> Any? {
        node.scalar == nil ? nil : node.any
    }
}
