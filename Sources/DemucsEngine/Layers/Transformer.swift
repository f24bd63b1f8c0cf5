import Foundation

/// Multi-head attention with PyTorch's `nn.MultiheadAttention` weights: a packed `[3·dim, dim]`
/// input projection and an output projection.
struct MultiheadAttention: Sendable {
    let dim: Int
    let heads: Int
    /// The query, key and value rows of the packed projection, split once at load.
    let projections: [(weight: Tensor, bias: Tensor)]
    let out: Linear

    init(_ w: ScopedWeights, dim: Int, heads: Int) throws {
        self.dim = dim
        self.heads = heads
        let inWeight = try w.take("in_proj_weight", [3 * dim, dim])
        let inBias = try w.take("in_proj_bias", [3 * dim])
        projections = (0..<3).map { part in
            (Tensor(shape: [dim, dim], data: Array(inWeight.data[(part * dim * dim)..<((part + 1) * dim * dim)])),
             Tensor(shape: [dim], data: Array(inBias.data[(part * dim)..<((part + 1) * dim)])))
        }
        out = try Linear(w, "out_proj", inDim: dim, outDim: dim)
    }

    /// Attention of `query: [nq, dim]` over `key: [nk, dim]` (keys and values are the same tokens).
    func callAsFunction(query: Tensor, key: Tensor) -> Tensor {
        let q = Attention.linear(query, weight: projections[0].weight, bias: projections[0].bias)
        let k = Attention.linear(key, weight: projections[1].weight, bias: projections[1].bias)
        let v = Attention.linear(key, weight: projections[2].weight, bias: projections[2].bias)
        return out(Attention.multiHead(q: q, k: k, v: v, heads: heads))
    }
}

/// One layer of the cross-domain transformer (`MyTransformerEncoderLayer` and
/// `CrossTransformerEncoderLayer` in `demucs/transformer.py`): attention — over its own tokens,
/// or across to the other branch's — then a feed-forward block, each with pre-norm, layer scale
/// and a residual connection, and a final GroupNorm(1) over the whole sequence.
struct TransformerLayer: Sendable {
    let cross: Bool
    let attention: MultiheadAttention
    let linear1: Linear
    let linear2: Linear
    let norm1: LayerNorm
    let norm2: LayerNorm
    let norm3: LayerNorm?
    let normOut: (weight: Tensor, bias: Tensor)?
    let gamma1: Tensor?
    let gamma2: Tensor?
    let normFirst: Bool
    let gelu: Bool

    init(_ w: ScopedWeights, cross: Bool, dim: Int, heads: Int, hidden: Int,
         normFirst: Bool, normOut: Bool, layerScale: Bool, gelu: Bool) throws {
        self.cross = cross
        attention = try MultiheadAttention(w.scoped(cross ? "cross_attn" : "self_attn"), dim: dim, heads: heads)
        linear1 = try Linear(w, "linear1", inDim: dim, outDim: hidden)
        linear2 = try Linear(w, "linear2", inDim: hidden, outDim: dim)
        norm1 = try LayerNorm(w, "norm1", dim: dim)
        norm2 = try LayerNorm(w, "norm2", dim: dim)
        norm3 = cross ? try LayerNorm(w, "norm3", dim: dim) : nil
        if normFirst && normOut {
            self.normOut = (try w.take("norm_out.weight", [dim]), try w.take("norm_out.bias", [dim]))
        } else {
            self.normOut = nil
        }
        gamma1 = layerScale ? try w.take("gamma_1.scale", [dim]) : nil
        gamma2 = layerScale ? try w.take("gamma_2.scale", [dim]) : nil
        self.normFirst = normFirst
        self.gelu = gelu
    }

    private func feedForward(_ x: Tensor) -> Tensor {
        var h = linear1(x)
        if gelu { Activations.gelu(&h) } else { Activations.relu(&h) }
        return linear2(h)
    }

    /// `x += scale ⊙ y` with a per-channel scale (LayerScale), or a plain sum without one.
    private func addScaled(_ x: inout Tensor, _ y: Tensor, _ scale: Tensor?) {
        let dim = x.shape[1], rows = x.count / dim
        let scale = scale?.data
        x.data.withUnsafeMutableBufferPointer { xs in
            y.data.withUnsafeBufferPointer { ys in
                let xBase = xs.baseAddress!, yBase = ys.baseAddress!
                Parallel.forEach(rows, grain: max(1, 16384 / max(dim, 1))) { range in
                    for r in range {
                        let xr = xBase + r * dim, yr = yBase + r * dim
                        if let scale {
                            for c in 0..<dim { xr[c] += scale[c] * yr[c] }
                        } else {
                            for c in 0..<dim { xr[c] += yr[c] }
                        }
                    }
                }
            }
        }
    }

    /// `x: [n, dim]`; `other` is the other branch's tokens for a cross layer.
    func callAsFunction(_ input: Tensor, other: Tensor? = nil) -> Tensor {
        var x = input
        if normFirst {
            let a: Tensor
            if cross {
                a = attention(query: norm1(x), key: norm2(other!))
            } else {
                let n = norm1(x)
                a = attention(query: n, key: n)
            }
            addScaled(&x, a, gamma1)
            addScaled(&x, feedForward((cross ? norm3! : norm2)(x)), gamma2)
            if let normOut {
                // GroupNorm(1, dim) on the tokens' channels: statistics over everything, so it
                // runs on the [tokens, dim] layout as it is, without transposing there and back.
                Normalization.groupNormColumns(&x, weight: normOut.weight, bias: normOut.bias)
            }
        } else {
            let a = cross ? attention(query: x, key: other!) : attention(query: x, key: x)
            addScaled(&x, a, gamma1)
            x = norm1(x)
            addScaled(&x, feedForward(x), gamma2)
            x = norm2(x)
        }
        return x
    }
}

/// The cross-domain transformer between the two encoders of HTDemucs (`CrossTransformerEncoder`):
/// the spectrogram tokens (every frequency row of every frame) and the waveform tokens each get a
/// LayerNorm and a sinusoidal position embedding (2-D for the spectrogram), then go through
/// alternating self-attention layers and layers that attend across to the other branch.
struct CrossTransformerEncoder: Sendable {
    let dim: Int
    let normIn: LayerNorm?
    let normInT: LayerNorm?
    let layers: [TransformerLayer]
    let layersT: [TransformerLayer]
    let maxPeriod: Double
    let weightPosEmbed: Float
    let classicParity: Int

    init(_ w: ScopedWeights, config c: HTDemucsConfig, dim: Int) throws {
        self.dim = dim
        normIn = c.tNormIn ? try LayerNorm(w, "norm_in", dim: dim) : nil
        normInT = c.tNormIn ? try LayerNorm(w, "norm_in_t", dim: dim) : nil
        classicParity = c.tCrossFirst ? 1 : 0
        let hidden = Int(Double(dim) * c.tHiddenScale)
        var layers: [TransformerLayer] = [], layersT: [TransformerLayer] = []
        for idx in 0..<c.tLayers {
            let cross = idx % 2 != classicParity
            for (list, name) in [(0, "layers"), (1, "layers_t")] {
                let layer = try TransformerLayer(
                    w.scoped("\(name).\(idx)"), cross: cross, dim: dim, heads: c.tHeads, hidden: hidden,
                    normFirst: c.tNormFirst, normOut: c.tNormOut, layerScale: c.tLayerScale, gelu: c.tGelu)
                if list == 0 { layers.append(layer) } else { layersT.append(layer) }
            }
        }
        self.layers = layers
        self.layersT = layersT
        maxPeriod = c.tMaxPeriod
        weightPosEmbed = Float(c.tWeightPosEmbed)
    }

    /// `x: [dim, freqs, frames]` (spectrogram branch), `xt: [dim, length]` (waveform branch).
    func callAsFunction(_ x: Tensor, _ xt: Tensor) -> (Tensor, Tensor) {
        let fr = x.shape[1], t1 = x.shape[2], t2 = xt.shape[1]
        // Tokens in (frame, freq) order, as demucs's "b c fr t1 -> b (t1 fr) c".
        var tokens = x.permuted([2, 1, 0]).reshaped([t1 * fr, dim])
        if let normIn { tokens = normIn(tokens) }
        let pos2d = PositionalEmbedding.sin2D(dim: dim, height: fr, width: t1, maxPeriod: maxPeriod)
        for i in 0..<tokens.count { tokens.data[i] += weightPosEmbed * pos2d[i] }

        var tokensT = xt.transposed(0, 1)
        if let normInT { tokensT = normInT(tokensT) }
        let pos1d = PositionalEmbedding.sin1D(length: t2, dim: dim, maxPeriod: maxPeriod)
        for i in 0..<tokensT.count { tokensT.data[i] += weightPosEmbed * pos1d[i] }

        for idx in 0..<layers.count {
            if layers[idx].cross {
                let old = tokens
                tokens = layers[idx](tokens, other: tokensT)
                tokensT = layersT[idx](tokensT, other: old)
            } else {
                tokens = layers[idx](tokens)
                tokensT = layersT[idx](tokensT)
            }
        }
        let xOut = tokens.reshaped([t1, fr, dim]).permuted([2, 1, 0])
        return (xOut, tokensT.transposed(0, 1))
    }
}

/// Sinusoidal position embeddings of `demucs/transformer.py`, computed with float32 arithmetic
/// in the same order as PyTorch so that the phases of late positions round the same way.
enum PositionalEmbedding {
    /// `create_sin_embedding`: `[length, dim]`, cosines in the first half, sines in the second.
    static func sin1D(length: Int, dim: Int, shift: Int = 0, maxPeriod: Double) -> [Float] {
        let half = dim / 2
        var out = LargeBuffer.uninitialized(length * dim)  // every element is written
        out.withUnsafeMutableBufferPointer { os in
            let o = os.baseAddress!
            Parallel.forEach(half) { columns in
                for a in columns {
                    let exponent = Float(a) / Float(half - 1)
                    let denom = powf(Float(maxPeriod), exponent)
                    for p in 0..<length {
                        let phase = Float(p + shift) / denom
                        o[p * dim + a] = Float(cos(Double(phase)))
                        o[p * dim + half + a] = Float(sin(Double(phase)))
                    }
                }
            }
        }
        return out
    }

    /// `create_2d_sin_embedding` laid out as tokens `(width, height)` × `dim`: the first half of
    /// the channels encodes the frame (width), the second half the frequency row (height).
    static func sin2D(dim: Int, height: Int, width: Int, maxPeriod: Double) -> [Float] {
        let half = dim / 2
        var out = LargeBuffer.zeros(width * height * dim)
        let factor = Float(-(log(maxPeriod) / Double(half)))
        out.withUnsafeMutableBufferPointer { os in
            let o = os.baseAddress!
            // Channel pairs (j, j + 1) are independent: shared out over the threads.
            Parallel.forEach((half + 1) / 2) { pairs in
                var rowSin = [Float](repeating: 0, count: height), rowCos = rowSin
                for pair in pairs {
                    let j = 2 * pair
                    let div = Float(exp(Double(Float(j) * factor)))
                    // The height half depends on (h, j) only: once per row, not once per frame.
                    for h in 0..<height {
                        let ph = Float(h) * div
                        rowSin[h] = Float(sin(Double(ph)))
                        rowCos[h] = Float(cos(Double(ph)))
                    }
                    for t in 0..<width {
                        let pw = Float(t) * div
                        let sw = Float(sin(Double(pw))), cw = Float(cos(Double(pw)))
                        for h in 0..<height {
                            let base = (t * height + h) * dim
                            o[base + j] = sw
                            o[base + j + 1] = cw
                            o[base + half + j] = rowSin[h]
                            o[base + half + j + 1] = rowCos[h]
                        }
                    }
                }
            }
        }
        return out
    }
}
