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
        let format = try options.format ?? AudioFileFormat(path: path)
        // Settings are validated before the (whole-buffer) clip pass so mistakes fail fast.
        switch format {
        case .wav, .flac:
            let layout = try layout(for: format, options: options, path: path)
            try writeSndFile(options.clip.apply(to: buffer), to: path, layout: layout)
        case .mp3:
            try MP3Writer.validate(buffer, path: path, bitrate: options.mp3Bitrate, preset: options.mp3Preset)
            try MP3Writer.write(options.clip.apply(to: buffer), to: path,
                                bitrate: options.mp3Bitrate, preset: options.mp3Preset)
        }
    }

    // MARK: - libsndfile formats

    /// Maps demucs's `bits_per_sample` / `as_float` to a libsndfile layout.
    private static func layout(for format: AudioFileFormat, options: EncodeOptions, path: String) throws -> SndFileLayout {
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
        var sfFormat = layout.sfFormat
        if layout.isWAV {
            // Plain RIFF sizes are 32-bit; switch to RF64 only when the data would not fit.
            let dataBytes = buffer.frameCount.multipliedReportingOverflow(by: buffer.channelCount * layout.bytesPerSample)
            if dataBytes.overflow || dataBytes.partialValue > Int(UInt32.max) - 4096 {
                sfFormat = (sfFormat & ~SF_FORMAT_TYPEMASK) | SF_FORMAT_RF64
            }
        }
        if layout.isFLAC && buffer.channelCount > 8 {
            throw AudioIOError(.invalidArgument, .encode, path: path,
                               reason: "FLAC holds at most 8 channels, got \(buffer.channelCount)")
        }

        var info = SF_INFO()
        info.samplerate = Int32(clamping: buffer.sampleRate)
        info.channels = Int32(clamping: buffer.channelCount)
        info.format = Int32(sfFormat)

        let file = try AtomicFile(finalPath: path)
        do {
            let sf = try SndFile(writingTo: file.fd, info: info, path: path)
            if layout == .wavFloat {
                // Keep the file as plain as demucs's (fmt, fact, data) and the floats verbatim.
                sf.command(SFC_SET_ADD_PEAK_CHUNK, false)
                sf.command(SFC_SET_NORM_FLOAT, true)
                sf.command(SFC_SET_CLIPPING, false)
            }
            let channels = buffer.channelCount
            var start = 0
            let frames = buffer.frameCount
            switch layout.samples {
            case .int16:
                var scratch = [Int16](repeating: 0, count: chunkFrames * channels)
                while start < frames {
                    let n = min(chunkFrames, frames - start)
                    try scratch.withUnsafeMutableBufferPointer { dst in
                        interleave(buffer, from: start, count: n, into: dst) { PCMQuantizer.int16($0) }
                        try check(sf.writeShort(dst.baseAddress!, frames: n), n, sf, path)
                    }
                    start += n
                }
            case .int24, .int32:
                // libsndfile's int path keeps the top bits, so a 24-bit value is shifted up by 8.
                let is24 = layout.samples == .int24
                var scratch = [Int32](repeating: 0, count: chunkFrames * channels)
                while start < frames {
                    let n = min(chunkFrames, frames - start)
                    try scratch.withUnsafeMutableBufferPointer { dst in
                        if is24 {
                            interleave(buffer, from: start, count: n, into: dst) { PCMQuantizer.int24($0) << 8 }
                        } else {
                            interleave(buffer, from: start, count: n, into: dst) { PCMQuantizer.int32($0) }
                        }
                        try check(sf.writeInt(dst.baseAddress!, frames: n), n, sf, path)
                    }
                    start += n
                }
            case .float32:
                var scratch = [Float](repeating: 0, count: chunkFrames * channels)
                while start < frames {
                    let n = min(chunkFrames, frames - start)
                    try scratch.withUnsafeMutableBufferPointer { dst in
                        interleave(buffer, from: start, count: n, into: dst) { PCMQuantizer.clampUnit($0) }
                        try check(sf.writeFloat(dst.baseAddress!, frames: n), n, sf, path)
                    }
                    start += n
                }
            }
            // sf_close finalises headers (sizes, FLAC STREAMINFO), so its failure is a write failure.
            let errorBeforeClose = sf.hasError ? sf.errorReason : nil
            if sf.close() != 0 || errorBeforeClose != nil {
                throw AudioIOError(.ioFailed, .encode, path: path,
                                   reason: errorBeforeClose ?? "libsndfile failed to finalise the file")
            }
        } catch {
            file.abort()
            throw error
        }
        try file.commit()
    }

    /// Throws libsndfile's reason when fewer frames than requested were written.
    private static func check(_ written: Int, _ requested: Int, _ sf: SndFile, _ path: String) throws {
        guard written != requested else { return }
        let code = errno
        let kind: AudioIOError.Kind = (code == ENOSPC || code == EDQUOT) ? .noSpace : .ioFailed
        throw AudioIOError(kind, .encode, path: path, reason: sf.errorReason)
    }

    /// Interleaves `count` frames starting at `start`, converting each sample with `convert`.
    @inline(__always)
    static func interleave<T>(_ buffer: AudioBuffer, from start: Int, count: Int,
                              into dst: UnsafeMutableBufferPointer<T>, _ convert: (Float) -> T) {
        let channels = buffer.channelCount
        for (c, channel) in buffer.channels.enumerated() {
            channel.withUnsafeBufferPointer { src in
                for f in 0..<count { dst[f * channels + c] = convert(src[start + f]) }
            }
        }
    }
}
