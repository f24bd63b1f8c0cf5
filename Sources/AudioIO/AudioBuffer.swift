/// Decoded audio held in memory as planar 32-bit float samples.
///
/// Planar (one array per channel) is what the separation engine consumes and what demucs's
/// `[channels, time]` tensors look like, so no caller has to deinterleave. It is a value type so
/// buffers can cross task boundaries in the daemon without sharing mutable state.
public struct AudioBuffer: Sendable, Equatable {
    /// Frames per second.
    public var sampleRate: Int
    /// One array of samples per channel; all arrays are expected to have the same length.
    public var channels: [[Float]]

    public init(sampleRate: Int, channels: [[Float]]) {
        self.sampleRate = sampleRate
        self.channels = channels
    }

    /// A silent buffer, handy for tests and for pre-allocating output.
    public init(sampleRate: Int, channelCount: Int, frameCount: Int) {
        self.sampleRate = sampleRate
        self.channels = Array(repeating: Array(repeating: 0, count: frameCount), count: channelCount)
    }

    /// Builds a planar buffer from frame-interleaved samples (L R L R ...), the layout codecs use.
    public init(interleaved samples: [Float], channelCount: Int, sampleRate: Int) {
        precondition(channelCount > 0, "channelCount must be positive")
        let frames = samples.count / channelCount
        var planar = [[Float]]()
        planar.reserveCapacity(channelCount)
        samples.withUnsafeBufferPointer { src in
            for c in 0..<channelCount {
                planar.append([Float](unsafeUninitializedCapacity: frames) { dst, count in
                    for f in 0..<frames { dst[f] = src[f * channelCount + c] }
                    count = frames
                })
            }
        }
        self.init(sampleRate: sampleRate, channels: planar)
    }

    /// Number of frames (samples per channel); 0 for a buffer without channels.
    public var frameCount: Int { channels.first?.count ?? 0 }

    /// Number of channels.
    public var channelCount: Int { channels.count }

    /// Duration in seconds, for logs and progress reporting.
    public var duration: Double { sampleRate > 0 ? Double(frameCount) / Double(sampleRate) : 0 }

    /// Samples in frame-interleaved order, the layout codecs want.
    public func interleaved() -> [Float] {
        let channelCount = self.channelCount
        let frames = frameCount
        var out = [Float](repeating: 0, count: frames * channelCount)
        out.withUnsafeMutableBufferPointer { dst in
            for (c, channel) in channels.enumerated() {
                channel.withUnsafeBufferPointer { src in
                    for f in 0..<min(frames, src.count) { dst[f * channelCount + c] = src[f] }
                }
            }
        }
        return out
    }

    /// Largest absolute sample value over all channels (0 for an empty buffer).
    public var peak: Float {
        var m: Float = 0
        for channel in channels {
            for x in channel { m = max(m, abs(x)) }
        }
        return m
    }

    /// Whether the buffer is well formed: at least one channel, equal channel lengths, a positive rate.
    /// Encoders check this so malformed input becomes an error instead of a crash or a skewed file.
    var validationProblem: String? {
        if sampleRate <= 0 { return "sample rate must be positive, got \(sampleRate)" }
        if channels.isEmpty { return "buffer has no channels" }
        let n = frameCount
        if channels.contains(where: { $0.count != n }) {
            return "channels have different lengths (\(channels.map(\.count)))"
        }
        return nil
    }
}
