/// Vectorised exp for the LSTM gates and LocalState's sigmoid.
///
/// `expf` from libm is a scalar call that costs more than the surrounding arithmetic. This SIMD
/// version uses the classic range reduction plus a short polynomial (within about 2 ulp). The
/// heavy elementwise passes — softmax, GELU, GLU — use the same arithmetic in C
/// (`CDemucsKernels/vector_math.c`), built for AVX-512 and AVX2 as well as the baseline this
/// Swift code is compiled for.
enum VectorMath {
    typealias V = SIMD8<Float>

    /// e^x for 8 lanes.
    ///
    /// Written with plain lane arithmetic and bit casts only: the standard library's generic
    /// SIMD conversions (`rounded`, float-to-int initialisers, `clamped`) are not specialised
    /// and cost more than the whole polynomial.
    @inline(__always)
    static func exp(_ x: V) -> V {
        var v = x.replacing(with: -87.3, where: x .< -87.3)
        v = v.replacing(with: 88.7, where: v .> 88.7)
        // Round v·log2(e) to the nearest integer n by adding 1.5·2^23: n sits in the low bits.
        let magic = V(repeating: 12_582_912)
        let t = v * 1.44269504088896341 + magic
        let n = t - magic
        var r = v - n * 0.693359375
        r = r - n * -2.12194440e-4
        var p = V(repeating: 1.9875691500e-4)
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        let y = p * (r * r) + r + 1
        // 2^n: the integer n is bits(t) - bits(magic); the exponent field is n + 127.
        let bits = (unsafeBitCast(t, to: SIMD8<UInt32>.self) &- 0x4B40_0000 &+ 127) &<< 23
        return y * unsafeBitCast(bits, to: V.self)
    }

    /// Applies `body` to `count` floats at `p` in place, 8 at a time, the tail through a padded vector.
    @inline(__always)
    static func map(_ p: UnsafeMutablePointer<Float>, _ count: Int, _ body: (V) -> V) {
        var i = 0
        while i + 8 <= count {
            let v = UnsafeRawPointer(p + i).loadUnaligned(as: V.self)
            UnsafeMutableRawPointer(p + i).storeBytes(of: body(v), as: V.self)
            i += 8
        }
        if i < count {
            var v = V(repeating: 0)
            for j in 0..<(count - i) { v[j] = p[i + j] }
            let r = body(v)
            for j in 0..<(count - i) { p[i + j] = r[j] }
        }
    }
}
