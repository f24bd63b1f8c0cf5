/// The constructor arguments of `demucs.demucs.Demucs` (the waveform U-Net of demucs v2/v3 and the
/// time-only MDX models), with demucs 4.1's defaults.
///
/// Every option of that class changes inference in a way this engine implements (including
/// `glu=False`, `gelu=False`, `rewrite=False`, `normalize=False`, `resample=False`, any
/// `context`, the DConv attention / LSTM thresholds and the LSTM bottleneck), except the two
/// that only shape the initial weights: `rescale` and `dconv_init`. Values demucs itself would
/// reject (`kernel_size` or `stride` below 1, a DConv hidden size that its 4 attention heads do
/// not divide, ...) are refused by name.
struct WaveformDemucsConfig: Sendable {
    /// Which demucs release the class comes from: `demucs.demucs.Demucs` (v3/v4) or
    /// `demucs.model.Demucs` (v2, see `WaveformDemucsConfig(v2:)`). They differ in the decoder's
    /// context convolution, `valid_length` and who pads and trims (the model or `apply_model`).
    enum Generation: Sendable { case v4, v2 }

    var generation = Generation.v4
    var sources: [String]
    var audioChannels = 2
    var channels = 64
    var growth = 2.0
    var depth = 6
    var rewrite = true
    var lstmLayers = 0
    var kernelSize = 8
    var stride = 4
    var context = 1
    var gelu = true
    var glu = true
    var normStarts = 4
    var normGroups = 4
    var dconvMode = 1
    var dconvDepth = 2
    var dconvComp = 4.0
    var dconvAttn = 4
    var dconvLstm = 4
    var normalize = true
    var resample = true
    var samplerate = 44100
    var segment = Fraction(40, 1)

    init(_ a: inout ModelArguments) throws {
        let source = a.source
        func refuse(_ key: String, _ why: String) -> EngineError {
            EngineError(.unsupportedModel, "model file \(source): Demucs option \(key) \(why)")
        }
        sources = try a.strings("sources")
        audioChannels = try a.int("audio_channels", audioChannels)
        channels = try a.int("channels", channels)
        growth = try a.double("growth", growth)
        depth = try a.int("depth", depth)
        rewrite = try a.bool("rewrite", rewrite)
        lstmLayers = try a.int("lstm_layers", lstmLayers)
        kernelSize = try a.int("kernel_size", kernelSize)
        stride = try a.int("stride", stride)
        context = try a.int("context", context)
        gelu = try a.bool("gelu", gelu)
        glu = try a.bool("glu", glu)
        normStarts = try a.int("norm_starts", normStarts)
        normGroups = try a.int("norm_groups", normGroups)
        dconvMode = try a.int("dconv_mode", dconvMode)
        dconvDepth = try a.int("dconv_depth", dconvDepth)
        dconvComp = try a.double("dconv_comp", dconvComp)
        dconvAttn = try a.int("dconv_attn", dconvAttn)
        dconvLstm = try a.int("dconv_lstm", dconvLstm)
        normalize = try a.bool("normalize", normalize)
        resample = try a.bool("resample", resample)
        samplerate = try a.int("samplerate", samplerate)
        segment = try a.fraction("segment", segment)
        // Only the initial weights depend on these.
        a.ignore("rescale", "dconv_init")
        try a.rejectUnknown(model: "Demucs")

        guard !sources.isEmpty else { throw refuse("sources", "is empty") }
        guard audioChannels >= 1 else { throw refuse("audio_channels=\(audioChannels)", "must be at least 1") }
        guard channels >= 1, depth >= 1 else {
            throw refuse("channels=\(channels) / depth=\(depth)", "must be at least 1")
        }
        guard kernelSize >= 1, stride >= 1 else {
            throw refuse("kernel_size=\(kernelSize) / stride=\(stride)", "must be at least 1")
        }
        guard context >= 0 else { throw refuse("context=\(context)", "must not be negative") }
        guard lstmLayers >= 0 else { throw refuse("lstm_layers=\(lstmLayers)", "must not be negative") }
        guard (0...3).contains(dconvMode) else { throw refuse("dconv_mode=\(dconvMode)", "must be 0, 1, 2 or 3") }
        guard dconvComp > 0 else { throw refuse("dconv_comp=\(dconvComp)", "must be positive") }
        guard growth > 0 else { throw refuse("growth=\(growth)", "must be positive") }
        try TrainingSegment.check(samplerate: samplerate, segment: segment, model: "model file \(source): Demucs")
        // Group norms need channels divisible by their groups (PyTorch refuses to build them too).
        for index in 0..<depth where index >= normStarts {
            let ch = layerChannels(index)
            let scale = glu ? 2 : 1
            let outer = index > 0 ? layerChannels(index - 1) : normGroups
            guard normGroups >= 1, ch % normGroups == 0, (scale * ch) % normGroups == 0, outer % normGroups == 0 else {
                throw refuse("norm_groups=\(normGroups)", "does not divide the \(ch) channels of layer \(index)")
            }
        }
    }

    /// demucs's `valid_length`: the nearest length at or above `length` for which every strided
    /// convolution consumes its input exactly (with `resample`, counted at twice the rate).
    /// v2 also counts the `context - 1` samples each decoder context convolution consumes.
    func validLength(_ length: Int) -> Int {
        var n = resample ? 2 * length : length
        for _ in 0..<depth {
            let d = n - kernelSize
            // math.ceil(d / stride), for either sign of d.
            let q = d >= 0 ? (d + stride - 1) / stride : -((-d) / stride)
            n = max(1, q + 1)
            if generation == .v2 { n += context - 1 }
        }
        for _ in 0..<depth { n = (n - 1) * stride + kernelSize }
        if resample { n = (n + 1) / 2 }
        return n
    }

    /// The output channels of encoder layer `index` (`channels · growth^index`, truncated at every step).
    func layerChannels(_ index: Int) -> Int {
        var ch = channels
        for _ in 0..<index { ch = Int(growth * Double(ch)) }
        return ch
    }
}
