import AudioIO
import Foundation

/// Where a track is in `TrackSeparation.run`, for a progress bar, an ETA and a watchdog.
public struct TrackProgress: Sendable, Equatable {
    public enum Stage: String, Sendable {
        case decoding, separating, encoding
    }

    public let stage: Stage
    /// The share of the track's expected time that is done, 0...1, never decreasing over a run;
    /// 1 only when every file is written. An ETA is `elapsed / fraction - elapsed`.
    public let fraction: Double
}

/// Turns the progress of the stages into one fraction of the expected time.
///
/// The separation's share is known only against the encoding's, whose speed depends on the
/// formats, not on the model: on a multi-hour track with a small model, encoding the MP3s takes
/// longer than separating. So the fraction is time-based: the separation's total is
/// extrapolated from its rate so far; the encoding's from its own rate once its first chunk is
/// done, and before that from `priorSecondsPerFrame` (measured on a 2-core EPYC: on a slower
/// machine the ETA is short by the encoding's share until the encoding starts). The decode is
/// not counted (its length is not known until it ends, and it is short beside the rest).
/// Whatever the estimates, the reported fraction never goes back.
final class TrackProgressEstimator: @unchecked Sendable {
    private let lock = NSLock()
    private let callback: (@Sendable (TrackProgress) -> Void)?
    private var last = 0.0
    private var separationStart: Date?
    private var separationSeconds: Double?
    private var encodeStart: Date?
    private var encodeFramesTotal = 0.0
    private var encodeFramesDone = 0.0
    private var encodePrior = 0.0

    init(callback: (@Sendable (TrackProgress) -> Void)?) {
        self.callback = callback
    }

    /// Encoding seconds per frame and output of each format, before a rate is measured:
    /// 0.0024 s per second of 44.1 kHz audio for a 16-bit WAV stem, 0.025 s for an MP3 at the
    /// default 320 kbit/s preset 2 (`demucsctl separate` with the test model on 10 minutes,
    /// four stems against two, WAV against MP3, 2-core EPYC). An MP3 stem costs a twentieth of
    /// the audio's duration: with htdemucs and the daemon's WAV + MP3, a fifth of a job's time.
    static func priorSecondsPerFrame(_ options: EncodeOptions) -> Double {
        options.format == .mp3 ? 1.0 / 44100 / 40 : 1.0 / 44100 / 400
    }

    func decoding() {
        report(.decoding, 0)
    }

    /// The separation is about to start; `frames` and `formats` size the encoding after it.
    func startSeparation(frames: Int, outputs: Int, formats: [EncodeOptions]) {
        lock.withLock {
            separationStart = Date()
            encodeFramesTotal = Double(frames * outputs * formats.count)
            encodePrior = Double(frames * outputs) * formats.reduce(0) { $0 + Self.priorSecondsPerFrame($1) }
        }
        report(.separating, 0)
    }

    func separated(_ share: Double) {
        let fraction: Double = lock.withLock {
            guard let start = separationStart, share > 0 else { return 0 }
            let elapsed = Date().timeIntervalSince(start)
            let total = elapsed / share
            return share * total / (total + encodePrior)
        }
        report(.separating, fraction)
    }

    func startEncoding() {
        lock.withLock {
            let now = Date()
            separationSeconds = separationStart.map { now.timeIntervalSince($0) } ?? 0
            encodeStart = now
        }
        report(.encoding, -1)
    }

    /// `frames` more frames of one output in one format are written.
    func encoded(frames: Int) {
        let fraction: Double = lock.withLock {
            encodeFramesDone += Double(frames)
            guard let start = encodeStart, let separation = separationSeconds, encodeFramesTotal > 0 else { return 0 }
            let elapsed = Date().timeIntervalSince(start)
            let share = min(1, encodeFramesDone / encodeFramesTotal)
            let expected = share >= 1 ? elapsed : max(elapsed / max(share, 1e-9), elapsed)
            return share >= 1 ? 1 : (separation + elapsed) / (separation + expected)
        }
        report(.encoding, fraction)
    }

    /// Reports `fraction` (or the last one, when it is lower: -1 for "no new estimate").
    private func report(_ stage: TrackProgress.Stage, _ fraction: Double) {
        let value: Double = lock.withLock {
            last = max(last, min(fraction, 1))
            return last
        }
        callback?(TrackProgress(stage: stage, fraction: value))
    }
}
