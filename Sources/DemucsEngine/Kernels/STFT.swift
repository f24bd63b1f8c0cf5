import Foundation

/// A complex spectrogram, `[channels, freqs, frames]`, as separate real and imaginary planes.
struct Spectrogram: Sendable {
    var channels: Int
    var freqs: Int
    var frames: Int
    var re: [Float]
    var im: [Float]

    init(channels: Int, freqs: Int, frames: Int) {
        self.channels = channels
        self.freqs = freqs
        self.frames = frames
        re = LargeBuffer.zeros(channels * freqs * frames)
        im = re
    }
}

/// `torch.stft` / `torch.istft` with the settings demucs uses (`demucs/spec.py`): a periodic Hann
/// window of `nfft`, `center=True` with reflect padding, one-sided, `normalized=True`.
struct STFT: Sendable {
    let nfft: Int
    let hop: Int
    let window: [Float]
    let fft: FFT

    init(nfft: Int, hop: Int) {
        self.nfft = nfft
        self.hop = hop
        self.fft = FFT(size: nfft)
        window = (0..<nfft).map { n in Float(0.5 - 0.5 * cos(2.0 * Double.pi * Double(n) / Double(nfft))) }
    }

    /// Reflect padding as `F.pad(mode="reflect")`, with demucs's `pad1d` rule for signals shorter
    /// than the padding (zeros are added first so that the reflection is possible).
    static func reflectPad(_ x: UnsafeBufferPointer<Float>, left: Int, right: Int) -> [Float] {
        var src = Array(x)
        var left = left, right = right
        let maxPad = max(left, right)
        if src.count <= maxPad {
            let extra = maxPad - src.count + 1
            let extraRight = min(right, extra)
            let extraLeft = extra - extraRight
            src = LargeBuffer.zeros(extraLeft) + src + LargeBuffer.zeros(extraRight)
            left -= extraLeft
            right -= extraRight
        }
        let n = src.count
        var out = LargeBuffer.zeros(n + left + right)
        for j in 0..<left { out[j] = src[left - j] }
        for j in 0..<n { out[left + j] = src[j] }
        for j in 0..<right { out[left + n + j] = src[n - 2 - j] }
        return out
    }

    /// The spectrogram of each row of `[channels, length]`.
    func forward(_ x: [Float], channels: Int) -> Spectrogram {
        Profile.measure(.stft) {
            let length = x.count / channels
            let frames = length / hop + 1
            let freqs = nfft / 2 + 1
            var spec = Spectrogram(channels: channels, freqs: freqs, frames: frames)
            let scale = 1 / Float(nfft).squareRoot()
            var re = LargeBuffer.zeros(nfft)
            var im = LargeBuffer.zeros(nfft)
            x.withUnsafeBufferPointer { xs in
                for c in 0..<channels {
                    let padded = STFT.reflectPad(
                        UnsafeBufferPointer(rebasing: xs[(c * length)..<((c + 1) * length)]),
                        left: nfft / 2, right: nfft / 2)
                    for t in 0..<frames {
                        for n in 0..<nfft {
                            re[n] = padded[t * hop + n] * window[n]
                            im[n] = 0
                        }
                        re.withUnsafeMutableBufferPointer { r in
                            im.withUnsafeMutableBufferPointer { i in
                                fft.transform(re: r.baseAddress!, im: i.baseAddress!)
                            }
                        }
                        for f in 0..<freqs {
                            let o = (c * freqs + f) * frames + t
                            spec.re[o] = re[f] * scale
                            spec.im[o] = im[f] * scale
                        }
                    }
                }
            }
            return spec
        }
    }

    /// The inverse of `forward`, trimmed or zero-extended to `length` samples per channel.
    func inverse(_ spec: Spectrogram, length: Int) -> [Float] {
        Profile.measure(.stft) {
            let frames = spec.frames, freqs = spec.freqs
            precondition(freqs == nfft / 2 + 1)
            let total = nfft + hop * (frames - 1)
            var out = LargeBuffer.zeros(spec.channels * length)
            var envelope = LargeBuffer.zeros(total)
            for t in 0..<frames {
                for n in 0..<nfft { envelope[t * hop + n] += window[n] * window[n] }
            }
            // normalized=True undoes the forward 1/sqrt(nfft); the inverse FFT itself divides by nfft.
            let scale = Float(nfft).squareRoot() / Float(nfft)
            var re = LargeBuffer.zeros(nfft)
            var im = LargeBuffer.zeros(nfft)
            var signal = LargeBuffer.zeros(total)
            let start = nfft / 2
            for c in 0..<spec.channels {
                for i in 0..<total { signal[i] = 0 }
                for t in 0..<frames {
                    for f in 0..<freqs {
                        let o = (c * freqs + f) * frames + t
                        re[f] = spec.re[o]
                        im[f] = spec.im[o]
                    }
                    for f in 1..<(nfft / 2) {
                        re[nfft - f] = re[f]
                        im[nfft - f] = -im[f]
                    }
                    re.withUnsafeMutableBufferPointer { r in
                        im.withUnsafeMutableBufferPointer { i in
                            fft.transform(re: r.baseAddress!, im: i.baseAddress!, inverse: true)
                        }
                    }
                    for n in 0..<nfft { signal[t * hop + n] += re[n] * scale * window[n] }
                }
                for i in 0..<length {
                    let p = start + i
                    guard p < total else { break }
                    let e = envelope[p]
                    out[c * length + i] = e > 1e-11 ? signal[p] / e : 0
                }
            }
            return out
        }
    }
}
