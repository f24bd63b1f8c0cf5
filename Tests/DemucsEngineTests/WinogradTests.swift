import Foundation
import Testing
@testable import DemucsEngine

/// 3×3 convolutions through Winograd's F(2×2, 3×3) against the im2col path, on odd and even
/// heights and widths (partial tiles at the bottom and right edges), one and several blocks of
/// tile rows, with and without bias and GLU.
@Suite(.serialized) struct WinogradTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var cin, cout, height, width: Int
        var glu, bias: Bool
        var blockFloats: Int
        var testDescription: String {
            "\(cin)->\(cout) \(height)x\(width) glu \(glu) bias \(bias) block \(blockFloats)"
        }
    }

    static let cases = [
        Case(cin: 1, cout: 2, height: 1, width: 1, glu: false, bias: true, blockFloats: 1 << 22),
        Case(cin: 3, cout: 4, height: 5, width: 7, glu: false, bias: false, blockFloats: 1 << 22),
        Case(cin: 8, cout: 6, height: 9, width: 12, glu: true, bias: true, blockFloats: 1 << 22),
        Case(cin: 16, cout: 32, height: 12, width: 33, glu: true, bias: true, blockFloats: 1 << 12),
        Case(cin: 24, cout: 10, height: 17, width: 16, glu: false, bias: true, blockFloats: 1),
    ]

    @Test(arguments: cases)
    func matchesTheIm2colConvolution(_ c: Case) {
        let x = randomTensor([c.cin, c.height, c.width], seed: UInt64(c.cin * 31 + c.height))
        let w = randomTensor([c.cout, c.cin, 3, 3], seed: UInt64(c.cout * 17 + c.width))
        let b = c.bias ? randomTensor([c.cout], seed: 5) : nil
        let context = ExecutionContext(tuning: KernelTuning(winogradBlockFloats: c.blockFloats))
        let fast = ExecutionContext.with(context) { Convolution.conv2dWinograd(x, weight: w, bias: b, glu: c.glu) }
        // The dispatcher picks Winograd for these shapes (same blocks, so the same bits).
        let dispatched = ExecutionContext.with(context) {
            Convolution.conv2d(x, weight: w, bias: b, padding: (1, 1), glu: c.glu)
        }
        let direct = Convolution.conv2dIm2col(x, weight: w, bias: b, padding: (1, 1), glu: c.glu)
        #expect(fast.shape == direct.shape)
        var worst: Float = 0
        for i in 0..<direct.count { worst = max(worst, abs(fast.data[i] - direct.data[i])) }
        // Sums of 9·cin products of values in [-1, 1]: a few float32 roundings of a sum ~ √(9·cin).
        #expect(worst < 1e-5 * Float(9 * c.cin).squareRoot(), "max difference \(worst)")
        #expect(dispatched.data == fast.data)
    }
}
