import CDemucsKernels
import Foundation

/// Dense products of the transformer: linear layers and multi-head attention on `[tokens, dim]`.
enum Attention {
    /// `x · Wᵀ + b` for `x: [n, in]`, `weight: [out, in]` (PyTorch's `nn.Linear` layout).
    static func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        Profile.measure(.linear) {
            let outDim = weight.shape[0], inDim = weight.shape[1]
            let n = x.count / inDim
            var y = Tensor(uninitialized: [n, outDim])  // the bias rows or the product fill it
            x.data.withUnsafeBufferPointer { xs in
                weight.data.withUnsafeBufferPointer { ws in
                    y.data.withUnsafeMutableBufferPointer { ys in
                        if let bias {
                            // Fresh rows (megabytes): filled on every core, not page by page on one.
                            let yBase = ys.baseAddress!
                            bias.data.withUnsafeBufferPointer { bs in
                                let bBase = bs.baseAddress!
                                Parallel.forEach(n, grain: max(1, 16384 / max(outDim, 1))) { rows in
                                    for r in rows { (yBase + r * outDim).update(from: bBase, count: outDim) }
                                }
                            }
                        }
                        GEMM.multiply(transB: true, m: n, n: outDim, k: inDim, a: xs.baseAddress!,
                                      b: ws.baseAddress!, beta: bias == nil ? 0 : 1, c: ys.baseAddress!)
                    }
                }
            }
            return y
        }
    }

    /// Scaled dot-product attention per head: `softmax(q kᵀ / √d) v`, for `q: [nq, dim]`,
    /// `k, v: [nk, dim]` with `heads` heads of `dim / heads` columns each.
    ///
    /// On CPUs with AVX-512 and head sizes that are a multiple of 16 (htdemucs: 64) the tiled C
    /// kernel does it in float32 (`multiHeadTiled`); elsewhere, and in `--precision bf16` (whose
    /// bf16 products are cheaper still), `multiHeadBLAS` through `GEMM`.
    static func multiHead(q: Tensor, k: Tensor, v: Tensor, heads: Int) -> Tensor {
        let d = q.shape[1] / heads
        if tiledKernelAvailable && d % 16 == 0 && GEMM.precision != .bf16 {
            return multiHeadTiled(q: q, k: k, v: v, heads: heads)
        }
        return multiHeadBLAS(q: q, k: k, v: v, heads: heads)
    }

    static let tiledKernelAvailable = demucs_attention_available() != 0

    /// `multiHead` through `demucs_attention_block` (`CDemucsKernels/attention.c`): each head's
    /// keys are packed once, then (head, `queryBlock` query rows) tasks are shared out over the
    /// threads as in `multiHeadBLAS`, with the scores of a block in a per-thread buffer. Requires
    /// `tiledKernelAvailable` and a head size that is a multiple of 16.
    static func multiHeadTiled(q: Tensor, k: Tensor, v: Tensor, heads: Int) -> Tensor {
        Profile.measure(.attention) {
            let dim = q.shape[1]
            let nq = q.shape[0], nk = k.shape[0]
            let d = dim / heads
            precondition(tiledKernelAvailable && d % 16 == 0)
            let scale = 1 / Float(d).squareRoot()
            var out = Tensor(uninitialized: [nq, dim])  // every task writes its rows of its head's columns
            let queryBlock = Self.queryBlock
            let blocks = (nq + queryBlock - 1) / queryBlock
            let panelFloats = demucs_attention_panel_floats(nk, d)
            var panels = LargeBuffer.uninitialized(heads * panelFloats)
            k.data.withUnsafeBufferPointer { ks in
                panels.withUnsafeMutableBufferPointer { ps in
                    let kBase = ks.baseAddress!, pBase = ps.baseAddress!
                    Parallel.forEach(heads) { hs in
                        for h in hs { demucs_attention_pack_keys(kBase + h * d, dim, nk, d, pBase + h * panelFloats) }
                    }
                }
            }
            q.data.withUnsafeBufferPointer { qs in
                v.data.withUnsafeBufferPointer { vs in
                    panels.withUnsafeBufferPointer { ps in
                        out.data.withUnsafeMutableBufferPointer { os in
                            let qBase = qs.baseAddress!, vBase = vs.baseAddress!, pBase = ps.baseAddress!
                            let oBase = os.baseAddress!
                            Parallel.forEach(heads * blocks) { tasks in
                                var scratch = LargeBuffer.uninitialized(
                                    demucs_attention_scratch_floats(min(queryBlock, nq), nk, d))
                                scratch.withUnsafeMutableBufferPointer { sp in
                                    for task in tasks {
                                        let h = task / blocks, row0 = (task % blocks) * queryBlock
                                        let rows = min(queryBlock, nq - row0)
                                        demucs_attention_block(qBase + row0 * dim + h * d, dim, rows,
                                                               pBase + h * panelFloats, nk, d, scale,
                                                               vBase + h * d, dim, sp.baseAddress!,
                                                               oBase + row0 * dim + h * d, dim)
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

    /// `multiHead` through the BLAS, for any CPU and head size.
    ///
    /// The work is cut into (head, block of `queryBlock` query rows) tasks, shared out over the
    /// engine's threads. A block's scores (`queryBlock × nk`, under 1 MB for htdemucs's 2,688
    /// keys) stay in the core's cache from the product through the softmax to the product with
    /// `v`, instead of a `nq × nk` matrix (29 MB) going through memory three times per head.
    /// Each output element is computed exactly as with the whole matrix: same products, same
    /// summation order.
    static func multiHeadBLAS(q: Tensor, k: Tensor, v: Tensor, heads: Int) -> Tensor {
        Profile.measure(.attention) {
            let dim = q.shape[1]
            let nq = q.shape[0], nk = k.shape[0]
            let d = dim / heads
            let scale = 1 / Float(d).squareRoot()
            var out = Tensor(uninitialized: [nq, dim])  // every task writes its rows of its head's columns
            let queryBlock = Self.queryBlock  // read once: a test may change it between calls
            let blocks = (nq + queryBlock - 1) / queryBlock
            q.data.withUnsafeBufferPointer { qs in
                k.data.withUnsafeBufferPointer { ks in
                    v.data.withUnsafeBufferPointer { vs in
                        out.data.withUnsafeMutableBufferPointer { os in
                            let qBase = qs.baseAddress!, kBase = ks.baseAddress!, vBase = vs.baseAddress!
                            let oBase = os.baseAddress!
                            Parallel.forEach(heads * blocks) { tasks in
                                var scores = [Float](repeating: 0, count: min(queryBlock, nq) * nk)
                                var sums = [Float](repeating: 0, count: queryBlock)
                                scores.withUnsafeMutableBufferPointer { ss in
                                    sums.withUnsafeMutableBufferPointer { sums in
                                        for task in tasks {
                                            let h = task / blocks, row0 = (task % blocks) * queryBlock
                                            let rows = min(queryBlock, nq - row0)
                                            GEMM.multiplyOnThisThread(
                                                transB: true, m: rows, n: nk, k: d, alpha: scale,
                                                a: qBase + row0 * dim + h * d, lda: dim,
                                                b: kBase + h * d, ldb: dim, c: ss.baseAddress!, ldc: nk)
                                            // Unnormalised weights; each output row is divided by
                                            // its row's sum afterwards (d values instead of nk).
                                            softmaxRows(ss.baseAddress!, 0..<rows, cols: nk, sums: sums.baseAddress!)
                                            GEMM.multiplyOnThisThread(
                                                m: rows, n: d, k: nk,
                                                a: ss.baseAddress!, lda: nk, b: vBase + h * d, ldb: dim,
                                                c: oBase + row0 * dim + h * d, ldc: dim)
                                            for r in 0..<rows {
                                                let inv = 1 / sums[r]
                                                let row = oBase + (row0 + r) * dim + h * d
                                                for j in 0..<d { row[j] *= inv }
                                            }
                                        }
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

    /// Query rows per attention task: 64 rows of 2,688 float scores are 688 KB, which stays in
    /// the 1–2 MB per-core caches of current CPUs.
    static var queryBlock: Int { ExecutionContext.current.tuning.queryBlock }

    /// Softmax of each row, in place, with the row maximum subtracted first.
    /// With `sums`, the rows are left unnormalised (`exp(x - max)`) and their sums stored there.
    static func softmaxRows(_ p: UnsafeMutablePointer<Float>, rows: Int, cols: Int,
                            sums: UnsafeMutablePointer<Float>? = nil) {
        Parallel.forEach(rows, grain: max(1, 32768 / max(cols, 1))) { range in
            softmaxRows(p, range, cols: cols, sums: sums)
        }
    }

    static func softmaxRows(_ p: UnsafeMutablePointer<Float>, _ range: Range<Int>, cols: Int,
                                    sums: UnsafeMutablePointer<Float>?) {
        for r in range {
            let sum = demucs_softmax_row(p + r * cols, cols, sums == nil ? 1 : 0)
            sums?[r] = sum
        }
    }
}
