/// A dense, row-major float32 tensor.
///
/// The engine keeps one tensor type on purpose: every layer of Demucs is a handful of matrix
/// multiplies and elementwise passes over contiguous memory, and a plain `[Float]` with a shape
/// is all that needs. Value semantics come from the array (copy on write), so a layer can take a
/// tensor, change it in place and hand it on without aliasing surprises.
public struct Tensor: Sendable, Equatable {
    /// The sizes of the dimensions, outermost first.
    public var shape: [Int]
    /// The elements, row-major (the last dimension varies fastest).
    public var data: [Float]

    /// A tensor of zeros.
    public init(zeros shape: [Int]) {
        self.shape = shape
        self.data = LargeBuffer.zeros(shape.reduce(1, *))
    }

    /// A tensor whose elements the caller writes, every one, before reading any
    /// (see `LargeBuffer.uninitialized`).
    init(uninitialized shape: [Int]) {
        self.shape = shape
        self.data = LargeBuffer.uninitialized(shape.reduce(1, *))
    }

    /// A tensor over existing elements; `data.count` must match the shape.
    public init(shape: [Int], data: [Float]) {
        precondition(shape.reduce(1, *) == data.count, "shape \(shape) does not match \(data.count) elements")
        self.shape = shape
        self.data = data
    }

    /// The number of elements.
    public var count: Int { data.count }

    /// The number of dimensions.
    public var rank: Int { shape.count }

    /// The same elements under another shape with the same element count.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, data: data)
    }

    /// Swaps two dimensions, copying the elements into the new order.
    public func transposed(_ a: Int, _ b: Int) -> Tensor {
        var perm = Array(0..<rank)
        perm.swapAt(a, b)
        return permuted(perm)
    }

    /// Reorders the dimensions: dimension `i` of the result is dimension `perm[i]` of `self`.
    public func permuted(_ perm: [Int]) -> Tensor {
        precondition(perm.count == rank)
        let newShape = perm.map { shape[$0] }
        var srcStrides = [Int](repeating: 1, count: rank)
        for i in stride(from: rank - 2, through: 0, by: -1) { srcStrides[i] = srcStrides[i + 1] * shape[i + 1] }
        let strides = perm.map { srcStrides[$0] }
        var out = LargeBuffer.zeros(count)
        // Walk the output in order; the innermost dimension is copied with its source stride.
        let inner = newShape.last ?? 1
        let innerStride = strides.last ?? 1
        let outer = count / max(inner, 1)
        var index = [Int](repeating: 0, count: max(rank - 1, 0))
        data.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                var o = 0
                for _ in 0..<outer {
                    var base = 0
                    for d in 0..<index.count { base += index[d] * strides[d] }
                    for i in 0..<inner { dst[o + i] = src[base + i * innerStride] }
                    o += inner
                    var d = index.count - 1
                    while d >= 0 {
                        index[d] += 1
                        if index[d] < newShape[d] { break }
                        index[d] = 0
                        d -= 1
                    }
                }
            }
        }
        return Tensor(shape: newShape, data: out)
    }
}
