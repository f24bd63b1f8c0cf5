import Foundation

/// The RoFormers' `RMSNorm`: each row divided by its L2 norm (clamped at 1e-12, as
/// `F.normalize`), times √dim and a per-channel gain `gamma`. Not the eps-inside-the-root form
/// of other RMSNorms: the two differ for rows near zero.
struct RMSNorm: Sendable {
    let dim: Int
    let gamma: [Float]

    init(_ w: ScopedWeights, _ name: String, dim: Int) throws {
        self.dim = dim
        gamma = try w.scoped(name).take("gamma", [dim]).data
    }

    /// `rows` rows of `dim` values at `x` (row stride `ldx`) into `out` (row stride `ldo`).
    func apply(_ x: UnsafePointer<Float>, ldx: Int, rows: Int, into out: UnsafeMutablePointer<Float>, ldo: Int) {
        let dim = dim, scale = Float(dim).squareRoot()
        gamma.withUnsafeBufferPointer { g in
            let gain = g.baseAddress!
            Parallel.forEach(rows, grain: max(1, 16384 / max(dim, 1))) { range in
                for r in range {
                    let src = x + r * ldx, dst = out + r * ldo
                    let norm = max(Self.norm(src, dim), 1e-12)
                    for c in 0..<dim { dst[c] = src[c] / norm * scale * gain[c] }
                }
            }
        }
    }

    /// The normalised rows of `x: [rows, dim]`.
    func callAsFunction(_ x: Tensor) -> Tensor {
        Profile.measure(.normalization) {
            let rows = x.count / dim
            var out = Tensor(uninitialized: x.shape)  // every row is written
            x.data.withUnsafeBufferPointer { xs in
                out.data.withUnsafeMutableBufferPointer { os in
                    apply(xs.baseAddress!, ldx: dim, rows: rows, into: os.baseAddress!, ldo: dim)
                }
            }
            return out
        }
    }

    /// The L2 norm of `count` floats, summed in double precision.
    static func norm(_ p: UnsafePointer<Float>, _ count: Int) -> Float {
        var sums = DoubleSums()
        sums.addSquaredDeviations(p, count: count, from: 0)
        return Float(sums.total.squareRoot())
    }
}
