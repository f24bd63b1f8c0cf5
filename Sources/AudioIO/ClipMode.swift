#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How to keep separated stems inside [-1, 1] before they are quantised, as demucs's
/// `prevent_clip` does. Separation can overshoot full scale; without this, integer formats
/// would hard-clip and MP3 would wrap.
public enum ClipMode: String, Sendable, CaseIterable, Equatable {
    /// Divide everything by `max(1.01 * peak, 1)`: keeps the shape, lowers the level only when needed (demucs default).
    case rescale
    /// Hard-limit each sample to [-0.99, 0.99].
    case clamp
    /// Soft-saturate with `tanh` (demucs also offers this).
    case tanh
    /// Leave samples alone; the encoder's own [-1, 1] clamp still applies to integer output.
    case none

    /// Applies the mode with demucs's float32 arithmetic.
    public func apply(to buffer: consuming AudioBuffer) -> AudioBuffer {
        let peak = self == .rescale ? buffer.peak : 0
        return apply(to: buffer, peak: peak)
    }

    /// Applies the mode to a block of a longer signal whose largest absolute sample is `peak`
    /// (only `rescale` looks at it): the samples `apply` gives on the whole signal.
    public func apply(to buffer: consuming AudioBuffer, peak: Float) -> AudioBuffer {
        var out = buffer
        switch self {
        case .none:
            return out
        case .rescale:
            // torch: wav / max(1.01 * wav.abs().max(), 1); Python's max keeps the tensor unless 1 > it.
            let scaled = Float(1.01) * peak
            guard !(1 > scaled) else { return out }
            for c in out.channels.indices {
                out.channels[c].withUnsafeMutableBufferPointer { p in
                    for i in p.indices { p[i] /= scaled }
                }
            }
        case .clamp:
            for c in out.channels.indices {
                out.channels[c].withUnsafeMutableBufferPointer { p in
                    for i in p.indices { p[i] = Swift.min(Swift.max(p[i], -0.99), 0.99) }
                }
            }
        case .tanh:
            for c in out.channels.indices {
                out.channels[c].withUnsafeMutableBufferPointer { p in
                    for i in p.indices { p[i] = tanhf(p[i]) }
                }
            }
        }
        return out
    }
}
