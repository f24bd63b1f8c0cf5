import Foundation

/// Hybrid Transformer Demucs (Demucs v4, `demucs.htdemucs.HTDemucs`).
///
/// Two U-Nets run side by side: one on the complex spectrogram (real and imaginary parts as
/// channels), convolving over frequencies, and one on the waveform. At the bottom a cross-domain
/// transformer lets each branch attend to the other. The spectrogram branch's output is turned
/// back into a waveform with the inverse STFT and added to the waveform branch's output.
public struct HTDemucs: SeparationModel {
    let config: HTDemucsConfig
    let encoder: [HEncLayer]
    let decoder: [HDecLayer]
    let tencoder: [HEncLayer]
    let tdecoder: [HDecLayer]
    let freqEmbedding: Tensor?
    let channelUpsampler: Conv?
    let channelDownsampler: Conv?
    let channelUpsamplerT: Conv?
    let channelDownsamplerT: Conv?
    let transformer: CrossTransformerEncoder?
    let spectrogram: HybridSpectrogram

    public var sources: [String] { config.sources }
    public var samplerate: Int { config.samplerate }
    public var audioChannels: Int { config.audioChannels }
    /// The segment used for padding each chunk (`int(segment * samplerate)` samples). A bag file's
    /// `segment:` may lower it (never raise it past the training segment), as demucs's
    /// `BagOfModels` does, and the forward pass then pads to the lowered length.
    public var segment: Fraction
    public var maxSegment: Fraction? { config.useTrainSegment ? config.segment : nil }

    init(config c: HTDemucsConfig, weights: Weights) throws {
        config = c
        segment = c.segment
        let w = weights.scoped("")
        var encoder: [HEncLayer] = [], decoder: [HDecLayer] = []
        var tencoder: [HEncLayer] = [], tdecoder: [HDecLayer] = []
        var chin = c.audioChannels
        var chinZ = chin * 2
        var chout = c.channelsTime ?? c.channels
        var choutZ = c.channels
        var freqs = c.nfft / 2
        var freqEmbedding: Tensor?
        for index in 0..<c.depth {
            let freq = freqs > 1
            guard freq else {
                throw EngineError(.unsupportedModel, "HTDemucs with depth \(c.depth) and nfft \(c.nfft) has time-only layers after the frequency axis is exhausted; not supported by this engine")
            }
            var ker = c.kernelSize
            var pad = true
            var lastFreq = false
            if freqs <= c.kernelSize {
                ker = freqs
                pad = false
                lastFreq = true
            }
            let dconvOptions = (depth: c.dconvDepth, compress: c.dconvComp)
            var o = HybridLayerOptions(
                kernel: ker, stride: c.stride, freq: true, pad: pad, norm: index >= c.normStarts,
                normGroups: c.normGroups, rewrite: c.rewrite, dconv: c.dconvMode & 1 != 0,
                dconvDepth: dconvOptions.depth, dconvCompress: dconvOptions.compress, context: c.contextEnc)
            var ot = o
            ot.freq = false
            ot.kernel = c.kernelSize
            ot.stride = c.stride
            ot.pad = true
            if lastFreq {
                choutZ = max(chout, choutZ)
                chout = choutZ
            }
            encoder.append(try HEncLayer(w.scoped("encoder.\(index)"), cin: chinZ, cout: choutZ, options: o, empty: false))
            tencoder.append(try HEncLayer(w.scoped("tencoder.\(index)"), cin: chin, cout: chout, options: ot, empty: lastFreq))
            if index == 0 {
                chin = c.audioChannels * c.sources.count
                chinZ = chin * 2
            }
            o.dconv = c.dconvMode & 2 != 0
            o.context = c.context
            ot.dconv = o.dconv
            ot.context = c.context
            // Decoder layers are stored outermost-last in demucs (inserted at the front).
            let decIndex = c.depth - 1 - index
            decoder.insert(try HDecLayer(w.scoped("decoder.\(decIndex)"), cin: choutZ, cout: chinZ, options: o,
                                         empty: false, last: index == 0), at: 0)
            tdecoder.insert(try HDecLayer(w.scoped("tdecoder.\(decIndex)"), cin: chout, cout: chin, options: ot,
                                          empty: lastFreq, last: index == 0), at: 0)
            chin = chout
            chinZ = choutZ
            chout = Int(c.growth * Double(chout))
            choutZ = Int(c.growth * Double(choutZ))
            freqs = freqs <= c.kernelSize ? 1 : freqs / c.stride
            if index == 0 && c.freqEmb != 0 {
                let e = try w.take("freq_emb.embedding.weight", [freqs, chinZ])
                // ScaledEmbedding multiplies by its scale; HTDemucs then by freq_emb.
                let factor = Float(c.embScale)
                freqEmbedding = Tensor(shape: e.shape, data: e.data.map { $0 * factor })
            }
        }
        self.encoder = encoder
        self.decoder = decoder
        self.tencoder = tencoder
        self.tdecoder = tdecoder
        self.freqEmbedding = freqEmbedding
        var transformerChannels = Int(Double(c.channels) * pow(c.growth, Double(c.depth - 1)))
        if c.bottomChannels > 0 {
            channelUpsampler = try Conv(w, "channel_upsampler", cin: transformerChannels, cout: c.bottomChannels, kernel: 1)
            channelDownsampler = try Conv(w, "channel_downsampler", cin: c.bottomChannels, cout: transformerChannels, kernel: 1)
            channelUpsamplerT = try Conv(w, "channel_upsampler_t", cin: transformerChannels, cout: c.bottomChannels, kernel: 1)
            channelDownsamplerT = try Conv(w, "channel_downsampler_t", cin: c.bottomChannels, cout: transformerChannels, kernel: 1)
            transformerChannels = c.bottomChannels
        } else {
            channelUpsampler = nil; channelDownsampler = nil; channelUpsamplerT = nil; channelDownsamplerT = nil
        }
        transformer = c.tLayers > 0
            ? try CrossTransformerEncoder(w.scoped("crosstransformer"), config: c, dim: transformerChannels) : nil
        spectrogram = HybridSpectrogram(nfft: c.nfft)
    }

    public func validLength(_ length: Int) throws -> Int {
        guard config.useTrainSegment else { return length }
        let training = segment.timesTruncated(config.samplerate)
        guard length <= training else {
            throw EngineError(.invalidArgument, "given length \(length) is longer than the training length \(training) of this transformer model")
        }
        return training
    }

    public func forward(_ input: Tensor) throws -> Tensor {
        try forward(input, trace: nil)
    }

    /// The forward pass; `trace` sees the intermediate tensors under the names the parity
    /// fixtures use (`encN`, `tencN`, `ct_out_x`, `decN`, ...), for layer-level tests.
    func forward(_ input: Tensor, trace: ((String, Tensor) -> Void)?) throws -> Tensor {
        var mix = input
        let channels = mix.shape[0]
        var length = mix.shape[1]
        var lengthPrePad: Int?
        if config.useTrainSegment {
            let training = segment.timesTruncated(config.samplerate)
            if length < training {
                lengthPrePad = length
                mix = padRight(mix, training - length)
                length = training
            } else if length > training {
                throw EngineError(.invalidArgument, "given length \(length) is longer than the training length \(training) of this transformer model")
            }
        }
        let z = spectrogram.spec(mix)
        let fq = z.freqs, frames = z.frames
        // Complex as channels: channel 2c is the real part of audio channel c, 2c+1 the imaginary.
        var x = Tensor(zeros: [channels * 2, fq, frames])
        let plane = fq * frames
        for c in 0..<channels {
            x.data.replaceSubrange((2 * c * plane)..<((2 * c + 1) * plane), with: z.re[(c * plane)..<((c + 1) * plane)])
            x.data.replaceSubrange(((2 * c + 1) * plane)..<((2 * c + 2) * plane), with: z.im[(c * plane)..<((c + 1) * plane)])
        }
        trace?("spec_cac", x)
        let (mean, std) = x.data.withUnsafeBufferPointer { Normalization.meanStd($0) }
        for i in 0..<x.count { x.data[i] = (x.data[i] - mean) / (1e-5 + std) }

        var xt = mix
        let (meanT, stdT) = xt.data.withUnsafeBufferPointer { Normalization.meanStd($0) }
        for i in 0..<xt.count { xt.data[i] = (xt.data[i] - meanT) / (1e-5 + stdT) }

        var saved: [Tensor] = [], savedT: [Tensor] = []
        var lengthsT: [Int] = []
        for (idx, encode) in encoder.enumerated() {
            var inject: Tensor?
            if idx < tencoder.count {
                lengthsT.append(xt.shape[xt.rank - 1])
                let tenc = tencoder[idx]
                xt = tenc(xt)
                trace?("tenc\(idx)", xt)
                if !tenc.empty { savedT.append(xt) } else { inject = xt }
            }
            x = encode(x, inject: inject)
            if idx == 0 { trace?("enc0", x) }
            if idx == 0, let emb = freqEmbedding {
                // x[c, f, t] += freq_emb * emb[f, c]
                let c = x.shape[0], f = x.shape[1], t = x.shape[2]
                let scale = Float(config.freqEmb)
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
            if idx > 0 { trace?("enc\(idx)", x) }
            saved.append(x)
        }
        if let transformer {
            let c = x.shape[0], f = x.shape[1], t = x.shape[2]
            if let up = channelUpsampler, let upT = channelUpsamplerT {
                let y = up(x.reshaped([c, f * t]))
                x = y.reshaped([up.cout, f, t])
                let yt = upT(xt)
                xt = yt.reshaped([upT.cout, yt.shape[2]])
            }
            trace?("ct_in_x", x)
            trace?("ct_in_xt", xt)
            (x, xt) = transformer(x, xt)
            trace?("ct_out_x", x)
            trace?("ct_out_xt", xt)
            if let down = channelDownsampler, let downT = channelDownsamplerT {
                x = down(x.reshaped([x.shape[0], f * t])).reshaped([down.cout, f, t])
                let yt = downT(xt)
                xt = yt.reshaped([downT.cout, yt.shape[2]])
            }
        }
        let offset = decoder.count - tdecoder.count
        for (idx, decode) in decoder.enumerated() {
            let skip = saved.removeLast()
            let (out, pre) = decode(x, skip: skip, length: 0)
            x = out
            trace?("dec\(idx)", x)
            if idx >= offset {
                let tdec = tdecoder[idx - offset]
                let lengthT = lengthsT.removeLast()
                if tdec.empty {
                    precondition(pre.shape[1] == 1)
                    xt = tdec(pre.reshaped([pre.shape[0], pre.shape[2]]), skip: nil, length: lengthT).0
                } else {
                    xt = tdec(xt, skip: savedT.removeLast(), length: lengthT).0
                }
                trace?("tdec\(idx - offset)", xt)
            }
        }
        let sources = config.sources.count
        // x: [S * C * 2, fq, frames] → complex spectrogram [S * C, fq, frames], denormalised.
        var zout = Spectrogram(channels: sources * channels, freqs: fq, frames: frames)
        for sc in 0..<(sources * channels) {
            for i in 0..<plane {
                zout.re[sc * plane + i] = x.data[(2 * sc) * plane + i] * std + mean
                zout.im[sc * plane + i] = x.data[(2 * sc + 1) * plane + i] * std + mean
            }
        }
        let spec = spectrogram.ispec(zout, length: length)
        let keep = lengthPrePad ?? length
        var out = Tensor(zeros: [sources, channels, keep])
        for sc in 0..<(sources * channels) {
            for i in 0..<keep {
                out.data[sc * keep + i] = (xt.data[sc * length + i] * stdT + meanT) + spec[sc * length + i]
            }
        }
        return out
    }
}
