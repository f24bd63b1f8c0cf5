/// One or more models whose outputs are averaged per source with weights (demucs's
/// `BagOfModels`). A single model is a bag of one with unit weights.
public struct ModelBag: Sendable {
    public var name: String
    public var models: [any SeparationModel]
    /// `weights[model][source]`.
    public var weights: [[Double]]

    public var sources: [String] { models[0].sources }
    public var samplerate: Int { models[0].samplerate }
    public var audioChannels: Int { models[0].audioChannels }
    /// Whether every model follows demucs 2.0.3's `apply_model` (its normalisation, its default of
    /// no shifts).
    public var isV2: Bool { models.allSatisfy { $0.applyGeneration == .v2 } }

    /// Builds the bag; `segment` (from the bag file) overrides each model's segment, except that a
    /// transformer model never gets a segment longer than the one it was trained on.
    public init(name: String, models: [any SeparationModel], weights: [[Double]]?, segment: Fraction?) throws {
        guard let first = models.first else {
            throw EngineError(.invalidModelFile, "model \(name): the bag lists no models")
        }
        var models = models
        for i in models.indices {
            let m = models[i]
            guard m.sources == first.sources, m.samplerate == first.samplerate, m.audioChannels == first.audioChannels else {
                throw EngineError(.invalidModelFile, "model \(name): the models of the bag do not share sources, sample rate and channels")
            }
            if let segment {
                if let maxSegment = m.maxSegment {
                    if segment.doubleValue <= maxSegment.doubleValue { models[i].segment = segment }
                } else {
                    models[i].segment = segment
                }
            }
        }
        if let weights {
            guard weights.count == models.count, weights.allSatisfy({ $0.count == first.sources.count }) else {
                throw EngineError(.invalidModelFile, "model \(name): the weights matrix must have one row per model and one column per source (\(models.count)×\(first.sources.count))")
            }
            self.weights = weights
        } else {
            self.weights = Array(repeating: Array(repeating: 1, count: first.sources.count), count: models.count)
        }
        self.name = name
        self.models = models
    }

    /// The longest `--segment` every transformer model of the bag accepts, if any has a limit.
    public var maxAllowedSegment: Fraction? {
        models.compactMap(\.maxSegment).min { $0.doubleValue < $1.doubleValue }
    }
}
