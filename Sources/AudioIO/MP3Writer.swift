import CLame

/// MP3 encoding through libmp3lame, configured like demucs's `lameenc` usage (CBR at the given
/// bitrate, `quality` = preset, fed 16-bit PCM from the demucs quantiser).
///
/// One deliberate addition over demucs: after flushing, the final LAME/Xing ("Info") tag frame is
/// written over the placeholder at the start of the file. It records the encoder delay and
/// padding, so gapless-aware decoders (mpg123, hence libsndfile, ffmpeg) return exactly the
/// original number of samples instead of ~1100 extra at the edges; stems then line up with the mix.
enum MP3Writer {
    /// Sample rates MPEG-1/2/2.5 Layer III can store; anything else would need resampling first.
    static let supportedRates: Set<Int> = [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000]
    /// Frames fed to LAME per call.
    static let chunkFrames = 1152 * 32

    /// Throws unless LAME can encode this audio with these settings.
    static func validate(sampleRate: Int, channels: Int, path: String, bitrate: Int, preset: Int) throws {
        guard (1...2).contains(channels) else {
            throw AudioIOError(.invalidArgument, .encode, path: path,
                               reason: "MP3 holds 1 or 2 channels, got \(channels)")
        }
        guard supportedRates.contains(sampleRate) else {
            throw AudioIOError(.invalidArgument, .encode, path: path,
                               reason: "MP3 cannot store \(sampleRate) Hz (supported: \(supportedRates.sorted().map(String.init).joined(separator: ", ")))")
        }
        guard (8...320).contains(bitrate) else {
            throw AudioIOError(.invalidArgument, .encode, path: path,
                               reason: "MP3 bitrate must be between 8 and 320 kbit/s, got \(bitrate)")
        }
        guard (2...7).contains(preset) else {
            throw AudioIOError(.invalidArgument, .encode, path: path,
                               reason: "MP3 preset must be between 2 (best) and 7 (fastest), got \(preset)")
        }
    }
}

/// Owns a `lame_global_flags` so it is released on every path.
final class LameHandle {
    let flags: OpaquePointer
    let channels: Int

    init(sampleRate: Int, channels: Int, bitrate: Int, quality: Int, path: String) throws {
        guard let flags = lame_init() else {
            throw AudioIOError(.encoderFailed, .encode, path: path, reason: "LAME could not be initialised")
        }
        self.flags = flags
        self.channels = channels
        lame_set_in_samplerate(flags, Int32(sampleRate))
        lame_set_out_samplerate(flags, Int32(sampleRate))
        lame_set_num_channels(flags, Int32(channels))
        if channels == 1 { lame_set_mode(flags, MONO) }
        lame_set_VBR(flags, vbr_off)
        lame_set_brate(flags, Int32(bitrate))
        lame_set_quality(flags, Int32(quality))
        lame_set_bWriteVbrTag(flags, 1)
        guard lame_init_params(flags) >= 0 else {
            throw AudioIOError(.encoderFailed, .encode, path: path,
                               reason: "LAME rejected \(channels) channels at \(sampleRate) Hz, \(bitrate) kbit/s")
        }
    }

    /// Encodes `frames` interleaved 16-bit frames; returns the number of MP3 bytes produced.
    func encode(_ pcm: UnsafeMutablePointer<Int16>, frames: Int, into out: UnsafeMutableBufferPointer<UInt8>,
                path: String) throws -> Int {
        let produced: Int32
        if channels == 2 {
            produced = lame_encode_buffer_interleaved(flags, pcm, Int32(frames), out.baseAddress, Int32(out.count))
        } else {
            produced = lame_encode_buffer(flags, pcm, pcm, Int32(frames), out.baseAddress, Int32(out.count))
        }
        guard produced >= 0 else {
            throw AudioIOError(.encoderFailed, .encode, path: path, reason: "LAME encoding failed (code \(produced))")
        }
        return Int(produced)
    }

    /// Flushes the last frames; returns the number of MP3 bytes produced.
    func flush(into out: UnsafeMutableBufferPointer<UInt8>, path: String) throws -> Int {
        let produced = lame_encode_flush(flags, out.baseAddress, Int32(out.count))
        guard produced >= 0 else {
            throw AudioIOError(.encoderFailed, .encode, path: path, reason: "LAME flush failed (code \(produced))")
        }
        return Int(produced)
    }

    /// The finished LAME/Xing tag frame (empty if LAME has none).
    func lameTagFrame() -> [UInt8] {
        var tag = [UInt8](repeating: 0, count: 2880)
        var size = tag.withUnsafeMutableBufferPointer { lame_get_lametag_frame(flags, $0.baseAddress, $0.count) }
        if size > tag.count {
            tag = [UInt8](repeating: 0, count: size)
            size = tag.withUnsafeMutableBufferPointer { lame_get_lametag_frame(flags, $0.baseAddress, $0.count) }
        }
        return Array(tag.prefix(size))
    }

    deinit { lame_close(flags) }
}
