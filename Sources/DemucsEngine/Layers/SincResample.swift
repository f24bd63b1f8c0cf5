import Foundation

/// julius's `resample_frac(x, old_sr, new_sr)` (zeros 24, rolloff 0.945) on the rows of a
/// `[rows, length]` tensor, as the waveform Demucs uses it: `(1, 2)` before the encoder and
/// `(2, 1)` after the decoder.
///
/// Same kernels as julius (built step by step in float32, see `makeKernels`), same replicate
/// padding (`width` samples left, `width + old` right), output sample `j·new + i` is kernel `i`
/// dotted with the padded input from `j·old`, and the output keeps `floor(new · length / old)`
/// samples. (`AudioIO.Resampler` does the same for decoding; the engine does not depend on that
/// module, so the few lines live here too.)
struct SincResample: Sendable {
    let old: Int
    let new: Int
    let width: Int
    /// `new` kernels of `2·width + old` taps, row-major.
    let kernels: [Float]

    var kernelSize: Int { 2 * width + old }

    init(from oldRate: Int, to newRate: Int, zeros: Int = 24, rolloff: Double = 0.945) {
        var a = oldRate, b = newRate
        while b != 0 { (a, b) = (b, a % b) }
        old = oldRate / a
        new = newRate / a
        // Python: sr = min(new, old) * rolloff; width = ceil(zeros * old / sr).
        let sr = Double(min(old, new)) * rolloff
        width = old == new ? 0 : Int((Double(zeros * old) / sr).rounded(.up))
        kernels = old == new ? [] : Self.makeKernels(old: old, new: new, width: width, zeros: zeros, sr: sr)
    }

    /// julius `_init_kernels`: `t = (-i/new + idx/old) · sr` clamped to ±zeros, times π;
    /// `sinc(t) · cos(t / zeros / 2)²`, divided by its sum; all in float32 as torch computes it.
    static func makeKernels(old: Int, new: Int, width: Int, zeros: Int, sr: Double) -> [Float] {
        let size = 2 * width + old
        let srF = Float(sr), oldF = Float(old), zerosF = Float(zeros), piF = Float(Double.pi)
        var kernels = LargeBuffer.zeros(new * size)
        var row = LargeBuffer.zeros(size)
        for i in 0..<new {
            let phase = Float(-Double(i) / Double(new))
            var sum: Float = 0
            for k in 0..<size {
                var t = (phase + Float(k - width) / oldF) * srF
                t = min(max(t, -zerosF), zerosF)
                t *= piF
                let c = cosf(t / zerosF / 2)
                let value = (t == 0 ? 1 : sinf(t) / t) * (c * c)
                row[k] = value
                sum += value
            }
            for k in 0..<size { kernels[i * size + k] = row[k] / sum }
        }
        return kernels
    }

    func outputLength(_ length: Int) -> Int { new * length / old }

    /// Resamples every row of `[rows, length]`.
    func callAsFunction(_ x: Tensor) -> Tensor {
        if old == new { return x }
        return Profile.measure(.other) {
            let rows = x.shape[0], length = x.count / rows
            let outLength = outputLength(length)
            var out = Tensor(zeros: [rows, outLength])
            let size = kernelSize
            let paddedLength = length + 2 * width + old
            // Rows × blocks of output frames, spread over the cores (a long segment has millions
            // of samples and the rest of the model is parallel inside the BLAS).
            let frames = (outLength + new - 1) / new
            let blockFrames = 1 << 14
            let blocks = (frames + blockFrames - 1) / blockFrames
            let tasks = rows * blocks
            x.data.withUnsafeBufferPointer { xs in
                out.data.withUnsafeMutableBufferPointer { os in
                    kernels.withUnsafeBufferPointer { ks in
                        let pointers = ResamplePointers(x: xs.baseAddress!, out: os.baseAddress!, kernels: ks.baseAddress!)
                        let work: @Sendable (Int) -> Void = { task in
                            let xBase = pointers.x, oBase = pointers.out, kBase = pointers.kernels
                            let r = task / blocks, block = task % blocks
                            let src = xBase + r * length
                            let first = block * blockFrames
                            let last = min(frames, first + blockFrames)
                            // The padded input this block reads: from first·old to (last-1)·old + size.
                            let from = first * old
                            let to = min(paddedLength, (last - 1) * old + size)
                            var padded = LargeBuffer.zeros(to - from)
                            for p in from..<to {
                                let i = min(max(p - width, 0), length - 1)
                                padded[p - from] = src[i]
                            }
                            padded.withUnsafeBufferPointer { ps in
                                let dst = oBase + r * outLength
                                for j in first..<last {
                                    let window = ps.baseAddress! + (j * old - from)
                                    for i in 0..<new {
                                        let o = j * new + i
                                        if o >= outLength { break }
                                        dst[o] = Self.dot(kBase + i * size, window, size)
                                    }
                                }
                            }
                        }
                        if tasks == 1 {
                            work(0)
                        } else {
                            DispatchQueue.concurrentPerform(iterations: tasks, execute: work)
                        }
                    }
                }
            }
            return out
        }
    }

    /// The buffers the worker threads share (each writes its own rows and blocks of `out`).
    struct ResamplePointers: @unchecked Sendable {
        let x: UnsafePointer<Float>
        let out: UnsafeMutablePointer<Float>
        let kernels: UnsafePointer<Float>
    }

    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
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
