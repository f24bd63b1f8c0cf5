import AudioIO
import DemucsEngine
import Foundation

/// One track from its file to its encoded stems, at a memory cost that does not depend on the
/// track's length:
///
/// 1. decode (libsndfile, or ffmpeg through a pipe; in the daemon both in a child process,
///    `IsolatedDecoder`) block by block into a float32 spool of the mix in the staging folder
///    (8 bytes per stereo frame);
/// 2. the streaming separation reads that spool twice for the mono statistics, then stretch by
///    stretch as its segments move along the track, and hands finished samples on;
/// 3. each output (stem, sum of the others, mix minus a stem) goes to its own float32 spool,
///    with its peak, because `rescale` needs the whole stem's peak before the first integer
///    sample is written;
/// 4. each spool is encoded into every format and removed.
///
/// The spooled mix is read instead of decoding twice: one decode (ffmpeg's may be the slow
/// part of a short file) and the same samples for every pass. The samples are those of the
/// in-memory path (`Separator.separateStems` and `AudioEncoder.write`), bit for bit.
public struct TrackSeparation {
    public let separator: any StemSeparator
    public let outputs: [StemRecipe]
    /// Each format's file extension and encoder settings.
    public let formats: [(ext: String, options: EncodeOptions)]
    public let ffmpeg: FFmpegDecoder?
    /// Decode in a child process (the daemon, for files from the watch folder); nil: in this
    /// process (`demucsctl separate`).
    public let isolatedDecoder: IsolatedDecoder?

    public init(separator: any StemSeparator, outputs: [StemRecipe], formats: [(ext: String, options: EncodeOptions)],
                ffmpeg: FFmpegDecoder? = FFmpegDecoder.onPath(), isolatedDecoder: IsolatedDecoder? = nil) {
        self.separator = separator
        self.outputs = outputs
        self.formats = formats
        self.ffmpeg = ffmpeg
        self.isolatedDecoder = isolatedDecoder
    }

    /// The input could not be decoded (as opposed to a failure of the machine: a full disk
    /// under the mix spool comes out as ``MixSpoolFailure``, under a stem spool or a file as
    /// the `AudioIOError` of that writer).
    public struct DecodingFailure: Error, CustomStringConvertible {
        public let error: AudioIOError
        public var description: String { error.description }
    }

    /// Writing the spool of the decoded mix failed (a full disk, most often), after `bytes`
    /// bytes of it were written: for a caller telling a track too long for the disk from a
    /// disk that something else filled.
    public struct MixSpoolFailure: Error, CustomStringConvertible {
        public let error: any Error
        public let bytes: Int64
        public var description: String { "\(error)" }
    }

    /// Separates `input` and writes every output in every format into `staging`, named
    /// `<output name>.<ext>`; returns the files written (in output, then format order) and the
    /// track's length in frames.
    /// - Parameters:
    ///   - decoded: called with the track's length once it is decoded, before the separation;
    ///     it may throw to stop (a length or disk limit).
    ///   - progress: called at every decoded block, separated segment and encoded chunk (so
    ///     also a heartbeat), with the share of the expected time done.
    public func run(input: String, staging: String,
                    decoded: (Int) throws -> Void = { _ in },
                    progress: (@Sendable (TrackProgress) -> Void)? = nil,
                    isCancelled: (@Sendable () -> Bool)? = nil) throws -> (files: [String], frames: Int) {
        let channels = separator.audioChannels, rate = separator.samplerate, sourceCount = separator.sources.count
        let mix = try PCMSpool(path: staging + "/.mix.f32", channels: channels, sampleRate: rate)
        defer { mix.remove() }
        let estimate = TrackProgressEstimator(callback: progress)
        let stop = StopCheck(isCancelled)
        estimate.decoding()
        do {
            let sink: (AudioBuffer) throws -> Void = { block in
                do { try mix.append(block) } catch { throw SpoolFailure(error: error) }
                estimate.decoding()
                try stop.check()
            }
            if let isolatedDecoder {
                try isolatedDecoder.stream(path: input, sampleRate: rate, channels: channels, into: sink)
            } else {
                try AudioDecoder.stream(path: input, sampleRate: rate, channels: channels, ffmpeg: ffmpeg, into: sink)
            }
        } catch let failure as SpoolFailure {
            throw MixSpoolFailure(error: failure.error, bytes: mix.bytes)
        } catch let error as AudioIOError {
            throw DecodingFailure(error: error)
        }
        let frames = mix.frames
        try decoded(frames)
        estimate.startSeparation(frames: frames, outputs: outputs.count, formats: formats.map(\.options))

        let spools = try outputs.enumerated().map { i, _ in
            try PCMSpool(path: staging + "/.stem\(i).f32", channels: channels, sampleRate: rate)
        }
        defer { for spool in spools { spool.remove() } }
        let needsMix = outputs.contains { if case .mixMinus = $0.kind { true } else { false } }
        try separator.separateStreaming(SpoolMixSource(spool: mix), emit: { block in
            let original = needsMix ? try mix.read(from: block.start, count: block.count).channels : []
            for (recipe, spool) in zip(outputs, spools) {
                try spool.append(Self.rows(of: recipe, block, sources: sourceCount, original: original))
            }
        }, progress: { estimate.separated($0.fraction) }, isCancelled: isCancelled)
        mix.remove()
        estimate.startEncoding()

        var files: [String] = []
        for (recipe, spool) in zip(outputs, spools) {
            for (ext, options) in formats {
                let name = "\(recipe.name).\(ext)"
                try stop.check(now: true)
                try Self.encode(spool, to: staging + "/" + name, options: options, progress: estimate, stop: stop)
                files.append(name)
            }
            spool.remove()
        }
        return (files, frames)
    }

    /// The rows of one output for a block of stems, summed in the order the in-memory paths sum.
    static func rows(of recipe: StemRecipe, _ block: StemBlock, sources: Int, original: [[Float]]) -> [[Float]] {
        let channels = block.channels
        switch recipe.kind {
        case .source(let k):
            return (0..<channels).map { block.rows[k * channels + $0] }
        case .sumOfOthers(let k):
            var rest = [[Float]](repeating: [Float](repeating: 0, count: block.count), count: channels)
            for j in 0..<sources where j != k {
                for c in 0..<channels {
                    block.rows[j * channels + c].withUnsafeBufferPointer { s in
                        for i in 0..<block.count { rest[c][i] += s[i] }
                    }
                }
            }
            return rest
        case .mixMinus(let k):
            return (0..<channels).map { c in zip(original[c], block.rows[k * channels + c]).map { $0 - $1 } }
        }
    }

    /// Frames read from a spool per write.
    static let encodeChunk = 1 << 16

    /// Encodes a spooled output into one file, rescaled (when asked) by the spool's peak.
    static func encode(_ spool: PCMSpool, to path: String, options: EncodeOptions,
                       progress: TrackProgressEstimator? = nil, stop: StopCheck? = nil) throws {
        let writer = try AudioFileWriter(path: path, sampleRate: spool.sampleRate, channels: spool.channels,
                                         frames: spool.frames, options: options, peak: spool.peak)
        var start = 0
        while start < spool.frames {
            let n = min(encodeChunk, spool.frames - start)
            try writer.write(spool.read(from: start, count: n))
            start += n
            progress?.encoded(frames: n)
            try stop?.check()
        }
        try writer.finish()
    }
}

/// Asks `isCancelled` (which may read a database) at most twice a second from the decode and
/// encode loops, and throws the engine's cancellation as the separation does.
final class StopCheck {
    private let isCancelled: (@Sendable () -> Bool)?
    private var last = Date.distantPast

    init(_ isCancelled: (@Sendable () -> Bool)?) {
        self.isCancelled = isCancelled
    }

    /// - Parameter now: ask whatever the time since the last question (before each file).
    func check(now asked: Bool = false) throws {
        guard let isCancelled else { return }
        let now = Date()
        guard asked || now.timeIntervalSince(last) >= 0.5 else { return }
        last = now
        if isCancelled() { throw EngineError(.cancelled, "separation cancelled") }
    }
}

/// An error of a spool written under the decoder, kept apart from the decoder's own.
private struct SpoolFailure: Error { let error: any Error }
