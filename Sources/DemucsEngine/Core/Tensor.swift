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
        var out = LargeBuffer.uninitialized(count)  // every element is written
        // Walk the output in order; the innermost dimension is copied with its source stride.
        // Ranges of output rows go to the threads, each starting from its own first index.
        let inner = newShape.last ?? 1
        let innerStride = strides.last ?? 1
        let outer = count / max(inner, 1)
        let outerShape = Array(newShape.dropLast()), outerStrides = Array(strides.dropLast())
        data.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                let s = src.baseAddress!, d = dst.baseAddress!
                Parallel.forEach(outer, grain: max(1, 16384 / max(inner, 1))) { rows in
                    var index = [Int](repeating: 0, count: outerShape.count)
                    var rest = rows.lowerBound
                    for axis in stride(from: outerShape.count - 1, through: 0, by: -1) {
                        index[axis] = rest % outerShape[axis]
                        rest /= outerShape[axis]
                    }
                    var o = rows.lowerBound * inner
                    for _ in rows {
                        var base = 0
                        for axis in 0..<index.count { base += index[axis] * outerStrides[axis] }
                        for i in 0..<inner { d[o + i] = s[base + i * innerStride] }
                        o += inner
                        var axis = index.count - 1
                        while axis >= 0 {
                            index[axis] += 1
                            if index[axis] < outerShape[axis] { break }
                            index[axis] = 0
                            axis -= 1
                        }
                    }
                }
            }
        }
        return Tensor(shape: newShape, data: out)
    }
}
