import AudioIO
import DemucsEngine

/// What a worker needs to know to turn one input into stems: the configuration (file and flags)
/// seen from the worker's side. Replaced as a whole on SIGHUP.
public struct WorkSettings: Sendable {
    public enum InputAction: String, Sendable { case keep, move, delete }

    public let config: DaemonConfig

    public init(config: DaemonConfig) {
        self.config = config
    }

    public var modelName: String { config.model.name }
    public var repo: String? { config.model.repo }
    public var cache: String? { config.model.cache }
    public var separation: SeparationOptions { config.separation.engineOptions(threads: config.jobs.threads) }
    /// A RoFormer's options: its config's chunking (`shifts`, `overlap` and `segment` are demucs's),
    /// the threads and the precision.
    public var roformer: RoFormerOptions {
        RoFormerOptions(threads: config.jobs.threads, precision: config.separation.precision)
    }
    /// Two-stem mode: this stem and `no_<stem>` (the sum of the others).
    public var twoStems: String? { config.separation.twoStems }
    /// The files written per stem, with their encoder settings.
    public var formats: [(ext: String, options: EncodeOptions)] {
        config.output.formats.map { ($0.rawValue, config.output.encodeOptions(for: $0)) }
    }
    public var workers: Int { config.jobs.workers }
    public var retryLimit: Int { config.jobs.retryLimit }
    public var onSuccess: InputAction { InputAction(rawValue: config.jobs.onSuccess.rawValue) ?? .keep }
    public var onFailure: InputAction { InputAction(rawValue: config.jobs.onFailure.rawValue) ?? .keep }
    public var maxFileSize: Int64 { config.jobs.maxFileSizeBytes ?? .max }
    public var maxDuration: Double {
        config.jobs.maxDurationMinutes == 0 ? .infinity : Double(config.jobs.maxDurationMinutes) * 60
    }
    public var settleSeconds: Double { config.jobs.settleSeconds }
    /// The decoder for files libsndfile cannot read: the configured ffmpeg, else the one on PATH.
    public var ffmpeg: FFmpegDecoder? {
        config.jobs.ffmpeg.map { FFmpegDecoder(executable: $0) } ?? FFmpegDecoder.onPath()
    }

    /// Everything besides the content and the model that the published files depend on:
    /// stems, separation settings, formats and their encoder settings. Stems are reused only
    /// from a job with the same recipe. (Thread count is left out: results do not depend on it.)
    public var recipe: String {
        let sep = config.separation, out = config.output
        var parts = [
            "shifts=\(sep.shifts)", "overlap=\(sep.overlap)", "segment=\(sep.segment.map { "\($0)" } ?? "model")",
            "two_stems=\(sep.twoStems ?? "-")", "precision=\(sep.precision.rawValue)", "clip=\(out.clipMode)",
        ]
        if out.wav { parts.append("wav=\(out.wavFormat)") }
        if out.flac { parts.append("flac") }
        if out.mp3 { parts.append("mp3=\(out.mp3Bitrate)/\(out.mp3Preset)") }
        return parts.joined(separator: " ")
    }
}
