/// Settings for `AudioEncoder.write`, mirroring the arguments of demucs 4.1's `save_audio`
/// (and so the `--int24`, `--float32`, `--clip-mode`, `--mp3-bitrate`, `--mp3-preset` flags),
/// so the CLI can pass its flags straight through.
public struct EncodeOptions: Sendable, Equatable {
    /// Container; `nil` picks it from the output path's extension, like demucs.
    public var format: AudioFileFormat?
    /// Anti-clipping strategy applied before quantisation.
    public var clip: ClipMode
    /// 16 or 24; used by WAV (unless `asFloat`) and FLAC. Ignored for MP3, which is fed 16-bit PCM.
    public var bitsPerSample: Int
    /// WAV only: write 32-bit IEEE float. FLAC cannot hold float and ignores it, as in demucs.
    public var asFloat: Bool
    /// MP3 constant bitrate in kbit/s (LAME snaps it to the nearest legal value).
    public var mp3Bitrate: Int
    /// MP3 encoder quality, 2 (best) to 7 (fastest), passed to `lame_set_quality`.
    public var mp3Preset: Int

    public init(format: AudioFileFormat? = nil, clip: ClipMode = .rescale, bitsPerSample: Int = 16,
                asFloat: Bool = false, mp3Bitrate: Int = 320, mp3Preset: Int = 2) {
        self.format = format
        self.clip = clip
        self.bitsPerSample = bitsPerSample
        self.asFloat = asFloat
        self.mp3Bitrate = mp3Bitrate
        self.mp3Preset = mp3Preset
    }
}
