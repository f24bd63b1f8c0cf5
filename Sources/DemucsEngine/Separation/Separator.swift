import Foundation

/// Separates whole tracks with a bag of models, following demucs's `Separator.separate_tensor`
/// and `apply_model` step for step: normalise by the mono mix's mean and standard deviation,
/// then for each model of the bag average random time shifts, split into overlapping segments
/// cross-faded with triangular weights, pad each segment with its neighbouring audio to the
/// length the model wants, and finally weight the models per source.
public struct Separator: Sendable {
    public let bag: ModelBag
    public let options: SeparationOptions

    public init(bag: ModelBag, options: SeparationOptions = SeparationOptions()) {
        self.bag = bag
        self.options = options
    }

    /// Separates `[channels, length]` audio at the model's sample rate into `[sources, channels, length]`.
    /// - Parameters:
    ///   - progress: called after each segment pass (from the calling thread, or a worker with `jobs > 1`).
    ///   - isCancelled: polled before each segment; returning true stops with `EngineError(.cancelled)`.
    public func separate(
        _ wav: Tensor,
        progress: (@Sendable (SeparationProgress) -> Void)? = nil,
        isCancelled: (@Sendable () -> Bool)? = nil
    ) throws -> Tensor {
        let channels = wav.shape[0], length = wav.shape[1]
        guard channels == bag.audioChannels else {
            throw EngineError(.invalidArgument, "the model takes \(bag.audioChannels) channels, the audio has \(channels)")
        }
        guard length > 0 else { throw EngineError(.invalidArgument, "the audio is empty") }
        // Normalise by the mono mix.
        var mono = [Float](repeating: 0, count: length)
        for c in 0..<channels { for i in 0..<length { mono[i] += wav.data[c * length + i] } }
        for i in 0..<length { mono[i] /= Float(channels) }
        let (mean, stdRaw) = mono.withUnsafeBufferPointer { Normalization.meanStd($0) }
        let std = stdRaw + 1e-8
        var mix = wav
        for i in 0..<mix.count { mix.data[i] = (mix.data[i] - mean) / std }

        // Threads go to independent segments first; the BLAS gets what is left per segment, so
        // no core spins waiting inside a small matrix multiply.
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let parallelSegments = options.split ? min(workerCount, max(1, totalPasses(length: length) / max(bag.models.count * max(options.shifts, 1), 1))) : 1
        let previousThreads = GEMM.threads
        GEMM.threads = max(1, cores / max(parallelSegments, 1))
        defer { GEMM.threads = previousThreads }
        let counter = ProgressCounter(total: totalPasses(length: length), callback: progress)
        var rng = SplitMix64(seed: options.seed ?? UInt64.random(in: .min ... .max))
        var estimates = Tensor(zeros: [bag.sources.count, channels, length])
        var totals = [Double](repeating: 0, count: bag.sources.count)
        for (model, weights) in zip(bag.models, bag.weights) {
            let out = try applyShifts(model, AudioChunk(mix), rng: &rng, counter: counter, isCancelled: isCancelled)
            let plane = channels * length
            for (k, w) in weights.enumerated() {
                let wf = Float(w)
                for i in 0..<plane { estimates.data[k * plane + i] += out.data[k * plane + i] * wf }
                totals[k] += w
            }
        }
        let plane = channels * length
        for k in 0..<bag.sources.count {
            let t = Float(totals[k])
            for i in 0..<plane {
                estimates.data[k * plane + i] = estimates.data[k * plane + i] / t * std + mean
            }
        }
        return estimates
    }

    private func segmentLength(_ model: any SeparationModel) -> Int {
        (options.segment ?? model.segment).timesTruncated(model.samplerate)
    }

    /// The number of model passes, for progress.
    func totalPasses(length: Int) -> Int {
        bag.models.reduce(0) { sum, model in
            let shifted = options.shifts > 0 ? length + Int(0.5 * Double(model.samplerate)) : length
            let perShift: Int
            if options.split {
                let seg = segmentLength(model)
                let stride = max(1, Int((1 - options.overlap) * Double(seg)))
                perShift = (shifted + stride - 1) / stride
            } else {
                perShift = 1
            }
            return sum + perShift * max(options.shifts, 1)
        }
    }

    private func applyShifts(_ model: any SeparationModel, _ mix: AudioChunk, rng: inout SplitMix64,
                             counter: ProgressCounter, isCancelled: (@Sendable () -> Bool)?) throws -> Tensor {
        guard options.shifts > 0 else {
            return try applySplit(model, mix, counter: counter, isCancelled: isCancelled)
        }
        let length = mix.length
        let maxShift = Int(0.5 * Double(model.samplerate))
        let padded = mix.padded(length + 2 * maxShift)
        var out = Tensor(zeros: [model.sources.count, mix.channels, length])
        for _ in 0..<options.shifts {
            let offset = Int(rng.next() % UInt64(maxShift + 1))
            let shifted = AudioChunk(padded, offset: offset, length: length + maxShift - offset)
            let res = try applySplit(model, shifted, counter: counter, isCancelled: isCancelled)
            let resLength = res.shape[2]
            let skip = maxShift - offset
            for row in 0..<(model.sources.count * mix.channels) {
                for i in 0..<length { out.data[row * length + i] += res.data[row * resLength + skip + i] }
            }
        }
        let n = Float(options.shifts)
        for i in 0..<out.count { out.data[i] /= n }
        return out
    }

    private func applySplit(_ model: any SeparationModel, _ mix: AudioChunk,
                            counter: ProgressCounter, isCancelled: (@Sendable () -> Bool)?) throws -> Tensor {
        guard options.split else {
            return try applyOne(model, mix, counter: counter, isCancelled: isCancelled)
        }
        let length = mix.length, channels = mix.channels, sources = model.sources.count
        let segment = segmentLength(model)
        guard segment > 0 else { throw EngineError(.invalidArgument, "the segment length must be positive") }
        let stride = Int((1 - options.overlap) * Double(segment))
        guard stride > 0 else { throw EngineError(.invalidArgument, "overlap \(options.overlap) leaves no stride between segments") }
        // Triangular cross-fade weights, computed as demucs does in float32.
        let half = segment / 2
        var weight = [Float](repeating: 0, count: segment)
        for i in 0..<half { weight[i] = Float(i + 1) }
        for i in half..<segment { weight[i] = Float(segment - i) }
        let peak = weight.max() ?? 1
        let power = Float(options.transitionPower)
        for i in 0..<segment {
            let w = weight[i] / peak
            weight[i] = power == 1 ? w : powf(w, power)
        }
        let offsets = Array(Swift.stride(from: 0, to: length, by: stride))
        var out = Tensor(zeros: [sources, channels, length])
        var sumWeight = [Float](repeating: 0, count: length)
        // Segments are independent: run `workers` at a time and fold each batch in as it ends,
        // so only one batch of segment outputs is alive at once.
        let workers = workerCount
        var start = 0
        while start < offsets.count {
            let batch = Array(offsets[start..<min(offsets.count, start + workers)])
            let outputs = try mapConcurrently(batch) { offset in
                try applyOne(model, mix.sub(offset: offset, length: segment), counter: counter, isCancelled: isCancelled)
            }
            for (offset, chunk) in zip(batch, outputs) {
                let n = chunk.shape[2]
                out.data.withUnsafeMutableBufferPointer { os in
                    chunk.data.withUnsafeBufferPointer { cs in
                        for row in 0..<(sources * channels) {
                            let o = os.baseAddress! + row * length + offset
                            let c = cs.baseAddress! + row * n
                            for i in 0..<n { o[i] += weight[i] * c[i] }
                        }
                    }
                }
                for i in 0..<n { sumWeight[offset + i] += weight[i] }
            }
            start += workers
        }
        for row in 0..<(sources * channels) {
            for i in 0..<length { out.data[row * length + i] /= sumWeight[i] }
        }
        return out
    }

    /// Segments run at the same time: `jobs`, or one per core when `jobs` is 0.
    var workerCount: Int {
        options.jobs > 0 ? options.jobs : ProcessInfo.processInfo.activeProcessorCount
    }

    /// Runs `body` on each element on its own thread, keeping the order of results.
    private func mapConcurrently(_ items: [Int], _ body: @escaping @Sendable (Int) throws -> Tensor) throws -> [Tensor] {
        if items.count == 1 { return [try body(items[0])] }
        let results = ResultSlots(count: items.count)
        DispatchQueue.concurrentPerform(iterations: items.count) { i in
            results.set(i, Result { try body(items[i]) })
        }
        return try results.values()
    }

    private func applyOne(_ model: any SeparationModel, _ mix: AudioChunk,
                          counter: ProgressCounter, isCancelled: (@Sendable () -> Bool)?) throws -> Tensor {
        if isCancelled?() == true { throw EngineError(.cancelled, "separation cancelled") }
        let length = mix.length
        let valid: Int
        if model.maxSegment != nil, let segment = options.segment {
            valid = segment.timesTruncated(model.samplerate)
        } else {
            valid = try model.validLength(length)
        }
        let out = try model.forward(mix.padded(valid))
        counter.step()
        return centerTrim(out, length)
    }

    /// Keeps the centre `length` samples of `[sources, channels, n]` (demucs's `center_trim`).
    private func centerTrim(_ x: Tensor, _ length: Int) -> Tensor {
        let n = x.shape[2]
        let delta = n - length
        if delta == 0 { return x }
        let start = delta / 2
        let rows = x.shape[0] * x.shape[1]
        var out = Tensor(zeros: [x.shape[0], x.shape[1], length])
        for r in 0..<rows {
            out.data.replaceSubrange((r * length)..<((r + 1) * length),
                                     with: x.data[(r * n + start)..<(r * n + start + length)])
        }
        return out
    }
}

/// Counts finished segment passes across threads and reports them.
final class ProgressCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var done = 0
    let total: Int
    let callback: (@Sendable (SeparationProgress) -> Void)?

    init(total: Int, callback: (@Sendable (SeparationProgress) -> Void)?) {
        self.total = total
        self.callback = callback
    }

    func step() {
        lock.lock()
        done += 1
        let p = SeparationProgress(done: min(done, total), total: total)
        lock.unlock()
        callback?(p)
    }
}

/// Results filled in by concurrent workers, read once all are done.
final class ResultSlots: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [Result<Tensor, Error>?]

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ i: Int, _ r: Result<Tensor, Error>) {
        lock.lock(); slots[i] = r; lock.unlock()
    }

    func values() throws -> [Tensor] { try slots.map { try $0!.get() } }
}

/// A small, seedable random generator for the shift offsets.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
