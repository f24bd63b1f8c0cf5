/// The constructor arguments of `demucs.htdemucs.HTDemucs` that inference depends on, with
/// demucs's defaults. Options that only affect training or initialisation are accepted and
/// ignored; options whose inference path this engine does not implement (Wiener filtering
/// without complex-as-channels, multi-band frequency layers, sparse attention, CAPE or learned
/// position embeddings) are refused by name.
struct HTDemucsConfig: HybridConfig, Sendable {
    var sources: [String] = []
    var audioChannels = 2
    var channels = 48
    var channelsTime: Int?
    var growth = 2.0
    var nfft = 4096
    var depth = 4
    var rewrite = true
    var freqEmb = 0.2
    var embScale = 10.0
    var kernelSize = 8
    var timeStride = 2
    var stride = 4
    var context = 1
    var contextEnc = 0
    var normStarts = 4
    var normGroups = 4
    var dconvMode = 1
    var dconvDepth = 2
    var dconvComp = 8.0
    var bottomChannels = 0
    var tLayers = 5
    var tHiddenScale = 4.0
    var tHeads = 8
    var tNormIn = true
    var tNormFirst = true
    var tNormOut = true
    var tMaxPeriod = 10000.0
    var tLayerScale = true
    var tGelu = true
    var tWeightPosEmbed = 1.0
    var tCrossFirst = false
    var samplerate = 44100
    var segment = Fraction(10, 1)
    var useTrainSegment = true

    // Options the engine refuses (`unsupportedOption`), read so that the parameter layout of
    // any HTDemucs can be computed from this configuration.
    var cac = true
    var multiFreqs: [Double] = []
    var multiFreqsDepth = 3
    var tEmb = "sin"
    var tMaxPositions = 10000
    var tNormInGroup = false
    var tGroupNorm = false
    var tSinRandomShift = 0
    var tSparseSelfAttn = false
    var tSparseCrossAttn = false

    /// Reads a checkpoint's `kwargs` and refuses what this engine cannot compute.
    init(_ a: inout ModelArguments) throws {
        try self.init(parsing: &a)
        if let option = unsupportedOption {
            throw EngineError(.unsupportedModel, "model file \(a.source): HTDemucs option \(option) is not supported by this engine")
        }
    }

    /// Reads every option of `demucs.htdemucs.HTDemucs.__init__` that changes the model's
    /// parameters or its inference; refuses only keys it does not know and values demucs
    /// itself could not build.
    init(parsing a: inout ModelArguments) throws {
        try readShape(&a)
        cac = try a.bool("cac", cac)
        depth = try a.int("depth", depth)
        rewrite = try a.bool("rewrite", rewrite)
        multiFreqs = try a.doubles("multi_freqs")
        multiFreqsDepth = try a.int("multi_freqs_depth", multiFreqsDepth)
        try readFrequencyEmbedding(&a)
        embScale = try a.double("emb_scale", embScale)
        kernelSize = try a.int("kernel_size", kernelSize)
        timeStride = try a.int("time_stride", timeStride)
        stride = try a.int("stride", stride)
        try readLayerOptions(&a)
        bottomChannels = try a.int("bottom_channels", bottomChannels)
        tLayers = try a.int("t_layers", tLayers)
        tEmb = try a.string("t_emb", tEmb)
        tMaxPositions = try a.int("t_max_positions", tMaxPositions)
        tHiddenScale = try a.double("t_hidden_scale", tHiddenScale)
        tHeads = try a.int("t_heads", tHeads)
        tNormIn = try a.bool("t_norm_in", tNormIn)
        tNormInGroup = try a.bool("t_norm_in_group", tNormInGroup)
        tGroupNorm = try a.bool("t_group_norm", tGroupNorm)
        tNormFirst = try a.bool("t_norm_first", tNormFirst)
        tNormOut = try a.bool("t_norm_out", tNormOut)
        tMaxPeriod = try a.double("t_max_period", tMaxPeriod)
        tLayerScale = try a.bool("t_layer_scale", tLayerScale)
        tGelu = try a.bool("t_gelu", tGelu)
        tWeightPosEmbed = try a.double("t_weight_pos_embed", tWeightPosEmbed)
        tSinRandomShift = try a.int("t_sin_random_shift", tSinRandomShift)
        tSparseSelfAttn = try a.bool("t_sparse_self_attn", tSparseSelfAttn)
        tSparseCrossAttn = try a.bool("t_sparse_cross_attn", tSparseCrossAttn)
        tCrossFirst = try a.bool("t_cross_first", tCrossFirst)
        samplerate = try a.int("samplerate", samplerate)
        segment = try a.fraction("segment", segment)
        useTrainSegment = try a.bool("use_train_segment", useTrainSegment)
        // Training-only or initialisation-only options (wiener_* only matter without cac).
        a.ignore("wiener_iters", "end_iters", "wiener_residual", "emb_smooth", "dconv_init",
                 "t_dropout", "t_weight_decay", "t_lr", "t_cape_mean_normalize",
                 "t_cape_augment", "t_cape_glob_loc_scale", "t_mask_type", "t_mask_random_seed",
                 "t_sparse_attn_window", "t_global_window", "t_sparsity", "t_auto_sparsity", "rescale")
        try a.rejectUnknown(model: "HTDemucs")
        try validate("model file \(a.source): HTDemucs")
    }

    /// The first option this engine does not implement, as `name=value` with why; nil when
    /// the model can be computed.
    var unsupportedOption: String? {
        if !cac { return "cac=false (Wiener filtering)" }
        if !multiFreqs.isEmpty { return "multi_freqs" }
        if tEmb != "sin" { return "t_emb=\(tEmb) (only \"sin\")" }
        if !tNormIn && tNormInGroup { return "t_norm_in_group" }
        if tGroupNorm { return "t_group_norm" }
        if tSinRandomShift != 0 { return "t_sin_random_shift (it makes inference random)" }
        if tSparseSelfAttn { return "t_sparse_self_attn" }
        if tSparseCrossAttn { return "t_sparse_cross_attn" }
        return nil
    }
}
