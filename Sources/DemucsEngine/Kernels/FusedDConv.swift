import CDemucsKernels
/// DConv's elementwise work fused into as few passes over memory as the maths allows.
///
/// A DConv block is conv → GroupNorm(1) → GELU → … → 1×1 conv → GroupNorm(1) → GLU → LayerScale
/// → residual sum. Done one step at a time, the 2C-channel tensor after the 1×1 convolution is
/// read or written seven times (two statistics passes, the normalised copy, GLU's copy of the
/// gates, its product, the residual sum) and two fresh tensors are allocated. Here the statistics
/// take their two passes and a single pass applies the norm, the GLU, the scale and the sum into
/// the residual stream. The statistics are those of `Normalization.groupNormRows`; the
/// elementwise pass (`demucs_gelu` / `demucs_glu_add` in `CDemucsKernels`) takes the norm's
/// `x · scale + shift` inside the same expression as the activation, which the AVX2 and AVX-512
/// builds contract into one multiply-add: within an ulp of the unfused steps, not bit for bit.
enum FusedDConv {

    /// GroupNorm(1) per batch item of `[channels, batch, length]`, then GELU, in place.
    static func normGELU(_ x: inout Tensor, batch: Int, weight: Tensor, bias: Tensor, eps: Float = 1e-5) {
        let channels = weight.count
        let length = x.count / (channels * batch)
        x.data.withUnsafeMutableBufferPointer { xs in
            let base = xs.baseAddress!
            forEachItem(batch: batch, channels: channels, statisticsChannels: channels, length: length,
                        statistics: { b, parallel, scale, shift in
                            Normalization.itemAffine(base, channels: channels, batch: batch, item: b, length: length,
                                       weight: weight, bias: bias, eps: eps, scale: &scale, shift: &shift,
                                       parallel: parallel)
                        },
                        apply: { b, channelRange, scale, shift in
                            for c in channelRange {
                                let p = base + (c * batch + b) * length
                                let s = scale[c], t = shift[c]
                                demucs_gelu(p, length, s, t)
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
                            statistics: { b, parallel, scale, shift in
                                Normalization.itemAffine(yBase, channels: channels2, batch: batch, item: b, length: length,
                                           weight: weight, bias: bias, eps: eps, scale: &scale, shift: &shift,
                                           parallel: parallel)
                            },
                            apply: { b, channelRange, scale, shift in
                                gluAddItem(yBase, yBatch: batch, yItem: b, into: xBase, xBatch: batch, xItem: b,
                                           half: half, length: length, channels: channelRange,
                                           scale: scale, shift: shift, layerScale: layerScale)
                            })
            }
        }
    }

    /// `normGLUAdd` with the 1×1 convolution before it folded in, for the spectrogram branch
    /// (`batch` frequency rows): `x += layerScale · GLU(GroupNorm(1)(conv(y)))` where `conv` is
    /// `weight` `[2C, hidden, 1]` plus `bias`. The convolution's `[2C, batch, length]` output
    /// (63 MB on htdemucs's first layer, the peak of a segment) is never whole: each thread takes
    /// blocks of rows, multiplies them into a 1 MB buffer, and normalises and gates them from
    /// there. Each item's statistics see its values in the same order as `normGLUAdd` would.
    static func pointwiseNormGLUAdd(_ y: Tensor, into x: inout Tensor, batch: Int, weight convWeight: Tensor,
                                    convBias: Tensor?, normWeight: Tensor, normBias: Tensor, layerScale: Tensor,
                                    eps: Float = 1e-5) {
        let channels2 = convWeight.shape[0], hidden = convWeight.shape[1], half = channels2 / 2
        let length = y.count / (hidden * batch)
        let perBlock = max(1, Convolution.gluBlockFloats / max(channels2 * length, 1))
        let blocks = (batch + perBlock - 1) / perBlock
        y.data.withUnsafeBufferPointer { ys in
            x.data.withUnsafeMutableBufferPointer { xs in
                convWeight.data.withUnsafeBufferPointer { ws in
                    let yBase = ys.baseAddress!, xBase = xs.baseAddress!, wBase = ws.baseAddress!
                    Parallel.forEach(blocks) { range in
                        var temp = [Float](repeating: 0, count: channels2 * perBlock * length)
                        var scale = [Float](repeating: 0, count: channels2), shift = scale
                        temp.withUnsafeMutableBufferPointer { ts in
                            let t = ts.baseAddress!
                            for blk in range {
                                let b0 = blk * perBlock, items = min(perBlock, batch - b0)
                                let cols = items * length
                                Profile.measure(.convolution) {
                                    Convolution.pointwiseBlock(weight: wBase, cout: channels2, cin: hidden, bias: convBias,
                                                               x: yBase + b0 * length, ldx: batch * length, cols: cols, into: t)
                                }
                                for j in 0..<items {
                                    Profile.measure(.normalization) {
                                        Normalization.itemAffine(t, channels: channels2, batch: items, item: j, length: length,
                                                                 weight: normWeight, bias: normBias, eps: eps,
                                                                 scale: &scale, shift: &shift)
                                    }
                                    Profile.measure(.activation) {
                                        gluAddItem(t, yBatch: items, yItem: j, into: xBase, xBatch: batch, xItem: b0 + j,
                                                   half: half, length: length, channels: 0..<half,
                                                   scale: scale, shift: shift, layerScale: layerScale)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The elementwise pass of `normGLUAdd` for one item: item `yItem` of `[2C, yBatch, length]`
    /// normalised by `scale`/`shift`, gated, scaled by `layerScale` and added to item `xItem` of
    /// `[C, xBatch, length]`, for the channels in `channels`.
    @inline(__always)
    private static func gluAddItem(_ yBase: UnsafeMutablePointer<Float>, yBatch: Int, yItem: Int,
                                   into xBase: UnsafeMutablePointer<Float>, xBatch: Int, xItem: Int,
                                   half: Int, length: Int, channels: Range<Int>,
                                   scale: [Float], shift: [Float], layerScale: Tensor) {
        for c in channels {
            let a = yBase + (c * yBatch + yItem) * length
            let g = yBase + ((c + half) * yBatch + yItem) * length
            let dst = xBase + (c * xBatch + xItem) * length
            demucs_glu_add(a, g, dst, length, scale[c], shift[c], scale[c + half], shift[c + half], layerScale.data[c])
        }
    }

    /// Runs the per-item work on the cores `Parallel` allows: with at least as many items as
    /// threads (the spectrogram branch's frequency rows) each thread takes whole items; otherwise
    /// (the waveform branch's one item) each item's statistics come first and its channels are
    /// shared out. `statistics(b, parallel, &scale, &shift)` folds item `b`'s norm into per-channel
    /// scale and shift (sharing its channels out over the threads when `parallel`);
    /// `apply(b, channels, scale, shift)` does the elementwise pass.
    private static func forEachItem(batch: Int, channels: Int, statisticsChannels: Int, length: Int,
                                    statistics: (Int, Bool, inout [Float], inout [Float]) -> Void,
                                    apply: (Int, Range<Int>, [Float], [Float]) -> Void) {
        if batch > 1 && batch >= Parallel.width {
            Parallel.forEach(batch) { items in
                var scale = [Float](repeating: 0, count: statisticsChannels), shift = scale
                for b in items {
                    Profile.measure(.normalization) { statistics(b, false, &scale, &shift) }
                    Profile.measure(.activation) { apply(b, 0..<channels, scale, shift) }
                }
            }
            return
        }
        var scale = [Float](repeating: 0, count: statisticsChannels), shift = scale
        for b in 0..<batch {
            Profile.measure(.normalization) { statistics(b, true, &scale, &shift) }
            let s = scale, t = shift
            Profile.measure(.activation) {
                Parallel.forEach(channels, grain: max(1, 32768 / max(length, 1))) { range in
                    apply(b, range, s, t)
                }
            }
        }
    }
}
