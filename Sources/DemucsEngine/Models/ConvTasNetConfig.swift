/// The constructor arguments of demucs v2's `demucs.tasnet.ConvTasNet` (demucs 2.0.3), with its
/// defaults. `-n tasnet` / `tasnet_extra` are `ConvTasNet(X=10, sources=SOURCES)`.
///
/// The names are the paper's: `N` encoder filters of `L` samples (hop `L // 2`), a `B`-channel
/// bottleneck, `R` repeats of `X` temporal blocks with `H` hidden channels and kernel `P`
/// (dilations 1, 2, 4, … within a repeat). Every option that changes inference is implemented
/// except BatchNorm (`norm_type="BN"`), which demucs never shipped and is refused by name.
struct ConvTasNetConfig: Sendable {
    enum Norm: String, Sendable { case global = "gLN", channelwise = "cLN", identity = "id" }
    enum Mask: String, Sendable { case relu, softmax }

    var sources: [String]
    var n = 256
    var l = 20
    var b = 256
    var h = 512
    var p = 3
    var x = 8
    var r = 4
    var audioChannels = 2
    var norm = Norm.global
    var causal = false
    var mask = Mask.relu
    var samplerate = 44100
    var segment = Fraction(2 * 4, 1)

    init(_ a: inout ModelArguments) throws {
        let source = a.source
        func refuse(_ key: String, _ why: String) -> EngineError {
            EngineError(.unsupportedModel, "model file \(source): ConvTasNet option \(key) \(why)")
        }
        sources = try a.strings("sources")
        n = try a.int("N", n)
        l = try a.int("L", l)
        b = try a.int("B", b)
        h = try a.int("H", h)
        p = try a.int("P", p)
        x = try a.int("X", x)
        r = try a.int("R", r)
        audioChannels = try a.int("audio_channels", audioChannels)
        let normName = try a.string("norm_type", "gLN")
        causal = try a.bool("causal", causal)
        let maskName = try a.string("mask_nonlinear", "relu")
        samplerate = try a.int("samplerate", samplerate)
        let segmentLength = try a.int("segment_length", 44100 * 2 * 4)
        try a.rejectUnknown(model: "ConvTasNet")

        guard let norm = Norm(rawValue: normName) else {
            throw refuse("norm_type=\(normName)", "is not supported (supported: gLN, cLN, id)")
        }
        self.norm = norm
        guard let mask = Mask(rawValue: maskName) else {
            throw refuse("mask_nonlinear=\(maskName)", "is not supported (demucs knows relu and softmax)")
        }
        self.mask = mask
        guard !sources.isEmpty else { throw refuse("sources", "is empty") }
        for (key, value) in [("N", n), ("B", b), ("H", h), ("P", p), ("X", x), ("R", r), ("audio_channels", audioChannels)] {
            guard value >= 1 else { throw refuse("\(key)=\(value)", "must be at least 1") }
        }
        guard l >= 2 else { throw refuse("L=\(l)", "must be at least 2 (the encoder's hop is L // 2)") }
        // A non-causal block pads (P - 1)·d // 2 on each side; with an even P at dilation 1 the
        // output is one sample short and PyTorch fails at the residual sum.
        guard causal || (p - 1) % 2 == 0 else { throw refuse("P=\(p)", "must be odd for a non-causal model") }
        guard x <= 30 else { throw refuse("X=\(x)", "gives dilations beyond 2^30") }
        try TrainingSegment.check(samplerate: samplerate, segmentLength: segmentLength, model: "model file \(source): ConvTasNet")
        segment = Fraction(segmentLength, samplerate)
    }

    var hop: Int { l / 2 }
}
