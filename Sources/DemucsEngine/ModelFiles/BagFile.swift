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
        try self.init(yaml: ModelYAML.text(path: path, kind: "bag file"), source: path)
    }

    /// Parses a bag's YAML (through `ModelYAML`: Yams's node tree, scalars converted here).
    public init(yaml text: String, source: String) throws {
        let root = try ModelYAML.compose(text, kind: "bag file", source: source)
        let fields = try ModelYAML.fields(root?.mapping ?? [:], kind: "bag file", source: source, section: nil)
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
                    guard let d = ModelYAML.decimal(v) else {
                        throw EngineError(.invalidModelFile, "bag file \(source): weight \(v.scalar?.string ?? "\(v)") is not a finite decimal number")
                    }
                    return d
                }
            }
        }
        if let s = fields["segment"] {
            switch ModelYAML.decimal(s) {
            case let d? where d > 0 && d <= 3600:
                segment = d == d.rounded() ? Fraction(Int(d), 1) : Fraction(decimal: d)
            default: throw EngineError(.invalidModelFile, "bag file \(source): 'segment' must be a number of seconds (0..3600)")
            }
        }
    }
}
