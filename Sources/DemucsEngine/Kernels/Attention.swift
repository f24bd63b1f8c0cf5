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
                            for r in 0..<n { for c in 0..<outDim { ys[r * outDim + c] = bias.data[c] } }
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
    /// The score matrix is built for one head at a time.
    static func multiHead(q: Tensor, k: Tensor, v: Tensor, heads: Int) -> Tensor {
        Profile.measure(.attention) {
            let dim = q.shape[1]
            let nq = q.shape[0], nk = k.shape[0]
            let d = dim / heads
            let scale = 1 / Float(d).squareRoot()
            var out = Tensor(uninitialized: [nq, dim])  // every head writes its columns
            var scores = LargeBuffer.uninitialized(nq * nk)
            var rowSums = [Float](repeating: 0, count: nq)
            q.data.withUnsafeBufferPointer { qs in
                k.data.withUnsafeBufferPointer { ks in
                    v.data.withUnsafeBufferPointer { vs in
                        out.data.withUnsafeMutableBufferPointer { os in
                            scores.withUnsafeMutableBufferPointer { ss in
                                rowSums.withUnsafeMutableBufferPointer { sums in
                                    for h in 0..<heads {
                                        GEMM.multiply(transB: true, m: nq, n: nk, k: d, alpha: scale,
                                                      a: qs.baseAddress! + h * d, lda: dim,
                                                      b: ks.baseAddress! + h * d, ldb: dim,
                                                      c: ss.baseAddress!)
                                        // Unnormalised weights; each output row is divided by its
                                        // row's sum afterwards (d values instead of nk).
                                        softmaxRows(ss.baseAddress!, rows: nq, cols: nk, sums: sums.baseAddress!)
                                        GEMM.multiply(m: nq, n: d, k: nk,
                                                      a: ss.baseAddress!, b: vs.baseAddress! + h * d, ldb: dim,
                                                      c: os.baseAddress! + h * d, ldc: dim)
                                        for r in 0..<nq {
                                            let inv = 1 / sums[r]
                                            let row = os.baseAddress! + r * dim + h * d
                                            for j in 0..<d { row[j] *= inv }
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

    /// Softmax of each row, in place, with the row maximum subtracted first.
    /// With `sums`, the rows are left unnormalised (`exp(x - max)`) and their sums stored there.
    static func softmaxRows(_ p: UnsafeMutablePointer<Float>, rows: Int, cols: Int,
                            sums: UnsafeMutablePointer<Float>? = nil) {
        Parallel.forEach(rows, grain: max(1, 32768 / max(cols, 1))) { range in
            softmaxRows(p, range, cols: cols, sums: sums)
        }
    }

    private static func softmaxRows(_ p: UnsafeMutablePointer<Float>, _ range: Range<Int>, cols: Int,
                                    sums: UnsafeMutablePointer<Float>?) {
        for r in range {
            let row = p + r * cols
            var m8 = VectorMath.V(repeating: -.infinity)
            var i = 0
            while i + 8 <= cols {
                let v = UnsafeRawPointer(row + i).loadUnaligned(as: VectorMath.V.self)
                m8 = m8.replacing(with: v, where: v .> m8)
                i += 8
            }
            var m = m8.max()
            while i < cols { m = max(m, row[i]); i += 1 }
            var sum8 = VectorMath.V(repeating: 0)
            i = 0
            while i + 8 <= cols {
                let e = VectorMath.exp(UnsafeRawPointer(row + i).loadUnaligned(as: VectorMath.V.self) - m)
                UnsafeMutableRawPointer(row + i).storeBytes(of: e, as: VectorMath.V.self)
                sum8 += e
                i += 8
            }
            var sum = sum8.sum()
            while i < cols {
                let e = expf(row[i] - m)
                row[i] = e
                sum += e
                i += 1
            }
            if let sums {
                sums[r] = sum
                continue
            }
            let inv = 1 / sum
            VectorMath.map(row, cols) { $0 * inv }
        }
    }
}
