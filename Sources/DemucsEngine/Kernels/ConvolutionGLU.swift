import CDemucsKernels
/// Convolutions followed by GLU over their output channels (the rewrite convolutions of the
/// hybrid layers), computed block by block.
///
/// Done in two steps, the convolution's whole `[2C, plane]` output exists before GLU halves
/// it: for the first spectrogram layers of htdemucs that is 63 MB at the peak of the segment's
/// memory. Here each block of output columns goes through a small buffer (the product, the bias,
/// then GLU into the `[C, plane]` result) that stays in cache. Each element is the same product,
/// bias sum and GLU as the two-step path, so the results are the same bits.
extension Convolution {
    /// Output floats per block buffer: 1 MB, well inside a core's L2.
    static var gluBlockFloats: Int { ExecutionContext.current.tuning.gluBlockFloats }

    /// `GLU(conv1x1(x) + bias)` for `x` `[cin, plane...]` and `weight` `[2C, cin, 1]`; returns
    /// `[C, plane...]` (the shape of `x` with `C` channels).
    static func pointwiseGLU(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        Profile.measure(.convolution) {
            let cout = weight.shape[0], cin = weight.shape[1], half = cout / 2
            precondition(weight.shape[2] == 1 && x.shape[0] == cin)
            let plane = x.count / cin
            var out = Tensor(uninitialized: [half] + Array(x.shape.dropFirst()))
            let width = max(16, gluBlockFloats / cout / 16 * 16)
            let blocks = (plane + width - 1) / width
            x.data.withUnsafeBufferPointer { xs in
                weight.data.withUnsafeBufferPointer { ws in
                    out.data.withUnsafeMutableBufferPointer { os in
                        let xBase = xs.baseAddress!, wBase = ws.baseAddress!, oBase = os.baseAddress!
                        Parallel.forEach(blocks) { range in
                            var temp = [Float](repeating: 0, count: cout * width)
                            temp.withUnsafeMutableBufferPointer { ts in
                                for blk in range {
                                    let c0 = blk * width, cols = min(width, plane - c0)
                                    pointwiseBlock(weight: wBase, cout: cout, cin: cin, bias: bias,
                                                   x: xBase + c0, ldx: plane, cols: cols, into: ts.baseAddress!)
                                    biasAndGLU(ts.baseAddress!, cols: cols, channels: cout, bias: nil,
                                               into: oBase + c0, stride: plane)
                                }
                            }
                        }
                    }
                }
            }
            return out
        }
    }

    /// One column block of a 1×1 convolution on the calling thread:
    /// `t[cout, cols] = weight[cout, cin] · x[cin, cols] + bias`, with `x`'s rows `ldx` apart.
    /// The bias is added after the product, as `addChannelBias` does on a whole output.
    static func pointwiseBlock(weight: UnsafePointer<Float>, cout: Int, cin: Int, bias: Tensor?,
                               x: UnsafePointer<Float>, ldx: Int, cols: Int, into t: UnsafeMutablePointer<Float>) {
        GEMM.multiplyOnThisThread(m: cout, n: cols, k: cin, a: weight, lda: cin, b: x, ldb: ldx, c: t, ldc: cols)
        guard let bias else { return }
        for c in 0..<cout {
            let row = t + c * cols, v = bias.data[c]
            for i in 0..<cols { row[i] += v }
        }
    }

    /// Adds `bias[c]` to row `c` of the `[channels, cols]` block `t`, then writes GLU of its two
    /// halves to rows of `dst` spaced `stride` apart; `pairs` picks the output rows (all by default).
    static func biasAndGLU(_ t: UnsafeMutablePointer<Float>, cols: Int, channels: Int, bias: Tensor?,
                           into dst: UnsafeMutablePointer<Float>, stride: Int, pairs: Range<Int>? = nil) {
        let half = channels / 2
        for c in pairs ?? 0..<half {
            // value · 1 + bias is exactly value + bias, as the separate bias pass computed it.
            let valueBias = bias?.data[c] ?? 0, gateBias = bias?.data[c + half] ?? 0
            demucs_glu(t + c * cols, t + (c + half) * cols, dst + c * stride, cols, 1, valueBias, 1, gateBias)
        }
    }
}
