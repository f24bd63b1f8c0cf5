import CDemucsKernels
import Foundation

/// The RoFormers' `BandSplit`: the spectrogram of a frame, `[frames, width]` with each band's
/// values side by side (`b t (f c)`), becomes one `dim` feature per band, `[frames, bands, dim]`,
/// through an RMSNorm and a Linear layer of the band's own.
struct BandSplit: Sendable {
    let dim: Int
    /// Values per band (2 · channels · bins) and where each starts in a frame's row.
    let widths: [Int]
    let offsets: [Int]
    let norms: [RMSNorm]
    let linears: [Linear]

    init(_ w: ScopedWeights, dim: Int, widths: [Int]) throws {
        self.dim = dim
        self.widths = widths
        offsets = widths.reduce(into: [0]) { $0.append($0.last! + $1) }.dropLast()
        norms = try widths.indices.map { try RMSNorm(w.scoped("to_features.\($0)"), "0", dim: widths[$0]) }
        linears = try widths.indices.map { try Linear(w.scoped("to_features.\($0)"), "1", inDim: widths[$0], outDim: dim) }
    }

    var totalWidth: Int { widths.reduce(0, +) }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let width = totalWidth, frames = x.count / width, bands = widths.count, dim = dim
        var out = Tensor(uninitialized: [frames, bands, dim])  // the biases fill it, the products add to them
        var normed = [Float](repeating: 0, count: frames * (widths.max() ?? 0))
        x.data.withUnsafeBufferPointer { xs in
            out.data.withUnsafeMutableBufferPointer { os in
                normed.withUnsafeMutableBufferPointer { ns in
                    let o = os.baseAddress!
                    for b in 0..<bands {
                        let w = widths[b]
                        norms[b].apply(xs.baseAddress! + offsets[b], ldx: width, rows: frames, into: ns.baseAddress!, ldo: w)
                        linears[b].bias!.data.withUnsafeBufferPointer { bias in
                            for t in 0..<frames { (o + (t * bands + b) * dim).update(from: bias.baseAddress!, count: dim) }
                        }
                        linears[b].weight.data.withUnsafeBufferPointer { weight in
                            GEMM.multiply(transB: true, m: frames, n: dim, k: w, a: ns.baseAddress!, lda: w,
                                          b: weight.baseAddress!, ldb: w, beta: 1, c: o + b * dim, ldc: bands * dim)
                        }
                    }
                }
            }
        }
        return out
    }
}

/// A RoFormer's `MaskEstimator` for one stem: per band, an MLP (Linear layers with Tanh between)
/// from the band's feature to twice its width, then a GLU, the bands' halves side by side as the
/// band split took them: `[frames, bands, dim]` → `[frames, width]`.
struct MaskEstimator: Sendable {
    let dim: Int
    let widths: [Int]
    let offsets: [Int]
    /// Per band, the MLP's Linear layers in order.
    let mlps: [[Linear]]

    /// `hidden` and the number of Linear layers are the reference's for the family (BS-RoFormer:
    /// `mask_estimator_depth` layers of `dim · mlp_expansion_factor`; Mel-Band: one more layer,
    /// and always `dim · 4`).
    init(_ w: ScopedWeights, dim: Int, widths: [Int], hidden: Int, linearLayers: Int) throws {
        self.dim = dim
        self.widths = widths
        offsets = widths.reduce(into: [0]) { $0.append($0.last! + $1) }.dropLast()
        mlps = try widths.indices.map { b in
            let band = w.scoped("to_freqs.\(b).0")
            return try (0..<linearLayers).map { i in
                let inDim = i == 0 ? dim : hidden
                let outDim = i == linearLayers - 1 ? 2 * widths[b] : hidden
                return try Linear(band, "\(2 * i)", inDim: inDim, outDim: outDim)
            }
        }
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let bands = widths.count, frames = x.count / (bands * dim), total = widths.reduce(0, +)
        var mask = Tensor(uninitialized: [frames, total])  // each band's GLU writes its columns
        let features = x.permuted([1, 0, 2])  // [bands, frames, dim]: each band's rows together
        for b in 0..<bands {
            var h = Tensor(shape: [frames, dim], data: Array(features.data[(b * frames * dim)..<((b + 1) * frames * dim)]))
            for (i, layer) in mlps[b].enumerated() {
                h = layer(h)
                if i < mlps[b].count - 1 { Self.tanh(&h) }
            }
            let w = widths[b], offset = offsets[b]
            h.data.withUnsafeBufferPointer { hs in
                mask.data.withUnsafeMutableBufferPointer { ms in
                    let src = hs.baseAddress!, dst = ms.baseAddress!
                    Parallel.forEach(frames, grain: max(1, 8192 / max(w, 1))) { rows in
                        for t in rows {
                            let row = src + t * 2 * w
                            demucs_glu(row, row + w, dst + t * total + offset, w, 1, 0, 1, 0)
                        }
                    }
                }
            }
        }
        return mask
    }

    static func tanh(_ x: inout Tensor) {
        x.data.withUnsafeMutableBufferPointer { p in
            let base = p.baseAddress!
            Parallel.forEach(p.count, grain: 16384) { r in
                for i in r { base[i] = Foundation.tanh(base[i]) }
            }
        }
    }
}
