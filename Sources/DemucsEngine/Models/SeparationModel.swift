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
    /// Separates one chunk: `[audioChannels, length]` in, `[sources, audioChannels, length]` out.
    func forward(_ mix: Tensor) throws -> Tensor
}
