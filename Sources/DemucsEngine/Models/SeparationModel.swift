/// A single demucs network that turns a stereo (or `audioChannels`) mixture into one waveform per
/// source. `apply_model`'s splitting, shifting and bagging live in `Separator`; a model only
/// says how long an input it wants and computes one chunk.
public protocol SeparationModel: Sendable {
    var sources: [String] { get }
    var samplerate: Int { get }
    var audioChannels: Int { get }
    /// The segment length the model was trained on, in seconds (used to split long inputs).
    var segment: Fraction { get set }
    /// For transformer models: the longest segment they accept (their training segment).
    var maxSegment: Fraction? { get }
    /// The input length the model wants for an input of `length` samples.
    func validLength(_ length: Int) throws -> Int
    /// Separates one chunk: `[audioChannels, length]` in, `[sources, audioChannels, n]` out, where
    /// `n >= length` samples are centred on the input (`Separator` trims them to `length`).
    func forward(_ mix: Tensor) throws -> Tensor
    /// Whose `apply_model` runs the model: demucs v2 shifted each segment on its own and did not
    /// add `1e-8` to the standard deviation it normalises by.
    var applyGeneration: ApplyGeneration { get }
}

/// The demucs release whose `apply_model` semantics a model follows.
public enum ApplyGeneration: Sendable {
    /// demucs >= 3: shifts around the whole track, each shift split into segments.
    case v4
    /// demucs 2.0.3: segments first, each segment shifted (`utils.apply_model`).
    case v2
}

extension SeparationModel {
    public var applyGeneration: ApplyGeneration { .v4 }
}
