import DemucsEngine
import Foundation

/// A RoFormer as the published ones come: `NAME.ckpt` (`torch.save` of the model's state dict,
/// often float16) beside `NAME.yaml` (its MSST config, `RoFormerConfig`). The `.ckpt` goes
/// through the safe pickle reader; the state may sit under `state`, `state_dict` or
/// `model_state_dict`, as training scripts save it.
public enum RoFormerCheckpoint {
    /// The state dict's float tensors by name.
    public static func tensors(path: String) throws -> [String: RawTensor] {
        var value = try TorchZip.load(path: path)
        for wrapper in ["state", "state_dict", "model_state_dict"] {
            if let inner = value[wrapper], case .dict = inner { value = inner }
        }
        guard case .dict(let state) = value else {
            throw CheckpointError("\(path) holds a \(value.kindName), not a RoFormer state dict")
        }
        return try LegacyCheckpoint.plainTensors(state, path: path)
    }

    /// The model of `config` with the weights of `checkpoint`; every tensor the architecture
    /// needs must be there with its shape, and no other.
    public static func load(config configPath: String, checkpoint: String) throws -> RoFormer {
        let config = try RoFormerConfig(path: configPath)
        // Each tensor's bytes are let go as soon as it is converted: the checkpoint and its
        // float32 copy are never held whole at the same time.
        var raw = try tensors(path: checkpoint)
        var floats: [String: Tensor] = [:]
        for name in Array(raw.keys) {
            guard let tensor = raw.removeValue(forKey: name) else { continue }
            floats[name] = Tensor(shape: tensor.shape, data: tensor.floats())
        }
        return try RoFormer(config: config, weights: Weights(tensors: floats, source: checkpoint))
    }
}

extension ModelRepository {
    /// Loads `name` as whatever the folder holds under it: a RoFormer (`NAME.yaml` with
    /// `NAME.ckpt`), else a demucs bag or single model (`load`).
    public func loadModel(_ name: String) throws -> TrackModel {
        guard isRoFormer(name) else { return .demucs(try load(name)) }
        let files = roFormerFiles(name)
        do {
            return .roformer(try RoFormerCheckpoint.load(config: files.config, checkpoint: files.checkpoint))
        } catch let error as CheckpointError {
            throw EngineError(.invalidModelFile, "model \(name): \(error.message)")
        }
    }
}
