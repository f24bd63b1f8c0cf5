import Foundation

/// BS-RoFormer and Mel-Band RoFormer (`BSRoformer` and `MelBandRoformer` of the reference,
/// docs/ROFORMER.md), one chunk at a time.
///
/// The mixture's STFT (not normalised, complex values as channels, stereo merged into the
/// frequency axis as `(f s)`) is split into bands, each band a feature per frame; a stack of
/// axial transformers mixes them along time (per band) and frequency (per frame); per stem, mask
/// estimators give a complex mask per bin, which multiplies the mixture's spectrogram before the
/// inverse STFT. BS-RoFormer's bands are fixed consecutive bins (`freqs_per_bands`) and may have
/// linear-attention layers before each pair of transformers; Mel-Band's are the overlapping
/// supports of a mel filterbank, whose masks are averaged over the bands that share a bin.
public struct RoFormer: Sendable {
    public let config: RoFormerConfig
    let stft: STFT
    let channels: Int
    /// The `(f s)` rows of the spectrogram each band-split input row pair comes from, in order:
    /// every row once for BS-RoFormer, the bands' bins (with repeats) for Mel-Band.
    let rows: [Int]
    /// How many bands hold each `(f s)` row (Mel-Band's mask average); empty for BS-RoFormer.
    let bandsPerRow: [Float]
    let bandSplit: BandSplit
    let layers: [(linear: RoFormerTransformer?, time: RoFormerTransformer, freq: RoFormerTransformer)]
    let finalNorm: RMSNorm?
    let maskEstimators: [MaskEstimator]

    public init(config: RoFormerConfig, weights: Weights) throws {
        self.config = config
        let w = weights.scoped("")
        channels = config.stereo ? 2 : 1
        stft = STFT(nfft: config.nFFT, hop: config.hopLength, normalized: false)
        let bins = config.nFFT / 2 + 1
        let bandBins: [[Int]]
        switch config.family {
        case .bandSplit:
            var start = 0
            bandBins = config.freqsPerBands.map { n in
                defer { start += n }
                return Array(start..<(start + n))
            }
        case .melBand:
            bandBins = MelBands.bins(sampleRate: config.sampleRate, nFFT: config.nFFT, bands: config.numBands)
        }
        let channels = channels
        rows = bandBins.flatMap { $0.flatMap { f in (0..<channels).map { f * channels + $0 } } }
        if config.family == .melBand {
            var counts = [Float](repeating: 0, count: bins * channels)
            for r in rows { counts[r] += 1 }
            bandsPerRow = counts
        } else {
            bandsPerRow = []
        }
        let widths = bandBins.map { 2 * channels * $0.count }
        bandSplit = try BandSplit(w.scoped("band_split"), dim: config.dim, widths: widths)
        let melBand = config.family == .melBand
        layers = try (0..<config.depth).map { i in
            let layer = w.scoped("layers.\(i)")
            var index = 0
            func transformer(depth: Int, linear: Bool) throws -> RoFormerTransformer {
                defer { index += 1 }
                return try RoFormerTransformer(layer.scoped("\(index)"), depth: depth, dim: config.dim, heads: config.heads,
                                               dimHead: config.dimHead, linearAttention: linear, normOutput: melBand)
            }
            let linear = config.linearTransformerDepth > 0
                ? try transformer(depth: config.linearTransformerDepth, linear: true) : nil
            return (linear, try transformer(depth: config.timeTransformerDepth, linear: false),
                    try transformer(depth: config.freqTransformerDepth, linear: false))
        }
        finalNorm = melBand ? nil : try RMSNorm(w, "final_norm", dim: config.dim)
        maskEstimators = try (0..<config.numStems).map { n in
            try MaskEstimator(w.scoped("mask_estimators.\(n)"), dim: config.dim, widths: widths,
                              hidden: config.dim * (melBand ? 4 : config.mlpExpansionFactor),
                              linearLayers: config.maskEstimatorDepth + (melBand ? 1 : 0))
        }
        let extra = weights.unused
        if let first = extra.first {
            throw EngineError(.invalidModelFile, "model file \(weights.source) has tensor \(first), which the \(config.family.rawValue) of its config does not have (\(extra.count) unexpected tensors)")
        }
    }

    public var stems: [String] { config.stems }
    public var samplerate: Int { config.sampleRate }
    public var audioChannels: Int { channels }

    /// The number of samples `forward` gives for `length` input samples: whole hops (the inverse
    /// STFT without a length), or `length` for a Mel-Band RoFormer with `match_input_audio_length`.
    public func outputLength(_ length: Int) -> Int {
        config.matchInputAudioLength ? length : (length / config.hopLength) * config.hopLength
    }

    /// One chunk: `[channels, length]` in, `[stems, channels, outputLength(length)]` out.
    public func forward(_ mix: Tensor) throws -> Tensor {
        guard mix.rank == 2, mix.shape[0] == channels else {
            throw EngineError(.invalidArgument, "a \(config.family.rawValue) with stereo \(config.stereo) takes \(channels)-channel audio, not \(mix.shape)")
        }
        let length = mix.shape[1]
        guard length > config.nFFT / 2 else {
            throw EngineError(.invalidArgument, "\(length) samples are too few for the STFT of n_fft \(config.nFFT) (more than \(config.nFFT / 2) needed)")
        }
        let spec = stft.forward(mix.data, channels: channels)
        let frames = spec.frames, bands = bandSplit.widths.count, dim = config.dim

        var x = bandSplit(bandInput(spec))  // [frames, bands, dim]
        for (linear, time, freq) in layers {
            if let linear { linear(&x, sequences: 1, length: frames * bands) }
            var byBand = x.reshaped([frames, bands, dim]).permuted([1, 0, 2])
            time(&byBand, sequences: bands, length: frames)
            x = byBand.permuted([1, 0, 2])
            freq(&x, sequences: frames, length: bands)
        }
        if let finalNorm { x = finalNorm(x) }

        let outLength = outputLength(length)
        var out = Tensor(zeros: [maskEstimators.count, channels, outLength])
        for (n, estimator) in maskEstimators.enumerated() {
            let masked = applyMask(estimator(x), to: spec)
            let audio = stft.inverse(masked, length: outLength)
            out.data.replaceSubrange((n * channels * outLength)..<((n + 1) * channels * outLength), with: audio)
        }
        return out
    }

    /// The band split's input, `[frames, 2 · rows.count]`: for each of `rows` (an `(f s)` row of
    /// the spectrogram) its real and imaginary parts.
    func bandInput(_ spec: Spectrogram) -> Tensor {
        let frames = spec.frames, freqs = spec.freqs, channels = channels, width = 2 * rows.count
        var x = Tensor(uninitialized: [frames, width])  // every element is written
        spec.re.withUnsafeBufferPointer { re in
            spec.im.withUnsafeBufferPointer { im in
                x.data.withUnsafeMutableBufferPointer { xs in
                    let dst = xs.baseAddress!
                    Parallel.forEach(frames, grain: 4) { range in
                        for t in range {
                            let row = dst + t * width
                            for (j, r) in rows.enumerated() {
                                let plane = ((r % channels) * freqs + r / channels) * frames + t
                                row[2 * j] = re[plane]
                                row[2 * j + 1] = im[plane]
                            }
                        }
                    }
                }
            }
        }
        return x
    }

    /// The mixture's spectrogram times a stem's complex mask (`[frames, 2 · rows.count]`, laid
    /// out as `bandInput`); Mel-Band's overlapping bands are first summed per row and divided by
    /// the number of bands that hold it.
    func applyMask(_ mask: Tensor, to spec: Spectrogram) -> Spectrogram {
        let frames = spec.frames, freqs = spec.freqs, channels = channels, width = 2 * rows.count
        var out = spec
        let averaged = !bandsPerRow.isEmpty
        mask.data.withUnsafeBufferPointer { ms in
            out.re.withUnsafeMutableBufferPointer { re in
                out.im.withUnsafeMutableBufferPointer { im in
                    let m = ms.baseAddress!, reBase = re.baseAddress!, imBase = im.baseAddress!
                    Parallel.forEach(frames, grain: 4) { range in
                        func multiply(plane: Int, _ mr: Float, _ mi: Float) {
                            let a = reBase[plane], b = imBase[plane]
                            reBase[plane] = a * mr - b * mi
                            imBase[plane] = a * mi + b * mr
                        }
                        var sumRe = [Float](repeating: 0, count: averaged ? freqs * channels : 0), sumIm = sumRe
                        for t in range {
                            let row = m + t * width
                            if averaged {
                                for i in sumRe.indices { sumRe[i] = 0; sumIm[i] = 0 }
                                for (j, r) in rows.enumerated() {
                                    sumRe[r] += row[2 * j]
                                    sumIm[r] += row[2 * j + 1]
                                }
                                for r in 0..<(freqs * channels) {
                                    let count = max(bandsPerRow[r], 1e-8)
                                    multiply(plane: ((r % channels) * freqs + r / channels) * frames + t,
                                             sumRe[r] / count, sumIm[r] / count)
                                }
                            } else {
                                for (j, r) in rows.enumerated() {
                                    multiply(plane: ((r % channels) * freqs + r / channels) * frames + t,
                                             row[2 * j], row[2 * j + 1])
                                }
                            }
                        }
                    }
                }
            }
        }
        return out
    }
}
