import Foundation

/// The parameters of a demucs model, by state-dict name and shape, in the order PyTorch lists
/// them (`model.named_parameters()`, which is also the order of the parameters in
/// `model.state_dict()`), computed from the model class and its constructor arguments.
///
/// A diffq-quantised state has no parameter names: diffq stores its lists of quantised, float16
/// and other tensors in the order it walks `model.named_modules()` and each module's own
/// parameters. Restoring such a state needs exactly that order, so this mirrors the `__init__` of
/// `demucs.htdemucs.HTDemucs`, `demucs.hdemucs.HDemucs` and `demucs.demucs.Demucs` (demucs 4.1)
/// for every option that changes which parameters exist or their shapes. The result is checked
/// against PyTorch for many configurations in the tests, and the shapes are checked again by the
/// model when it takes its weights.
public enum ParameterLayout {
    public struct Parameter: Sendable, Equatable {
        public var name: String
        public var shape: [Int]
        public var count: Int { shape.reduce(1, *) }
    }

    /// The classes this knows.
    public static let supportedClasses = ["demucs.htdemucs.HTDemucs", "demucs.hdemucs.HDemucs", "demucs.demucs.Demucs",
                                          "demucs.model.Demucs", "demucs.tasnet.ConvTasNet"]

    /// The parameters of `klass` built with the keyword arguments `kwargsJSON` (the checkpoint's
    /// `kwargs` metadata), in PyTorch order. The arguments are read by the model family's own
    /// configuration (`HTDemucsConfig(parsing:)`, …), the same reader the model is built with;
    /// for the hybrid models that includes options the engine refuses to run, whose layouts are
    /// still checked against PyTorch.
    public static func parameters(klass: String, kwargsJSON: String, source: String) throws -> [Parameter] {
        var a = try ModelArguments(json: kwargsJSON, source: source)
        var b = Builder()
        switch klass {
        case "demucs.htdemucs.HTDemucs":
            let c = try HTDemucsConfig(parsing: &a)
            hybrid(c, &b, hybridBranch: true, dconvAttn: nil, dconvLstm: nil)
            transformer(c, &b)
        case "demucs.hdemucs.HDemucs":
            let c = try HDemucsConfig(parsing: &a)
            hybrid(c, &b, hybridBranch: c.hybrid, dconvAttn: c.dconvAttn, dconvLstm: c.dconvLstm)
        case "demucs.demucs.Demucs": waveform(try WaveformDemucsConfig(&a), &b)
        case "demucs.model.Demucs": waveformV2(try WaveformDemucsConfig(v2: &a), &b)
        case "demucs.tasnet.ConvTasNet": convTasNet(try ConvTasNetConfig(&a), &b)
        default:
            throw EngineError(.unsupportedModel, "model file \(source): cannot lay out the parameters of model class \(klass) (known: \(supportedClasses.joined(separator: ", ")))")
        }
        return b.params
    }

    // MARK: - Modules

    struct Builder {
        var params: [Parameter] = []

        mutating func add(_ name: String, _ shape: [Int]) {
            params.append(Parameter(name: name, shape: shape))
        }

        mutating func conv(_ p: String, _ cin: Int, _ cout: Int, _ kernel: [Int]) {
            add(p + ".weight", [cout, cin] + kernel)
            add(p + ".bias", [cout])
        }

        mutating func convTr(_ p: String, _ cin: Int, _ cout: Int, _ kernel: [Int]) {
            add(p + ".weight", [cin, cout] + kernel)
            add(p + ".bias", [cout])
        }

        mutating func norm(_ p: String, _ c: Int) {
            add(p + ".weight", [c])
            add(p + ".bias", [c])
        }

        mutating func linear(_ p: String, _ cin: Int, _ cout: Int) {
            add(p + ".weight", [cout, cin])
            add(p + ".bias", [cout])
        }

        /// `nn.LSTM(bidirectional=True)`.
        mutating func lstm(_ p: String, input: Int, hidden: Int, layers: Int) {
            for layer in 0..<layers {
                for suffix in ["", "_reverse"] {
                    let cin = layer == 0 ? input : 2 * hidden
                    add("\(p).weight_ih_l\(layer)\(suffix)", [4 * hidden, cin])
                    add("\(p).weight_hh_l\(layer)\(suffix)", [4 * hidden, hidden])
                    add("\(p).bias_ih_l\(layer)\(suffix)", [4 * hidden])
                    add("\(p).bias_hh_l\(layer)\(suffix)", [4 * hidden])
                }
            }
        }

        /// `demucs.demucs.BLSTM`.
        mutating func blstm(_ p: String, dim: Int, layers: Int) {
            lstm(p + ".lstm", input: dim, hidden: dim, layers: layers)
            linear(p + ".linear", 2 * dim, dim)
        }

        /// `demucs.demucs.LocalState` (nfreqs = 0).
        mutating func localState(_ p: String, channels c: Int, heads: Int, ndecay: Int) {
            conv(p + ".content", c, c, [1])
            conv(p + ".query", c, c, [1])
            conv(p + ".key", c, c, [1])
            if ndecay > 0 { conv(p + ".query_decay", c, heads * ndecay, [1]) }
            conv(p + ".proj", c, c, [1])
        }

        /// `demucs.demucs.DConv` (norm, GELU / ReLU, kernel 3, 4 heads, ndecay 4).
        mutating func dconv(_ p: String, channels: Int, compress: Double, depth: Int, attn: Bool, lstm: Bool) {
            let hidden = Int(Double(channels) / compress)
            for d in 0..<abs(depth) {
                let l = "\(p).layers.\(d)"
                var index = 0
                conv("\(l).\(index)", channels, hidden, [3]); index += 1
                norm("\(l).\(index)", hidden); index += 1
                index += 1  // activation
                if lstm { blstm("\(l).\(index)", dim: hidden, layers: 2); index += 1 }
                if attn { localState("\(l).\(index)", channels: hidden, heads: 4, ndecay: 4); index += 1 }
                conv("\(l).\(index)", hidden, 2 * channels, [1]); index += 1
                norm("\(l).\(index)", 2 * channels); index += 1
                index += 1  // GLU
                add("\(l).\(index).scale", [channels])
            }
        }
    }

    struct DConvOptions {
        var depth: Int
        var compress: Double
        var attn = false
        var lstm = false
    }

    /// `demucs.hdemucs.HEncLayer`.
    static func encLayer(_ b: inout Builder, _ p: String, chin: Int, chout: Int, kernel: Int,
                         empty: Bool, freq: Bool, dconv: Bool, norm: Bool, context: Int,
                         dconvKw: DConvOptions, rewrite: Bool) {
        b.conv(p + ".conv", chin, chout, freq ? [kernel, 1] : [kernel])
        if empty { return }
        if norm { b.norm(p + ".norm1", chout) }
        if rewrite {
            let k = 1 + 2 * context
            b.conv(p + ".rewrite", chout, 2 * chout, freq ? [k, k] : [k])
            if norm { b.norm(p + ".norm2", 2 * chout) }
        }
        if dconv {
            b.dconv(p + ".dconv", channels: chout, compress: dconvKw.compress, depth: dconvKw.depth,
                    attn: dconvKw.attn, lstm: dconvKw.lstm)
        }
    }

    /// `demucs.hdemucs.HDecLayer`.
    static func decLayer(_ b: inout Builder, _ p: String, chin: Int, chout: Int, kernel: Int,
                         empty: Bool, freq: Bool, dconv: Bool, norm: Bool, context: Int,
                         dconvKw: DConvOptions, contextFreq: Bool, rewrite: Bool) {
        b.convTr(p + ".conv_tr", chin, chout, freq ? [kernel, 1] : [kernel])
        if norm { b.norm(p + ".norm2", chout) }
        if empty { return }
        if rewrite {
            let k = 1 + 2 * context
            b.conv(p + ".rewrite", chin, 2 * chin, freq ? (contextFreq ? [k, k] : [1, k]) : [k])
            if norm { b.norm(p + ".norm1", 2 * chin) }
        }
        if dconv {
            b.dconv(p + ".dconv", channels: chin, compress: dconvKw.compress, depth: dconvKw.depth,
                    attn: dconvKw.attn, lstm: dconvKw.lstm)
        }
    }

    /// The encoders, decoders and frequency embedding of `HTDemucs` or `HDemucs`;
    /// `dconvAttn` / `dconvLstm` are HDemucs's DConv thresholds (HTDemucs has neither).
    static func hybrid(_ c: some HybridConfig, _ b: inout Builder, hybridBranch hybrid: Bool,
                       dconvAttn: Int?, dconvLstm: Int?) {
        let sources = c.sources.count, audioChannels = c.audioChannels, channels = c.channels
        let channelsTime = c.channelsTime, growth = c.growth, nfft = c.nfft, cac = c.cac
        let depth = c.depth, rewrite = c.rewrite, multiFreqs = c.multiFreqs.count
        let multiFreqsDepth = c.multiFreqsDepth, freqEmb = c.freqEmb != 0, kernelSize = c.kernelSize
        let timeStride = c.timeStride, stride = c.stride, context = c.context, contextEnc = c.contextEnc
        let normStarts = c.normStarts, dconvMode = c.dconvMode, dconvDepth = c.dconvDepth, dconvComp = c.dconvComp

        var encoder: [Builder] = [], decoder: [Builder] = [], tencoder: [Builder] = [], tdecoder: [Builder] = []
        var freqEmbedding: (Int, Int)?

        var chin = audioChannels
        var chinZ = cac ? chin * 2 : chin
        var chout = channelsTime ?? channels
        var choutZ = channels
        var freqs = nfft / 2
        for index in 0..<depth {
            let norm = index >= normStarts
            let freq = freqs > 1
            var ker = kernelSize
            if !freq { ker = timeStride * 2 }
            var lastFreq = false
            if freq && freqs <= kernelSize {
                ker = freqs
                lastFreq = true
            }
            var kw = DConvOptions(depth: dconvDepth, compress: dconvComp)
            if let dconvLstm, let dconvAttn {
                kw.lstm = index >= dconvLstm
                kw.attn = index >= dconvAttn
            }
            let multi = multiFreqs > 0 && index < multiFreqsDepth
            if lastFreq {
                choutZ = max(chout, choutZ)
                chout = choutZ
            }
            var enc = Builder()
            encLayer(&enc, "", chin: chinZ, chout: choutZ, kernel: ker, empty: false, freq: freq,
                     dconv: dconvMode & 1 != 0, norm: norm, context: contextEnc, dconvKw: kw, rewrite: rewrite)
            if hybrid && freq {
                var tenc = Builder()
                encLayer(&tenc, "", chin: chin, chout: chout, kernel: kernelSize, empty: lastFreq,
                         freq: false, dconv: dconvMode & 1 != 0, norm: norm, context: contextEnc, dconvKw: kw,
                         rewrite: rewrite)
                tencoder.append(tenc)
            }
            if multi { enc = multiWrap(enc, copies: multiFreqs + 1) }
            encoder.append(enc)
            if index == 0 {
                chin = audioChannels * sources
                chinZ = cac ? chin * 2 : chin
            }
            var dec = Builder()
            decLayer(&dec, "", chin: choutZ, chout: chinZ, kernel: ker, empty: false, freq: freq,
                     dconv: dconvMode & 2 != 0, norm: norm, context: context, dconvKw: kw,
                     contextFreq: !multi, rewrite: rewrite)
            if multi { dec = multiWrap(dec, copies: multiFreqs + 1) }
            if hybrid && freq {
                var tdec = Builder()
                decLayer(&tdec, "", chin: chout, chout: chin, kernel: kernelSize, empty: lastFreq,
                         freq: false, dconv: dconvMode & 2 != 0, norm: norm, context: context, dconvKw: kw,
                         contextFreq: true, rewrite: rewrite)
                tdecoder.insert(tdec, at: 0)
            }
            decoder.insert(dec, at: 0)

            chin = chout
            chinZ = choutZ
            chout = Int(growth * Double(chout))
            choutZ = Int(growth * Double(choutZ))
            if freq {
                freqs = freqs <= kernelSize ? 1 : freqs / stride
            }
            if index == 0 && freqEmb {
                freqEmbedding = (freqs, chinZ)
            }
        }
        for (name, list) in [("encoder", encoder), ("decoder", decoder)] + (hybrid ? [("tencoder", tencoder), ("tdecoder", tdecoder)] : []) {
            for (i, layer) in list.enumerated() {
                for p in layer.params { b.add("\(name).\(i)" + p.name, p.shape) }
            }
        }
        if let (n, dim) = freqEmbedding {
            b.add("freq_emb.embedding.weight", [n, dim])
        }
    }

    /// The channel resampling and cross-domain transformer of `HTDemucs`.
    static func transformer(_ c: HTDemucsConfig, _ b: inout Builder) {
        var dim = Int(Double(c.channels) * pow(c.growth, Double(c.depth - 1)))
        let bottom = c.bottomChannels
        if bottom != 0 {
            b.conv("channel_upsampler", dim, bottom, [1])
            b.conv("channel_downsampler", bottom, dim, [1])
            b.conv("channel_upsampler_t", dim, bottom, [1])
            b.conv("channel_downsampler_t", bottom, dim, [1])
            dim = bottom
        }
        let layers = c.tLayers
        guard layers > 0 else { return }
        let hidden = Int(Double(dim) * c.tHiddenScale)
        let p = "crosstransformer"
        if c.tEmb == "scaled" {
            b.add(p + ".position_embeddings.embedding.weight", [c.tMaxPositions, dim])
        }
        if c.tNormIn || c.tNormInGroup {
            b.norm(p + ".norm_in", dim)
            b.norm(p + ".norm_in_t", dim)
        }
        let classicParity = c.tCrossFirst ? 1 : 0
        let normOut = c.tNormFirst && c.tNormOut
        let layerScale = c.tLayerScale
        let sparseSelf = c.tSparseSelfAttn
        let sparseCross = c.tSparseCrossAttn
        for branch in ["layers", "layers_t"] {
            for idx in 0..<layers {
                let l = "\(p).\(branch).\(idx)"
                let classic = idx % 2 == classicParity
                let attention = classic ? "self_attn" : "cross_attn"
                if classic ? sparseSelf : sparseCross {
                    for m in ["q", "k", "v", "proj"] { b.linear("\(l).\(attention).\(m)", dim, dim) }
                } else {
                    b.add("\(l).\(attention).in_proj_weight", [3 * dim, dim])
                    b.add("\(l).\(attention).in_proj_bias", [3 * dim])
                    b.linear("\(l).\(attention).out_proj", dim, dim)
                }
                b.linear(l + ".linear1", dim, hidden)
                b.linear(l + ".linear2", hidden, dim)
                b.norm(l + ".norm1", dim)
                b.norm(l + ".norm2", dim)
                if !classic { b.norm(l + ".norm3", dim) }
                if normOut { b.norm(l + ".norm_out", dim) }
                if layerScale {
                    b.add(l + ".gamma_1.scale", [dim])
                    b.add(l + ".gamma_2.scale", [dim])
                }
            }
        }
    }

    /// `demucs.hdemucs.MultiWrap`: `copies` deep copies of a layer under `layers.<k>`.
    static func multiWrap(_ layer: Builder, copies: Int) -> Builder {
        var out = Builder()
        for k in 0..<copies {
            for p in layer.params { out.add(".layers.\(k)" + p.name, p.shape) }
        }
        return out
    }

    /// `demucs.demucs.Demucs`.
    static func waveform(_ c: WaveformDemucsConfig, _ b: inout Builder) {
        let sources = c.sources.count, audioChannels = c.audioChannels, growth = c.growth, depth = c.depth
        var channels = c.channels
        let rewrite = c.rewrite, lstmLayers = c.lstmLayers, kernelSize = c.kernelSize, context = c.context
        let glu = c.glu, normStarts = c.normStarts, dconvMode = c.dconvMode, dconvDepth = c.dconvDepth
        let dconvComp = c.dconvComp, dconvAttn = c.dconvAttn, dconvLstm = c.dconvLstm
        let chScale = glu ? 2 : 1

        var encoder: [Builder] = [], decoder: [Builder] = []
        var inChannels = audioChannels
        for index in 0..<depth {
            let norm = index >= normStarts
            let attn = index >= dconvAttn
            let lstm = index >= dconvLstm
            var enc = Builder()
            var i = 0
            enc.conv(".\(i)", inChannels, channels, [kernelSize]); i += 1
            if norm { enc.norm(".\(i)", channels) }
            i += 2  // norm, activation
            if dconvMode & 1 != 0 {
                enc.dconv(".\(i)", channels: channels, compress: dconvComp, depth: dconvDepth, attn: attn, lstm: lstm)
                i += 1
            }
            if rewrite {
                enc.conv(".\(i)", channels, chScale * channels, [1]); i += 1
                if norm { enc.norm(".\(i)", chScale * channels) }
            }
            encoder.append(enc)

            var dec = Builder()
            i = 0
            let outChannels = index > 0 ? inChannels : sources * audioChannels
            if rewrite {
                dec.conv(".\(i)", channels, chScale * channels, [2 * context + 1]); i += 1
                if norm { dec.norm(".\(i)", chScale * channels) }
                i += 2  // norm, activation
            }
            if dconvMode & 2 != 0 {
                dec.dconv(".\(i)", channels: channels, compress: dconvComp, depth: dconvDepth, attn: attn, lstm: lstm)
                i += 1
            }
            dec.convTr(".\(i)", channels, outChannels, [kernelSize]); i += 1
            if index > 0, norm { dec.norm(".\(i)", outChannels) }
            decoder.insert(dec, at: 0)
            inChannels = channels
            channels = Int(growth * Double(channels))
        }
        addUNet(&b, encoder: encoder, decoder: decoder)
        if lstmLayers > 0 {
            b.blstm("lstm", dim: inChannels, layers: lstmLayers)
        }
    }

    /// The layers of a waveform U-Net under `encoder.<i>` and `decoder.<i>` (innermost decoder first).
    static func addUNet(_ b: inout Builder, encoder: [Builder], decoder: [Builder]) {
        for (name, list) in [("encoder", encoder), ("decoder", decoder)] {
            for (i, layer) in list.enumerated() {
                for p in layer.params { b.add("\(name).\(i)" + p.name, p.shape) }
            }
        }
    }

    /// demucs 2.0.3's `demucs.model.Demucs`: `encoder.i` = [conv, ReLU, (1×1 conv, GLU/ReLU)],
    /// `decoder.i` = [(context conv, GLU/ReLU), transposed conv, (ReLU)], then the BLSTM.
    static func waveformV2(_ c: WaveformDemucsConfig, _ b: inout Builder) {
        let sources = c.sources.count, audioChannels = c.audioChannels, depth = c.depth
        var channels = c.channels
        let rewrite = c.rewrite, glu = c.glu, kernelSize = c.kernelSize, growth = c.growth
        let lstmLayers = c.lstmLayers, context = c.context
        let chScale = glu ? 2 : 1
        var encoder: [Builder] = [], decoder: [Builder] = []
        var inChannels = audioChannels
        for index in 0..<depth {
            var enc = Builder()
            enc.conv(".0", inChannels, channels, [kernelSize])
            if rewrite { enc.conv(".2", channels, chScale * channels, [1]) }
            encoder.append(enc)
            var dec = Builder()
            let outChannels = index > 0 ? inChannels : sources * audioChannels
            if rewrite { dec.conv(".0", channels, chScale * channels, [context]) }
            dec.convTr(rewrite ? ".2" : ".0", channels, outChannels, [kernelSize])
            decoder.insert(dec, at: 0)
            inChannels = channels
            channels = Int(growth * Double(channels))
        }
        addUNet(&b, encoder: encoder, decoder: decoder)
        if lstmLayers > 0 { b.blstm("lstm", dim: inChannels, layers: lstmLayers) }
    }

    /// demucs 2.0.3's `demucs.tasnet.ConvTasNet`.
    static func convTasNet(_ c: ConvTasNetConfig, _ b: inout Builder) {
        let sources = c.sources.count
        let n = c.n, l = c.l, bottleneck = c.b, h = c.h, p = c.p, x = c.x, r = c.r
        let audioChannels = c.audioChannels, causal = c.causal
        func addNorm(_ prefix: String, _ channels: Int) {
            guard c.norm != .identity else { return }
            b.add(prefix + ".gamma", [1, channels, 1])
            b.add(prefix + ".beta", [1, channels, 1])
        }
        b.add("encoder.conv1d_U.weight", [n, audioChannels, l])
        b.add("separator.network.0.gamma", [1, n, 1])
        b.add("separator.network.0.beta", [1, n, 1])
        b.add("separator.network.1.weight", [bottleneck, n, 1])
        for repeatIndex in 0..<r {
            for block in 0..<x {
                let net = "separator.network.2.\(repeatIndex).\(block).net"
                b.add(net + ".0.weight", [h, bottleneck, 1])
                b.add(net + ".1.weight", [1])
                addNorm(net + ".2", h)
                let shift = causal ? 1 : 0
                b.add(net + ".3.net.0.weight", [h, 1, p])
                b.add(net + ".3.net.\(1 + shift).weight", [1])
                addNorm(net + ".3.net.\(2 + shift)", h)
                b.add(net + ".3.net.\(3 + shift).weight", [bottleneck, h, 1])
            }
        }
        b.add("separator.network.3.weight", [sources * n, bottleneck, 1])
        b.add("decoder.basis_signals.weight", [audioChannels * l, n])
    }
}
