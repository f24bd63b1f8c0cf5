extension AudioBuffer {
    /// Returns the buffer with `count` channels, following demucs's `convert_audio_channels`
    /// exactly, so a Swift run feeds the model the very same input as the Python reference:
    ///
    /// - same count: unchanged;
    /// - `count == 1`: mean over all channels (no +3 dB "equal power" scaling, unlike ffmpeg);
    /// - mono source: the single channel is duplicated;
    /// - more source channels than requested: the first `count` channels are kept;
    /// - otherwise (e.g. stereo to 3 channels) there is no sensible rule, so it throws.
    public func convertingChannels(to count: Int) throws -> AudioBuffer {
        guard count > 0 else {
            throw AudioIOError(.invalidArgument, .convert, path: nil,
                               reason: "target channel count must be positive, got \(count)")
        }
        let source = channelCount
        guard source > 0 else {
            throw AudioIOError(.unsupportedChannelConversion, .convert, path: nil,
                               reason: "the audio has no channels")
        }
        if source == count { return self }
        if count == 1 {
            return AudioBuffer(sampleRate: sampleRate, channels: [Self.mean(of: channels, frames: frameCount)])
        }
        if source == 1 {
            return AudioBuffer(sampleRate: sampleRate, channels: Array(repeating: channels[0], count: count))
        }
        if source > count {
            return AudioBuffer(sampleRate: sampleRate, channels: Array(channels.prefix(count)))
        }
        throw AudioIOError(.unsupportedChannelConversion, .convert, path: nil,
                           reason: "the audio has \(source) channels, fewer than the \(count) requested, and is not mono")
    }

    /// Per-frame mean in Float32, summing channels in order then dividing, as `torch.mean` does
    /// for a short reduction axis.
    private static func mean(of channels: [[Float]], frames: Int) -> [Float] {
        var sum = channels[0]
        for channel in channels.dropFirst() {
            for f in 0..<frames { sum[f] += channel[f] }
        }
        let n = Float(channels.count)
        for f in 0..<frames { sum[f] /= n }
        return sum
    }
}
