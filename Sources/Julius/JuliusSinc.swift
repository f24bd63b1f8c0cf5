#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The arithmetic of julius 0.2.8's `resample_frac` (Julius O. Smith's windowed-sinc
/// resampling), shared by the two places that need it bit for bit: converting input audio to the
/// model's rate (`AudioIO.Resampler`, as demucs's `convert_audio`) and the waveform Demucs's ×2
/// up- and downsampling inside the model (`DemucsEngine.SincResample`).
///
/// For rates reduced by their GCD to `old → new`, there is one kernel per output phase (`new` of
/// them) of `2·width + old` taps; output sample `j·new + i` is kernel `i` dotted with the
/// replicate-padded input starting at `j·old`, and the output keeps `floor(new · length / old)`
/// samples.
public enum JuliusSinc {
    /// The reduced rates, julius's `_width` and the cut-off `sr` for `oldRate → newRate`.
    public static func geometry(from oldRate: Int, to newRate: Int, zeros: Int = 24, rolloff: Double = 0.945)
        -> (old: Int, new: Int, width: Int, sr: Double) {
        var a = oldRate, b = newRate
        while b != 0 { (a, b) = (b, a % b) }
        let old = oldRate / a, new = newRate / a
        // Python: sr = min(new, old) * rolloff (a double); width = ceil(zeros * old / sr).
        let sr = Double(min(old, new)) * rolloff
        let width = old == new ? 0 : Int((Double(zeros * old) / sr).rounded(.up))
        return (old, new, width, sr)
    }

    /// julius `_init_kernels`, with its float32 arithmetic step by step:
    /// `t = (-i/new + idx/old) · sr` clamped to ±zeros, `t *= π`, `sinc(t) · cos(t / zeros / 2)²`,
    /// divided by its sum (accumulated in Double). `new` kernels, row-major.
    public static func kernels(old: Int, new: Int, width: Int, zeros: Int, sr: Double) -> [Float] {
        let size = 2 * width + old
        let srF = Float(sr), oldF = Float(old), zerosF = Float(zeros), piF = Float(Double.pi)
        var kernels = [Float](repeating: 0, count: new * size)
        var row = [Float](repeating: 0, count: size)
        for i in 0..<new {
            // Python evaluates -i/new as a double, then torch casts the scalar to float32.
            let phase = Float(-Double(i) / Double(new))
            var sum = 0.0
            for k in 0..<size {
                var t = (phase + Float(k - width) / oldF) * srF
                t = min(max(t, -zerosF), zerosF)
                t *= piF
                let c = cosf(t / zerosF / 2)
                let value = (t == 0 ? 1 : sinf(t) / t) * (c * c)
                row[k] = value
                sum += Double(value)
            }
            let total = Float(sum)
            for k in 0..<size { kernels[i * size + k] = row[k] / total }
        }
        return kernels
    }

    /// Float32 dot product with eight-lane accumulation, close to the vectorised convolution
    /// behind torch's `conv1d`, which julius applies the kernels with.
    @inlinable @inline(__always)
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD8<Float>(repeating: 0)
        var k = 0
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        let stride = MemoryLayout<Float>.stride
        while k + 8 <= n {
            acc += ra.loadUnaligned(fromByteOffset: k * stride, as: SIMD8<Float>.self)
                * rb.loadUnaligned(fromByteOffset: k * stride, as: SIMD8<Float>.self)
            k += 8
        }
        var s = acc.sum()
        while k < n {
            s += a[k] * b[k]
            k += 1
        }
        return s
    }
}
