import CDemucsKernels
import Foundation

/// Elementwise activations, in place.
enum Activations {
    /// GELU with the exact erf form (PyTorch's default, `approximate='none'`).
    static func gelu(_ x: inout Tensor) {
        Profile.measure(.activation) {
            x.data.withUnsafeMutableBufferPointer { p in
                let base = p.baseAddress!
                Parallel.forEach(p.count, grain: 32768) { r in demucs_gelu(base + r.lowerBound, r.count, 1, 0) }
            }
        }
    }

    static func relu(_ x: inout Tensor) {
        x.data.withUnsafeMutableBufferPointer { p in
            for i in 0..<p.count where p[i] < 0 { p[i] = 0 }
        }
    }

    /// GLU over the channel axis of an unbatched `[2C, ...]` tensor: `[C, ...]`.
    static func gluChannels(_ x: Tensor) -> Tensor {
        glu(x.reshaped([1] + x.shape), batch: 1).reshaped([x.shape[0] / 2] + Array(x.shape.dropFirst()))
    }

    /// Gated linear unit over the channel axis of a `[batch, 2C, plane]` tensor:
    /// the first half times the sigmoid of the second half, giving `[batch, C, plane]`.
    /// The arithmetic is `demucs_glu`'s, which the convolutions that apply GLU block by block
    /// (`Convolution.biasAndGLU`) call too, so both give the same bits.
    static func glu(_ x: Tensor, batch: Int) -> Tensor {
        Profile.measure(.activation) {
            let channels2 = x.shape[1]
            let half = channels2 / 2
            let plane = x.count / (batch * channels2)
            var shape = x.shape
            shape[1] = half
            var out = Tensor(uninitialized: shape)  // every element is written
            x.data.withUnsafeBufferPointer { xs in
                out.data.withUnsafeMutableBufferPointer { os in
                    for b in 0..<batch {
                        let src = xs.baseAddress! + b * channels2 * plane
                        let dst = os.baseAddress! + b * half * plane
                        let gate = src + half * plane
                        let n = half * plane
                        Parallel.forEach(n, grain: 32768) { r in
                            let lo = r.lowerBound
                            demucs_glu(src + lo, gate + lo, dst + lo, r.count, 1, 0, 1, 0)
                        }
                    }
                }
            }
            return out
        }
    }
}
