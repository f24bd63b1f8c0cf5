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

    public init(yaml text: String, source: String) throws {
        let object: Any?
        do {
            object = try Yams.load(yaml: text)
        } catch {
            throw EngineError(.invalidModelFile, "bag file \(source) is not valid YAML: \(error)")
        }
        guard let dict = object as? [String: Any], let models = dict["models"] as? [Any], !models.isEmpty else {
            throw EngineError(.invalidModelFile, "bag file \(source) has no 'models' list")
        }
        self.models = try models.map { item in
            if let s = item as? String { return s }
            if let i = item as? Int { return String(i) }
            throw EngineError(.invalidModelFile, "bag file \(source): model entry \(item) is not a signature")
        }
        if let w = dict["weights"] {
            guard let rows = w as? [[Any]] else {
                throw EngineError(.invalidModelFile, "bag file \(source): 'weights' must be a list of lists of numbers")
            }
            weights = try rows.map { row in
                try row.map { v in
                    if let d = v as? Double { return d }
                    if let i = v as? Int { return Double(i) }
                    throw EngineError(.invalidModelFile, "bag file \(source): weight \(v) is not a number")
                }
            }
        }
        if let s = dict["segment"] {
            if let i = s as? Int { segment = Fraction(i, 1) }
            else if let d = s as? Double { segment = Fraction(decimal: d) }
            else { throw EngineError(.invalidModelFile, "bag file \(source): 'segment' must be a number") }
        }
    }
}
