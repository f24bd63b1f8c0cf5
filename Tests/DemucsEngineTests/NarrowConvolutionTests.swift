import Foundation
import Testing
@testable import DemucsEngine

/// The direct kernel for convolutions with few output channels (`CDemucsKernels/narrow_conv.c`)
/// against the im2col + GEMM path: output channel counts that are not a multiple of its 6-channel
/// tile, lengths that are not a multiple of its 32-sample tile (and shorter than the kernel's
/// reach), dilations and paddings that reach past both ends, one row (split into sample blocks
/// over the threads) and many rows (split by row). On a CPU without AVX-512 there is nothing to
/// compare.
@Suite(.serialized) struct NarrowConvolutionTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var cin, cout, batch, length, kernel, dilation: Int
        var bias: Bool
        var testDescription: String {
            "\(cin)->\(cout) batch \(batch) length \(length) k \(kernel) dilation \(dilation) bias \(bias)"
        }
    }

    static let cases = [
        Case(cin: 1, cout: 1, batch: 1, length: 1, kernel: 3, dilation: 1, bias: true),
        Case(cin: 48, cout: 6, batch: 1, length: 1000, kernel: 3, dilation: 2, bias: true),
        Case(cin: 20, cout: 13, batch: 7, length: 33, kernel: 3, dilation: 1, bias: false),
        Case(cin: 96, cout: 12, batch: 5, length: 336, kernel: 3, dilation: 2, bias: true),
        Case(cin: 9, cout: 48, batch: 3, length: 17, kernel: 5, dilation: 4, bias: true),
        Case(cin: 30, cout: 7, batch: 1, length: 100, kernel: 1, dilation: 1, bias: true),
    ]

    @Test(.enabled(if: Convolution.narrowKernelAvailable, "the narrow convolution kernel needs AVX-512"), arguments: cases)
    func matchesTheGEMMPath(_ c: Case) {
        let x = randomTensor([c.cin, c.batch, c.length], seed: UInt64(c.cin * 13 + c.length))
        let w = randomTensor([c.cout, c.cin, c.kernel], seed: UInt64(c.cout * 7 + c.kernel))
        let b = c.bias ? randomTensor([c.cout], seed: 3) : nil
        let padding = c.dilation * (c.kernel - 1) / 2
        #expect(Convolution.usesNarrowKernel(cout: c.cout, kernel: c.kernel, padding: padding,
                                             dilation: c.dilation))
        let direct = ExecutionContext.with(ExecutionContext(width: 2)) {
            Convolution.convRowsNarrow(x, batch: c.batch, weight: w, bias: b, padding: padding, dilation: c.dilation)
        }
        let gemm = Convolution.convRowsGEMM(x, batch: c.batch, weight: w, bias: b, padding: padding,
                                            dilation: c.dilation)
        #expect(direct.shape == gemm.shape)
        var worst: Float = 0
        for i in 0..<gemm.count { worst = max(worst, abs(direct.data[i] - gemm.data[i])) }
        // Sums of cin·kernel products of values in [-1, 1].
        #expect(worst < 2e-6 * Float(c.cin * c.kernel).squareRoot(), "max difference \(worst)")
    }
}
