import Foundation
import Julius

/// julius's `resample_frac(x, old_sr, new_sr)` (zeros 24, rolloff 0.945) on the rows of a
/// `[rows, length]` tensor, as the waveform Demucs uses it: `(1, 2)` before the encoder and
/// `(2, 1)` after the decoder.
///
/// The kernels and the dot product are `Julius.JuliusSinc`'s (shared with `AudioIO.Resampler`);
/// this adds the replicate padding (`width` samples left, `width + old` right) on tensor rows and
/// spreads rows × blocks of output frames over the cores.
struct SincResample: Sendable {
    let old: Int
    let new: Int
    let width: Int
    /// `new` kernels of `2·width + old` taps, row-major.
    let kernels: [Float]

    var kernelSize: Int { 2 * width + old }

    init(from oldRate: Int, to newRate: Int, zeros: Int = 24, rolloff: Double = 0.945) {
        let g = JuliusSinc.geometry(from: oldRate, to: newRate, zeros: zeros, rolloff: rolloff)
        old = g.old
        new = g.new
        width = g.width
        kernels = old == new ? [] : JuliusSinc.kernels(old: old, new: new, width: width, zeros: zeros, sr: g.sr)
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
            // Rows × blocks of output frames, spread over the separation's threads (a long
            // segment has millions of samples).
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
                                        dst[o] = JuliusSinc.dot(kBase + i * size, window, size)
                                    }
                                }
                            }
                        }
                        // Under the separation's width and context, like every other kernel.
                        Parallel.forEach(tasks) { range in
                            for task in range { work(task) }
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
}
