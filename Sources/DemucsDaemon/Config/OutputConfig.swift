import AudioIO

/// The `[output]` section: which files each stem is written as, and how.
///
/// WAV and MP3 are both on by default: the WAV is the lossless result, the MP3 the one people
/// actually copy to a phone. The settings mirror the CLI's `--int24`, `--float32`, `--mp3-bitrate`,
/// `--mp3-preset` and `--clip-mode`.
public struct OutputConfig: Sendable, Equatable {
    public var wav: Bool
    public var wavFormat: WAVSampleFormat
    public var mp3: Bool
    /// MP3 constant bitrate in kbit/s (LAME snaps it to the nearest legal value).
    public var mp3Bitrate: Int
    /// LAME quality, 2 (best) to 7 (fastest).
    public var mp3Preset: Int
    public var flac: Bool
    /// How stems are kept inside full scale before quantisation (`rescale` is demucs's default).
    public var clipMode: ClipMode

    public init(wav: Bool = true, wavFormat: WAVSampleFormat = .int16, mp3: Bool = true, mp3Bitrate: Int = 320,
                mp3Preset: Int = 2, flac: Bool = false, clipMode: ClipMode = .rescale) {
        self.wav = wav
        self.wavFormat = wavFormat
        self.mp3 = mp3
        self.mp3Bitrate = mp3Bitrate
        self.mp3Preset = mp3Preset
        self.flac = flac
        self.clipMode = clipMode
    }

    /// The enabled containers, in a fixed order (wav, flac, mp3), so stems appear predictably.
    public var formats: [AudioFileFormat] {
        var out: [AudioFileFormat] = []
        if wav { out.append(.wav) }
        if flac { out.append(.flac) }
        if mp3 { out.append(.mp3) }
        return out
    }

    /// The encoder settings for one container. FLAC cannot hold float samples, so with `float32` it
    /// is written at 16 bits, as demucs does with `--flac --float32`.
    public func encodeOptions(for format: AudioFileFormat) -> EncodeOptions {
        EncodeOptions(format: format, clip: clipMode, bitsPerSample: wavFormat == .int24 ? 24 : 16,
                      asFloat: format == .wav && wavFormat == .float32, mp3Bitrate: mp3Bitrate, mp3Preset: mp3Preset)
    }

    init(reading reader: inout ConfigTableReader) throws {
        let defaults = OutputConfig()
        wav = try reader.bool("wav", default: defaults.wav)
        wavFormat = try reader.choice("wav_format", default: defaults.wavFormat)
        mp3 = try reader.bool("mp3", default: defaults.mp3)
        mp3Bitrate = try reader.int("mp3_bitrate", default: defaults.mp3Bitrate, range: 8...320, what: "MP3 bitrate")
        mp3Preset = try reader.int("mp3_preset", default: defaults.mp3Preset, range: 2...7, what: "MP3 preset")
        flac = try reader.bool("flac", default: defaults.flac)
        clipMode = try reader.choice("clip_mode", default: defaults.clipMode)
        try reader.rejectUnknownKeys()
        if formats.isEmpty {
            throw ConfigError(file: reader.file, key: "[output]",
                              problem: "writes no files: set at least one of wav, mp3, flac to true")
        }
    }
}
