#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CSndFile

/// Writes one WAV, FLAC or MP3 file block by block, with demucs 4.1 `save_audio` semantics
/// (`AudioEncoder.write` is this on one whole buffer).
///
/// Blocks go through the clip mode — `rescale` with the peak of the whole signal, given up
/// front, so a long stem can be written from a spool without holding it — then demucs's
/// truncating quantiser. The file is produced under a temporary name and renamed into place by
/// `finish` (see `AtomicFile`); a writer dropped or aborted before that leaves nothing.
public final class AudioFileWriter {
    public let path: String
    public let sampleRate: Int
    public let channels: Int
    private let clip: ClipMode
    private let peak: Float
    private let encoder: any BlockEncoder
    private var done = false

    /// - Parameters:
    ///   - frames: the length of the whole signal (WAV switches to RF64 when it needs to).
    ///   - peak: the whole signal's largest absolute sample, for `rescale`.
    /// - Throws: `AudioIOError` naming `path` for bad settings or a file that cannot be created.
    public init(path: String, sampleRate: Int, channels: Int, frames: Int, options: EncodeOptions, peak: Float) throws {
        if sampleRate <= 0 {
            throw AudioIOError(.invalidArgument, .encode, path: path, reason: "sample rate must be positive, got \(sampleRate)")
        }
        if channels <= 0 { throw AudioIOError(.invalidArgument, .encode, path: path, reason: "buffer has no channels") }
        let format = try options.format ?? AudioFileFormat(path: path)
        switch format {
        case .wav, .flac:
            let layout = try AudioEncoder.layout(for: format, options: options, path: path)
            encoder = try SndFileEncoder(path: path, sampleRate: sampleRate, channels: channels, frames: frames, layout: layout)
        case .mp3:
            try MP3Writer.validate(sampleRate: sampleRate, channels: channels, path: path,
                                   bitrate: options.mp3Bitrate, preset: options.mp3Preset)
            encoder = try MP3Encoder(path: path, sampleRate: sampleRate, channels: channels,
                                     bitrate: options.mp3Bitrate, preset: options.mp3Preset)
        }
        self.path = path
        self.sampleRate = sampleRate
        self.channels = channels
        self.clip = options.clip
        self.peak = peak
    }

    /// Writes the next frames (planar, `channels` rows of one length).
    public func write(_ block: AudioBuffer) throws {
        guard block.channelCount == channels, block.validationProblem == nil else {
            throw AudioIOError(.invalidArgument, .encode, path: path,
                               reason: block.validationProblem ?? "a block of \(block.channelCount) channels for a file of \(channels)")
        }
        do {
            try encoder.write(clip.apply(to: block, peak: peak).channels)
        } catch {
            abort()
            throw error
        }
    }

    /// Completes the file and moves it into place.
    public func finish() throws {
        guard !done else { return }
        done = true
        try encoder.finish()
    }

    /// Drops the file; nothing is left behind.
    public func abort() {
        guard !done else { return }
        done = true
        encoder.abort()
    }

    deinit { abort() }
}

/// One file format's encoder, fed clipped planar rows.
protocol BlockEncoder: AnyObject {
    func write(_ rows: [[Float]]) throws
    func finish() throws
    func abort()
}

/// WAV and FLAC through libsndfile's integer entry points (so it stores demucs's quantised
/// values verbatim), or its float one for 32-bit float WAV.
final class SndFileEncoder: BlockEncoder {
    let path: String
    let channels: Int
    let layout: SndFileLayout
    private let file: AtomicFile
    private let sf: SndFile

    init(path: String, sampleRate: Int, channels: Int, frames: Int, layout: SndFileLayout) throws {
        var sfFormat = layout.sfFormat
        if layout.isWAV {
            // Plain RIFF sizes are 32-bit; switch to RF64 only when the data would not fit.
            let dataBytes = frames.multipliedReportingOverflow(by: channels * layout.bytesPerSample)
            if dataBytes.overflow || dataBytes.partialValue > Int(UInt32.max) - 4096 {
                sfFormat = (sfFormat & ~SF_FORMAT_TYPEMASK) | SF_FORMAT_RF64
            }
        }
        if layout.isFLAC && channels > 8 {
            throw AudioIOError(.invalidArgument, .encode, path: path,
                               reason: "FLAC holds at most 8 channels, got \(channels)")
        }
        var info = SF_INFO()
        info.samplerate = Int32(clamping: sampleRate)
        info.channels = Int32(clamping: channels)
        info.format = Int32(sfFormat)
        file = try AtomicFile(finalPath: path)
        do {
            sf = try SndFile(writingTo: file.fd, info: info, path: path)
        } catch {
            file.abort()
            throw error
        }
        if layout == .wavFloat {
            // Keep the file as plain as demucs's (fmt, fact, data) and the floats verbatim.
            sf.command(SFC_SET_ADD_PEAK_CHUNK, false)
            sf.command(SFC_SET_NORM_FLOAT, true)
            sf.command(SFC_SET_CLIPPING, false)
        }
        self.path = path
        self.channels = channels
        self.layout = layout
    }

    func write(_ rows: [[Float]]) throws {
        let frames = rows.first?.count ?? 0
        let chunk = AudioEncoder.chunkFrames
        var start = 0
        switch layout.samples {
        case .int16:
            var scratch = [Int16](repeating: 0, count: min(chunk, frames) * channels)
            while start < frames {
                let n = min(chunk, frames - start)
                try scratch.withUnsafeMutableBufferPointer { dst in
                    AudioEncoder.interleave(rows, from: start, count: n, into: dst) { PCMQuantizer.int16($0) }
                    try check(sf.writeShort(dst.baseAddress!, frames: n), n)
                }
                start += n
            }
        case .int24, .int32:
            // libsndfile's int path keeps the top bits, so a 24-bit value is shifted up by 8.
            let is24 = layout.samples == .int24
            var scratch = [Int32](repeating: 0, count: min(chunk, frames) * channels)
            while start < frames {
                let n = min(chunk, frames - start)
                try scratch.withUnsafeMutableBufferPointer { dst in
                    if is24 {
                        AudioEncoder.interleave(rows, from: start, count: n, into: dst) { PCMQuantizer.int24($0) << 8 }
                    } else {
                        AudioEncoder.interleave(rows, from: start, count: n, into: dst) { PCMQuantizer.int32($0) }
                    }
                    try check(sf.writeInt(dst.baseAddress!, frames: n), n)
                }
                start += n
            }
        case .float32:
            var scratch = [Float](repeating: 0, count: min(chunk, frames) * channels)
            while start < frames {
                let n = min(chunk, frames - start)
                try scratch.withUnsafeMutableBufferPointer { dst in
                    AudioEncoder.interleave(rows, from: start, count: n, into: dst) { PCMQuantizer.clampUnit($0) }
                    try check(sf.writeFloat(dst.baseAddress!, frames: n), n)
                }
                start += n
            }
        }
    }

    func finish() throws {
        // sf_close finalises headers (sizes, FLAC STREAMINFO), so its failure is a write failure.
        let errorBeforeClose = sf.hasError ? sf.errorReason : nil
        if sf.close() != 0 || errorBeforeClose != nil {
            file.abort()
            throw AudioIOError(.ioFailed, .encode, path: path,
                               reason: errorBeforeClose ?? "libsndfile failed to finalise the file")
        }
        try file.commit()
    }

    func abort() {
        _ = sf.close()
        file.abort()
    }

    /// Throws libsndfile's reason when fewer frames than requested were written.
    private func check(_ written: Int, _ requested: Int) throws {
        guard written != requested else { return }
        let code = errno
        let kind: AudioIOError.Kind = (code == ENOSPC || code == EDQUOT) ? .noSpace : .ioFailed
        throw AudioIOError(kind, .encode, path: path, reason: sf.errorReason)
    }
}

/// MP3 through LAME (see `MP3Writer`), fed in pieces of exactly `MP3Writer.chunkFrames`
/// frames whatever the blocks, so the bytes do not depend on how the signal was cut.
final class MP3Encoder: BlockEncoder {
    let path: String
    let channels: Int
    private let lame: LameHandle
    private let file: AtomicFile
    private var pending: [Int16] = []
    private var mp3: [UInt8]

    init(path: String, sampleRate: Int, channels: Int, bitrate: Int, preset: Int) throws {
        lame = try LameHandle(sampleRate: sampleRate, channels: channels, bitrate: bitrate, quality: preset, path: path)
        file = try AtomicFile(finalPath: path)
        mp3 = [UInt8](repeating: 0, count: MP3Writer.chunkFrames * 5 / 4 + 7200)
        self.path = path
        self.channels = channels
        pending.reserveCapacity(MP3Writer.chunkFrames * channels)
    }

    func write(_ rows: [[Float]]) throws {
        let frames = rows.first?.count ?? 0
        var start = 0
        while start < frames {
            let room = MP3Writer.chunkFrames - pending.count / channels
            let n = min(room, frames - start)
            let base = pending.count
            pending.append(contentsOf: repeatElement(0, count: n * channels))
            pending.withUnsafeMutableBufferPointer { p in
                let dst = UnsafeMutableBufferPointer(rebasing: p[base..<(base + n * channels)])
                AudioEncoder.interleave(rows, from: start, count: n, into: dst) { PCMQuantizer.int16($0) }
            }
            start += n
            if pending.count == MP3Writer.chunkFrames * channels { try encodePending() }
        }
    }

    private func encodePending() throws {
        guard !pending.isEmpty else { return }
        let frames = pending.count / channels
        let bytes = try pending.withUnsafeMutableBufferPointer { p in
            try mp3.withUnsafeMutableBufferPointer { out in
                try lame.encode(p.baseAddress!, frames: frames, into: out, path: path)
            }
        }
        try mp3.withUnsafeBytes { try file.write(UnsafeRawBufferPointer(rebasing: $0[0..<bytes])) }
        pending.removeAll(keepingCapacity: true)
    }

    func finish() throws {
        do {
            try encodePending()
            let tail = try mp3.withUnsafeMutableBufferPointer { try lame.flush(into: $0, path: path) }
            try mp3.withUnsafeBytes { try file.write(UnsafeRawBufferPointer(rebasing: $0[0..<tail])) }
            let tag = lame.lameTagFrame()
            if !tag.isEmpty {
                try tag.withUnsafeBytes { try file.write($0, at: 0) }
            }
        } catch {
            file.abort()
            throw error
        }
        try file.commit()
    }

    func abort() { file.abort() }
}
