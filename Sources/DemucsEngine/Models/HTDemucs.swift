import Foundation

/// Hybrid Transformer Demucs (Demucs v4, `demucs.htdemucs.HTDemucs`).
///
/// Two U-Nets run side by side: one on the complex spectrogram (real and imaginary parts as
/// channels), convolving over frequencies, and one on the waveform. At the bottom a cross-domain
/// transformer lets each branch attend to the other. The spectrogram branch's output is turned
/// back into a waveform with the inverse STFT and added to the waveform branch's output.
public struct HTDemucs: SeparationModel {
    let config: HTDemucsConfig
    let unet: HybridUNet
    let channelUpsampler: Conv?
    let channelDownsampler: Conv?
    let channelUpsamplerT: Conv?
    let channelDownsamplerT: Conv?
    let transformer: CrossTransformerEncoder?
    let spectrogram: HybridSpectrogram

    var encoder: [HEncLayer] { unet.encoder }
    var tencoder: [HEncLayer] { unet.tencoder }
    var tdecoder: [HDecLayer] { unet.tdecoder }

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
                throw EngineError(.unsupportedModel, "model file \(weights.source): HTDemucs with depth \(c.depth) and nfft \(c.nfft) has time-only layers after the frequency axis is exhausted; not supported by this engine")
            }
            var ker = c.kernelSize
            var pad = true
            var lastFreq = false
            if freqs <= c.kernelSize {
                ker = freqs
                pad = false
                lastFreq = true
            }
            var o = HybridLayerOptions(
                kernel: ker, stride: c.stride, freq: true, pad: pad, norm: index >= c.normStarts,
                normGroups: c.normGroups, rewrite: c.rewrite, dconv: c.dconvMode & 1 != 0,
                dconvDepth: c.dconvDepth, dconvCompress: c.dconvComp, context: c.contextEnc)
            var ot = o.timeBranch(kernel: c.kernelSize, stride: c.stride)
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
            o = o.decoder(c)
            ot = ot.decoder(c)
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
                freqEmbedding = try HybridUNet.frequencyEmbedding(w, freqs: freqs, channels: chinZ, scale: c.embScale)
            }
        }
        unet = HybridUNet(encoder: encoder, decoder: decoder, tencoder: tencoder, tdecoder: tdecoder,
                          freqEmbedding: freqEmbedding, freqEmb: Float(c.freqEmb))
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
        // Only the spectrogram's size outlives this block: its values live on in `x`.
        var x: Tensor
        let freqs: Int, frames: Int
        do {
            let z = spectrogram.spec(mix)
            (freqs, frames) = (z.freqs, z.frames)
            x = HybridCore.complexAsChannels(z)
        }
        trace?("spec_cac", x)
        let stats = HybridStats.normalize(&x)
        var xt = mix
        let statsT = HybridStats.normalize(&xt)

        var skips = unet.encode(&x, &xt, trace: trace)
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
        try unet.decode(&x, &xt, skips: &skips, model: "HTDemucs", trace: trace)
        let sources = config.sources.count
        let spec = spectrogram.ispec(complexChannels: consume x, channels: sources * channels, freqs: freqs,
                                     frames: frames, stats: stats, length: length)
        return HybridCore.sum(waveform: xt, stats: statsT, spec: spec, sources: sources, channels: channels,
                              length: length, keep: lengthPrePad ?? length)
    }
}
