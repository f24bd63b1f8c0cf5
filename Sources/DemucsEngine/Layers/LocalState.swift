import Foundation

/// `demucs.demucs.LocalState`: attention over time without positional embeddings, with a learnt
/// per-query penalty that grows with the distance to the key (`ndecay` decay rates), and no
/// attention of a position to itself. Residual: returns `x + proj(attention)`.
///
/// Only `nfreqs = 0` exists in demucs's models (DConv never sets it), so that is all this does.
struct LocalState: Sendable {
    let channels: Int
    let heads: Int
    let ndecay: Int
    let content: Conv
    let query: Conv
    let key: Conv
    let queryDecay: Conv?
    let proj: Conv

    init(_ w: ScopedWeights, channels: Int, heads: Int = 4, ndecay: Int = 4) throws {
        guard channels % heads == 0 else {
            throw EngineError(.unsupportedModel, "LocalState attention needs channels (\(channels)) divisible by its \(heads) heads")
        }
        self.channels = channels
        self.heads = heads
        self.ndecay = ndecay
        content = try Conv(w, "content", cin: channels, cout: channels, kernel: 1)
        query = try Conv(w, "query", cin: channels, cout: channels, kernel: 1)
        key = try Conv(w, "key", cin: channels, cout: channels, kernel: 1)
        queryDecay = ndecay > 0 ? try Conv(w, "query_decay", cin: channels, cout: heads * ndecay, kernel: 1) : nil
        proj = try Conv(w, "proj", cin: channels, cout: channels, kernel: 1)
    }

    /// A 1×1 convolution of `[cin, batch·time]`.
    private func pointwise(_ conv: Conv, _ x: Tensor, columns: Int) -> Tensor {
        Convolution.convRows(x, batch: 1, weight: conv.weight, bias: conv.bias).reshaped([conv.cout, columns])
    }

    /// `x` is `[channels, batch, time]`, each batch item its own sequence; same shape out.
    func callAsFunction(_ x: Tensor, batch: Int) -> Tensor {
        let time = x.count / (channels * batch)
        let columns = batch * time
        let flat = x.reshaped([channels, columns])
        let q = pointwise(query, flat, columns: columns)
        let k = pointwise(key, flat, columns: columns)
        let v = pointwise(content, flat, columns: columns)
        // Per query position s and head h: the decay weight Σ_f (f+1) · sigmoid(dq[h, f, s]) / 2,
        // times -|t - s| / sqrt(ndecay) in the score of key t.
        var decay: [Float] = []
        if let queryDecay {
            var dq = pointwise(queryDecay, flat, columns: columns)
            dq.data.withUnsafeMutableBufferPointer { p in
                VectorMath.map(p.baseAddress!, p.count) { 1 / (1 + VectorMath.exp(-$0)) / 2 }
            }
            decay = LargeBuffer.zeros(heads * columns)
            for h in 0..<heads {
                for f in 0..<ndecay {
                    let rate = Float(f + 1)
                    let row = (h * ndecay + f) * columns
                    for i in 0..<columns { decay[h * columns + i] += rate * dq.data[row + i] }
                }
            }
        }
        let dh = channels / heads
        let scale = 1 / Float(dh).squareRoot()
        let decayScale = 1 / Float(ndecay).squareRoot()
        var result = Tensor(zeros: [channels, columns])
        var scores = LargeBuffer.zeros(time * time)
        Profile.measure(.attention) {
            q.data.withUnsafeBufferPointer { qs in
                k.data.withUnsafeBufferPointer { ks in
                    v.data.withUnsafeBufferPointer { vs in
                        result.data.withUnsafeMutableBufferPointer { rs in
                            scores.withUnsafeMutableBufferPointer { ss in
                                for n in 0..<batch {
                                    for h in 0..<heads {
                                        let offset = h * dh * columns + n * time
                                        // ss[s, t] = Σ_c q[c, s] k[c, t] / sqrt(dh): row s is one query.
                                        GEMM.multiply(transA: true, m: time, n: time, k: dh, alpha: scale,
                                                      a: qs.baseAddress! + offset, lda: columns,
                                                      b: ks.baseAddress! + offset, ldb: columns,
                                                      c: ss.baseAddress!)
                                        for s in 0..<time {
                                            let row = ss.baseAddress! + s * time
                                            if !decay.isEmpty {
                                                let w = -decay[h * columns + n * time + s] * decayScale
                                                for t in 0..<time { row[t] += w * Float(abs(t - s)) }
                                            }
                                            row[s] = -100
                                        }
                                        // Softmax over the keys t, for each query s.
                                        Attention.softmaxRows(ss.baseAddress!, rows: time, cols: time)
                                        // result[c, s] = Σ_t v[c, t] · weights[s, t]
                                        GEMM.multiply(transB: true, m: dh, n: time, k: time,
                                                      a: vs.baseAddress! + offset, lda: columns,
                                                      b: ss.baseAddress!, ldb: time,
                                                      c: rs.baseAddress! + offset, ldc: columns)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        var out = pointwise(proj, result, columns: columns)
        out.data.withUnsafeMutableBufferPointer { os in
            x.data.withUnsafeBufferPointer { xs in
                for i in 0..<os.count { os[i] += xs[i] }
            }
        }
        return out.reshaped(x.shape)
    }
}
