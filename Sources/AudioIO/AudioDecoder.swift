import CSndFile

/// Reads audio files into planar float buffers through libsndfile, and through ffmpeg
/// (`FFmpegDecoder`) what libsndfile does not recognise.
///
/// libsndfile (1.2 on Debian 12) reads WAV (16/24/32-bit integer and float), AIFF, FLAC, Ogg
/// Vorbis, Opus and MP3, detected from content, not from the extension; `load` hands any other
/// file (AAC, ALAC, WMA, video files) to ffmpeg. Integer PCM is normalised the libsndfile way
/// (16-bit divides by 32768), which is also what torchaudio/soundfile give demucs.
public enum AudioDecoder {
    /// Frames read per libsndfile call; large enough to amortise the call, small enough to keep
    /// the interleaved scratch buffer modest.
    static let chunkFrames = 1 << 16
    /// The sample rates an input may declare, in Hz. A header is believed only within them: a
    /// FLAC claiming 4 Hz would make one second of samples three hours of audio once resampled.
    public static let sampleRates = 1_000...768_000

    /// Decodes the whole file at its native sample rate and channel count.
    /// - Throws: `AudioIOError` naming `path` for a missing, empty, unreadable, unrecognised
    ///   or corrupt file, or a folder.
    public static func decode(path: String) throws -> AudioBuffer {
        try StderrSilencer.silenced { try decodeLoudly(path: path) }
    }

    private static func decodeLoudly(path: String) throws -> AudioBuffer {
        var channels: [[Float]] = []
        let format = try decodeBlocksLoudly(path: path, hint: { hint, count in
            channels = Array(repeating: [], count: count)
            for c in 0..<count { channels[c].reserveCapacity(hint) }
        }) { block in
            for c in channels.indices { channels[c].append(contentsOf: block.channels[c]) }
        }
        return AudioBuffer(sampleRate: format.sampleRate, channels: channels)
    }

    /// Decodes with libsndfile block by block, handing each block to `body`; returns the
    /// file's format and length. The same checks as `decode` (a truncated file throws once its
    /// end is reached, after the blocks before it were handed on).
    public static func decodeBlocks(path: String, _ body: (AudioBuffer) throws -> Void) throws -> (sampleRate: Int, channels: Int, frames: Int) {
        try StderrSilencer.silenced { try decodeBlocksLoudly(path: path, hint: { _, _ in }, body) }
    }

    private static func decodeBlocksLoudly(path: String, hint: (Int, Int) -> Void,
                                           _ body: (AudioBuffer) throws -> Void) throws -> (sampleRate: Int, channels: Int, frames: Int) {
        try FileChecks.requireReadableFile(path)
        let file = try SndFile(readingFrom: path)
        defer { _ = file.close() }

        let channelCount = Int(file.info.channels)
        let sampleRate = Int(file.info.samplerate)
        guard channelCount > 0, sampleRates.contains(sampleRate) else {
            throw AudioIOError(.corruptFile, .decode, path: path,
                               reason: "header declares \(channelCount) channels at \(sampleRate) Hz (sample rates from \(sampleRates.lowerBound) to \(sampleRates.upperBound) Hz are read)")
        }
        // `frames` is exact for PCM and FLAC and an estimate for compressed streams; use it only
        // as a capacity hint (bounded, so a lying header cannot make us reserve gigabytes).
        hint(Int(clamping: max(0, min(file.info.frames, 1 << 26))), channelCount)

        var scratch = [Float](repeating: 0, count: chunkFrames * channelCount)
        var total = 0
        while true {
            let got = scratch.withUnsafeMutableBufferPointer {
                file.readFloat(into: $0.baseAddress!, frames: chunkFrames)
            }
            if got <= 0 { break }
            var channels = Array(repeating: [Float](), count: channelCount)
            scratch.withUnsafeBufferPointer { src in
                for c in 0..<channelCount {
                    channels[c].reserveCapacity(got)
                    channels[c].append(contentsOf: StrideSampleSequence(src, offset: c, stride: channelCount, count: got))
                }
            }
            total += got
            try body(AudioBuffer(sampleRate: sampleRate, channels: channels))
        }
        if file.hasError {
            throw AudioIOError(.corruptFile, .decode, path: path, reason: file.errorReason)
        }
        // FLAC (STREAMINFO) and PCM headers state the exact length; coming up short means the
        // file is truncated or damaged mid-stream, which libsndfile reports only by stopping early.
        // MPEG and Ogg lengths can be estimates, so they are exempt.
        let declared = Int(clamping: file.info.frames)
        let exactLength = file.majorFormat != SF_FORMAT_MPEG && file.majorFormat != SF_FORMAT_OGG
        if exactLength && declared > 0 && total < declared {
            throw AudioIOError(.corruptFile, .decode, path: path,
                               reason: "truncated or corrupt: the header declares \(declared) frames but only \(total) could be decoded")
        }
        if total == 0 {
            throw AudioIOError(.emptyFile, .decode, path: path, reason: "the file contains no audio frames")
        }
        return (sampleRate, channelCount, total)
    }

    /// Decodes, then converts to `channels` channels (demucs rules), then resamples to
    /// `sampleRate` (julius) — the same order as demucs's `convert_audio`, which matters because
    /// down-mixing before resampling is not bit-identical to the reverse.
    ///
    /// A file libsndfile does not recognise goes to `ffmpeg` (``FFmpegDecoder``), as in demucs:
    /// ffmpeg resamples (`-ar`), then the channels are converted by demucs's rule. Without ffmpeg
    /// such a file fails with a reason that says how to install it.
    public static func load(path: String, sampleRate: Int, channels: Int,
                            ffmpeg: FFmpegDecoder? = FFmpegDecoder.onPath()) throws -> AudioBuffer {
        do {
            let decoded: AudioBuffer
            do {
                decoded = try decode(path: path)
            } catch let error as AudioIOError where error.kind == .unsupportedFormat {
                guard let ffmpeg else {
                    throw AudioIOError(.unsupportedFormat, .decode, path: path,
                                       reason: "\(error.reason); formats libsndfile does not read (AAC/.m4a, Opus/.webm, video files) need ffmpeg, which is not installed: apt install ffmpeg")
                }
                do {
                    return try ffmpeg.decode(path: path, sampleRate: sampleRate).convertingChannels(to: channels)
                } catch let second as AudioIOError where second.kind == .unsupportedFormat {
                    // Neither reads it: both reasons, libsndfile's first.
                    throw AudioIOError(.unsupportedFormat, .decode, path: path, reason: "\(error.reason); \(second.reason)")
                }
            }
            return try decoded.convertingChannels(to: channels).resampled(to: sampleRate)
        } catch var error as AudioIOError {
            error.path = path
            throw error
        }
    }

    /// As `load`, handing the audio to `body` in blocks at `sampleRate` with `channels`
    /// channels (the same samples `load` gives, block after block); returns the frames handed
    /// on. Memory holds a block and the resampler's window, whatever the file's length.
    /// An error thrown by `body` (a full disk) stops the decode and is rethrown as it is.
    @discardableResult
    public static func stream(path: String, sampleRate: Int, channels: Int,
                              ffmpeg: FFmpegDecoder? = FFmpegDecoder.onPath(),
                              into body: (AudioBuffer) throws -> Void) throws -> Int {
        var frames = 0
        func deliver(_ rows: [[Float]]) throws {
            guard let n = rows.first?.count, n > 0 else { return }
            frames += n
            do { try body(AudioBuffer(sampleRate: sampleRate, channels: rows)) } catch { throw ConsumerFailure(error: error) }
        }
        do {
            var resampling: Resampler.Stream?
            do {
                _ = try decodeBlocks(path: path) { block in
                    if resampling == nil {
                        resampling = Resampler.Stream(try Resampler(from: block.sampleRate, to: sampleRate), channels: channels)
                    }
                    try deliver(resampling!.push(block.convertingChannels(to: channels).channels))
                }
                if var rest = resampling { try deliver(rest.finish()) }
            } catch let error as AudioIOError where error.kind == .unsupportedFormat && frames == 0 && resampling == nil {
                guard let ffmpeg else {
                    throw AudioIOError(.unsupportedFormat, .decode, path: path,
                                       reason: "\(error.reason); formats libsndfile does not read (AAC/.m4a, Opus/.webm, video files) need ffmpeg, which is not installed: apt install ffmpeg")
                }
                do {
                    _ = try ffmpeg.decodeBlocks(path: path, sampleRate: sampleRate) { block in
                        try deliver(block.convertingChannels(to: channels).channels)
                    }
                } catch let second as AudioIOError where second.kind == .unsupportedFormat {
                    throw AudioIOError(.unsupportedFormat, .decode, path: path, reason: "\(error.reason); \(second.reason)")
                }
            }
            return frames
        } catch let failure as ConsumerFailure {
            throw failure.error
        } catch var error as AudioIOError {
            error.path = path
            throw error
        }
    }
}

/// An error of `stream`'s consumer, kept apart so that it is not renamed after the input.
private struct ConsumerFailure: Error { let error: any Error }

/// Every `stride`-th sample starting at `offset`: one channel of an interleaved block, without
/// an intermediate array.
private struct StrideSampleSequence: Sequence, IteratorProtocol {
    let base: UnsafeBufferPointer<Float>
    var index: Int
    let stride: Int
    var remaining: Int

    init(_ base: UnsafeBufferPointer<Float>, offset: Int, stride: Int, count: Int) {
        self.base = base
        self.index = offset
        self.stride = stride
        self.remaining = count
    }

    var underestimatedCount: Int { remaining }

    mutating func next() -> Float? {
        guard remaining > 0 else { return nil }
        defer { index += stride; remaining -= 1 }
        return base[index]
    }
}
