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

/// `torch.stft` / `torch.istft` with a periodic Hann window of `nfft`, `center=True` with reflect
/// padding, one-sided: `normalized=True` as demucs takes it (`demucs/spec.py`), `normalized=False`
/// as the RoFormers do.
struct STFT: Sendable {
    let nfft: Int
    let hop: Int
    let normalized: Bool
    let window: [Float]
    let fft: FFT

    init(nfft: Int, hop: Int, normalized: Bool = true) {
        self.nfft = nfft
        self.hop = hop
        self.normalized = normalized
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
    ///
    /// Two real rows go through one complex FFT (the first as the real part, the second as the
    /// imaginary part) and are told apart by the transform's symmetry, so a stereo signal costs
    /// one FFT per frame; the frames are shared out over `Parallel`'s threads.
    func forward(_ x: [Float], channels: Int) -> Spectrogram {
        Profile.measure(.stft) {
            let length = x.count / channels
            let frames = length / hop + 1
            let freqs = nfft / 2 + 1
            var spec = Spectrogram(channels: channels, freqs: freqs, frames: frames)
            let scale = normalized ? 1 / Float(nfft).squareRoot() : 1
            let padded: [[Float]] = x.withUnsafeBufferPointer { xs in
                (0..<channels).map { c in
                    STFT.reflectPad(UnsafeBufferPointer(rebasing: xs[(c * length)..<((c + 1) * length)]),
                                    left: nfft / 2, right: nfft / 2)
                }
            }
            let n = nfft, hop = hop, window = window, fft = fft
            spec.re.withUnsafeMutableBufferPointer { sr in
                spec.im.withUnsafeMutableBufferPointer { si in
                    let specRe = sr.baseAddress!, specIm = si.baseAddress!
                    Parallel.forEach(frames, grain: 8) { frameRange in
                        var re = [Float](repeating: 0, count: n), im = re
                        re.withUnsafeMutableBufferPointer { rp in
                            im.withUnsafeMutableBufferPointer { ip in
                                let re = rp.baseAddress!, im = ip.baseAddress!
                                for t in frameRange {
                                    for c in stride(from: 0, to: channels, by: 2) {
                                        let first = padded[c], second = c + 1 < channels ? padded[c + 1] : nil
                                        for k in 0..<n {
                                            re[k] = first[t * hop + k] * window[k]
                                            im[k] = second.map { $0[t * hop + k] * window[k] } ?? 0
                                        }
                                        fft.transform(re: re, im: im)
                                        // Z = X1 + i·X2 with X1, X2 Hermitian: X1[f] = (Z[f] + conj Z[-f]) / 2,
                                        // X2[f] = (Z[f] - conj Z[-f]) / 2i.
                                        let half = scale / 2
                                        for f in 0..<freqs {
                                            let g = (n - f) & (n - 1)
                                            let o = (c * freqs + f) * frames + t
                                            specRe[o] = (re[f] + re[g]) * half
                                            specIm[o] = (im[f] - im[g]) * half
                                            guard second != nil else { continue }
                                            let o2 = o + freqs * frames
                                            specRe[o2] = (im[f] + im[g]) * half
                                            specIm[o2] = (re[g] - re[f]) * half
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            return spec
        }
    }

    /// The inverse of `forward`, trimmed or zero-extended to `length` samples per channel.
    ///
    /// As `torch.istft` (a one-sided inverse), the imaginary parts of the zero and Nyquist bins
    /// play no part. Two channels share each complex inverse FFT (the first comes out as the real
    /// part, the second as the imaginary part), and the channel pairs are shared out over
    /// `Parallel`'s threads.
    func inverse(_ spec: Spectrogram, length: Int) -> [Float] {
        Profile.measure(.stft) {
            let frames = spec.frames, freqs = spec.freqs, channels = spec.channels
            precondition(freqs == nfft / 2 + 1)
            let n = nfft, hop = hop, window = window, fft = fft
            let total = n + hop * (frames - 1)
            var out = LargeBuffer.zeros(channels * length)
            var envelope = LargeBuffer.zeros(total)
            for t in 0..<frames {
                for k in 0..<n { envelope[t * hop + k] += window[k] * window[k] }
            }
            // The inverse FFT divides by nfft; normalized=True also undoes the forward 1/sqrt(nfft).
            let scale = normalized ? Float(n).squareRoot() / Float(n) : 1 / Float(n)
            let start = n / 2
            out.withUnsafeMutableBufferPointer { op in
                let outBase = op.baseAddress!
                Parallel.forEach((channels + 1) / 2) { pairs in
                    var re = [Float](repeating: 0, count: n), im = re
                    var first = LargeBuffer.zeros(total), second = first
                    for pair in pairs {
                        let c = 2 * pair, paired = c + 1 < channels
                        for i in 0..<total { first[i] = 0; second[i] = 0 }
                        for t in 0..<frames {
                            for f in 0..<freqs {
                                let o = (c * freqs + f) * frames + t
                                let edge = f == 0 || f == n / 2
                                let ar = spec.re[o], ai: Float = edge ? 0 : spec.im[o]
                                var br: Float = 0, bi: Float = 0
                                if paired {
                                    br = spec.re[o + freqs * frames]
                                    bi = edge ? 0 : spec.im[o + freqs * frames]
                                }
                                // Z = X1 + i·X2 over the whole circle, X[-f] = conj X[f].
                                re[f] = ar - bi
                                im[f] = ai + br
                                if !edge {
                                    re[n - f] = ar + bi
                                    im[n - f] = br - ai
                                }
                            }
                            re.withUnsafeMutableBufferPointer { r in
                                im.withUnsafeMutableBufferPointer { i in
                                    fft.transform(re: r.baseAddress!, im: i.baseAddress!, inverse: true)
                                }
                            }
                            for k in 0..<n {
                                first[t * hop + k] += re[k] * scale * window[k]
                                second[t * hop + k] += im[k] * scale * window[k]
                            }
                        }
                        func normalise(_ signal: [Float], into row: Int) {
                            for i in 0..<length {
                                let p = start + i
                                guard p < total else { break }
                                let e = envelope[p]
                                outBase[row * length + i] = e > 1e-11 ? signal[p] / e : 0
                            }
                        }
                        normalise(first, into: c)
                        if paired { normalise(second, into: c + 1) }
                    }
                }
            }
            return out
        }
    }
}
