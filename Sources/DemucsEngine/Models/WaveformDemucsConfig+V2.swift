/// The constructor arguments of demucs v2's `demucs.model.Demucs` (demucs 2.0.3, the model of
/// `-n demucs`, `demucs48_hq`, `demucs_extra`, `demucs_quantized`), read into the waveform
/// Demucs configuration the engine shares with v3/v4.
///
/// v2 is the v4 waveform U-Net without its later additions: ReLU after the strided convolutions
/// (no GELU), no GroupNorm, no DConv branches, segments given in samples (`segment_length`). Two
/// things differ in kind and are kept by `generation = .v2`: the decoder's context convolution
/// has kernel `context` and no padding (v4: kernel `2·context + 1`, padded), so `valid_length`
/// adds `context - 1` per layer; and the model neither pads its input nor trims its output
/// (v2's `apply_model` does both).
extension WaveformDemucsConfig {
    init(v2 a: inout ModelArguments) throws {
        let source = a.source
        func refuse(_ key: String, _ why: String) -> EngineError {
            EngineError(.unsupportedModel, "model file \(source): Demucs (v2) option \(key) \(why)")
        }
        generation = .v2
        sources = try a.strings("sources")
        audioChannels = try a.int("audio_channels", 2)
        channels = try a.int("channels", 64)
        depth = try a.int("depth", 6)
        rewrite = try a.bool("rewrite", true)
        glu = try a.bool("glu", true)
        resample = try a.bool("resample", true)
        kernelSize = try a.int("kernel_size", 8)
        stride = try a.int("stride", 4)
        growth = try a.double("growth", 2)
        lstmLayers = try a.int("lstm_layers", 2)
        context = try a.int("context", 3)
        normalize = try a.bool("normalize", false)
        samplerate = try a.int("samplerate", 44100)
        let segmentLength = try a.int("segment_length", 4 * 10 * 44100)
        // Earlier v2 releases had `upsample` (linear upsampling instead of transposed
        // convolutions); 2.0.3 dropped it and its checkpoints never set it.
        if try a.bool("upsample", false) { throw refuse("upsample=True", "(demucs 2.0.0's linear upsampling) is not supported") }
        // Only the initial weights depend on `rescale`.
        a.ignore("rescale")
        try a.rejectUnknown(model: "Demucs (v2)")

        // What v2 does not have, in the v4 configuration's terms.
        gelu = false
        normStarts = depth
        dconvMode = 0

        guard !sources.isEmpty else { throw refuse("sources", "is empty") }
        guard audioChannels >= 1, channels >= 1, depth >= 1 else {
            throw refuse("audio_channels=\(audioChannels) / channels=\(channels) / depth=\(depth)", "must be at least 1")
        }
        guard kernelSize >= 1, stride >= 1 else {
            throw refuse("kernel_size=\(kernelSize) / stride=\(stride)", "must be at least 1")
        }
        guard context >= 1 || !rewrite else { throw refuse("context=\(context)", "must be at least 1 (it is a kernel size in v2)") }
        guard lstmLayers >= 0 else { throw refuse("lstm_layers=\(lstmLayers)", "must not be negative") }
        guard growth > 0 else { throw refuse("growth=\(growth)", "must be positive") }
        try TrainingSegment.check(samplerate: samplerate, segmentLength: segmentLength, model: "model file \(source): Demucs (v2)")
        segment = Fraction(segmentLength, samplerate)
    }
}
