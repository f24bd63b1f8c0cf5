import Foundation
import Yams

/// How the engine reads the YAML of model files (bag files, RoFormer configs): through Yams's
/// node tree, converting scalars itself. Yams's own conversions are not used: `Yams.load` traps
/// on a mapping whose key is not a string (`[1, 2]: x`) and its scalar resolution on a base-60
/// integer that overflows (`999999995999995995:9`), both found by the bagyaml fuzz target.
/// `kind` names the sort of file in errors ("bag file", "model config").
enum ModelYAML {
    /// The text of the file at `path`.
    static func text(path: String, kind: String) throws -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw EngineError(.modelNotFound, "cannot read \(kind) \(path)")
        }
        return text
    }

    /// The document's root node (nil for an empty document).
    static func compose(_ text: String, kind: String, source: String) throws -> Node? {
        do {
            return try Yams.compose(yaml: text)
        } catch {
            throw EngineError(.invalidModelFile, "\(kind) \(source) is not valid YAML: \(error)")
        }
    }

    /// A mapping's values by key, every key a scalar; `section` names the mapping in errors
    /// (nil: the document's top level).
    static func fields(_ mapping: Node.Mapping, kind: String, source: String, section: String?) throws -> [String: Node] {
        var fields: [String: Node] = [:]
        for (key, value) in mapping {
            guard let name = key.scalar?.string else {
                throw EngineError(.invalidModelFile, "\(kind) \(source)\(section.map { ": \($0)" } ?? "") has a key that is not a name")
            }
            fields[name] = value
        }
        return fields
    }

    /// A plain (unquoted) scalar written as a decimal number (`1`, `-0.5`, `.25`, `1.5e-3`), if it
    /// is finite: the only numbers model files hold, with none of YAML 1.1's other forms.
    static func decimal(_ node: Node) -> Double? {
        guard let scalar = node.scalar, scalar.style == .plain || scalar.style == .any else { return nil }
        let text = scalar.string
        guard !text.isEmpty, text.unicodeScalars.allSatisfy({ "0123456789+-.eE".unicodeScalars.contains($0) }),
              text.contains(where: \.isNumber), let value = Double(text), value.isFinite else { return nil }
        return value
    }
}
