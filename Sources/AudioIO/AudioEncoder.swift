#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CSndFile

/// Writes planar float buffers to WAV, FLAC or MP3 with demucs 4.1 `save_audio` semantics.
///
/// Samples go through the clip mode, then demucs's truncating quantiser (`PCMQuantizer`), and
/// the integer values are handed to libsndfile through its integer entry points so it stores
/// them verbatim instead of re-scaling floats its own way. Every file is produced under a
/// temporary name and renamed into place only once complete (see `AtomicFile`).
public enum AudioEncoder {
    /// Frames converted and written per chunk, bounding the scratch memory for long stems.
    static let chunkFrames = 1 << 15

    /// Writes `buffer` to `path`.
    /// - Throws: `AudioIOError` naming `path`: bad settings, an unwritable or missing folder,
    ///   a full disk, or an encoder failure. On error nothing is left at `path` (a previous
    ///   file there is kept untouched) and no temporary file remains.
    public static func write(_ buffer: consuming AudioBuffer, to path: String, options: EncodeOptions = EncodeOptions()) throws {
        if let problem = buffer.validationProblem {
            throw AudioIOError(.invalidArgument, .encode, path: path, reason: problem)
        }
        let writer = try AudioFileWriter(path: path, sampleRate: buffer.sampleRate, channels: buffer.channelCount,
                                         frames: buffer.frameCount, options: options,
                                         peak: options.clip == .rescale ? buffer.peak : 0)
        try writeInChunks(buffer, to: writer)
        try writer.finish()
    }

    /// Hands `buffer` to `writer` a chunk at a time, so the clip pass copies one chunk.
    private static func writeInChunks(_ buffer: AudioBuffer, to writer: AudioFileWriter) throws {
        var start = 0
        let frames = buffer.frameCount
        while start < frames {
            let n = min(chunkFrames, frames - start)
            try writer.write(AudioBuffer(sampleRate: buffer.sampleRate,
                                         channels: buffer.channels.map { Array($0[start..<(start + n)]) }))
            start += n
        }
    }

    // MARK: - libsndfile formats

    /// Maps demucs's `bits_per_sample` / `as_float` to a libsndfile layout.
    static func layout(for format: AudioFileFormat, options: EncodeOptions, path: String) throws -> SndFileLayout {
        if format == .wav && options.asFloat { return .wavFloat }
        switch (format, options.bitsPerSample) {
        case (.wav, 16): return .wavInt16
        case (.wav, 24): return .wavInt24
        case (.flac, 16): return .flacInt16
        case (.flac, 24): return .flacInt24
        default:
            throw AudioIOError(.invalidArgument, .encode, path: path,
                               reason: "bits per sample must be 16 or 24, got \(options.bitsPerSample)")
        }
    }

    /// Writes `buffer` (already clipped) in `layout` through libsndfile, atomically.
    static func writeSndFile(_ buffer: AudioBuffer, to path: String, layout: SndFileLayout) throws {
        if let problem = buffer.validationProblem {
            throw AudioIOError(.invalidArgument, .encode, path: path, reason: problem)
        }
        let encoder = try SndFileEncoder(path: path, sampleRate: buffer.sampleRate, channels: buffer.channelCount,
                                         frames: buffer.frameCount, layout: layout)
        do {
            try encoder.write(buffer.channels)
        } catch {
            encoder.abort()
            throw error
        }
        try encoder.finish()
    }

    /// Interleaves `count` frames of planar `rows` starting at `start`, converting each sample with `convert`.
    @inline(__always)
    static func interleave<T>(_ rows: [[Float]], from start: Int, count: Int,
                              into dst: UnsafeMutableBufferPointer<T>, _ convert: (Float) -> T) {
        let channels = rows.count
        for (c, channel) in rows.enumerated() {
            channel.withUnsafeBufferPointer { src in
                for f in 0..<count { dst[f * channels + c] = convert(src[start + f]) }
            }
        }
    }
}
