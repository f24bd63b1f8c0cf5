/// The spectrogram framing of the hybrid models (`HTDemucs._spec` / `_ispec`): the signal is
/// reflect-padded so that the number of frames is exactly `ceil(length / hop)`, and the STFT's
/// last (Nyquist) bin and two frames on each side are dropped, so the frequency and waveform
/// branches line up stride for stride.
struct HybridSpectrogram: Sendable {
    let stft: STFT
    var hop: Int { stft.hop }

    init(nfft: Int) {
        stft = STFT(nfft: nfft, hop: nfft / 4)
    }

    /// `[channels, length]` → spectrogram `[channels, nfft/2, ceil(length/hop)]`.
    func spec(_ x: Tensor) -> Spectrogram {
        let channels = x.shape[0], length = x.shape[1]
        let le = (length + hop - 1) / hop
        let pad = hop / 2 * 3
        var padded: [Float] = []
        x.data.withUnsafeBufferPointer { xs in
            for c in 0..<channels {
                padded += STFT.reflectPad(UnsafeBufferPointer(rebasing: xs[(c * length)..<((c + 1) * length)]),
                                          left: pad, right: pad + le * hop - length)
            }
        }
        let full = stft.forward(padded, channels: channels)
        let freqs = full.freqs - 1
        var out = Spectrogram(channels: channels, freqs: freqs, frames: le)
        for c in 0..<channels {
            for f in 0..<freqs {
                let src = (c * full.freqs + f) * full.frames + 2
                let dst = (c * freqs + f) * le
                out.re.replaceSubrange(dst..<(dst + le), with: full.re[src..<(src + le)])
                out.im.replaceSubrange(dst..<(dst + le), with: full.im[src..<(src + le)])
            }
        }
        return out
    }

    /// Spectrogram `[channels, nfft/2, frames]` → `[channels, length]`.
    func ispec(_ z: Spectrogram, length: Int) -> [Float] {
        let freqs = z.freqs + 1, frames = z.frames + 4
        var full = Spectrogram(channels: z.channels, freqs: freqs, frames: frames)
        for c in 0..<z.channels {
            for f in 0..<z.freqs {
                let src = (c * z.freqs + f) * z.frames
                let dst = (c * freqs + f) * frames + 2
                full.re.replaceSubrange(dst..<(dst + z.frames), with: z.re[src..<(src + z.frames)])
                full.im.replaceSubrange(dst..<(dst + z.frames), with: z.im[src..<(src + z.frames)])
            }
        }
        return inverse(full, length: length)
    }

    /// `ispec` of the decoder's output `x` — `[2·channels, nfft/2, frames]`, complex as channels
    /// and normalised by `stats` — de-normalised straight into the padded spectrogram the inverse
    /// STFT takes. `x` is released before the transform, so the model's two largest tensors of
    /// the segment's end (44 MB each for htdemucs) are never alive at the same time, and no
    /// intermediate unpadded spectrogram is made. Same values as `HybridCore.spectrogram` + `ispec`.
    func ispec(complexChannels x: consuming Tensor, channels: Int, freqs fq: Int, frames: Int,
               stats: HybridStats, length: Int) -> [Float] {
        precondition(x.count == 2 * channels * fq * frames)
        let freqs = fq + 1, padded = frames + 4
        var full = Spectrogram(channels: channels, freqs: freqs, frames: padded)
        let mean = stats.mean, std = stats.std
        x.data.withUnsafeBufferPointer { xs in
            full.re.withUnsafeMutableBufferPointer { re in
                full.im.withUnsafeMutableBufferPointer { im in
                    let xBase = xs.baseAddress!, reBase = re.baseAddress!, imBase = im.baseAddress!
                    Parallel.forEach(channels * fq, grain: 16) { rows in
                        for row in rows {
                            let c = row / fq, f = row % fq
                            let real = xBase + ((2 * c) * fq + f) * frames
                            let imag = xBase + ((2 * c + 1) * fq + f) * frames
                            let dst = (c * freqs + f) * padded + 2
                            for t in 0..<frames {
                                reBase[dst + t] = real[t] * std + mean
                                imBase[dst + t] = imag[t] * std + mean
                            }
                        }
                    }
                }
            }
        }
        _ = consume x
        return inverse(full, length: length)
    }

    /// The inverse STFT of a padded spectrogram (`nfft/2 + 1` bins, two extra frames each side),
    /// cropped to `[channels, length]`.
    private func inverse(_ full: Spectrogram, length: Int) -> [Float] {
        let pad = hop / 2 * 3
        let le = hop * ((length + hop - 1) / hop) + 2 * pad
        let signal = stft.inverse(full, length: le)
        var out = LargeBuffer.zeros(full.channels * length)
        for c in 0..<full.channels {
            out.replaceSubrange((c * length)..<((c + 1) * length),
                                with: signal[(c * le + pad)..<(c * le + pad + length)])
        }
        return out
    }
}
