import Foundation
import Testing
@testable import DemucsEngine

/// The tiled AVX-512 attention kernel (`CDemucsKernels/attention.c`) against the BLAS path it
/// replaces, on shapes that leave partial tiles everywhere: query counts that are not a multiple of
/// the 8-row tile or of the query block, key counts that are not a multiple of the 32-key panel,
/// head sizes of 16 to 64 (one or two 32-column value tiles and a 16-column one), cross-attention
/// with fewer or more keys than queries. On a CPU without AVX-512 there is nothing to compare.
struct AttentionKernelTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var nq, nk, heads, d: Int
        var testDescription: String { "nq \(nq) nk \(nk) heads \(heads) d \(d)" }
    }

    static let cases = [
        Case(nq: 1, nk: 1, heads: 1, d: 16),
        Case(nq: 37, nk: 45, heads: 2, d: 16),
        Case(nq: 64, nk: 64, heads: 3, d: 48),
        Case(nq: 130, nk: 97, heads: 2, d: 32),
        Case(nq: 200, nk: 333, heads: 8, d: 64),
        Case(nq: 71, nk: 700, heads: 4, d: 64),
    ]

    @Test(arguments: cases)
    func tiledKernelMatchesTheBLASPath(_ c: Case) throws {
        guard Attention.tiledKernelAvailable else { return }
        let dim = c.heads * c.d
        // Spread 3 gives scores of a few units: peaked but not one-hot softmax rows.
        let q = randomTensor([c.nq, dim], seed: UInt64(c.nq * 3 + c.d), spread: 3)
        let k = randomTensor([c.nk, dim], seed: UInt64(c.nk * 5 + c.heads), spread: 3)
        let v = randomTensor([c.nk, dim], seed: UInt64(c.nk * 7 + 1), spread: 1)
        let tiled = Attention.multiHeadTiled(q: q, k: k, v: v, heads: c.heads)
        let blas = Attention.multiHeadBLAS(q: q, k: k, v: v, heads: c.heads)
        #expect(tiled.shape == blas.shape)
        var worst: Float = 0
        for i in 0..<blas.count { worst = max(worst, abs(tiled.data[i] - blas.data[i])) }
        let magnitude = blas.data.map { abs($0) }.max()!
        #expect(worst <= 1e-5 * max(magnitude, 1e-3), "max difference \(worst), output magnitude \(magnitude)")
        #expect(Attention.multiHead(q: q, k: k, v: v, heads: c.heads).data == tiled.data)
    }
}
