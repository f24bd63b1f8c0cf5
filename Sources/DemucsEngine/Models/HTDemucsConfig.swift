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

    init(_ a: inout ModelArguments) throws {
        try readShape(&a)
        let wienerIters = try a.int("wiener_iters", 0)
        let cac = try a.bool("cac", true)
        guard cac else {
            throw EngineError(.unsupportedModel, "model file \(a.source): HTDemucs option cac=false (Wiener filtering) is not supported by this engine")
        }
        _ = wienerIters
        depth = try a.int("depth", depth)
        rewrite = try a.bool("rewrite", rewrite)
        guard a.isUnset("multi_freqs") else {
            throw EngineError(.unsupportedModel, "model file \(a.source): HTDemucs option multi_freqs is not supported by this engine")
        }
        freqEmb = try a.double("freq_emb", freqEmb)
        embScale = try a.double("emb_scale", embScale)
        kernelSize = try a.int("kernel_size", kernelSize)
        timeStride = try a.int("time_stride", timeStride)
        stride = try a.int("stride", stride)
        try readLayerOptions(&a)
        bottomChannels = try a.int("bottom_channels", bottomChannels)
        tLayers = try a.int("t_layers", tLayers)
        let emb = try a.string("t_emb", "sin")
        guard emb == "sin" else {
            throw EngineError(.unsupportedModel, "model file \(a.source): HTDemucs option t_emb=\(emb) is not supported by this engine (only \"sin\")")
        }
        tHiddenScale = try a.double("t_hidden_scale", tHiddenScale)
        tHeads = try a.int("t_heads", tHeads)
        tNormIn = try a.bool("t_norm_in", tNormIn)
        let normInGroup = try a.bool("t_norm_in_group", false)
        if !tNormIn && normInGroup {
            throw EngineError(.unsupportedModel, "model file \(a.source): HTDemucs option t_norm_in_group is not supported by this engine")
        }
        if try a.bool("t_group_norm", false) {
            throw EngineError(.unsupportedModel, "model file \(a.source): HTDemucs option t_group_norm is not supported by this engine")
        }
        tNormFirst = try a.bool("t_norm_first", tNormFirst)
        tNormOut = try a.bool("t_norm_out", tNormOut)
        tMaxPeriod = try a.double("t_max_period", tMaxPeriod)
        tLayerScale = try a.bool("t_layer_scale", tLayerScale)
        tGelu = try a.bool("t_gelu", tGelu)
        tWeightPosEmbed = try a.double("t_weight_pos_embed", tWeightPosEmbed)
        if try a.int("t_sin_random_shift", 0) != 0 {
            throw EngineError(.unsupportedModel, "model file \(a.source): HTDemucs option t_sin_random_shift is not supported by this engine (it makes inference random)")
        }
        for key in ["t_sparse_self_attn", "t_sparse_cross_attn"] where try a.bool(key, false) {
            throw EngineError(.unsupportedModel, "model file \(a.source): HTDemucs option \(key) is not supported by this engine")
        }
        tCrossFirst = try a.bool("t_cross_first", tCrossFirst)
        samplerate = try a.int("samplerate", samplerate)
        segment = try a.fraction("segment", segment)
        useTrainSegment = try a.bool("use_train_segment", useTrainSegment)
        // Training-only or initialisation-only options.
        a.ignore("end_iters", "wiener_residual", "multi_freqs_depth", "emb_smooth", "dconv_init",
                 "t_dropout", "t_max_positions", "t_weight_decay", "t_lr", "t_cape_mean_normalize",
                 "t_cape_augment", "t_cape_glob_loc_scale", "t_mask_type", "t_mask_random_seed",
                 "t_sparse_attn_window", "t_global_window", "t_sparsity", "t_auto_sparsity", "rescale")
        try a.rejectUnknown(model: "HTDemucs")
    }
}
