@testable import DemucsEngine
import Foundation
import Testing

/// The RoFormers' attention kernels against a plain double-precision computation of the
/// reference's formulas (rotate q and k by position, softmax(q kᵀ / √d) v, times the sigmoid
/// gate; cross-covariance attention over the tokens), on random input: head size 64 takes the
/// tiled AVX-512 kernel where the CPU has it, 8 the BLAS path.
struct RotaryAttentionTests {
    static func naiveRotary(_ qkv: Tensor, gates: Tensor, sequences: Int, n: Int, heads: Int, freqs: [Float]) -> [Double] {
        let ld = qkv.shape[1], inner = ld / 3, d = inner / heads
        var out = [Double](repeating: 0, count: sequences * n * inner)
        func rotated(_ row: Int, _ column: Int, position: Int) -> [Double] {
            (0..<d).map { j in
                let pair = j / 2, angle = Double(Float(position) * freqs[pair])
                let x0 = Double(qkv.data[row * ld + column + 2 * pair]), x1 = Double(qkv.data[row * ld + column + 2 * pair + 1])
                return j % 2 == 0 ? x0 * cos(angle) - x1 * sin(angle) : x1 * cos(angle) + x0 * sin(angle)
            }
        }
        for s in 0..<sequences {
            for h in 0..<heads {
                let q = (0..<n).map { rotated(s * n + $0, h * d, position: $0) }
                let k = (0..<n).map { rotated(s * n + $0, inner + h * d, position: $0) }
                for i in 0..<n {
                    var w = (0..<n).map { j in zip(q[i], k[j]).reduce(0) { $0 + $1.0 * $1.1 } / Double(d).squareRoot() }
                    let top = w.max()!
                    w = w.map { exp($0 - top) }
                    let total = w.reduce(0, +)
                    let gate = 1 / (1 + exp(-Double(gates.data[(s * n + i) * heads + h])))
                    for c in 0..<d {
                        var acc = 0.0
                        for j in 0..<n { acc += w[j] * Double(qkv.data[(s * n + j) * ld + 2 * inner + h * d + c]) }
                        out[(s * n + i) * inner + h * d + c] = acc / total * gate
                    }
                }
            }
        }
        return out
    }

    static func worstError(_ got: [Float], _ want: [Double]) -> Double {
        let scale = want.map(abs).max() ?? 1
        return zip(got, want).map { abs(Double($0) - $1) }.max()! / scale
    }

    @Test(arguments: [64, 8])
    func rotarySelfAttentionIsTheReferencesFormula(_ d: Int) {
        let heads = 2, sequences = 3, n = 37
        let qkv = randomTensor([sequences * n, 3 * heads * d], seed: 5)
        let gates = randomTensor([sequences * n, heads], seed: 6, spread: 3)
        let freqs = (0..<(d / 2)).map { Float(pow(10_000, -2 * Double($0) / Double(d))) * 1.1 }
        let rotary = RotaryTable(freqs: freqs, length: n)
        let got = ExecutionContext.with(ExecutionContext(width: 2)) {
            Attention.rotarySelfAttention(qkv: qkv, gates: gates, sequences: sequences, length: n, heads: heads, rotary: rotary)
        }
        let want = Self.naiveRotary(qkv, gates: gates, sequences: sequences, n: n, heads: heads, freqs: freqs)
        #expect(Self.worstError(got.data, want) < 1e-5, "d \(d)")
    }

    @Test func crossCovarianceIsTheReferencesFormula() {
        let heads = 2, d = 8, tokens = 500
        let qkv = randomTensor([tokens, 3 * heads * d], seed: 9)
        let temperature: [Float] = [0.3, -0.7]
        let got = Attention.crossCovariance(qkv: qkv, heads: heads, temperature: temperature, scale: 8)
        let ld = 3 * heads * d, inner = heads * d
        var want = [Double](repeating: 0, count: tokens * inner)
        for h in 0..<heads {
            func column(_ c: Int) -> [Double] { (0..<tokens).map { Double(qkv.data[$0 * ld + c]) } }
            func normalised(_ x: [Double]) -> [Double] { let n = x.reduce(0) { $0 + $1 * $1 }.squareRoot(); return x.map { $0 / n } }
            let q = (0..<d).map { normalised(column(h * d + $0)).map { $0 * exp(Double(temperature[h])) } }
            let k = (0..<d).map { normalised(column(inner + h * d + $0)) }
            let v = (0..<d).map { column(2 * inner + h * d + $0) }
            for i in 0..<d {
                var w = (0..<d).map { j in 8 * zip(q[i], k[j]).reduce(0) { $0 + $1.0 * $1.1 } }
                let top = w.max()!
                w = w.map { exp($0 - top) }
                let total = w.reduce(0, +)
                for t in 0..<tokens {
                    want[t * inner + h * d + i] = (0..<d).reduce(0) { $0 + w[$1] * v[$1][t] } / total
                }
            }
        }
        #expect(Self.worstError(got.data, want) < 1e-5)
    }

    @Test func rmsNormIsAnL2NormalisationTimesRootDimAndGain() throws {
        let dim = 6
        let weights = Weights(tensors: ["n.gamma": Tensor(shape: [dim], data: [1, 2, 3, 0.5, -1, 4])], source: "test")
        let norm = try RMSNorm(weights.scoped(""), "n", dim: dim)
        let x = Tensor(shape: [2, dim], data: [3, 4, 0, 0, 0, 0] + [Float](repeating: 0, count: dim))
        let y = norm(x)
        let root = Float(dim).squareRoot()
        #expect(Array(y.data[0..<dim]) == [0.6 * root, 0.8 * root * 2, 0, 0, 0, 0])
        #expect(Array(y.data[dim...]) == [Float](repeating: 0, count: dim), "a zero row stays zero (the 1e-12 clamp)")
    }
}
