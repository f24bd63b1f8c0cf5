import Foundation

/// Finds models by name in a folder, the way demucs's `--repo DIR -n NAME` does: `NAME.yaml` is a
/// bag whose models are `<sig>.safetensors` beside it; `NAME.safetensors` is a model of its own.
/// A `NAME.yaml` with a `NAME.ckpt` beside it is a RoFormer (its MSST config and its torch
/// checkpoint, as they are published); CheckpointImport's `loadModel` reads those.
public struct ModelRepository: Sendable {
    public let root: String

    public init(root: String) {
        self.root = root
    }

    func path(_ file: String) -> String { (root as NSString).appendingPathComponent(file) }

    /// Whether the folder holds `name` as a bag or as a single model.
    public func has(_ name: String) -> Bool {
        let fm = FileManager.default
        return fm.fileExists(atPath: path("\(name).yaml")) || fm.fileExists(atPath: path("\(name).safetensors"))
    }

    /// Whether `name` is a RoFormer: `NAME.yaml` with `NAME.ckpt` beside it.
    public func isRoFormer(_ name: String) -> Bool {
        let fm = FileManager.default
        return fm.fileExists(atPath: path("\(name).yaml")) && fm.fileExists(atPath: path("\(name).ckpt"))
    }

    /// The RoFormers' config and checkpoint paths.
    public func roFormerFiles(_ name: String) -> (config: String, checkpoint: String) {
        (path("\(name).yaml"), path("\(name).ckpt"))
    }

    /// The names of the RoFormers in the folder.
    public func roFormers() -> [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return files.filter { $0.hasSuffix(".ckpt") }.map { String($0.dropLast(5)) }
            .filter { files.contains($0 + ".yaml") }.sorted()
    }

    /// The names of bags and single models in the folder (RoFormers are `roFormers()`).
    public func list() -> (bags: [String], single: [String]) {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        let bags = files.filter { $0.hasSuffix(".yaml") && !files.contains(String($0.dropLast(5)) + ".ckpt") }
            .map { String($0.dropLast(5)) }.sorted()
        let single = files.filter { $0.hasSuffix(".safetensors") }.map { String($0.dropLast(12)) }.sorted()
        return (bags, single)
    }

    /// Loads `name`: the bag `name.yaml` if there is one, else the single model `name.safetensors`.
    public func load(_ name: String) throws -> ModelBag {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: root, isDirectory: &isDir), isDir.boolValue else {
            throw EngineError(.modelNotFound, "model folder \(root) does not exist or is not a folder")
        }
        let yaml = path("\(name).yaml")
        if isRoFormer(name) {
            throw EngineError(.unsupportedModel, "model \(name) in \(root) is a RoFormer (\(name).yaml with \(name).ckpt), not a demucs bag")
        }
        if fm.fileExists(atPath: yaml) {
            let bag = try BagFile(path: yaml)
            let models = try bag.models.map { sig -> any SeparationModel in
                let file = path("\(sig).safetensors")
                guard fm.fileExists(atPath: file) else {
                    throw EngineError(.modelNotFound, "model \(name) (\(yaml)) needs \(file), which is missing")
                }
                return try ModelLoader.load(path: file)
            }
            return try ModelBag(name: name, models: models, weights: bag.weights, segment: bag.segment)
        }
        let single = path("\(name).safetensors")
        if fm.fileExists(atPath: single) {
            return try ModelBag(name: name, models: [ModelLoader.load(path: single)], weights: nil, segment: nil)
        }
        let available = list()
        throw EngineError(.modelNotFound, "model \(name) not found in \(root): neither \(name).yaml nor \(name).safetensors is there (bags: \(available.bags.joined(separator: ", ")); single models: \(available.single.joined(separator: ", ")))")
    }
}
