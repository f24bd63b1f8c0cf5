/// What HDemucs and HTDemucs share around their spectrogram and waveform U-Nets: the
/// complex-as-channels input and its normalisation, the two encoders with the frequency embedding
/// and the skip connections they leave for the decoders, and the way back from the decoders'
/// output to a waveform (`_ispec` of the de-normalised spectrogram plus the waveform branch).

/// The constructor arguments both hybrid models read, with the same meaning.
protocol HybridConfig {
    var sources: [String] { get set }
    var audioChannels: Int { get set }
    var channels: Int { get set }
    var channelsTime: Int? { get set }
    var growth: Double { get set }
    var nfft: Int { get set }
    var context: Int { get set }
    var contextEnc: Int { get set }
    var normStarts: Int { get set }
    var normGroups: Int { get set }
    var dconvMode: Int { get set }
    var dconvDepth: Int { get set }
    var dconvComp: Double { get set }
    var depth: Int { get set }
    var rewrite: Bool { get set }
    var freqEmb: Double { get set }
    var kernelSize: Int { get set }
    var timeStride: Int { get set }
    var stride: Int { get set }
    var cac: Bool { get set }
    var multiFreqs: [Double] { get set }
    var multiFreqsDepth: Int { get set }
    var samplerate: Int { get set }
    var segment: Fraction { get set }
}

extension HybridConfig {
    /// Reads `sources` … `nfft`, the first arguments of both constructors.
    mutating func readShape(_ a: inout ModelArguments) throws {
        sources = try a.strings("sources")
        audioChannels = try a.int("audio_channels", audioChannels)
        channels = try a.int("channels", channels)
        channelsTime = try a.optionalInt("channels_time")
        growth = try a.double("growth", growth)
        nfft = try a.int("nfft", nfft)
    }

    /// Reads `freq_emb`, the weight of the frequency embedding: demucs tests `if freq_emb:`, so
    /// None turns the embedding off like 0.
    mutating func readFrequencyEmbedding(_ a: inout ModelArguments) throws {
        freqEmb = a.isNull("freq_emb") ? 0 : try a.double("freq_emb", freqEmb)
    }

    /// Reads `context` … `dconv_comp`, the layer options that follow the strides.
    mutating func readLayerOptions(_ a: inout ModelArguments) throws {
        context = try a.int("context", context)
        contextEnc = try a.int("context_enc", contextEnc)
        normStarts = try a.int("norm_starts", normStarts)
        normGroups = try a.int("norm_groups", normGroups)
        dconvMode = try a.int("dconv_mode", dconvMode)
        dconvDepth = try a.int("dconv_depth", dconvDepth)
        dconvComp = try a.double("dconv_comp", dconvComp)
    }

    /// The structural checks demucs makes with asserts, and the bounds of `TrainingSegment`, so
    /// that a bad file fails at load; `model` names the file and family.
    func validate(_ model: String) throws {
        guard !sources.isEmpty, audioChannels > 0, channels > 0, depth > 0, growth > 0 else {
            throw EngineError(.invalidModelFile, "\(model): sources, audio_channels, channels, depth and growth must be positive")
        }
        guard nfft >= 4, nfft % 4 == 0, kernelSize > 0, stride > 0, timeStride > 0 else {
            throw EngineError(.invalidModelFile, "\(model): nfft \(nfft), kernel_size \(kernelSize), stride \(stride), time_stride \(timeStride) are not usable")
        }
        try TrainingSegment.check(samplerate: samplerate, segment: segment, model: model)
    }
}

extension HybridLayerOptions {
    /// The waveform twin of a spectrogram encoder layer.
    func timeBranch(kernel: Int, stride: Int) -> HybridLayerOptions {
        var o = self
        o.freq = false
        o.kernel = kernel
        o.stride = stride
        o.pad = true
        return o
    }

    /// The options of the decoder layer that mirrors this encoder layer.
    func decoder(_ c: some HybridConfig) -> HybridLayerOptions {
        var o = self
        o.dconv = c.dconvMode & 2 != 0
        o.context = c.context
        return o
    }
}

/// The skip connections the encoders leave for the decoders, innermost last.
struct HybridSkips {
    var saved: [Tensor] = [], savedT: [Tensor] = []
    var lengths: [Int] = [], lengthsT: [Int] = []
}

/// The spectrogram and waveform encoders and decoders of a hybrid model.
struct HybridUNet: Sendable {
    let encoder: [HEncLayer]
    let decoder: [HDecLayer]
    /// Only as deep as the spectrogram branch runs beside the waveform branch.
    let tencoder: [HEncLayer]
    let tdecoder: [HDecLayer]
    /// `freq_emb.embedding.weight` times its `emb_scale`, `[freqs, channels]`.
    let freqEmbedding: Tensor?
    /// The model's `freq_emb` weight of the embedding.
    let freqEmb: Float

    /// Loads `freq_emb` (a `ScaledEmbedding`, which multiplies by its scale).
    static func frequencyEmbedding(_ w: ScopedWeights, freqs: Int, channels: Int, scale: Double) throws -> Tensor {
        let e = try w.take("freq_emb.embedding.weight", [freqs, channels])
        let factor = Float(scale)
        return Tensor(shape: e.shape, data: e.data.map { $0 * factor })
    }

    /// Runs both encoders; where a waveform layer is `empty` its output is injected into the
    /// spectrogram layer instead of being saved. Traces `tencN` and `encN`.
    func encode(_ x: inout Tensor, _ xt: inout Tensor, trace: ((String, Tensor) -> Void)?) -> HybridSkips {
        var skips = HybridSkips()
        for (idx, encode) in encoder.enumerated() {
            skips.lengths.append(x.shape[x.rank - 1])
            var inject: Tensor?
            if idx < tencoder.count {
                skips.lengthsT.append(xt.shape[xt.rank - 1])
                let tenc = tencoder[idx]
                xt = tenc(xt)
                trace?("tenc\(idx)", xt)
                if !tenc.empty { skips.savedT.append(xt) } else { inject = xt }
            }
            x = encode(x, inject: inject)
            trace?("enc\(idx)", x)
            if idx == 0, let emb = freqEmbedding {
                // x[c, f, t] += freq_emb * emb[f, c]
                let c = x.shape[0], f = x.shape[1], t = x.shape[2]
                let scale = freqEmb
                x.data.withUnsafeMutableBufferPointer { xs in
                    for ch in 0..<c {
                        for fr in 0..<f {
                            let v = scale * emb.data[fr * c + ch]
                            let base = (ch * f + fr) * t
                            for i in 0..<t { xs[base + i] += v }
                        }
                    }
                }
            }
            skips.saved.append(x)
        }
        return skips
    }

    /// Runs both decoders; the waveform decoder starts where its branch splits off (from `pre`
    /// of that spectrogram layer when its first layer is `empty`). Traces `decN` and `tdecN`.
    func decode(_ x: inout Tensor, _ xt: inout Tensor, skips: inout HybridSkips, model: String,
                trace: ((String, Tensor) -> Void)?) throws {
        let offset = decoder.count - tdecoder.count
        for (idx, decode) in decoder.enumerated() {
            let tdec = idx >= offset ? tdecoder[idx - offset] : nil
            // A waveform layer that does not need this layer's `pre` runs first: its input and
            // skip are freed before the spectrogram layer makes its (larger) tensors.
            if let tdec, !tdec.empty {
                let lengthT = skips.lengthsT.removeLast()
                xt = tdec(consume xt, skip: skips.savedT.removeLast(), length: lengthT).0
                trace?("tdec\(idx - offset)", xt)
            }
            let skip = skips.saved.removeLast()
            let (out, pre) = decode(consume x, skip: consume skip, length: skips.lengths.removeLast())
            x = out
            trace?("dec\(idx)", x)
            if let tdec, tdec.empty {
                guard pre.rank == 3, pre.shape[1] == 1 else {
                    throw EngineError(.invalidArgument, "\(model): the spectrogram branch has \(pre.shape) where the branches split, expected one frequency bin")
                }
                xt = tdec(pre.reshaped([pre.shape[0], pre.shape[2]]), skip: nil, length: skips.lengthsT.removeLast()).0
                trace?("tdec\(idx - offset)", xt)
            }
        }
    }
}

/// Mean and standard deviation over the whole tensor, as the hybrid models normalise with.
struct HybridStats {
    var mean: Float = 0, std: Float = 1

    /// Normalises `x` in place, `(x - mean) / (1e-5 + std)`, and returns the statistics.
    static func normalize(_ x: inout Tensor) -> HybridStats {
        let (mean, std) = x.data.withUnsafeBufferPointer { Normalization.meanStd($0) }
        for i in 0..<x.count { x.data[i] = (x.data[i] - mean) / (1e-5 + std) }
        return HybridStats(mean: mean, std: std)
    }
}

enum HybridCore {
    /// Complex as channels: channel 2c is the real part of audio channel c, 2c+1 the imaginary.
    static func complexAsChannels(_ z: Spectrogram) -> Tensor {
        let fq = z.freqs, frames = z.frames
        var x = Tensor(zeros: [z.channels * 2, fq, frames])
        let plane = fq * frames
        for c in 0..<z.channels {
            x.data.replaceSubrange((2 * c * plane)..<((2 * c + 1) * plane), with: z.re[(c * plane)..<((c + 1) * plane)])
            x.data.replaceSubrange(((2 * c + 1) * plane)..<((2 * c + 2) * plane), with: z.im[(c * plane)..<((c + 1) * plane)])
        }
        return x
    }

    /// `x`: `[S * C * 2, fq, frames]` → complex spectrogram `[S * C, fq, frames]`, de-normalised.
    static func spectrogram(_ x: Tensor, channels: Int, freqs fq: Int, frames: Int, stats: HybridStats) -> Spectrogram {
        let plane = fq * frames
        let mean = stats.mean, std = stats.std
        var zout = Spectrogram(channels: channels, freqs: fq, frames: frames)
        for sc in 0..<channels {
            for i in 0..<plane {
                zout.re[sc * plane + i] = x.data[(2 * sc) * plane + i] * std + mean
                zout.im[sc * plane + i] = x.data[(2 * sc + 1) * plane + i] * std + mean
            }
        }
        return zout
    }

    /// The waveform branch `xt` (`[S * C, length]`) de-normalised plus the inverse STFT `spec`,
    /// as `[S, C, keep]` (the first `keep` samples of each).
    static func sum(waveform xt: Tensor, stats: HybridStats, spec: [Float], sources: Int, channels: Int,
                    length: Int, keep: Int) -> Tensor {
        var out = Tensor(zeros: [sources, channels, keep])
        for sc in 0..<(sources * channels) {
            for i in 0..<keep {
                out.data[sc * keep + i] = (xt.data[sc * length + i] * stats.std + stats.mean) + spec[sc * length + i]
            }
        }
        return out
    }
}
