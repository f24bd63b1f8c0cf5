import Foundation

/// Hybrid Demucs (Demucs v3, `demucs.hdemucs.HDemucs`).
///
/// Like HTDemucs, two U-Nets run side by side, one on the complex spectrogram (real and imaginary
/// parts as channels, convolving over frequencies) and one on the waveform. There is no
/// transformer: the frequency layers go on until one bin is left (the last one, `last_freq`, has
/// a kernel as wide as the remaining bins), the waveform branch's last layer is then only a
/// strided convolution whose output is added to it, and the remaining layers are time
/// convolutions on the merged `[channels, frames]` tensor (stride `time_stride`). The decoder is
/// the mirror image: time layers, then the split, then both branches up to the output, where the
/// inverse STFT of the spectrogram branch is added to the waveform branch.
///
/// `hybrid=false` is the spectrogram branch alone (plain centred STFT framing); `hybrid_old`
/// reproduces the zero padding of some MDX-challenge models.
public struct HDemucs: SeparationModel {
    let config: HDemucsConfig
    let unet: HybridUNet
    let spectrogram: HDemucsSpectrogram

    var encoder: [HEncLayer] { unet.encoder }
    var tencoder: [HEncLayer] { unet.tencoder }
    var tdecoder: [HDecLayer] { unet.tdecoder }

    public var sources: [String] { config.sources }
    public var samplerate: Int { config.samplerate }
    public var audioChannels: Int { config.audioChannels }
    /// The split length; a bag's `segment:` replaces it (HDemucs has no limit).
    public var segment: Fraction
    public var maxSegment: Fraction? { nil }

    init(config c: HDemucsConfig, weights: Weights) throws {
        config = c
        segment = c.segment
        let w = weights.scoped("")
        var encoder: [HEncLayer] = [], decoder: [HDecLayer] = []
        var tencoder: [HEncLayer] = [], tdecoder: [HDecLayer] = []
        var chin = c.audioChannels
        var chinZ = chin * 2          // complex as channels
        var chout = c.channelsTime ?? c.channels
        var choutZ = c.channels
        var freqs = c.nfft / 2
        var freqEmbedding: Tensor?
        // Number of frequency layers (each has a waveform twin in a hybrid model).
        var freqLayers = 0
        do {
            var f = freqs
            for _ in 0..<c.depth where f > 1 {
                freqLayers += 1
                f = f <= c.kernelSize ? 1 : f / c.stride
            }
        }
        for index in 0..<c.depth {
            let freq = freqs > 1
            var stri = c.stride
            var ker = c.kernelSize
            if !freq {
                // Time layers on the merged tensor.
                ker = c.timeStride * 2
                stri = c.timeStride
            }
            var pad = true
            var lastFreq = false
            if freq && freqs <= c.kernelSize {
                ker = freqs
                pad = false
                lastFreq = true
            }
            var o = HybridLayerOptions(
                kernel: ker, stride: stri, freq: freq, pad: pad, norm: index >= c.normStarts,
                normGroups: c.normGroups, rewrite: c.rewrite, dconv: c.dconvMode & 1 != 0,
                dconvDepth: c.dconvDepth, dconvCompress: c.dconvComp, context: c.contextEnc,
                dconvLstm: index >= c.dconvLstm, dconvAttn: index >= c.dconvAttn)
            var ot = o.timeBranch(kernel: c.kernelSize, stride: c.stride)
            // MultiWrap (demucs asserts that a wrapped layer has no norm, acts on frequencies and
            // pads, which excludes `last_freq`).
            let multi = !c.multiFreqs.isEmpty && index < c.multiFreqsDepth
            if multi && (o.norm || !freq || !pad) {
                throw EngineError(.invalidModelFile, "model file \(weights.source): HDemucs layer \(index) is wrapped by multi_freqs but has GroupNorm, is a time layer or is the last frequency layer (demucs asserts against it)")
            }
            if lastFreq {
                choutZ = max(chout, choutZ)
                chout = choutZ
            }
            if multi {
                encoder.append(try HEncLayer.multiWrap(w.scoped("encoder.\(index)"), cin: chinZ, cout: choutZ, options: o,
                                                       splitRatios: c.multiFreqs))
            } else {
                encoder.append(try HEncLayer(w.scoped("encoder.\(index)"), cin: chinZ, cout: choutZ, options: o, empty: false))
            }
            let branches = c.hybrid && freq
            if branches {
                tencoder.append(try HEncLayer(w.scoped("tencoder.\(index)"), cin: chin, cout: chout, options: ot, empty: lastFreq))
            }
            if index == 0 {
                chin = c.audioChannels * c.sources.count
                chinZ = chin * 2
            }
            o = o.decoder(c)
            ot = ot.decoder(c)
            // Decoder layers are stored innermost first (demucs inserts each at the front); the
            // waveform decoder holds only the layers before the merge.
            if multi {
                o.contextFreq = false
                decoder.insert(try HDecLayer.multiWrap(w.scoped("decoder.\(c.depth - 1 - index)"), cin: choutZ, cout: chinZ,
                                                       options: o, last: index == 0, splitRatios: c.multiFreqs), at: 0)
            } else {
                decoder.insert(try HDecLayer(w.scoped("decoder.\(c.depth - 1 - index)"), cin: choutZ, cout: chinZ,
                                             options: o, empty: false, last: index == 0), at: 0)
            }
            if branches {
                tdecoder.insert(try HDecLayer(w.scoped("tdecoder.\(freqLayers - 1 - index)"), cin: chout, cout: chin,
                                              options: ot, empty: lastFreq, last: index == 0), at: 0)
            }
            chin = chout
            chinZ = choutZ
            chout = Int(c.growth * Double(chout))
            choutZ = Int(c.growth * Double(choutZ))
            if freq {
                freqs = freqs <= c.kernelSize ? 1 : freqs / c.stride
            }
            if index == 0 && c.freqEmb != 0 {
                freqEmbedding = try HybridUNet.frequencyEmbedding(w, freqs: freqs, channels: chinZ, scale: c.embScale)
            }
        }
        if c.hybrid && tencoder.last?.empty != true {
            throw EngineError(.unsupportedModel, "model file \(weights.source): HDemucs with nfft \(c.nfft), depth \(c.depth), kernel_size \(c.kernelSize) never merges its waveform branch into the spectrogram branch (the frequency axis is not down to one bin after \(c.depth) layers); demucs itself cannot run such a model")
        }
        unet = HybridUNet(encoder: encoder, decoder: decoder, tencoder: tencoder, tdecoder: tdecoder,
                          freqEmbedding: freqEmbedding, freqEmb: Float(c.freqEmb))
        spectrogram = HDemucsSpectrogram(nfft: c.nfft, mode: c.hybrid ? (c.hybridOld ? .hybridOld : .hybrid) : .plain)
    }

    /// HDemucs has no `valid_length`: `apply_model` feeds it each chunk as it is.
    public func validLength(_ length: Int) throws -> Int { length }

    public func forward(_ input: Tensor) throws -> Tensor {
        try forward(input, trace: nil)
    }

    /// The forward pass; `trace` sees the intermediate tensors under the names of the layer
    /// fixtures (`encN`, `tencN`, `decN`, `tdecN`, ...).
    func forward(_ mix: Tensor, trace: ((String, Tensor) -> Void)?) throws -> Tensor {
        let channels = mix.shape[0], length = mix.shape[1]
        guard channels == config.audioChannels else {
            throw EngineError(.invalidArgument, "the model takes \(config.audioChannels) channels, the input has \(channels)")
        }
        // Only the spectrogram's size outlives this block: its values live on in `x`.
        var x: Tensor
        let freqs: Int, frames: Int
        do {
            let z = try spectrogram.spec(mix)
            (freqs, frames) = (z.freqs, z.frames)
            x = HybridCore.complexAsChannels(z)
        }
        trace?("spec_cac", x)
        let stats = HybridStats.normalize(&x)
        var xt = mix
        var statsT = HybridStats()
        if config.hybrid {
            statsT = HybridStats.normalize(&xt)
        }

        var skips = unet.encode(&x, &xt, trace: trace)
        // The decoders start from zeros: the signal comes through the skip connections.
        x = Tensor(zeros: x.shape)
        xt = Tensor(zeros: x.shape)
        try unet.decode(&x, &xt, skips: &skips, model: "HDemucs", trace: trace)
        let sources = config.sources.count
        guard x.count == sources * channels * 2 * freqs * frames else {
            throw EngineError(.invalidArgument, "HDemucs: the spectrogram decoder gave \(x.shape), expected \([sources * channels * 2, freqs, frames])")
        }
        let zout = HybridCore.spectrogram(x, channels: sources * channels, freqs: freqs, frames: frames, stats: stats)
        let spec = spectrogram.ispec(zout, length: length)
        guard config.hybrid else {
            return Tensor(shape: [sources, channels, length], data: spec)
        }
        guard xt.count == sources * channels * length else {
            throw EngineError(.invalidArgument, "HDemucs: the waveform decoder gave \(xt.shape), expected \([sources * channels, length])")
        }
        return HybridCore.sum(waveform: xt, stats: statsT, spec: spec, sources: sources, channels: channels,
                              length: length, keep: length)
    }
}

/// The spectrogram framing of `HDemucs._spec` / `_ispec` in its three variants.
struct HDemucsSpectrogram: Sendable {
    enum Mode: Sendable {
        /// Reflect padding so that there are exactly `ceil(length / hop)` frames (as HTDemucs).
        case hybrid
        /// The same framing with zero padding, and an inverse that is not shifted back
        /// (`hybrid_old`, a padding bug some MDX models were trained with).
        case hybridOld
        /// A plain centred STFT, `length / hop + 1` frames (`hybrid=false`).
        case plain
    }

    let mode: Mode
    let hybrid: HybridSpectrogram

    init(nfft: Int, mode: Mode) {
        self.mode = mode
        hybrid = HybridSpectrogram(nfft: nfft)
    }

    var stft: STFT { hybrid.stft }
    var hop: Int { hybrid.hop }

    /// `[channels, length]` → spectrogram `[channels, nfft/2, frames]` (the Nyquist bin dropped).
    func spec(_ x: Tensor) throws -> Spectrogram {
        let channels = x.shape[0], length = x.shape[1]
        switch mode {
        case .hybrid:
            return hybrid.spec(x)
        case .hybridOld:
            let le = (length + hop - 1) / hop
            let pad = hop / 2 * 3
            let padded = length + 2 * pad + le * hop - length
            var signal = LargeBuffer.zeros(channels * padded)
            for c in 0..<channels {
                signal.replaceSubrange((c * padded + pad)..<(c * padded + pad + length),
                                       with: x.data[(c * length)..<((c + 1) * length)])
            }
            return crop(stft.forward(signal, channels: channels), from: 2, frames: le)
        case .plain:
            guard length > stft.nfft / 2 else {
                throw EngineError(.invalidArgument, "HDemucs: a chunk of \(length) samples is too short for the centred STFT of size \(stft.nfft)")
            }
            let full = stft.forward(x.data, channels: channels)
            return crop(full, from: 0, frames: full.frames)
        }
    }

    /// Drops the Nyquist bin and keeps `frames` frames from `from`.
    private func crop(_ full: Spectrogram, from: Int, frames: Int) -> Spectrogram {
        let freqs = full.freqs - 1
        var out = Spectrogram(channels: full.channels, freqs: freqs, frames: frames)
        for c in 0..<full.channels {
            for f in 0..<freqs {
                let src = (c * full.freqs + f) * full.frames + from
                let dst = (c * freqs + f) * frames
                out.re.replaceSubrange(dst..<(dst + frames), with: full.re[src..<(src + frames)])
                out.im.replaceSubrange(dst..<(dst + frames), with: full.im[src..<(src + frames)])
            }
        }
        return out
    }

    /// Spectrogram `[channels, nfft/2, frames]` → `[channels, length]`, flattened.
    func ispec(_ z: Spectrogram, length: Int) -> [Float] {
        switch mode {
        case .hybrid:
            return hybrid.ispec(z, length: length)
        case .hybridOld:
            let le = hop * ((length + hop - 1) / hop)
            let signal = stft.inverse(pad(z, frames: 2), length: le)
            var out = LargeBuffer.zeros(z.channels * length)
            for c in 0..<z.channels {
                out.replaceSubrange((c * length)..<((c + 1) * length), with: signal[(c * le)..<(c * le + length)])
            }
            return out
        case .plain:
            return stft.inverse(pad(z, frames: 0), length: length)
        }
    }

    /// Adds the Nyquist bin (zeros) and `frames` zero frames on each side.
    private func pad(_ z: Spectrogram, frames extra: Int) -> Spectrogram {
        let freqs = z.freqs + 1, frames = z.frames + 2 * extra
        var full = Spectrogram(channels: z.channels, freqs: freqs, frames: frames)
        for c in 0..<z.channels {
            for f in 0..<z.freqs {
                let src = (c * z.freqs + f) * z.frames
                let dst = (c * freqs + f) * frames + extra
                full.re.replaceSubrange(dst..<(dst + z.frames), with: z.re[src..<(src + z.frames)])
                full.im.replaceSubrange(dst..<(dst + z.frames), with: z.im[src..<(src + z.frames)])
            }
        }
        return full
    }
}
