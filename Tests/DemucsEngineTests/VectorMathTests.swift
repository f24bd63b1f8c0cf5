import CDemucsKernels
import Foundation
import Testing
@testable import DemucsEngine

/// The C elementwise kernels (softmax rows, GELU, GLU) against the same functions computed in
/// Double with libm, for every instruction-set build this CPU can run (baseline, AVX2 + FMA,
/// AVX-512): lengths around each vector width so that the zero-padded tails are covered, and a
/// guard element after each row that must come back untouched.
struct VectorMathTests {
    static let lengths = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 100, 2688]

    static func randoms(_ count: Int, seed: UInt64, range: ClosedRange<Float>) -> [Float] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { _ in
            range.lowerBound + (range.upperBound - range.lowerBound) * Float(rng.next() % 1_000_001) / 1_000_000
        }
    }

    static func gelu(_ y: Double) -> Double { 0.5 * y * (1 + Foundation.erf(y / 2.0.squareRoot())) }
    static func sigmoid(_ y: Double) -> Double { 1 / (1 + Foundation.exp(-y)) }

    @Test func theBaselineBuildIsAlwaysThere() {
        #expect(demucs_vector_kernels(0) != nil)
        #expect(demucs_vector_kernels(3) == nil)
    }

    static func softmaxRowsMatchDouble(_ level: Int) throws {
        let k = try #require(demucs_vector_kernels(Int32(level))?.pointee, "no build of level \(level) on this CPU")
        for n in Self.lengths {
            for normalise in [false, true] {
                let input = Self.randoms(n, seed: UInt64(n * 7 + level), range: -40...40)
                var row = input + [12345]
                let sum = row.withUnsafeMutableBufferPointer { k.softmax_row($0.baseAddress!, n, normalise ? 1 : 0) }
                // x - max is rounded to float before the exponential, here as in the kernel (and in
                // PyTorch): what is compared is the exponential and the sums after it.
                let mx = input.max()!
                let exps = input.map { Foundation.exp(Double($0 - mx)) }
                let total = exps.reduce(0, +)
                #expect(abs(Double(sum) - total) <= 1e-6 * total, "level \(level) n \(n): sum \(sum) vs \(total)")
                var worst = 0.0
                for i in 0..<n {
                    let expected = normalise ? exps[i] / total : exps[i]
                    worst = max(worst, abs(Double(row[i]) - expected) / max(expected, 1e-30))
                }
                #expect(worst < 1e-6, "level \(level) n \(n) normalise \(normalise): relative error \(worst)")
                #expect(row[n] == 12345, "level \(level) n \(n): wrote past the row")
            }
        }
    }

    static func geluMatchesErfInDouble(_ level: Int) throws {
        let k = try #require(demucs_vector_kernels(Int32(level))?.pointee, "no build of level \(level) on this CPU")
        for n in Self.lengths {
            for (scale, shift) in [(Float(1), Float(0)), (0.37, -1.25)] {
                let input = Self.randoms(n, seed: UInt64(n * 11 + level), range: -9...9)
                var x = input + [-777]
                x.withUnsafeMutableBufferPointer { k.gelu($0.baseAddress!, n, scale, shift) }
                var worst = 0.0
                for i in 0..<n {
                    let y = Double(Float(input[i]) * scale + shift)
                    worst = max(worst, abs(Double(x[i]) - Self.gelu(y)) / max(1, abs(y)))
                }
                #expect(worst < 5e-7, "level \(level) n \(n): error \(worst)")
                #expect(x[n] == -777, "level \(level) n \(n): wrote past the end")
            }
        }
    }

    static func gluAndGluAddMatchDouble(_ level: Int) throws {
        let k = try #require(demucs_vector_kernels(Int32(level))?.pointee, "no build of level \(level) on this CPU")
        for n in Self.lengths {
            let value = Self.randoms(n, seed: UInt64(n * 13 + level), range: -5...5)
            let gate = Self.randoms(n, seed: UInt64(n * 17 + level), range: -30...30)
            let start = Self.randoms(n, seed: UInt64(n * 19 + level), range: -2...2)
            let (sa, ta, sg, tg, ls): (Float, Float, Float, Float, Float) = (1.5, -0.25, 0.75, 0.5, 0.1)
            var dst = [Float](repeating: 0, count: n) + [99]
            var acc = start + [99]
            value.withUnsafeBufferPointer { v in
                gate.withUnsafeBufferPointer { g in
                    dst.withUnsafeMutableBufferPointer { k.glu(v.baseAddress!, g.baseAddress!, $0.baseAddress!, n, sa, ta, sg, tg) }
                    acc.withUnsafeMutableBufferPointer {
                        k.glu_add(v.baseAddress!, g.baseAddress!, $0.baseAddress!, n, sa, ta, sg, tg, ls)
                    }
                }
            }
            var worstGLU = 0.0, worstAdd = 0.0
            for i in 0..<n {
                let a = Double(value[i]) * Double(sa) + Double(ta)
                let gated = Self.sigmoid(Double(gate[i]) * Double(sg) + Double(tg)) * a
                worstGLU = max(worstGLU, abs(Double(dst[i]) - gated) / max(1, abs(a)))
                worstAdd = max(worstAdd, abs(Double(acc[i]) - (Double(start[i]) + Double(ls) * gated)))
            }
            #expect(worstGLU < 1e-6, "level \(level) n \(n): GLU error \(worstGLU)")
            #expect(worstAdd < 1e-6, "level \(level) n \(n): GLU-add error \(worstAdd)")
            #expect(dst[n] == 99 && acc[n] == 99, "level \(level) n \(n): wrote past the end")
        }
    }
}

/// Each build of the kernels in its own suite, so that a build this CPU cannot run shows as
/// skipped with the reason instead of passing without running.
extension VectorMathTests {
    static func available(_ level: Int) -> Bool { demucs_vector_kernels(Int32(level)) != nil }

    @Suite struct Baseline {
        @Test func softmax() throws { try VectorMathTests.softmaxRowsMatchDouble(0) }
        @Test func gelu() throws { try VectorMathTests.geluMatchesErfInDouble(0) }
        @Test func glu() throws { try VectorMathTests.gluAndGluAddMatchDouble(0) }
    }

    @Suite(.enabled(if: VectorMathTests.available(1), "this CPU lacks AVX2 + FMA: that build is not run"))
    struct AVX2 {
        @Test func softmax() throws { try VectorMathTests.softmaxRowsMatchDouble(1) }
        @Test func gelu() throws { try VectorMathTests.geluMatchesErfInDouble(1) }
        @Test func glu() throws { try VectorMathTests.gluAndGluAddMatchDouble(1) }
    }

    @Suite(.enabled(if: VectorMathTests.available(2), "this CPU lacks AVX-512: that build is not run"))
    struct AVX512 {
        @Test func softmax() throws { try VectorMathTests.softmaxRowsMatchDouble(2) }
        @Test func gelu() throws { try VectorMathTests.geluMatchesErfInDouble(2) }
        @Test func glu() throws { try VectorMathTests.gluAndGluAddMatchDouble(2) }
    }
}
