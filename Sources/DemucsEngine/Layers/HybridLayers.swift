import Foundation

/// Settings shared by the encoder and decoder layers of the hybrid models
/// (`HEncLayer` / `HDecLayer` in `demucs/hdemucs.py`).
struct HybridLayerOptions: Sendable {
    var kernel: Int
    var stride: Int
    var freq: Bool
    var pad: Bool
    var norm: Bool
    var normGroups: Int
    var rewrite: Bool
    var dconv: Bool
    var dconvDepth: Int
    var dconvCompress: Double
    var context: Int
    /// A BLSTM / LocalState attention inside the DConv branch (HDemucs's `dconv_lstm` /
    /// `dconv_attn` layers; HTDemucs has none).
    var dconvLstm = false
    var dconvAttn = false
    /// `context_freq` of a decoder layer: false (the layers HDemucs wraps in `MultiWrap`) makes
    /// the spectrogram rewrite conv `[1, 1 + 2·context]`, along time only.
    var contextFreq = true
}

/// The 1×1 (or `1 + 2·context` wide) "rewrite" convolution of a hybrid layer: along time in the
/// waveform branch, a square 2-D kernel over (frequency, time) in the spectrogram branch.
enum Rewrite: Sendable {
    case axis(Conv)
    case square(Conv2d)

    init(_ w: ScopedWeights, _ name: String, cin: Int, cout: Int, context: Int, freq: Bool,
         contextFreq: Bool = true) throws {
        let kernel = 1 + 2 * context
        if freq && !contextFreq {
            self = .square(try Conv2d(w, name, cin: cin, cout: cout, kernel: (1, kernel), padding: (0, context)))
        } else if freq && kernel > 1 {
            self = .square(try Conv2d(w, name, cin: cin, cout: cout, kernel: kernel, padding: context))
        } else {
            self = .axis(try Conv(w, name, cin: cin, cout: cout, kernel: kernel, padding: context, freq: freq))
        }
    }

    /// `GLU(norm(self(x)))` over the output channels. Without a norm, where the convolution is
    /// 1×1 or square, GLU is applied block by block without the full-size intermediate (see
    /// ConvolutionGLU.swift); same results as the separate steps.
    func gluApplied(_ x: Tensor, freq: Bool, norm: GroupNorm?) -> Tensor {
        if norm == nil {
            switch self {
            case .axis(let conv) where conv.weight.shape[2] == 1 && conv.stride == 1 && conv.padding == 0:
                return Convolution.pointwiseGLU(x, weight: conv.weight, bias: conv.bias)
            case .square(let conv):
                return Convolution.conv2d(x, weight: conv.weight, bias: conv.bias, padding: conv.padding, glu: true)
            default:
                break
            }
        }
        var z = self(x, freq: freq)
        norm?(&z)
        return Activations.gluChannels(z)
    }

    /// Applies to `[cin, length]` (time) or `[cin, freqs, frames]` (spectrogram).
    func callAsFunction(_ x: Tensor, freq: Bool) -> Tensor {
        switch self {
        case .axis(let conv):
            if freq {
                let frames = x.shape[2]
                let y = conv(x, inner: frames)
                return y.reshaped([y.shape[1], y.shape[2], frames])
            }
            let y = conv(x)
            return y.reshaped([y.shape[1], y.shape[2]])
        case .square(let conv):
            return conv(x)
        }
    }
}

/// Runs a DConv branch over `[channels, freqs, frames]` (each frequency row its own batch item,
/// as demucs's permute/reshape does) or `[channels, length]` (one item).
func applyDConv(_ dconv: DConv, _ y: consuming Tensor, freq: Bool) -> Tensor {
    let batch = freq ? y.shape[1] : 1
    return dconv(y, batch: batch)
}

/// One encoder layer of the hybrid models: strided conv, optional norm, GELU, DConv residual
/// branch, then the rewrite conv with GLU.
struct HEncLayer: Sendable {
    let options: HybridLayerOptions
    let empty: Bool
    let conv: Conv
    let norm1: GroupNorm?
    let rewrite: Rewrite?
    let norm2: GroupNorm?
    let dconv: DConv?
    /// `MultiWrap`: the band copies of this layer (conv without frequency padding), one more
    /// than `splitRatios`; empty for a plain layer.
    private(set) var bands: [HEncLayer] = []
    private(set) var splitRatios: [Double] = []

    /// `MultiWrap(HEncLayer(...), split_ratios)`: weights under `layers.{k}.`.
    static func multiWrap(_ w: ScopedWeights, cin: Int, cout: Int, options o: HybridLayerOptions,
                          splitRatios: [Double]) throws -> HEncLayer {
        var bandOptions = o
        bandOptions.pad = false
        var bands: [HEncLayer] = []
        for k in 0...splitRatios.count {
            bands.append(try HEncLayer(w.scoped("layers.\(k)"), cin: cin, cout: cout, options: bandOptions, empty: false))
        }
        var wrap = bands[0]
        wrap.bands = bands
        wrap.splitRatios = splitRatios
        return wrap
    }

    /// `MultiWrap.forward` of an encoder layer on `[cin, freqs, frames]`: each band reads its
    /// rows (with the padding the whole layer would have at the two ends) so that the bands'
    /// outputs, concatenated, cover the frequency axis as the whole layer's would.
    private func multiForward(_ x: Tensor) -> Tensor {
        let fr = x.shape[1]
        let kernel = options.kernel, stride = options.stride, pad = kernel / 4
        var start = 0
        var outs: [Tensor] = []
        for (k, band) in bands.enumerated() {
            let isLast = k == splitRatios.count
            var limit: Int
            if isLast {
                limit = fr
            } else {
                limit = Int((Double(fr) * splitRatios[k]).rounded(.toNearestOrEven))
                var le = limit - start
                if start == 0 { le += pad }
                let frames = Int((Double(le - kernel) / Double(stride) + 1).rounded(.toNearestOrEven))
                limit = start + (frames - 1) * stride + kernel
                if start == 0 { limit -= pad }
            }
            precondition(limit - start > 0 && limit <= fr, "MultiWrap: band \(start)..<\(limit) of \(fr) bins")
            let y = rows(x, from: start, to: limit, padTop: start == 0 ? pad : 0, padBottom: isLast ? pad : 0)
            outs.append(band(y))
            start = limit - kernel + stride
        }
        return concatAxis1(outs)
    }

    init(_ w: ScopedWeights, cin: Int, cout: Int, options o: HybridLayerOptions, empty: Bool) throws {
        options = o
        self.empty = empty
        let pad = o.pad ? o.kernel / 4 : 0
        conv = try Conv(w, "conv", cin: cin, cout: cout, kernel: o.kernel, stride: o.stride, padding: pad, freq: o.freq)
        if empty {
            norm1 = nil; rewrite = nil; norm2 = nil; dconv = nil
            return
        }
        norm1 = o.norm ? try GroupNorm(w, "norm1", groups: o.normGroups, channels: cout) : nil
        if o.rewrite {
            rewrite = try Rewrite(w, "rewrite", cin: cout, cout: 2 * cout, context: o.context, freq: o.freq)
            norm2 = o.norm ? try GroupNorm(w, "norm2", groups: o.normGroups, channels: 2 * cout) : nil
        } else {
            rewrite = nil; norm2 = nil
        }
        dconv = o.dconv ? try DConv(w.scoped("dconv"), channels: cout, compress: o.dconvCompress, depth: o.dconvDepth,
                                       attn: o.dconvAttn, lstm: o.dconvLstm) : nil
    }

    /// `x` is `[cin, freqs, frames]` for the spectrogram branch, `[cin, length]` for the waveform
    /// branch. `inject` (`[cout, frames]`) is the waveform branch merged into the last frequency
    /// layer when both branches reach the same stride.
    func callAsFunction(_ input: Tensor, inject: Tensor? = nil) -> Tensor {
        if !bands.isEmpty { return multiForward(input) }
        var x = input
        var y: Tensor
        if options.freq {
            let frames = x.shape[2]
            y = conv(x, inner: frames)
            y = y.reshaped([y.shape[1], y.shape[2], frames])
        } else {
            let length = x.count / x.shape[0]
            if length % options.stride != 0 {
                x = padRight(x.reshaped([x.shape[0], length]), options.stride - length % options.stride)
            }
            y = conv(x)
            y = y.reshaped([y.shape[1], y.shape[2]])
        }
        if empty { return y }
        if let inject {
            // inject is [cout, frames]; it is added to every frequency row of y ([cout, freqs, frames]).
            let c = y.shape[0], rows = y.shape[1], frames = y.shape[2]
            y.data.withUnsafeMutableBufferPointer { ys in
                inject.data.withUnsafeBufferPointer { js in
                    for ch in 0..<c {
                        for r in 0..<rows {
                            for t in 0..<frames { ys[(ch * rows + r) * frames + t] += js[ch * frames + t] }
                        }
                    }
                }
            }
        }
        norm1?(&y)
        Activations.gelu(&y)
        if let dconv {
            y = applyDConv(dconv, consume y, freq: options.freq)
        }
        guard let rewrite else { return y }
        return rewrite.gluApplied(y, freq: options.freq, norm: norm2)
    }
}

/// One decoder layer of the hybrid models: skip connection, rewrite conv with GLU, DConv branch,
/// transposed conv, crop, GELU (except for the last layer).
struct HDecLayer: Sendable {
    let options: HybridLayerOptions
    let empty: Bool
    private(set) var last: Bool
    let chin: Int
    let convTr: ConvTranspose
    let norm2: GroupNorm?
    let rewrite: Rewrite?
    let norm1: GroupNorm?
    let dconv: DConv?
    /// `MultiWrap`: the band copies of this layer (`pad=False`, run with `last=True`), one more
    /// than `splitRatios`; empty for a plain layer.
    private(set) var bands: [HDecLayer] = []
    private(set) var splitRatios: [Double] = []

    /// `MultiWrap(HDecLayer(...), split_ratios)`: weights under `layers.{k}.`.
    static func multiWrap(_ w: ScopedWeights, cin: Int, cout: Int, options o: HybridLayerOptions, last: Bool,
                          splitRatios: [Double]) throws -> HDecLayer {
        var bandOptions = o
        bandOptions.pad = false
        var bands: [HDecLayer] = []
        for k in 0...splitRatios.count {
            bands.append(try HDecLayer(w.scoped("layers.\(k)"), cin: cin, cout: cout, options: bandOptions,
                                       empty: false, last: true))
        }
        var wrap = bands[0]
        wrap.last = last
        wrap.bands = bands
        wrap.splitRatios = splitRatios
        return wrap
    }

    /// `MultiWrap.forward` of a decoder layer on `[cin, freqs, frames]`: each band's transposed
    /// conv output overlaps the next band's by `stride` rows, which are added (less the second
    /// band's bias); `stride // 2` rows are trimmed at the top and `-(-stride // 2)` at the
    /// bottom, then GELU unless the layer is the last. Returns the output twice (demucs gives no
    /// `pre` for a wrapped layer; the branches never split there).
    private func multiForward(_ x: Tensor, skip: Tensor?) -> (Tensor, Tensor) {
        let fr = x.shape[1]
        let stride = options.stride
        var start = 0
        var outs: [Tensor] = []
        for (k, band) in bands.enumerated() {
            let isLast = k == splitRatios.count
            let limit = isLast ? fr : Int((Double(fr) * splitRatios[k]).rounded(.toNearestOrEven))
            let y = rows(x, from: start, to: limit)
            let s = skip.map { rows($0, from: start, to: limit) }
            var out = band(y, skip: s, length: 0).0
            if var previous = outs.popLast() {
                let c = out.shape[0], n = out.shape[1], inner = out.count / (c * n)
                let pn = previous.shape[1]
                let bias = band.convTr.bias
                for ch in 0..<c {
                    let b = bias?.data[ch] ?? 0
                    for r in 0..<stride {
                        let dst = (ch * pn + pn - stride + r) * inner
                        let src = (ch * n + r) * inner
                        for i in 0..<inner { previous.data[dst + i] += out.data[src + i] - b }
                    }
                }
                outs.append(previous)
                out = cropAxis1(consume out, from: stride, count: n - stride)
            }
            if isLast {
                // out[:, :, :-stride // 2] in Python: floor(-stride / 2) rows off the end.
                let drop = -Int((Double(-stride) / 2).rounded(.down))
                let kept = out.shape[1] - drop
                out = cropAxis1(consume out, from: 0, count: kept)
            }
            if start == 0 {
                let kept = out.shape[1] - stride / 2
                out = cropAxis1(consume out, from: stride / 2, count: kept)
            }
            outs.append(out)
            start = limit
        }
        var z = concatAxis1(outs)
        if !last { Activations.gelu(&z) }
        return (z, z)
    }

    init(_ w: ScopedWeights, cin: Int, cout: Int, options o: HybridLayerOptions, empty: Bool, last: Bool) throws {
        options = o
        self.empty = empty
        self.last = last
        chin = cin
        convTr = try ConvTranspose(w, "conv_tr", cin: cin, cout: cout, kernel: o.kernel, stride: o.stride, freq: o.freq)
        norm2 = o.norm ? try GroupNorm(w, "norm2", groups: o.normGroups, channels: cout) : nil
        if empty {
            rewrite = nil; norm1 = nil; dconv = nil
            return
        }
        if o.rewrite {
            rewrite = try Rewrite(w, "rewrite", cin: cin, cout: 2 * cin, context: o.context, freq: o.freq,
                                  contextFreq: o.contextFreq)
            norm1 = o.norm ? try GroupNorm(w, "norm1", groups: o.normGroups, channels: 2 * cin) : nil
        } else {
            rewrite = nil; norm1 = nil
        }
        dconv = o.dconv ? try DConv(w.scoped("dconv"), channels: cin, compress: o.dconvCompress, depth: o.dconvDepth,
                                       attn: o.dconvAttn, lstm: o.dconvLstm) : nil
    }

    /// Returns the layer output and `pre`, the input of the transposed convolution (used where
    /// the waveform branch splits off the spectrogram branch).
    /// - Parameter length: the waveform-branch length to crop to (ignored for frequencies).
    ///
    /// `input` and `skip` are consumed: the sum is formed in the skip's storage, so passing the
    /// last references saves a copy of the layer's input.
    func callAsFunction(_ input: consuming Tensor, skip: consuming Tensor?, length: Int) -> (Tensor, Tensor) {
        if !bands.isEmpty { return multiForward(input, skip: skip) }
        // Tensors are released as soon as they are dead (`consume`): a consuming parameter or a
        // local otherwise lives to the end of the scope, and on the first spectrogram layer each
        // is 31 MB at the segment's peak.
        var x: Tensor
        if !empty, var sum = skip {
            input.data.withUnsafeBufferPointer { xs in
                sum.data.withUnsafeMutableBufferPointer { ss in
                    let xBase = xs.baseAddress!, sBase = ss.baseAddress!
                    Parallel.forEach(ss.count, grain: 1 << 16) { range in
                        for i in range { sBase[i] += xBase[i] }
                    }
                }
            }
            x = Tensor(shape: input.shape, data: sum.data)
            _ = consume input
            _ = consume sum
        } else {
            x = input
        }
        if options.freq && x.rank == 2 { x = x.reshaped([chin, 1, x.shape[1]]) }
        var y: Tensor
        if !empty {
            if let rewrite {
                y = rewrite.gluApplied(x, freq: options.freq, norm: norm1)
                _ = consume x
            } else {
                y = x
            }
            if let dconv {
                y = applyDConv(dconv, consume y, freq: options.freq)
            }
        } else {
            y = x
        }
        let pad = options.pad ? options.kernel / 4 : 0
        var z: Tensor
        if options.freq {
            let frames = y.shape[2]
            z = convTr(y, inner: frames)
            z = z.reshaped([z.shape[1], z.shape[2], frames])
            norm2?(&z)
            if pad > 0 {
                let kept = z.shape[1] - 2 * pad
                z = cropAxis1(consume z, from: pad, count: kept)
            }
        } else {
            z = convTr(y)
            z = z.reshaped([z.shape[1], z.shape[2]])
            norm2?(&z)
            z = cropAxis1(consume z, from: pad, count: length)
        }
        if !last { Activations.gelu(&z) }
        return (z, y)
    }
}

/// Pads the last axis of `[rows, length]` with zeros on the right.
func padRight(_ x: Tensor, _ amount: Int) -> Tensor {
    let rows = x.shape[0], length = x.shape[1]
    var out = Tensor(zeros: [rows, length + amount])
    for r in 0..<rows {
        out.data.replaceSubrange((r * (length + amount))..<(r * (length + amount) + length),
                                 with: x.data[(r * length)..<((r + 1) * length)])
    }
    return out
}

/// Keeps `count` entries of axis 1 starting at `from`, for `[c, n]` or `[c, n, inner]`.
/// The kept rows are moved down inside `x`'s own storage (no second tensor of the layer's size),
/// so pass the last reference (`consume`) to avoid a copy.
func cropAxis1(_ x: consuming Tensor, from: Int, count: Int) -> Tensor {
    var x = x
    let c = x.shape[0], n = x.shape[1]
    let inner = x.count / (c * n)
    var shape = x.shape
    shape[1] = count
    x.data.withUnsafeMutableBufferPointer { p in
        let base = p.baseAddress!
        for ch in 0..<c {
            // Destination never after source: a forward move is safe even where they overlap.
            let dst = base + ch * count * inner, src = base + (ch * n + from) * inner
            memmove(dst, src, count * inner * MemoryLayout<Float>.size)
        }
    }
    x.data.removeLast(x.data.count - c * count * inner)
    return Tensor(shape: shape, data: x.data)
}

/// Rows `from..<to` of axis 1 of `[c, n, inner]`, with `padTop` / `padBottom` zero rows around.
func rows(_ x: Tensor, from: Int, to: Int, padTop: Int = 0, padBottom: Int = 0) -> Tensor {
    let c = x.shape[0], n = x.shape[1]
    let inner = x.count / (c * n)
    let count = to - from, total = padTop + count + padBottom
    var shape = x.shape
    shape[1] = total
    var out = Tensor(zeros: shape)
    for ch in 0..<c {
        let src = (ch * n + from) * inner
        let dst = (ch * total + padTop) * inner
        out.data.replaceSubrange(dst..<(dst + count * inner), with: x.data[src..<(src + count * inner)])
    }
    return out
}

/// Concatenates `[c, n_i, inner]` tensors along axis 1.
func concatAxis1(_ parts: [Tensor]) -> Tensor {
    let c = parts[0].shape[0]
    let inner = parts[0].count / (c * parts[0].shape[1])
    let total = parts.reduce(0) { $0 + $1.shape[1] }
    var shape = parts[0].shape
    shape[1] = total
    var out = Tensor(zeros: shape)
    var offset = 0
    for p in parts {
        let n = p.shape[1]
        for ch in 0..<c {
            let dst = (ch * total + offset) * inner
            out.data.replaceSubrange(dst..<(dst + n * inner), with: p.data[(ch * n * inner)..<((ch + 1) * n * inner)])
        }
        offset += n
    }
    return out
}
