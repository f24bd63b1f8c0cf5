/// DConv's elementwise work fused into as few passes over memory as the maths allows.
///
/// A DConv block is conv → GroupNorm(1) → GELU → … → 1×1 conv → GroupNorm(1) → GLU → LayerScale
/// → residual sum. Done one step at a time, the 2C-channel tensor after the 1×1 convolution is
/// read or written seven times (two statistics passes, the normalised copy, GLU's copy of the
/// gates, its product, the residual sum) and two fresh tensors are allocated. Here the statistics
/// take their two passes and a single pass applies the norm, the GLU, the scale and the sum into
/// the residual stream. The arithmetic is the same, in the same order, as the separate kernels
/// (`Normalization.groupNormRows`, `Activations.gelu` / `glu`), so the results are bit for bit
/// those of the unfused steps.
enum FusedDConv {
    typealias V = VectorMath.V

    /// GroupNorm(1) per batch item of `[channels, batch, length]`, then GELU, in place.
    static func normGELU(_ x: inout Tensor, batch: Int, weight: Tensor, bias: Tensor, eps: Float = 1e-5) {
        let channels = weight.count
        let length = x.count / (channels * batch)
        x.data.withUnsafeMutableBufferPointer { xs in
            let base = xs.baseAddress!
            forEachItem(batch: batch, channels: channels, statisticsChannels: channels, length: length,
                        statistics: { b, scale, shift in
                            Normalization.itemAffine(base, channels: channels, batch: batch, item: b, length: length,
                                       weight: weight, bias: bias, eps: eps, scale: &scale, shift: &shift)
                        },
                        apply: { b, channelRange, scale, shift in
                            for c in channelRange {
                                let p = base + (c * batch + b) * length
                                let s = scale[c], t = shift[c]
                                VectorMath.map(p, length) { v in
                                    let y = v * s + t
                                    return 0.5 * y * (1 + VectorMath.erf(y * 0.70710678118654752440))
                                }
                            }
                        })
        }
    }

    /// `x[c] += layerScale[c] · GLU(GroupNorm(1)(y))[c]` for `y` `[2C, batch, length]` and the
    /// residual stream `x` `[C, batch, length]`.
    static func normGLUAdd(_ y: Tensor, into x: inout Tensor, batch: Int, weight: Tensor, bias: Tensor,
                           layerScale: Tensor, eps: Float = 1e-5) {
        let channels2 = weight.count, half = channels2 / 2
        let length = y.count / (channels2 * batch)
        y.data.withUnsafeBufferPointer { ys in
            x.data.withUnsafeMutableBufferPointer { xs in
                let yBase = UnsafeMutablePointer(mutating: ys.baseAddress!), xBase = xs.baseAddress!
                forEachItem(batch: batch, channels: half, statisticsChannels: channels2, length: length,
                            statistics: { b, scale, shift in
                                Normalization.itemAffine(yBase, channels: channels2, batch: batch, item: b, length: length,
                                           weight: weight, bias: bias, eps: eps, scale: &scale, shift: &shift)
                            },
                            apply: { b, channelRange, scale, shift in
                                for c in channelRange {
                                    let a = yBase + (c * batch + b) * length
                                    let g = yBase + ((c + half) * batch + b) * length
                                    let dst = xBase + (c * batch + b) * length
                                    let sa = scale[c], ta = shift[c], sg = scale[c + half], tg = shift[c + half]
                                    let ls = layerScale.data[c]
                                    var i = 0
                                    while i + 8 <= length {
                                        let av = UnsafeRawPointer(a + i).loadUnaligned(as: V.self) * sa + ta
                                        let gv = UnsafeRawPointer(g + i).loadUnaligned(as: V.self) * sg + tg
                                        let gated = 1 / (1 + VectorMath.exp(-gv)) * av
                                        let old = UnsafeRawPointer(dst + i).loadUnaligned(as: V.self)
                                        UnsafeMutableRawPointer(dst + i).storeBytes(of: old + ls * gated, as: V.self)
                                        i += 8
                                    }
                                    if i < length {
                                        var av = V(repeating: 0), gv = V(repeating: 0)
                                        for j in 0..<(length - i) { av[j] = a[i + j] * sa + ta; gv[j] = g[i + j] * sg + tg }
                                        let gated = 1 / (1 + VectorMath.exp(-gv)) * av
                                        for j in 0..<(length - i) { dst[i + j] += ls * gated[j] }
                                    }
                                }
                            })
            }
        }
    }

    /// Runs the per-item work on the cores `Parallel` allows: with at least as many items as
    /// threads (the spectrogram branch's frequency rows) each thread takes whole items; otherwise
    /// (the waveform branch's one item) each item's statistics come first and its channels are
    /// shared out. `statistics(b, &scale, &shift)` folds item `b`'s norm into per-channel scale
    /// and shift; `apply(b, channels, scale, shift)` does the elementwise pass.
    private static func forEachItem(batch: Int, channels: Int, statisticsChannels: Int, length: Int,
                                    statistics: (Int, inout [Float], inout [Float]) -> Void,
                                    apply: (Int, Range<Int>, [Float], [Float]) -> Void) {
        if batch > 1 && batch >= Parallel.width {
            Parallel.forEach(batch) { items in
                var scale = [Float](repeating: 0, count: statisticsChannels), shift = scale
                for b in items {
                    Profile.measure(.normalization) { statistics(b, &scale, &shift) }
                    Profile.measure(.activation) { apply(b, 0..<channels, scale, shift) }
                }
            }
            return
        }
        var scale = [Float](repeating: 0, count: statisticsChannels), shift = scale
        for b in 0..<batch {
            Profile.measure(.normalization) { statistics(b, &scale, &shift) }
            let s = scale, t = shift
            Profile.measure(.activation) {
                Parallel.forEach(channels, grain: max(1, 32768 / max(length, 1))) { range in
                    apply(b, range, s, t)
                }
            }
        }
    }
}
