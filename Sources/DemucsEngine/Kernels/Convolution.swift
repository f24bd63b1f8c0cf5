/// Convolutions as matrix multiplies.
///
/// Demucs convolves along one axis at a time: the time axis in the waveform branch, the
/// frequency axis (kernel `[K, 1]`) in the spectrogram branch. Both are the same operation on a
/// `[batch, channels, length, inner]` layout, where `inner` is 1 for a 1-D convolution and the
/// number of time frames for a frequency convolution. The input is unfolded ("im2col") into a
/// `[Cin·K, Lout·inner]` matrix, one block of output positions at a time so that the unfolded
/// copy stays small, and multiplied by the `[Cout, Cin·K]` weight.
enum Convolution {
    /// Largest unfolded block, in floats (8 MiB), before the output is done in pieces: small enough
    /// to stay out of the peak memory, large enough for full-speed matrix multiplies.
    static let maxColumnFloats = 2 << 20

    /// Output length of a convolution.
    static func outputLength(_ length: Int, kernel: Int, stride: Int, padding: Int, dilation: Int = 1) -> Int {
        (length + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1
    }

    /// Convolution along the `length` axis of a `[batch, cin, length, inner]` tensor.
    /// - Parameters:
    ///   - weight: `[cout, cin, kernel]` (any trailing 1s of a `[K, 1]` kernel removed by the caller).
    ///   - bias: `[cout]` or nil.
    /// - Returns: `[batch, cout, lout, inner]`.
    static func conv(
        _ x: Tensor, batch: Int, inner: Int,
        weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0, dilation: Int = 1
    ) -> Tensor {
        Profile.measure(.convolution) {
            let cout = weight.shape[0], cin = weight.shape[1], kernel = weight.shape[2]
            let length = x.count / (batch * cin * inner)
            precondition(length * batch * cin * inner == x.count, "conv input \(x.shape) does not fit cin \(cin)")
            let lout = outputLength(length, kernel: kernel, stride: stride, padding: padding, dilation: dilation)
            // Every output block and every unfolded row is written in full before it is read.
            var out = Tensor(uninitialized: [batch, cout, lout, inner])
            let rows = cin * kernel
            let outPlane = lout * inner
            let pointwise = kernel == 1 && stride == 1 && padding == 0
            // Output positions per block, so that the unfolded block stays under the limit.
            let block = max(1, min(lout, maxColumnFloats / max(rows * inner, 1)))
            var col = pointwise ? [] : LargeBuffer.uninitialized(rows * block * inner)
            x.data.withUnsafeBufferPointer { xs in
                weight.data.withUnsafeBufferPointer { ws in
                    out.data.withUnsafeMutableBufferPointer { os in
                        col.withUnsafeMutableBufferPointer { cs in
                            for b in 0..<batch {
                                let xb = xs.baseAddress! + b * cin * length * inner
                                let ob = os.baseAddress! + b * cout * outPlane
                                if pointwise {
                                    GEMM.multiply(m: cout, n: outPlane, k: cin, a: ws.baseAddress!, b: xb, c: ob)
                                    continue
                                }
                                var start = 0
                                while start < lout {
                                    let n = min(block, lout - start)
                                    let cols = n * inner
                                    // Unfold: row (ci, k) holds x[ci, lo*stride + k*dilation - padding, :].
                                    let colBase = cs.baseAddress!
                                    Parallel.forEach(cin, grain: max(1, 65536 / max(kernel * cols, 1))) { channels in
                                    for ci in channels {
                                        for k in 0..<kernel {
                                            let row = colBase + (ci * kernel + k) * cols
                                            let src = xb + ci * length * inner
                                            if inner == 1 {
                                                // One sample per position (the waveform branch): a
                                                // strided gather, not a copy call per sample.
                                                let offset = k * dilation - padding
                                                for j in 0..<n {
                                                    let pos = (start + j) * stride + offset
                                                    row[j] = pos >= 0 && pos < length ? src[pos] : 0
                                                }
                                                continue
                                            }
                                            for j in 0..<n {
                                                let pos = (start + j) * stride + k * dilation - padding
                                                let dst = row + j * inner
                                                if pos < 0 || pos >= length {
                                                    dst.update(repeating: 0, count: inner)
                                                } else {
                                                    dst.update(from: src + pos * inner, count: inner)
                                                }
                                            }
                                        }
                                    }
                                    }
                                    GEMM.multiply(
                                        m: cout, n: cols, k: rows,
                                        a: ws.baseAddress!, b: cs.baseAddress!,
                                        c: ob + start * inner, ldc: outPlane)
                                    start += n
                                }
                            }
                        }
                    }
                }
            }
            if let bias { addChannelBias(&out, bias: bias, batch: batch, plane: outPlane) }
            return out
        }
    }

    /// Convolution along the last axis of `[cin, batch, length]`, giving `[cout, batch, lout]`:
    /// every (channel, batch) row is a signal, and one matrix multiply covers the whole batch.
    /// This is the layout of the spectrogram branch (`[channels, freqs, frames]`), whose DConv
    /// branches treat each frequency row as a batch item of its own.
    static func convRows(
        _ x: Tensor, batch: Int, weight: Tensor, bias: Tensor?, padding: Int = 0, dilation: Int = 1
    ) -> Tensor {
        if usesNarrowKernel(cout: weight.shape[0], kernel: weight.shape[2], padding: padding, dilation: dilation) {
            return convRowsNarrow(x, batch: batch, weight: weight, bias: bias, padding: padding, dilation: dilation)
        }
        return convRowsGEMM(x, batch: batch, weight: weight, bias: bias, padding: padding, dilation: dilation)
    }

    /// `convRows` as matrix products: im2col over blocks of batch rows, then one GEMM per block.
    static func convRowsGEMM(
        _ x: Tensor, batch: Int, weight: Tensor, bias: Tensor?, padding: Int = 0, dilation: Int = 1
    ) -> Tensor {
        Profile.measure(.convolution) {
            let cout = weight.shape[0], cin = weight.shape[1], kernel = weight.shape[2]
            let length = x.count / (cin * batch)
            precondition(length * cin * batch == x.count)
            let lout = outputLength(length, kernel: kernel, stride: 1, padding: padding, dilation: dilation)
            var out = Tensor(uninitialized: [cout, batch, lout])  // written in full by the products
            let rows = cin * kernel
            let plane = batch * lout
            if kernel == 1 && padding == 0 {
                x.data.withUnsafeBufferPointer { xs in
                    weight.data.withUnsafeBufferPointer { ws in
                        out.data.withUnsafeMutableBufferPointer { os in
                            GEMM.multiply(m: cout, n: plane, k: cin, a: ws.baseAddress!, b: xs.baseAddress!, c: os.baseAddress!)
                        }
                    }
                }
            } else {
                let block = max(1, min(batch, maxColumnFloats / max(rows * lout, 1)))
                var col = LargeBuffer.uninitialized(rows * block * lout)
                x.data.withUnsafeBufferPointer { xs in
                    weight.data.withUnsafeBufferPointer { ws in
                        out.data.withUnsafeMutableBufferPointer { os in
                            col.withUnsafeMutableBufferPointer { cs in
                                var start = 0
                                while start < batch {
                                    let n = min(block, batch - start)
                                    let cols = n * lout
                                    let colBase = cs.baseAddress!, xBase = xs.baseAddress!
                                    Parallel.forEach(cin, grain: max(1, 65536 / max(kernel * cols, 1))) { channels in
                                        for ci in channels {
                                            for k in 0..<kernel {
                                                let row = colBase + (ci * kernel + k) * cols
                                                let shift = k * dilation - padding
                                                // Valid output range where the input index is in bounds.
                                                let lo0 = max(0, -shift), lo1 = min(lout, length - shift)
                                                for b in 0..<n {
                                                    let src = xBase + (ci * batch + start + b) * length
                                                    let dst = row + b * lout
                                                    if lo1 <= lo0 { dst.update(repeating: 0, count: lout); continue }
                                                    if lo0 > 0 { dst.update(repeating: 0, count: lo0) }
                                                    (dst + lo0).update(from: src + lo0 + shift, count: lo1 - lo0)
                                                    if lo1 < lout { (dst + lo1).update(repeating: 0, count: lout - lo1) }
                                                }
                                            }
                                        }
                                    }
                                    GEMM.multiply(m: cout, n: cols, k: rows, a: ws.baseAddress!, b: cs.baseAddress!,
                                                  c: os.baseAddress! + start * lout, ldc: plane)
                                    start += n
                                }
                            }
                        }
                    }
                }
            }
            if let bias { addChannelBias(&out, bias: bias, batch: 1, plane: plane) }
            return out
        }
    }

    /// Transposed convolution along the `length` axis of a `[batch, cin, length, inner]` tensor,
    /// with no padding (Demucs crops the result itself).
    /// - Parameters:
    ///   - weight: `[cin, cout, kernel]`.
    /// - Returns: `[batch, cout, (length - 1) * stride + kernel, inner]`.
    static func convTranspose(
        _ x: Tensor, batch: Int, inner: Int, weight: Tensor, bias: Tensor?, stride: Int
    ) -> Tensor {
        Profile.measure(.transposedConvolution) {
            let cin = weight.shape[0], cout = weight.shape[1], kernel = weight.shape[2]
            let length = x.count / (batch * cin * inner)
            precondition(length * batch * cin * inner == x.count, "convTranspose input \(x.shape) does not fit cin \(cin)")
            let lout = (length - 1) * stride + kernel
            var out = Tensor(zeros: [batch, cout, lout, inner])
            let rows = cout * kernel
            let cols = length * inner
            // Input positions per block, so that the product's block stays under the limit.
            let block = max(1, min(length, maxColumnFloats / max(rows * inner, 1)))
            var col = LargeBuffer.uninitialized(rows * block * inner)  // each product writes its block
            x.data.withUnsafeBufferPointer { xs in
                weight.data.withUnsafeBufferPointer { ws in
                    out.data.withUnsafeMutableBufferPointer { os in
                        col.withUnsafeMutableBufferPointer { cs in
                            for b in 0..<batch {
                                let xb = xs.baseAddress! + b * cin * cols
                                let ob = os.baseAddress! + b * cout * lout * inner
                                var start = 0
                                while start < length {
                                    let n = min(block, length - start)
                                    let width = n * inner
                                    // col[(co, k), (li, i)] = sum_ci W[ci, co, k] * x[ci, start + li, i]
                                    GEMM.multiply(transA: true, m: rows, n: width, k: cin,
                                                  a: ws.baseAddress!, b: xb + start * inner, ldb: cols, c: cs.baseAddress!)
                                    // Fold: out[co, (start + li)*stride + k, i] += col[(co, k), (li, i)].
                                    let colBase = cs.baseAddress!
                                    Parallel.forEach(cout, grain: max(1, 65536 / max(kernel * width, 1))) { channels in
                                        for co in channels {
                                            let oc = ob + co * lout * inner
                                            for k in 0..<kernel {
                                                let row = colBase + (co * kernel + k) * width
                                                for li in 0..<n {
                                                    let dst = oc + ((start + li) * stride + k) * inner
                                                    let src = row + li * inner
                                                    for i in 0..<inner { dst[i] += src[i] }
                                                }
                                            }
                                        }
                                    }
                                    start += n
                                }
                            }
                        }
                    }
                }
            }
            if let bias { addChannelBias(&out, bias: bias, batch: batch, plane: lout * inner) }
            return out
        }
    }

    /// A 2-D convolution with stride 1 on a `[cin, height, width]` tensor (the decoder's
    /// "rewrite" convolution with context in the spectrogram branch is a 3×3 one).
    /// 3×3 kernels with padding 1 go through Winograd's F(2×2, 3×3) (`conv2dWinograd`), others
    /// through im2col (`conv2dIm2col`).
    /// - Parameters:
    ///   - weight: `[cout, cin, kh, kw]`.
    static func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, padding: (Int, Int), glu: Bool = false) -> Tensor {
        if weight.shape[2] == 3 && weight.shape[3] == 3 && padding == (1, 1) {
            return conv2dWinograd(x, weight: weight, bias: bias, glu: glu)
        }
        return conv2dIm2col(x, weight: weight, bias: bias, padding: padding, glu: glu)
    }

    /// `conv2d` as one matrix multiply over unfolded input columns, block by block of rows.
    static func conv2dIm2col(_ x: Tensor, weight: Tensor, bias: Tensor?, padding: (Int, Int), glu: Bool = false) -> Tensor {
        Profile.measure(.convolution) {
            let cout = weight.shape[0], cin = weight.shape[1], kh = weight.shape[2], kw = weight.shape[3]
            let height = x.shape[x.rank - 2], width = x.shape[x.rank - 1]
            precondition(x.count == cin * height * width)
            let hout = height + 2 * padding.0 - kh + 1
            let wout = width + 2 * padding.1 - kw + 1
            // With `glu`, each block's product goes to `temp` and GLU of it to `out` (see
            // ConvolutionGLU.swift); otherwise the product is written into `out` directly.
            var out = Tensor(uninitialized: [glu ? cout / 2 : cout, hout, wout])
            let rows = cin * kh * kw
            let block = max(1, min(hout, maxColumnFloats / max(rows * wout, 1)))
            var col = LargeBuffer.uninitialized(rows * block * wout)
            var temp = glu ? LargeBuffer.uninitialized(cout * block * wout) : []
            x.data.withUnsafeBufferPointer { xs in
                weight.data.withUnsafeBufferPointer { ws in
                    out.data.withUnsafeMutableBufferPointer { os in
                        col.withUnsafeMutableBufferPointer { cs in
                            temp.withUnsafeMutableBufferPointer { ts in
                                let xBase = xs.baseAddress!, colBase = cs.baseAddress!
                                var start = 0
                                while start < hout {
                                    let n = min(block, hout - start)
                                    let cols = n * wout
                                    Parallel.forEach(cin, grain: max(1, 65536 / max(kh * kw * cols, 1))) { channels in
                                        for ci in channels {
                                            for a in 0..<kh {
                                                for bq in 0..<kw {
                                                    let row = colBase + ((ci * kh + a) * kw + bq) * cols
                                                    for j in 0..<n {
                                                        let h = start + j + a - padding.0
                                                        let dst = row + j * wout
                                                        if h < 0 || h >= height {
                                                            dst.update(repeating: 0, count: wout)
                                                            continue
                                                        }
                                                        let src = xBase + (ci * height + h) * width
                                                        for w in 0..<wout {
                                                            let ww = w + bq - padding.1
                                                            dst[w] = (ww < 0 || ww >= width) ? 0 : src[ww]
                                                        }
                                                    }
                                                }
                                            }
                                        }
                                    }
                                    if glu {
                                        GEMM.multiply(m: cout, n: cols, k: rows, a: ws.baseAddress!, b: colBase,
                                                      c: ts.baseAddress!)
                                        let t = ts.baseAddress!, o = os.baseAddress! + start * wout
                                        Parallel.forEach(cout / 2) { pairs in
                                            biasAndGLU(t, cols: cols, channels: cout, bias: bias,
                                                       into: o, stride: hout * wout, pairs: pairs)
                                        }
                                    } else {
                                        GEMM.multiply(m: cout, n: cols, k: rows, a: ws.baseAddress!, b: colBase,
                                                      c: os.baseAddress! + start * wout, ldc: hout * wout)
                                    }
                                    start += n
                                }
                            }
                        }
                    }
                }
            }
            if let bias, !glu { addChannelBias(&out, bias: bias, batch: 1, plane: hout * wout) }
            return out
        }
    }

    /// Adds `bias[c]` to every element of channel `c` of a `[batch, channels, plane]` tensor.
    static func addChannelBias(_ x: inout Tensor, bias: Tensor, batch: Int, plane: Int) {
        let channels = bias.count
        x.data.withUnsafeMutableBufferPointer { xs in
            bias.data.withUnsafeBufferPointer { bs in
                let xBase = xs.baseAddress!, bBase = bs.baseAddress!
                Parallel.forEach(batch * channels, grain: max(1, 65536 / max(plane, 1))) { rows in
                    for row in rows {
                        let p = xBase + row * plane
                        let v = bBase[row % channels]
                        for i in 0..<plane { p[i] += v }
                    }
                }
            }
        }
    }
}

extension Convolution {
    /// Depthwise (one filter per channel, `groups = channels`), bias-free, stride-1 convolution of
    /// `[channels, length]` with `weight` `[channels, taps]` dilated by `dilation`, zero-padded by
    /// `leftPadding` on the left and whatever keeps the length on the right: output sample `t` is
    /// `Σ_p weight[c, p] · x[c, t + p·dilation - leftPadding]`. Conv-TasNet's blocks use it.
    static func depthwise(_ x: Tensor, weight: Tensor, dilation: Int, leftPadding: Int) -> Tensor {
        Profile.measure(.convolution) {
            let channels = x.shape[0], length = x.count / channels, taps = weight.shape[1]
            var out = Tensor(zeros: [channels, length])
            x.data.withUnsafeBufferPointer { xs in
                weight.data.withUnsafeBufferPointer { ws in
                    out.data.withUnsafeMutableBufferPointer { os in
                        for c in 0..<channels {
                            let src = xs.baseAddress! + c * length
                            let dst = os.baseAddress! + c * length
                            for p in 0..<taps {
                                let w = ws[c * taps + p]
                                let shift = p * dilation - leftPadding
                                // Output samples whose input sample t + shift lies inside the signal.
                                let from = max(0, -shift), to = min(length, length - shift)
                                guard from < to else { continue }
                                let s = src + shift
                                for t in from..<to { dst[t] += w * s[t] }
                            }
                        }
                    }
                }
            }
            return out
        }
    }
}
