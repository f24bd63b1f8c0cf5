import CDemucsKernels
import Foundation

/// The rotation angles of rotary position embeddings (rotary-embedding-torch, as the RoFormers
/// use it) for positions `0..<length`: the angle of position `p` and pair `j` is `p · freqs[j]`,
/// rounded to float32 as the reference computes it, and rotates the head's interleaved pair
/// `(2j, 2j + 1)`.
struct RotaryTable: Sendable {
    let length: Int
    let pairs: Int
    /// `[length, pairs]`.
    let cos: [Float]
    let sin: [Float]

    init(freqs: [Float], length: Int) {
        self.length = length
        pairs = freqs.count
        var c = [Float](repeating: 0, count: length * freqs.count), s = c
        for p in 0..<length {
            for (j, f) in freqs.enumerated() {
                let angle = Float(p) * f
                c[p * freqs.count + j] = Foundation.cos(angle)
                s[p * freqs.count + j] = Foundation.sin(angle)
            }
        }
        cos = c
        sin = s
    }

    /// `rows` head vectors of `2 · pairs` values at `src` (row stride `lds`), row `i` at position
    /// `i`, rotated into `dst` (dense): `(x₀, x₁) → (x₀ cos − x₁ sin, x₁ cos + x₀ sin)`.
    func rotate(_ src: UnsafePointer<Float>, lds: Int, rows: Int, into dst: UnsafeMutablePointer<Float>) {
        let pairs = pairs, d = 2 * pairs
        cos.withUnsafeBufferPointer { cs in
            sin.withUnsafeBufferPointer { ss in
                for i in 0..<rows {
                    let x = src + i * lds, y = dst + i * d
                    let c = cs.baseAddress! + i * pairs, s = ss.baseAddress! + i * pairs
                    for j in 0..<pairs {
                        let x0 = x[2 * j], x1 = x[2 * j + 1]
                        y[2 * j] = x0 * c[j] - x1 * s[j]
                        y[2 * j + 1] = x1 * c[j] + x0 * s[j]
                    }
                }
            }
        }
    }
}

extension Attention {
    /// The RoFormers' gated rotary self-attention over `sequences` sequences of `length` tokens:
    /// for each sequence and head, `softmax(rot(q) rot(k)ᵀ / √d) v`, times `sigmoid(gate)` of
    /// the head at each token.
    ///
    /// `qkv: [sequences · length, 3 · inner]` holds each token's queries, keys and values in
    /// turn (`(qkv h d)`, as `to_qkv` gives them), `gates: [sequences · length, heads]` the gate
    /// logits; the result is `[sequences · length, inner]`. (sequence, head) tasks are shared out
    /// over the threads; each rotates its queries and keys into its own buffers and goes through
    /// them in blocks of `queryBlock` query rows, with `multiHeadTiled`'s kernel where the CPU
    /// has it, else as `multiHeadBLAS` does.
    static func rotarySelfAttention(qkv: Tensor, gates: Tensor, sequences: Int, length n: Int, heads: Int,
                                    rotary: RotaryTable) -> Tensor {
        Profile.measure(.attention) {
            let ld = qkv.shape[1], inner = ld / 3, d = inner / heads
            precondition(qkv.shape[0] == sequences * n && rotary.length >= n && 2 * rotary.pairs == d)
            let scale = 1 / Float(d).squareRoot()
            let queryBlock = min(Self.queryBlock, n)
            var out = Tensor(uninitialized: [sequences * n, inner])  // each task writes its head's columns
            // On CPUs with AVX-512 and head sizes that are a multiple of 16, the tiled kernel
            // (`multiHeadTiled`'s) on the rotated keys; elsewhere, and in bf16, the BLAS.
            let tiled = tiledKernelAvailable && d % 16 == 0 && GEMM.precision != .bf16
            let panelFloats = tiled ? demucs_attention_panel_floats(n, d) : 0
            let blockFloats = tiled ? demucs_attention_scratch_floats(queryBlock, n, d) : queryBlock * n + queryBlock
            qkv.data.withUnsafeBufferPointer { qs in
                gates.data.withUnsafeBufferPointer { gs in
                    out.data.withUnsafeMutableBufferPointer { os in
                        let base = qs.baseAddress!, gBase = gs.baseAddress!, oBase = os.baseAddress!
                        Parallel.forEach(sequences * heads) { tasks in
                            var scratch = [Float](repeating: 0, count: 2 * n * d + panelFloats + blockFloats)
                            scratch.withUnsafeMutableBufferPointer { sp in
                                let q = sp.baseAddress!, k = q + n * d, panels = k + n * d, block = panels + panelFloats
                                for task in tasks {
                                    let s = task / heads, h = task % heads
                                    let rows = base + s * n * ld
                                    rotary.rotate(rows + h * d, lds: ld, rows: n, into: q)
                                    rotary.rotate(rows + inner + h * d, lds: ld, rows: n, into: k)
                                    if tiled { demucs_attention_pack_keys(k, d, n, d, panels) }
                                    let v = rows + 2 * inner + h * d
                                    for row0 in stride(from: 0, to: n, by: queryBlock) {
                                        let count = min(queryBlock, n - row0)
                                        let o = oBase + (s * n + row0) * inner + h * d
                                        if tiled {
                                            // Normalised by the softmax's sum inside.
                                            demucs_attention_block(q + row0 * d, d, count, panels, n, d, scale, v, ld, block, o, inner)
                                        } else {
                                            let sums = block + queryBlock * n
                                            GEMM.multiplyOnThisThread(transB: true, m: count, n: n, k: d, alpha: scale,
                                                                      a: q + row0 * d, lda: d, b: k, ldb: d, c: block, ldc: n)
                                            softmaxRows(block, 0..<count, cols: n, sums: sums)
                                            GEMM.multiplyOnThisThread(m: count, n: d, k: n, a: block, lda: n, b: v, ldb: ld,
                                                                      c: o, ldc: inner)
                                            for r in 0..<count {
                                                let row = o + r * inner, inv = 1 / sums[r]
                                                for j in 0..<d { row[j] *= inv }
                                            }
                                        }
                                        for r in 0..<count {
                                            let gate = 1 / (1 + Foundation.exp(-gBase[(s * n + row0 + r) * heads + h]))
                                            let row = o + r * inner
                                            for j in 0..<d { row[j] *= gate }
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

    /// The BS-RoFormer's linear attention (cross-covariance attention, El-Nouby et al. 2021) over
    /// all `tokens` tokens at once: per head, queries and keys are L2-normalised along the
    /// tokens, the queries scaled by `exp(temperature)`, and the `d × d` weights
    /// `softmax(scale · q̂ᵀ k̂)` mix the value channels of every token.
    ///
    /// `qkv: [tokens, 3 · inner]` as for `rotarySelfAttention`; the result is `[tokens, inner]`.
    static func crossCovariance(qkv: Tensor, heads: Int, temperature: [Float], scale: Float) -> Tensor {
        Profile.measure(.attention) {
            let tokens = qkv.shape[0], ld = qkv.shape[1], inner = ld / 3, d = inner / heads
            var out = Tensor(uninitialized: [tokens, inner])  // each head's product writes its columns
            // The L2 norm of every query and key column over the tokens, in double precision.
            var norms = [Double](repeating: 0, count: 2 * inner)
            qkv.data.withUnsafeBufferPointer { qs in
                let base = qs.baseAddress!
                norms.withUnsafeMutableBufferPointer { ns in
                    let n = ns.baseAddress!
                    Parallel.forEach(2 * inner, grain: 16) { columns in
                        for c in columns {
                            var sum = 0.0
                            for t in 0..<tokens { let x = Double(base[t * ld + c]); sum += x * x }
                            n[c] = sum.squareRoot()
                        }
                    }
                }
                out.data.withUnsafeMutableBufferPointer { os in
                    var weights = [Float](repeating: 0, count: d * d)
                    weights.withUnsafeMutableBufferPointer { ws in
                        let w = ws.baseAddress!
                        for h in 0..<heads {
                            GEMM.multiply(transA: true, m: d, n: d, k: tokens, a: base + h * d, lda: ld,
                                          b: base + inner + h * d, ldb: ld, c: w, ldc: d)
                            let gain = Foundation.exp(temperature[h]) * scale
                            for i in 0..<d {
                                let qNorm = Float(max(norms[h * d + i], 1e-12))
                                for j in 0..<d {
                                    let kNorm = Float(max(norms[inner + h * d + j], 1e-12))
                                    w[i * d + j] = w[i * d + j] / qNorm / kNorm * gain
                                }
                                _ = demucs_softmax_row(w + i * d, d, 1)
                            }
                            // out[t, i] = Σ_j w[i, j] v[t, j]
                            GEMM.multiply(transB: true, m: tokens, n: d, k: d, a: base + 2 * inner + h * d, lda: ld,
                                          b: w, ldb: d, c: os.baseAddress! + h * d, ldc: inner)
                        }
                    }
                }
            }
            return out
        }
    }
}
