import Foundation

/// Builds a model from one `<sig>.safetensors` file as demucs >= 4.1 publishes them: the state
/// dict as tensors, and the class and constructor arguments in the metadata (`klass`, `args`,
/// `kwargs`, JSON-encoded).
public enum ModelLoader {
    public static func load(path: String) throws -> any SeparationModel {
        let file = try SafeTensorsFile(path: path)
        guard let klass = file.metadata["klass"] else {
            throw EngineError(.invalidModelFile, "model file \(path) has no 'klass' metadata; it is not a demucs model")
        }
        if let args = file.metadata["args"], args.trimmingCharacters(in: .whitespaces) != "[]" {
            throw EngineError(.unsupportedModel, "model file \(path): positional constructor arguments \(args) are not supported")
        }
        var kwargs = try ModelArguments(json: file.metadata["kwargs"] ?? "{}", source: path)
        // A `structure` entry describes a nested (diffq-quantised) state: dequantise it here.
        let weights = try file.metadata["structure"].map {
            try DiffQ.weights(file: file, structure: $0, klass: klass, kwargsJSON: file.metadata["kwargs"] ?? "{}")
        } ?? Weights(file: file)
        return try build(klass: klass, kwargs: &kwargs, weights: weights, path: path)
    }

    /// Builds the model of class `klass` (demucs's dotted class name) from its constructor
    /// arguments and weights. Each model family adds its case here.
    static func build(klass: String, kwargs: inout ModelArguments, weights: Weights, path: String) throws -> any SeparationModel {
        let model: any SeparationModel
        switch klass {
        case "demucs.htdemucs.HTDemucs":
            model = try HTDemucs(config: HTDemucsConfig(&kwargs), weights: weights)
        case "demucs.demucs.Demucs":
            model = try WaveformDemucs(config: WaveformDemucsConfig(&kwargs), weights: weights)
        case "demucs.hdemucs.HDemucs":
            model = try HDemucs(config: HDemucsConfig(&kwargs), weights: weights)
        case "demucs.model.Demucs":
            model = try WaveformDemucs(config: WaveformDemucsConfig(v2: &kwargs), weights: weights)
        case "demucs.tasnet.ConvTasNet":
            model = try ConvTasNet(config: ConvTasNetConfig(&kwargs), weights: weights)
        default:
            throw EngineError(.unsupportedModel, "model file \(path): model class \(klass) is not supported by this engine (supported: \(ParameterLayout.supportedClasses.joined(separator: ", ")))")
        }
        try checkAllUsed(weights, path: path)
        return model
    }

    /// A checkpoint with tensors the architecture does not use was made for another architecture.
    private static func checkAllUsed(_ weights: Weights, path: String) throws {
        let extra = weights.unused
        if let first = extra.first {
            throw EngineError(.invalidModelFile, "model file \(path) has tensor \(first) that the architecture in its metadata does not use (\(extra.count) unexpected tensors)")
        }
    }
}
