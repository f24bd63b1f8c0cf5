@testable import DemucsEngine

/// A tensor of `shape` filled with values spread evenly over `[-spread, spread]` from a fixed
/// seed, for the kernel tests that compare two paths on the same random input.
func randomTensor(_ shape: [Int], seed: UInt64, spread: Float = 1) -> Tensor {
    var rng = SplitMix64(seed: seed)
    let count = shape.reduce(1, *)
    return Tensor(shape: shape, data: (0..<count).map { _ in
        spread * (Float(rng.next() % 2_000_001) / 1_000_000 - 1)
    })
}
