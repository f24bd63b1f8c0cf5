import Julius

/// Band-limited sample-rate conversion, a faithful port of julius 0.2.8 `resample_frac`
/// (Julius O. Smith's windowed-sinc method), which demucs's `convert_audio` uses.
///
/// Matching julius, rather than using any good resampler, matters because the separation model
/// was trained and is evaluated on julius output: the Swift engine should feed it bit-for-bit
/// comparable input (max abs difference ~1e-7 against PyTorch on CPU).
///
/// The rates are reduced by their GCD to `old`/`new`; one FIR kernel is precomputed per output
/// phase (`new` of them), and output frame `j*new + i` is the dot product of kernel `i` with
/// the replicate-padded input starting at `j*old`. Build one `Resampler` per rate pair and reuse
/// it: the kernels are the expensive part for awkward ratios.
public struct Resampler: Sendable {
    /// Input sample rate, as given.
    public let inputRate: Int
    /// Output sample rate, as given.
    public let outputRate: Int
    /// Number of sinc zero crossings kept on each side (julius default 24).
    public let zeros: Int
    /// Low-pass cut-off as a fraction of the lower Nyquist frequency (julius default 0.945).
    public let rolloff: Double

    /// Input rate divided by gcd(input, output).
    let old: Int
    /// Output rate divided by gcd(input, output).
    let new: Int
    /// Kernel half-width in input samples beyond the `old` span (julius `_width`).
    let width: Int
    /// `new` kernels of `kernelSize` taps each, flattened row-major.
    let kernels: [Float]

    var kernelSize: Int { 2 * width + old }

    /// Refuse kernel tables beyond this many taps (256 MiB of Float); julius would happily try to
    /// allocate gigabytes for coprime rates like 44100 -> 48001 and we prefer a clear error.
    static let maxKernelTaps = 1 << 26

    /// Prepares a resampler from `inputRate` to `outputRate`.
    /// - Throws: `AudioIOError` (`.invalidArgument`) for non-positive rates or a rate ratio whose
    ///   reduced fraction is too large to precompute kernels for.
    public init(from inputRate: Int, to outputRate: Int, zeros: Int = 24, rolloff: Double = 0.945) throws {
        guard inputRate > 0, outputRate > 0 else {
            throw AudioIOError(.invalidArgument, .convert, path: nil,
                               reason: "sample rates must be positive, got \(inputRate) -> \(outputRate)")
        }
        guard zeros > 0, rolloff > 0, rolloff <= 1 else {
            throw AudioIOError(.invalidArgument, .convert, path: nil,
                               reason: "resampler needs zeros > 0 and 0 < rolloff <= 1, got zeros=\(zeros) rolloff=\(rolloff)")
        }
        self.inputRate = inputRate
        self.outputRate = outputRate
        self.zeros = zeros
        self.rolloff = rolloff
        let g = JuliusSinc.geometry(from: inputRate, to: outputRate, zeros: zeros, rolloff: rolloff)
        old = g.old
        new = g.new
        width = g.width
        if old == new {
            kernels = []
            return
        }
        let size = 2 * width + old
        guard size.multipliedReportingOverflow(by: new).partialValue <= Self.maxKernelTaps,
              !size.multipliedReportingOverflow(by: new).overflow else {
            throw AudioIOError(.invalidArgument, .convert, path: nil,
                               reason: "resampling \(inputRate) Hz -> \(outputRate) Hz reduces to \(old):\(new), too fine a ratio to precompute kernels for")
        }
        kernels = JuliusSinc.kernels(old: old, new: new, width: width, zeros: zeros, sr: g.sr)
    }

    /// Whether this resampler returns its input untouched (equal rates after GCD reduction).
    public var isIdentity: Bool { old == new }

    /// Number of output frames for `inputFrames` input frames: floor(new * length / old), as julius.
    public func outputLength(forInputLength inputFrames: Int) -> Int {
        isIdentity ? inputFrames : new * inputFrames / old
    }

    /// Resamples one channel.
    public func resample(_ x: [Float]) -> [Float] {
        if isIdentity || x.isEmpty { return isIdentity ? x : [] }
        let length = x.count
        let outLength = outputLength(forInputLength: length)
        let size = kernelSize
        // Replicate padding: `width` copies of the first sample on the left, `width + old` copies
        // of the last on the right, exactly like F.pad(..., mode='replicate').
        var padded = [Float]()
        padded.reserveCapacity(length + 2 * width + old)
        padded.append(contentsOf: repeatElement(x[0], count: width))
        padded.append(contentsOf: x)
        padded.append(contentsOf: repeatElement(x[length - 1], count: width + old))

        let new = self.new, old = self.old
        return [Float](unsafeUninitializedCapacity: outLength) { out, count in
            padded.withUnsafeBufferPointer { xp in
                kernels.withUnsafeBufferPointer { kp in
                    var j = 0
                    var o = 0
                    while o < outLength {
                        let window = xp.baseAddress! + j * old
                        for i in 0..<new where o + i < outLength {
                            out[o + i] = JuliusSinc.dot(kp.baseAddress! + i * size, window, size)
                        }
                        o += new
                        j += 1
                    }
                }
            }
            count = outLength
        }
    }

    /// Resamples every channel of `buffer`, which must be at `inputRate`.
    public func resample(_ buffer: AudioBuffer) throws -> AudioBuffer {
        guard buffer.sampleRate == inputRate else {
            throw AudioIOError(.invalidArgument, .convert, path: nil,
                               reason: "resampler expects \(inputRate) Hz input, got \(buffer.sampleRate) Hz")
        }
        return AudioBuffer(sampleRate: outputRate, channels: buffer.channels.map { resample($0) })
    }
}

extension AudioBuffer {
    /// Returns the buffer resampled to `rate` with julius's algorithm (unchanged if already there).
    public func resampled(to rate: Int) throws -> AudioBuffer {
        if rate == sampleRate { return self }
        return try Resampler(from: sampleRate, to: rate).resample(self)
    }
}

extension Resampler {
    /// Resamples audio that arrives in blocks, giving the very samples `resample` gives on the
    /// whole signal: the same replicate padding at both ends, the same kernels on the same
    /// windows. It holds one kernel's span of input per channel between blocks.
    public struct Stream: Sendable {
        public let resampler: Resampler
        public let channels: Int
        /// Per channel: the padded input from `consumed` on.
        private var pending: [[Float]]
        /// Padded-input position of `pending[c][0]`.
        private var consumed = 0
        /// The next output group (outputs `group * new ..< (group + 1) * new`).
        private var group = 0
        /// Input frames seen.
        private var inputFrames = 0
        private var last: [Float]

        public init(_ resampler: Resampler, channels: Int) {
            self.resampler = resampler
            self.channels = channels
            pending = Array(repeating: [], count: channels)
            last = Array(repeating: 0, count: channels)
        }

        /// Takes the next block (planar, `channels` rows) and returns the output it completes.
        public mutating func push(_ block: [[Float]]) -> [[Float]] {
            if resampler.isIdentity { return block }
            let n = block.first?.count ?? 0
            guard n > 0 else { return Array(repeating: [], count: channels) }
            for c in 0..<channels {
                if inputFrames == 0 { pending[c].append(contentsOf: repeatElement(block[c][0], count: resampler.width)) }
                pending[c].append(contentsOf: block[c])
                last[c] = block[c][n - 1]
            }
            inputFrames += n
            return drain(limit: nil)
        }

        /// Ends the signal (right padding) and returns the rest of the output.
        public mutating func finish() -> [[Float]] {
            if resampler.isIdentity || inputFrames == 0 { return Array(repeating: [], count: channels) }
            for c in 0..<channels {
                pending[c].append(contentsOf: repeatElement(last[c], count: resampler.width + resampler.old))
            }
            return drain(limit: resampler.outputLength(forInputLength: inputFrames))
        }

        /// Every output group whose window is in `pending`, up to `limit` outputs in all.
        private mutating func drain(limit: Int?) -> [[Float]] {
            let old = resampler.old, new = resampler.new, size = resampler.kernelSize
            let available = consumed + pending[0].count
            var groups = 0
            while (group + groups) * old + size <= available { groups += 1 }
            var out = [[Float]](repeating: [], count: channels)
            guard groups > 0 else { return out }
            for c in 0..<channels {
                var row = [Float]()
                row.reserveCapacity(groups * new)
                pending[c].withUnsafeBufferPointer { xp in
                    resampler.kernels.withUnsafeBufferPointer { kp in
                        for g in 0..<groups {
                            let window = xp.baseAddress! + (group + g) * old - consumed
                            for i in 0..<new {
                                let o = (group + g) * new + i
                                if let limit, o >= limit { break }
                                row.append(JuliusSinc.dot(kp.baseAddress! + i * size, window, size))
                            }
                        }
                    }
                }
                out[c] = row
            }
            group += groups
            let keep = group * old - consumed
            for c in 0..<channels { pending[c].removeFirst(keep) }
            consumed = group * old
            return out
        }
    }
}
