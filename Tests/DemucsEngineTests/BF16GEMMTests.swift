import CDemucsKernels
import Foundation
import Testing
@testable import DemucsEngine

/// The bfloat16 matrix multiply of `--precision bf16` against a reference computed in Double from
/// the same bf16-rounded operands: every shape class the blocking has (edges of the 8 × 32 tile,
/// several k, n and m blocks, odd k), both transposes, alpha, beta and row strides. On a CPU
/// without AVX512_BF16 the mode must refuse to turn on instead.
@Suite(.serialized) struct BF16GEMMTests {
    static func bf16(_ x: Float) -> Double {
        var bits = x.bitPattern
        bits = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
        return Double(Float(bitPattern: bits & 0xFFFF_0000))
    }

    struct Case: CustomTestStringConvertible, Sendable {
        var m, n, k: Int
        var transA, transB: Bool
        var alpha: Float, beta: Float
        var pad: Int
        var testDescription: String { "\(m)x\(n)x\(k) tA \(transA) tB \(transB) α \(alpha) β \(beta) pad \(pad)" }
    }

    static let cases: [Case] = [
        Case(m: 1, n: 1, k: 1, transA: false, transB: false, alpha: 1, beta: 0, pad: 0),
        Case(m: 7, n: 15, k: 3, transA: false, transB: false, alpha: 1, beta: 0, pad: 0),
        Case(m: 8, n: 32, k: 64, transA: false, transB: false, alpha: 1, beta: 0, pad: 0),
        Case(m: 37, n: 53, k: 129, transA: false, transB: true, alpha: 0.5, beta: 1, pad: 3),
        Case(m: 101, n: 47, k: 777, transA: true, transB: false, alpha: 1, beta: 0.25, pad: 1),
        Case(m: 200, n: 1100, k: 390, transA: false, transB: false, alpha: 1, beta: 0, pad: 0),
        Case(m: 96, n: 1030, k: 385, transA: true, transB: true, alpha: -2, beta: 1, pad: 5),
    ]

    @Test(arguments: cases)
    func matchesBF16ProductsSummedInDouble(_ c: Case) throws {
        guard EnginePrecision.bf16Available else {
            #expect(EnginePrecision.bf16.unavailableReason != nil)
            return
        }
        var rng = SplitMix64(seed: UInt64(c.m * 131 + c.n * 17 + c.k))
        func random() -> Float { Float(Int(rng.next() % 2001) - 1000) / 700 }
        let rowsA = c.transA ? c.k : c.m, colsA = c.transA ? c.m : c.k
        let rowsB = c.transB ? c.n : c.k, colsB = c.transB ? c.k : c.n
        let lda = colsA + c.pad, ldb = colsB + c.pad, ldc = c.n + c.pad
        let a = (0..<(rowsA * lda)).map { _ in random() }
        let b = (0..<(rowsB * ldb)).map { _ in random() }
        let c0 = (0..<(c.m * ldc)).map { _ in random() }
        var out = c0
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                out.withUnsafeMutableBufferPointer { op in
                    demucs_bf16_gemm(c.transA ? 1 : 0, c.transB ? 1 : 0, Int32(c.m), Int32(c.n), Int32(c.k), c.alpha,
                                     ap.baseAddress!, Int32(lda), bp.baseAddress!, Int32(ldb), c.beta,
                                     op.baseAddress!, Int32(ldc))
                }
            }
        }
        var worst = 0.0
        for i in 0..<c.m {
            for j in 0..<ldc {
                let got = Double(out[i * ldc + j])
                guard j < c.n else {
                    #expect(got == Double(c0[i * ldc + j]), "padding of C at \(i), \(j) was written")
                    continue
                }
                var sum = 0.0, magnitude = 0.0
                for p in 0..<c.k {
                    let x = Self.bf16(c.transA ? a[p * lda + i] : a[i * lda + p])
                    let y = Self.bf16(c.transB ? b[j * ldb + p] : b[p * ldb + j])
                    sum += x * y
                    magnitude += abs(x * y)
                }
                let expected = Double(c.alpha) * sum + Double(c.beta) * Double(c0[i * ldc + j])
                let scale = abs(Double(c.alpha)) * magnitude + abs(Double(c.beta) * Double(c0[i * ldc + j])) + 1e-30
                worst = max(worst, abs(got - expected) / scale)
            }
        }
        #expect(worst < 1e-5, "worst relative error \(worst)")
    }
}
