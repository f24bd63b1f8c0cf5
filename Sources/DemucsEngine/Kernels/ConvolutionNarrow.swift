import CDemucsKernels

/// Direct 1-D convolutions for the DConv branches' narrow products (`CDemucsKernels/narrow_conv.c`).
///
/// A DConv block squeezes C channels to C/8 with a dilated kernel-3 convolution and widens them
/// back to 2C with a 1×1 one. As a matrix product the first has M = C/8 (6 to 48 in htdemucs), a
/// shape OpenBLAS ran at a quarter to a half of its usual rate, after an im2col that copied the
/// input three times; DConv was 14% of htdemucs's CPU time for 5% of its multiplies. On CPUs
/// with AVX-512 the kernel computes it directly from the input rows (DConv's CPU time −32%).
/// The 1×1 widening (K = C/8) measured no faster this way and stays a matrix product.
extension Convolution {
    static let narrowKernelAvailable = demucs_narrow_conv_available() != 0

    /// Output channels up to which the direct kernel is used.
    static let narrowChannels = 48

    /// Whether `convRows` with these shapes goes through the direct kernel.
    static func usesNarrowKernel(cout: Int, kernel: Int, padding: Int, dilation: Int) -> Bool {
        guard narrowKernelAvailable, kernel <= 8, kernel % 2 == 1, padding == dilation * (kernel - 1) / 2 else {
            return false
        }
        return cout <= narrowChannels
    }

    /// The weights `[cout, cin, kernel]` in the kernel's layout.
    static func narrowPacked(_ weight: Tensor) -> [Float] {
        let cout = weight.shape[0], cin = weight.shape[1], kernel = weight.shape[2]
        var packed = [Float](repeating: 0, count: demucs_narrow_conv_packed_floats(cout, cin, kernel))
        weight.data.withUnsafeBufferPointer { ws in
            packed.withUnsafeMutableBufferPointer { ps in
                demucs_narrow_conv_pack(ws.baseAddress!, cout, cin, kernel, ps.baseAddress!)
            }
        }
        return packed
    }

    /// `convRows` (same-length output) through the direct kernel: the batch rows are shared out
    /// over the threads, or, with fewer rows than threads, 32-sample blocks of each row.
    static func convRowsNarrow(_ x: Tensor, batch: Int, weight: Tensor, bias: Tensor?,
                               padding: Int, dilation: Int) -> Tensor {
        Profile.measure(.convolution) {
            let cout = weight.shape[0], cin = weight.shape[1], kernel = weight.shape[2]
            let length = x.count / (cin * batch)
            precondition(length * cin * batch == x.count)
            let packed = narrowPacked(weight)
            var out = Tensor(uninitialized: [cout, batch, length])  // every sample is written
            let stride = batch * length
            x.data.withUnsafeBufferPointer { xs in
                out.data.withUnsafeMutableBufferPointer { os in
                    packed.withUnsafeBufferPointer { ps in
                        withOptionalPointer(bias) { bp in
                            let xBase = xs.baseAddress!, oBase = os.baseAddress!, pBase = ps.baseAddress!
                            func run(_ b: Int, _ t0: Int, _ t1: Int) {
                                demucs_narrow_conv(xBase + b * length, stride, cin, length, pBase, cout, kernel,
                                                   dilation, padding, bp, t0, t1, oBase + b * length, stride)
                            }
                            if batch >= Parallel.width {
                                Parallel.forEach(batch) { rows in
                                    for b in rows { run(b, 0, length) }
                                }
                            } else {
                                let blocks = (length + 31) / 32
                                for b in 0..<batch {
                                    Parallel.forEach(blocks, grain: 16) { range in
                                        run(b, range.lowerBound * 32, min(length, range.upperBound * 32))
                                    }
                                }
                            }
                        }
                    }
                }
            }
            return out
        }
    }

    /// Calls `body` with a pointer to `tensor`'s floats, or nil.
    static func withOptionalPointer<R>(_ tensor: Tensor?, _ body: (UnsafePointer<Float>?) -> R) -> R {
        guard let tensor else { return body(nil) }
        return tensor.data.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}
