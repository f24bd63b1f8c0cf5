/// Normalisation layers. Statistics are accumulated in Double: they run over hundreds of
/// thousands of elements, where float32 sums lose the digits that parity needs.
enum Normalization {
    /// GroupNorm over a tensor laid out `[batch, channels, plane]` (whatever its shape says), as
    /// `nn.GroupNorm(groups, channels)`.
    static func groupNorm(
        _ x: inout Tensor, batch: Int, channels: Int, groups: Int, weight: Tensor?, bias: Tensor?, eps: Float = 1e-5
    ) {
        Profile.measure(.normalization) {
            let plane = x.count / (batch * channels)
            let perGroup = channels / groups
            let n = perGroup * plane
            x.data.withUnsafeMutableBufferPointer { xs in
                for b in 0..<batch {
                    for g in 0..<groups {
                        let p = xs.baseAddress! + (b * channels + g * perGroup) * plane
                        var sum = 0.0
                        for i in 0..<n { sum += Double(p[i]) }
                        let mean = sum / Double(n)
                        var sq = 0.0
                        for i in 0..<n { let d = Double(p[i]) - mean; sq += d * d }
                        let inv = 1 / (sq / Double(n) + Double(eps)).squareRoot()
                        for c in 0..<perGroup {
                            let channel = g * perGroup + c
                            let w = Double(weight?.data[channel] ?? 1)
                            let bb = Double(bias?.data[channel] ?? 0)
                            let scale = Float(w * inv)
                            let shift = Float(bb - mean * w * inv)
                            let q = p + c * plane
                            for i in 0..<plane { q[i] = q[i] * scale + shift }
                        }
                    }
                }
            }
        }
    }

    /// GroupNorm(1, channels) applied to each batch item of a `[channels, batch, length]` tensor:
    /// item `b`'s statistics run over all its channels and samples.
    static func groupNormRows(_ x: inout Tensor, batch: Int, weight: Tensor, bias: Tensor, eps: Float = 1e-5) {
        Profile.measure(.normalization) {
            let channels = weight.count
            let length = x.count / (channels * batch)
            let n = Double(channels * length)
            x.data.withUnsafeMutableBufferPointer { xs in
                for b in 0..<batch {
                    var sum = 0.0
                    for c in 0..<channels {
                        let p = xs.baseAddress! + (c * batch + b) * length
                        for i in 0..<length { sum += Double(p[i]) }
                    }
                    let mean = sum / n
                    var sq = 0.0
                    for c in 0..<channels {
                        let p = xs.baseAddress! + (c * batch + b) * length
                        for i in 0..<length { let d = Double(p[i]) - mean; sq += d * d }
                    }
                    let inv = 1 / (sq / n + Double(eps)).squareRoot()
                    for c in 0..<channels {
                        let w = Double(weight.data[c])
                        let scale = Float(w * inv)
                        let shift = Float(Double(bias.data[c]) - mean * w * inv)
                        let p = xs.baseAddress! + (c * batch + b) * length
                        for i in 0..<length { p[i] = p[i] * scale + shift }
                    }
                }
            }
        }
    }

    /// `nn.GroupNorm(1, dim)` for a `[rows, dim]` tensor whose channels are its columns: one mean
    /// and variance over all elements, then each column's affine weight.
    static func groupNormColumns(_ x: inout Tensor, weight: Tensor, bias: Tensor, eps: Float = 1e-5) {
        Profile.measure(.normalization) {
            let dim = weight.count
            let rows = x.count / dim
            x.data.withUnsafeMutableBufferPointer { xs in
                let (mean, variance) = meanVariance(UnsafeBufferPointer(xs))
                let inv = 1 / (variance + Double(eps)).squareRoot()
                var scale = [Float](repeating: 0, count: dim), shift = [Float](repeating: 0, count: dim)
                for c in 0..<dim {
                    let w = Double(weight.data[c])
                    scale[c] = Float(w * inv)
                    shift[c] = Float(Double(bias.data[c]) - mean * w * inv)
                }
                let base = xs.baseAddress!
                Parallel.forEach(rows, grain: max(1, 32768 / max(dim, 1))) { range in
                    for r in range {
                        let p = base + r * dim
                        for c in 0..<dim { p[c] = p[c] * scale[c] + shift[c] }
                    }
                }
            }
        }
    }

    /// Mean and biased variance of all elements, accumulated in Double.
    static func meanVariance(_ p: UnsafeBufferPointer<Float>) -> (mean: Double, variance: Double) {
        var sum = 0.0
        for v in p { sum += Double(v) }
        let mean = sum / Double(max(p.count, 1))
        var sq = 0.0
        for v in p { let d = Double(v) - mean; sq += d * d }
        return (mean, sq / Double(max(p.count, 1)))
    }

    /// LayerNorm over the last dimension of a `[rows, dim]` tensor.
    static func layerNorm(_ x: inout Tensor, weight: Tensor, bias: Tensor, eps: Float = 1e-5) {
        Profile.measure(.normalization) {
            let dim = x.shape[x.rank - 1]
            let rows = x.count / dim
            x.data.withUnsafeMutableBufferPointer { xs in
                weight.data.withUnsafeBufferPointer { ws in
                    bias.data.withUnsafeBufferPointer { bs in
                        Parallel.forEach(rows, grain: max(1, 16384 / max(dim, 1))) { range in
                        for r in range {
                            let p = xs.baseAddress! + r * dim
                            var sum = 0.0
                            for i in 0..<dim { sum += Double(p[i]) }
                            let mean = sum / Double(dim)
                            var sq = 0.0
                            for i in 0..<dim { let d = Double(p[i]) - mean; sq += d * d }
                            let inv = Float(1 / (sq / Double(dim) + Double(eps)).squareRoot())
                            let m = Float(mean)
                            for i in 0..<dim { p[i] = (p[i] - m) * inv * ws[i] + bs[i] }
                        }
                        }
                    }
                }
            }
        }
    }

    /// Mean and unbiased standard deviation of all elements (`torch.std`'s default).
    static func meanStd(_ p: UnsafeBufferPointer<Float>) -> (mean: Float, std: Float) {
        var sum = 0.0
        for v in p { sum += Double(v) }
        let mean = sum / Double(p.count)
        var sq = 0.0
        for v in p { let d = Double(v) - mean; sq += d * d }
        return (Float(mean), Float((sq / Double(max(p.count - 1, 1))).squareRoot()))
    }
}
