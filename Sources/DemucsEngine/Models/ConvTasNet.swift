import Foundation

/// Conv-TasNet as demucs v2 shipped it (`demucs.tasnet.ConvTasNet`, models `tasnet` and
/// `tasnet_extra`): a learned filterbank instead of a spectrogram, and a mask per source.
///
/// In demucs's order: the encoder convolves the mixture with `N` filters of `L` samples at hop
/// `L // 2` and applies ReLU (`mixture_w`, `[N, K]`); the separator normalises it per frame
/// (cLN), projects it to `B` channels, runs `R` repeats of `X` temporal blocks (dilations
/// 1, 2, …, 2^(X-1)), projects to `C·N` channels and turns that into one mask per source (ReLU,
/// or a softmax across sources); the decoder multiplies `mixture_w` by each mask, maps every
/// frame back to `audio_channels · L` samples with the basis `Linear` and overlap-adds the frames
/// at hop `L // 2`, zero-padding the end to the input length.
public struct ConvTasNet: SeparationModel {
    let config: ConvTasNetConfig
    let encoder: Tensor          // [N, audio_channels, L]
    let layerNorm: TasNetNorm    // cLN over the encoder output
    let bottleneck: PointwiseConv
    let blocks: [TemporalBlock]  // R · X, repeat-major
    let maskConv: PointwiseConv
    let basis: Tensor            // [audio_channels · L, N]

    public var sources: [String] { config.sources }
    public var samplerate: Int { config.samplerate }
    public var audioChannels: Int { config.audioChannels }
    public var segment: Fraction
    public var maxSegment: Fraction? { nil }
    public var applyGeneration: ApplyGeneration { .v2 }

    init(config c: ConvTasNetConfig, weights: Weights) throws {
        config = c
        segment = c.segment
        let w = weights.scoped("")
        encoder = try w.take("encoder.conv1d_U.weight", [c.n, c.audioChannels, c.l])
        let net = w.scoped("separator.network")
        layerNorm = try TasNetNorm(net, "0", kind: .channelwise, channels: c.n)
        bottleneck = try PointwiseConv(net, "1", cin: c.n, cout: c.b)
        var blocks: [TemporalBlock] = []
        for r in 0..<c.r {
            for x in 0..<c.x {
                blocks.append(try TemporalBlock(net.scoped("2.\(r).\(x)"), config: c, dilation: 1 << x))
            }
        }
        self.blocks = blocks
        maskConv = try PointwiseConv(net, "3", cin: c.b, cout: c.sources.count * c.n)
        basis = try w.take("decoder.basis_signals.weight", [c.audioChannels * c.l, c.n])
    }

    /// v2's `valid_length` is the identity: the model pads its own output.
    public func validLength(_ length: Int) throws -> Int { length }

    public func forward(_ input: Tensor) throws -> Tensor {
        try forward(input, trace: nil)
    }

    /// The forward pass; `trace` sees `encoder`, `lnorm`, `bottleneck`, `block0`, `repeat<r>`,
    /// `mask` and `output`, the names of the parity fixture's layer dump.
    func forward(_ input: Tensor, trace: ((String, Tensor) -> Void)?) throws -> Tensor {
        let c = config
        let channels = input.shape[0], length = input.shape[1]
        guard channels == c.audioChannels else {
            throw EngineError(.invalidArgument, "the model takes \(c.audioChannels) channels, the input has \(channels)")
        }
        guard length >= c.l else {
            throw EngineError(.invalidArgument, "ConvTasNet needs at least L = \(c.l) samples, the input has \(length)")
        }
        // Encoder: strided convolution without bias, then ReLU.
        var mixture = Convolution.conv(input.reshaped([1, channels, length, 1]), batch: 1, inner: 1,
                                       weight: encoder, bias: nil, stride: c.hop, padding: 0, dilation: 1)
        let frames = mixture.shape[2]
        mixture = mixture.reshaped([c.n, frames])
        Activations.relu(&mixture)
        trace?("encoder", mixture)

        var y = mixture
        layerNorm(&y)
        trace?("lnorm", y)
        y = bottleneck(y)
        trace?("bottleneck", y)
        for (index, block) in blocks.enumerated() {
            y = block(y)
            if index == 0 { trace?("block0", y) }
            if (index + 1) % c.x == 0 { trace?("repeat\(index / c.x)", y) }
        }
        var mask = maskConv(y)
        y = Tensor(zeros: [0])
        applyMaskNonlinearity(&mask, frames: frames)
        trace?("mask", mask.reshaped([1, c.sources.count, c.n, frames]))

        let out = decode(mixture, mask: mask, frames: frames, length: length)
        trace?("output", out)
        return out
    }

    /// ReLU, or a softmax across the sources for each (filter, frame), on `[C·N, K]`.
    private func applyMaskNonlinearity(_ mask: inout Tensor, frames: Int) {
        Profile.measure(.activation) {
            switch config.mask {
            case .relu:
                Activations.relu(&mask)
            case .softmax:
                let sources = config.sources.count, plane = config.n * frames
                mask.data.withUnsafeMutableBufferPointer { ms in
                    let p = ms.baseAddress!
                    for i in 0..<plane {
                        var peak = -Float.infinity
                        for s in 0..<sources { peak = max(peak, p[s * plane + i]) }
                        var total: Float = 0
                        for s in 0..<sources {
                            let e = expf(p[s * plane + i] - peak)
                            p[s * plane + i] = e
                            total += e
                        }
                        for s in 0..<sources { p[s * plane + i] /= total }
                    }
                }
            }
        }
    }

    /// The decoder: per source, `basis · (mixture ⊙ mask)` gives `[audio_channels · L, K]`, whose
    /// columns are overlap-added at hop `L // 2` into `[audio_channels, length]`.
    private func decode(_ mixture: Tensor, mask: Tensor, frames: Int, length: Int) -> Tensor {
        let c = config
        let sources = c.sources.count, rows = c.audioChannels * c.l, plane = c.n * frames
        var out = Tensor(zeros: [sources, c.audioChannels, length])
        var masked = LargeBuffer.zeros(plane)
        var framesOut = LargeBuffer.zeros(rows * frames)
        for s in 0..<sources {
            mixture.data.withUnsafeBufferPointer { xs in
                mask.data.withUnsafeBufferPointer { ms in
                    let m = ms.baseAddress! + s * plane
                    for i in 0..<plane { masked[i] = xs[i] * m[i] }
                }
            }
            Profile.measure(.linear) {
                basis.data.withUnsafeBufferPointer { bs in
                    masked.withUnsafeBufferPointer { ms in
                        framesOut.withUnsafeMutableBufferPointer { fs in
                            GEMM.multiply(m: rows, n: frames, k: c.n, a: bs.baseAddress!, b: ms.baseAddress!, c: fs.baseAddress!)
                        }
                    }
                }
            }
            // Overlap-add: frame k's sample j of channel a lands on k·hop + j. The frames end at
            // (K - 1)·hop + L <= length; the rest of the row stays zero (v2's final F.pad).
            out.data.withUnsafeMutableBufferPointer { os in
                framesOut.withUnsafeBufferPointer { fs in
                    for a in 0..<c.audioChannels {
                        let dst = os.baseAddress! + (s * c.audioChannels + a) * length
                        for j in 0..<c.l {
                            let row = fs.baseAddress! + (a * c.l + j) * frames
                            for k in 0..<frames {
                                let t = k * c.hop + j
                                if t < length { dst[t] += row[k] }
                            }
                        }
                    }
                }
            }
        }
        return out
    }
}
