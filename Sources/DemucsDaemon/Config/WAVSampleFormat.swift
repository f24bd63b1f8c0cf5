/// The sample format of the WAV stems (`[output] wav_format`), the config-file spelling of the
/// CLI's default / `--int24` / `--float32`.
public enum WAVSampleFormat: String, Sendable, CaseIterable, Equatable {
    /// 16-bit integer PCM: smallest, what most players expect.
    case int16
    /// 24-bit integer PCM: no audible quantisation for further mixing.
    case int24
    /// 32-bit IEEE float: no clipping at all, for editing in a DAW.
    case float32
}
