import Foundation

/// What turns a track into stems: `Separator` (a demucs bag, `apply_model`'s way) or
/// `RoFormerSeparator` (a RoFormer, audio-separator's chunking). The pipeline, the CLI and the
/// daemon use this and nothing family-specific.
public protocol StemSeparator: Sendable {
    /// The stems it gives, in order (the rows of `Stems` and `StemBlock`).
    var sources: [String] { get }
    var samplerate: Int { get }
    var audioChannels: Int { get }

    /// Separates a track read from `source`, handing finished samples to `emit` in track order,
    /// at a memory cost that does not grow with the track.
    func separateStreaming(
        _ source: some MixSource,
        emit: (StemBlock) throws -> Void,
        progress: (@Sendable (SeparationProgress) -> Void)?,
        isCancelled: (@Sendable () -> Bool)?
    ) throws

    /// Separates `[channels, length]` audio held in memory.
    func separateStems(
        _ mix: consuming Tensor,
        progress: (@Sendable (SeparationProgress) -> Void)?,
        isCancelled: (@Sendable () -> Bool)?
    ) throws -> Stems
}

extension StemSeparator {
    /// Refuses audio this separator cannot take: a channel count other than the model's, or no
    /// samples at all.
    func checkInput(channels: Int, length: Int) throws {
        guard channels == audioChannels else {
            throw EngineError(.invalidArgument, "the model takes \(audioChannels) channels, the audio has \(channels)")
        }
        guard length > 0 else { throw EngineError(.invalidArgument, "the audio is empty") }
    }
}

extension Separator: StemSeparator {
    public var sources: [String] { bag.sources }
    public var samplerate: Int { bag.samplerate }
    public var audioChannels: Int { bag.audioChannels }
}

extension RoFormerSeparator: StemSeparator {
    public var samplerate: Int { model.samplerate }
    public var audioChannels: Int { model.audioChannels }
}

/// What a model name loads: a demucs bag, or a RoFormer.
public enum TrackModel: Sendable {
    case demucs(ModelBag)
    case roformer(RoFormer)

    /// The stems a separation gives (for a single-target RoFormer, the residual too).
    public var sources: [String] {
        switch self {
        case .demucs(let bag): bag.sources
        case .roformer(let model): RoFormerSeparator(model: model).sources
        }
    }

    public var samplerate: Int {
        switch self {
        case .demucs(let bag): bag.samplerate
        case .roformer(let model): model.samplerate
        }
    }

    public var audioChannels: Int {
        switch self {
        case .demucs(let bag): bag.audioChannels
        case .roformer(let model): model.audioChannels
        }
    }

    /// What it is, for logs and `status`: "bag of 4 models", "BS-RoFormer (dim 512, depth 12)".
    public var summary: String {
        switch self {
        case .demucs(let bag): bag.models.count == 1 ? "1 model" : "bag of \(bag.models.count) models"
        case .roformer(let model):
            "\(model.config.family.rawValue) (dim \(model.config.dim), depth \(model.config.depth))"
        }
    }

    /// The separator of this model with the options of its family.
    public func separator(demucs: SeparationOptions, roformer: RoFormerOptions) -> any StemSeparator {
        switch self {
        case .demucs(let bag): Separator(bag: bag, options: demucs)
        case .roformer(let model): RoFormerSeparator(model: model, options: roformer)
        }
    }
}
