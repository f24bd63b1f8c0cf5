/// Float-to-integer sample conversion with demucs's exact semantics.
///
/// demucs computes `(clamp(x, -1, 1) * (2**15 - 1)).astype(int16)` in float32: scale by 32767
/// (not 32768, so +1.0 and -1.0 are symmetric) and truncate toward zero (not round). Matching it
/// keeps our 16/24-bit stems byte-identical to the Python tool's.
public enum PCMQuantizer {
    /// Full-scale value for 16-bit output.
    public static let int16Scale: Float = 32767
    /// Full-scale value for 24-bit output.
    public static let int24Scale: Float = 8388607

    /// `x` clamped to [-1, 1]; NaN becomes 0 so a bad sample cannot trap the integer conversion.
    @inline(__always)
    public static func clampUnit(_ x: Float) -> Float {
        if x.isNaN { return 0 }
        return min(max(x, -1), 1)
    }

    /// 16-bit sample: `Int16(clamp(x) * 32767)`, truncated toward zero.
    @inline(__always)
    public static func int16(_ x: Float) -> Int16 {
        Int16(clampUnit(x) * int16Scale)
    }

    /// 24-bit sample value in [-8388607, 8388607]: `Int32(clamp(x) * 8388607)`, truncated.
    @inline(__always)
    public static func int24(_ x: Float) -> Int32 {
        Int32(clampUnit(x) * int24Scale)
    }

    /// Full-range 32-bit sample (not a demucs output format; used to produce 32-bit test input).
    static func int32(_ x: Float) -> Int32 {
        let d = Double(clampUnit(x)) * 2147483647
        return Int32(d.rounded(.towardZero))
    }
}
