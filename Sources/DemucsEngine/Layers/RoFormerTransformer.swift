import Foundation

/// One transformer of a RoFormer (`Transformer` in the reference's `bs_roformer.py` and
/// `mel_band_roformer.py`): `depth` layers of attention then feed-forward, each pre-normed and
/// added to its input, and optionally a final RMSNorm (Mel-Band's transformers have one,
/// BS-RoFormer's do not: it normalises once after the whole stack).
///
/// The tokens are `[sequences · length, dim]`, sequence after sequence; attention mixes tokens
/// within a sequence only (the bands of one frame, or the frames of one band). Sequences go
/// through a layer in groups of about `groupTokens` tokens, which bounds the projections'
/// buffers whatever the chunk's length.
struct RoFormerTransformer: Sendable {
    enum Mixing: Sendable {
        case rotary(RotaryAttentionLayer)
        case linear(LinearAttentionLayer)
    }

    let layers: [(mixing: Mixing, feedForward: RoFormerFeedForward)]
    let norm: RMSNorm?

    init(_ w: ScopedWeights, depth: Int, dim: Int, heads: Int, dimHead: Int, linearAttention: Bool,
         normOutput: Bool) throws {
        layers = try (0..<depth).map { i in
            let layer = w.scoped("layers.\(i)")
            let mixing: Mixing = linearAttention
                ? .linear(try LinearAttentionLayer(layer.scoped("0"), dim: dim, heads: heads, dimHead: dimHead))
                : .rotary(try RotaryAttentionLayer(layer.scoped("0"), dim: dim, heads: heads, dimHead: dimHead))
            return (mixing, try RoFormerFeedForward(layer.scoped("1"), dim: dim))
        }
        norm = normOutput ? try RMSNorm(w, "norm", dim: dim) : nil
    }

    /// Tokens per group of sequences in a layer's attention and feed-forward.
    static let groupTokens = 8192

    func callAsFunction(_ x: inout Tensor, sequences: Int, length: Int) {
        for (mixing, feedForward) in layers {
            switch mixing {
            case .rotary(let attention): attention.addOutput(to: &x, sequences: sequences, length: length)
            case .linear(let attention): attention.addOutput(to: &x)
            }
            feedForward.addOutput(to: &x)
        }
        if let norm { x = norm(x) }
    }

    /// Calls `body` with consecutive groups of whole rows of `x` (`rowsPerGroup` at most) and adds
    /// what it returns for each group to those rows.
    static func addByGroups(_ x: inout Tensor, rows: Int, rowsPerGroup: Int, _ body: (Tensor) -> Tensor) {
        let dim = x.count / max(rows, 1)
        for start in stride(from: 0, to: rows, by: rowsPerGroup) {
            let count = min(rowsPerGroup, rows - start)
            let group = Tensor(shape: [count, dim], data: Array(x.data[(start * dim)..<((start + count) * dim)]))
            let y = body(group)
            precondition(y.count == count * dim)
            x.data.withUnsafeMutableBufferPointer { xs in
                y.data.withUnsafeBufferPointer { ys in
                    let dst = xs.baseAddress! + start * dim, src = ys.baseAddress!
                    Parallel.forEach(count * dim, grain: 32768) { r in
                        for i in r { dst[i] += src[i] }
                    }
                }
            }
        }
    }
}

/// `Attention` of the RoFormers: RMSNorm, a bias-free `to_qkv`, rotary embeddings on queries and
/// keys (the axis's `rotary_embed.freqs`, read from the checkpoint), scaled dot-product attention,
/// a sigmoid gate per head (`to_gates`) and a bias-free `to_out`.
struct RotaryAttentionLayer: Sendable {
    let heads: Int
    let norm: RMSNorm
    let qkv: Linear
    let gates: Linear
    let out: Linear
    let freqs: [Float]

    init(_ w: ScopedWeights, dim: Int, heads: Int, dimHead: Int) throws {
        self.heads = heads
        let inner = heads * dimHead
        norm = try RMSNorm(w, "norm", dim: dim)
        qkv = try Linear(w, "to_qkv", inDim: dim, outDim: 3 * inner, bias: false)
        gates = try Linear(w, "to_gates", inDim: dim, outDim: heads)
        out = try Linear(w, "to_out.0", inDim: inner, outDim: dim, bias: false)
        freqs = try w.take("rotary_embed.freqs", [dimHead / 2]).data
        guard dimHead % 2 == 0 else {
            throw EngineError(.invalidModelFile, "model file \(w.weights.source): dim_head \(dimHead) is odd; rotary embeddings need pairs")
        }
    }

    func addOutput(to x: inout Tensor, sequences: Int, length: Int) {
        let rotary = RotaryTable(freqs: freqs, length: length)
        let perGroup = max(1, RoFormerTransformer.groupTokens / max(length, 1))
        RoFormerTransformer.addByGroups(&x, rows: sequences * length, rowsPerGroup: perGroup * length) { group in
            let normed = norm(group)
            let attended = Attention.rotarySelfAttention(
                qkv: qkv(normed), gates: gates(normed), sequences: group.shape[0] / length, length: length,
                heads: heads, rotary: rotary)
            return out(attended)
        }
    }
}

/// BS-RoFormer's `LinearAttention`: RMSNorm, a bias-free `to_qkv`, cross-covariance attention
/// with a learnt temperature per head and the reference's scale of 8, a bias-free `to_out`. It
/// mixes all the tokens of the chunk (every band of every frame).
struct LinearAttentionLayer: Sendable {
    let heads: Int
    let norm: RMSNorm
    let qkv: Linear
    let out: Linear
    let temperature: [Float]

    init(_ w: ScopedWeights, dim: Int, heads: Int, dimHead: Int) throws {
        self.heads = heads
        let inner = heads * dimHead
        norm = try RMSNorm(w, "norm", dim: dim)
        qkv = try Linear(w, "to_qkv.0", inDim: dim, outDim: 3 * inner, bias: false)
        out = try Linear(w, "to_out.1", inDim: inner, outDim: dim, bias: false)
        temperature = try w.take("temperature", [heads, 1, 1]).data
    }

    func addOutput(to x: inout Tensor) {
        let rows = x.count / norm.dim
        RoFormerTransformer.addByGroups(&x, rows: rows, rowsPerGroup: rows) { all in
            out(Attention.crossCovariance(qkv: qkv(norm(all)), heads: heads, temperature: temperature, scale: 8))
        }
    }
}

/// `FeedForward` of the RoFormers: RMSNorm, Linear to 4·dim, exact GELU, Linear back.
struct RoFormerFeedForward: Sendable {
    let norm: RMSNorm
    let up: Linear
    let down: Linear

    init(_ w: ScopedWeights, dim: Int) throws {
        norm = try RMSNorm(w, "net.0", dim: dim)
        up = try Linear(w, "net.1", inDim: dim, outDim: 4 * dim)
        down = try Linear(w, "net.4", inDim: 4 * dim, outDim: dim)
    }

    func addOutput(to x: inout Tensor) {
        RoFormerTransformer.addByGroups(&x, rows: x.count / norm.dim, rowsPerGroup: RoFormerTransformer.groupTokens) { group in
            var hidden = up(norm(group))
            Activations.gelu(&hidden)
            return down(hidden)
        }
    }
}
