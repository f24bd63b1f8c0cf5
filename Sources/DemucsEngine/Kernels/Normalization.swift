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
                        let (mean, sq) = moments(p, count: n)
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
            var scale = [Float](repeating: 0, count: channels), shift = scale
            x.data.withUnsafeMutableBufferPointer { xs in
                for b in 0..<batch {
                    itemAffine(xs.baseAddress!, channels: channels, batch: batch, item: b, length: length,
                               weight: weight, bias: bias, eps: eps, scale: &scale, shift: &shift)
                    for c in 0..<channels {
                        let p = xs.baseAddress! + (c * batch + b) * length
                        let s = scale[c], t = shift[c]
                        for i in 0..<length { p[i] = p[i] * s + t }
                    }
                }
            }
        }
    }

    /// GroupNorm(1) of item `b` of `[channels, batch, length]`: its mean and variance over all
    /// its channels (in Double, two passes), folded with the affine weights into a per-channel
    /// `scale` and `shift` (`y = x · scale + shift`).
    ///
    /// Each channel's sums are taken on their own and then added in channel order, so that with
    /// `parallel` (one large item, the waveform branch) the channels can be shared out over the
    /// threads and the result is still the same bits on any number of them.
    static func itemAffine(_ p: UnsafeMutablePointer<Float>, channels: Int, batch: Int, item b: Int, length: Int,
                           weight: Tensor, bias: Tensor, eps: Float,
                           scale: inout [Float], shift: inout [Float], parallel: Bool = false) {
        let n = Double(channels * length)
        var totals = [Double](repeating: 0, count: channels)
        func perChannel(_ body: @escaping (UnsafePointer<Float>) -> Double) -> Double {
            totals.withUnsafeMutableBufferPointer { ts in
                let t = ts.baseAddress!
                let run = { (cs: Range<Int>) in
                    for c in cs { t[c] = body(p + (c * batch + b) * length) }
                }
                if parallel {
                    Parallel.forEach(channels, grain: max(1, 32768 / max(length, 1)), run)
                } else {
                    run(0..<channels)
                }
            }
            return totals.reduce(0, +)
        }
        let mean = perChannel { row in
            var sum = DoubleSums()
            sum.add(row, count: length)
            return sum.total
        } / n
        let squares = perChannel { row in
            var sq = DoubleSums()
            sq.addSquaredDeviations(row, count: length, from: mean)
            return sq.total
        }
        let inv = 1 / (squares / n + Double(eps)).squareRoot()
        for c in 0..<channels {
            let w = Double(weight.data[c])
            scale[c] = Float(w * inv)
            shift[c] = Float(Double(bias.data[c]) - mean * w * inv)
        }
    }

    /// `nn.GroupNorm(1, dim)` for a `[rows, dim]` tensor whose channels are its columns: one mean
    /// and variance over all elements, then each column's affine weight.
    static func groupNormColumns(_ x: inout Tensor, weight: Tensor, bias: Tensor, eps: Float = 1e-5) {
        Profile.measure(.normalization) {
            let dim = weight.count
            let rows = x.count / dim
            x.data.withUnsafeMutableBufferPointer { xs in
                let (mean, sq) = moments(xs.baseAddress!, count: xs.count)
                let inv = 1 / (sq / Double(max(xs.count, 1)) + Double(eps)).squareRoot()
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

    /// LayerNorm over the last dimension of a `[rows, dim]` tensor, into a new tensor (`x` is still
    /// needed by the residual connection): rows are read and written in the same parallel pass; a
    /// copy followed by an in-place norm was a serial pass over the tokens.
    static func layerNormed(_ x: Tensor, weight: Tensor, bias: Tensor, eps: Float = 1e-5) -> Tensor {
        Profile.measure(.normalization) {
            let dim = x.shape[x.rank - 1]
            let rows = x.count / dim
            var out = Tensor(uninitialized: x.shape)  // every row is written
            x.data.withUnsafeBufferPointer { xs in
                out.data.withUnsafeMutableBufferPointer { os in
                    weight.data.withUnsafeBufferPointer { ws in
                        bias.data.withUnsafeBufferPointer { bs in
                            let xBase = xs.baseAddress!, oBase = os.baseAddress!
                            Parallel.forEach(rows, grain: max(1, 16384 / max(dim, 1))) { range in
                                for r in range {
                                    let p = xBase + r * dim, q = oBase + r * dim
                                    let (mean, sq) = moments(p, count: dim)
                                    let inv = Float(1 / (sq / Double(dim) + Double(eps)).squareRoot())
                                    let m = Float(mean)
                                    for i in 0..<dim { q[i] = (p[i] - m) * inv * ws[i] + bs[i] }
                                }
                            }
                        }
                    }
                }
            }
            return out
        }
    }

    /// Mean and unbiased standard deviation of all elements (`torch.std`'s default).
    static func meanStd(_ p: UnsafeBufferPointer<Float>) -> (mean: Float, std: Float) {
        guard let base = p.baseAddress, !p.isEmpty else { return (.nan, 0) }  // as 0/0 and sqrt(0) gave
        let (mean, sq) = moments(base, count: p.count)
        return (Float(mean), Float((sq / Double(max(p.count - 1, 1))).squareRoot()))
    }

    /// The mean of `count` contiguous floats and the sum of their squared deviations from it,
    /// in Double and two passes (the statistics of every norm here).
    static func moments(_ p: UnsafePointer<Float>, count: Int) -> (mean: Double, squaredDeviations: Double) {
        var sum = DoubleSums()
        sum.add(p, count: count)
        let mean = sum.total / Double(count)
        var sq = DoubleSums()
        sq.addSquaredDeviations(p, count: count, from: mean)
        return (mean, sq.total)
    }
}

/// A running sum of floats in Double, kept in 32 lanes (four 8-wide accumulators) so that the
/// additions do not wait on each other: one scalar Double chain adds one element per 3–4 cycles,
/// which made the statistics passes of the norms a serial tenth of a segment's time. The lane an
/// element lands in depends only on its position in the rows given, never on threads, so the
/// result is the same on every run.
struct DoubleSums {
    typealias D = SIMD8<Double>
    typealias F = SIMD8<Float>
    private var a = D(), b = D(), c = D(), d = D()
    private var tail = 0.0

    var total: Double { ((a + b) + (c + d)).sum() + tail }

    @inline(__always)
    private static func load(_ p: UnsafePointer<Float>) -> D {
        D(UnsafeRawPointer(p).loadUnaligned(as: F.self))
    }

    /// Adds `p[0..<count]`.
    mutating func add(_ p: UnsafePointer<Float>, count: Int) {
        var i = 0
        while i + 32 <= count {
            a += Self.load(p + i); b += Self.load(p + i + 8)
            c += Self.load(p + i + 16); d += Self.load(p + i + 24)
            i += 32
        }
        while i < count { tail += Double(p[i]); i += 1 }
    }

    /// Adds `(p[i] - mean)²` for `i` in `0..<count`.
    mutating func addSquaredDeviations(_ p: UnsafePointer<Float>, count: Int, from mean: Double) {
        let m = D(repeating: mean)
        var i = 0
        while i + 32 <= count {
            let x0 = Self.load(p + i) - m, x1 = Self.load(p + i + 8) - m
            let x2 = Self.load(p + i + 16) - m, x3 = Self.load(p + i + 24) - m
            a += x0 * x0; b += x1 * x1; c += x2 * x2; d += x3 * x3
            i += 32
        }
        while i < count { let x = Double(p[i]) - mean; tail += x * x; i += 1 }
    }
}
