/// The constructor arguments of `demucs.hdemucs.HDemucs` (Hybrid Demucs v3) that inference
/// depends on, with demucs's defaults.
///
/// Supported: the hybrid model (time and spectrogram branches, merged once the frequency axis is
/// down to one bin, then time layers on the merged tensor), the spectrogram-only model
/// (`hybrid=false`), the MDX padding of `hybrid_old`, complex-as-channels output, the frequency
/// embedding, frequency bands with their own weights in the outermost layers (`multi_freqs`,
/// `multi_freqs_depth`: `MultiWrap`). Options whose inference path this engine does not
/// implement are refused by name: `cac=false` (magnitude masking / Wiener filtering).
struct HDemucsConfig: HybridConfig, Sendable {
    var sources: [String] = []
    var audioChannels = 2
    var channels = 48
    var channelsTime: Int?
    var growth = 2.0
    var nfft = 4096
    var depth = 6
    var rewrite = true
    var hybrid = true
    var hybridOld = false
    var freqEmb = 0.2
    var embScale = 10.0
    var kernelSize = 8
    var stride = 4
    var timeStride = 2
    var context = 1
    var contextEnc = 0
    var normStarts = 4
    var normGroups = 4
    var dconvMode = 1
    var dconvDepth = 2
    var dconvComp = 4.0
    var dconvAttn = 4
    var dconvLstm = 4
    /// `multi_freqs`: the band split ratios of the `MultiWrap` layers (none when empty).
    var multiFreqs: [Double] = []
    var multiFreqsDepth = 2
    var samplerate = 44100
    var segment = Fraction(40, 1)

    /// `cac`: complex-as-channels; false (magnitude masking or Wiener filtering) is refused
    /// (`unsupportedOption`) but read, for the parameter layout.
    var cac = true
    var wienerIters = 0

    /// Reads a checkpoint's `kwargs` and refuses what this engine cannot compute.
    init(_ a: inout ModelArguments) throws {
        try self.init(parsing: &a)
        if let option = unsupportedOption {
            throw EngineError(.unsupportedModel, "model file \(a.source): HDemucs option \(option) is not supported by this engine")
        }
    }

    /// The first option this engine does not implement, with why; nil when it can compute the model.
    var unsupportedOption: String? {
        guard cac else {
            let how = wienerIters < 0 ? "magnitude masking" : "Wiener filtering with \(wienerIters) iterations"
            return "cac=false (\(how) of the mixture spectrogram instead of complex-as-channels)"
        }
        return nil
    }

    /// Reads every option of `demucs.hdemucs.HDemucs.__init__` that changes the model's
    /// parameters or its inference; refuses keys it does not know and what demucs asserts.
    init(parsing a: inout ModelArguments) throws {
        let model = "model file \(a.source): HDemucs"
        try readShape(&a)
        wienerIters = try a.int("wiener_iters", 0)
        let endIters = try a.int("end_iters", 0)
        cac = try a.bool("cac", true)
        depth = try a.int("depth", depth)
        rewrite = try a.bool("rewrite", rewrite)
        hybrid = try a.bool("hybrid", hybrid)
        hybridOld = try a.bool("hybrid_old", hybridOld)
        if hybridOld && !hybrid {
            throw EngineError(.invalidModelFile, "\(model) option hybrid_old=true needs hybrid=true (demucs asserts it)")
        }
        if hybrid && wienerIters != endIters {
            throw EngineError(.invalidModelFile, "\(model): a hybrid model needs wiener_iters == end_iters (demucs asserts it), found \(wienerIters) and \(endIters)")
        }
        multiFreqs = try a.doubles("multi_freqs")
        multiFreqsDepth = try a.int("multi_freqs_depth", multiFreqsDepth)
        try readFrequencyEmbedding(&a)
        embScale = try a.double("emb_scale", embScale)
        kernelSize = try a.int("kernel_size", kernelSize)
        stride = try a.int("stride", stride)
        timeStride = try a.int("time_stride", timeStride)
        try readLayerOptions(&a)
        dconvAttn = try a.int("dconv_attn", dconvAttn)
        dconvLstm = try a.int("dconv_lstm", dconvLstm)
        samplerate = try a.int("samplerate", samplerate)
        segment = try a.fraction("segment", segment)
        // Training-only or initialisation-only options (wiener_residual only matters without cac).
        a.ignore("wiener_residual", "emb_smooth", "dconv_init", "rescale")
        try a.rejectUnknown(model: "HDemucs")
        try validate(model)
    }
}
