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
    ///
    /// Memory: besides the model's working set for the segments in flight, this holds one
    /// normalised copy of the mix and the stems. Every segment's output is folded straight into
    /// the stems with its final weight (cross-fade, shift average, bag weight), so no per-model
    /// or per-shift copy of the whole track is made, and a long song costs only its samples.
    /// - Parameters:
    ///   - progress: called after each segment pass (from the calling thread, or a worker with `jobs > 1`).
    ///   - isCancelled: polled before each segment; returning true stops with `EngineError(.cancelled)`.
    public func separate(
        _ wav: consuming Tensor,
        progress: (@Sendable (SeparationProgress) -> Void)? = nil,
        isCancelled: (@Sendable () -> Bool)? = nil
    ) throws -> Tensor {
        try separateStems(wav, progress: progress, isCancelled: isCancelled).tensor
    }

    /// As `separate`, returning the stems as rows that a writer can release one by one.
    public func separateStems(
        _ wav: consuming Tensor,
        progress: (@Sendable (SeparationProgress) -> Void)? = nil,
        isCancelled: (@Sendable () -> Bool)? = nil
    ) throws -> Stems {
        var mix = wav
        let channels = mix.shape[0], length = mix.shape[1]
        try checkInput(channels: channels, length: length)
        // Normalise by the mono mix (demucs: ref = wav.mean(0); (wav - ref.mean()) / (ref.std() + 1e-8)).
        var mono = LargeBuffer.zeros(length)
        for c in 0..<channels { for i in 0..<length { mono[i] += mix.data[c * length + i] } }
        for i in 0..<length { mono[i] /= Float(channels) }
        let (rawMean, rawStd) = mono.withUnsafeBufferPointer { Normalization.meanStd($0) }
        mono = []
        let (mean, std) = normaliser(mean: rawMean, rawStd: rawStd)
        mix.data.withUnsafeMutableBufferPointer { p in
            for i in 0..<p.count { p[i] = (p[i] - mean) / std }
        }

        return try withContext(length: length) {
            try separateNormalised(mix, mean: mean, std: std, progress: progress, isCancelled: isCancelled)
        }
    }

    /// The normalising statistics as demucs takes them (see `separateStems`), from the mono
    /// mix's mean and raw standard deviation.
    func normaliser(mean: Float, rawStd: Float) -> (mean: Float, std: Float) {
        // demucs v2's separate.py divides by the bare standard deviation; a silent track would then
        // give NaN there, so the epsilon stays for it.
        (mean, bag.isV2 && rawStd > 0 ? rawStd : rawStd + 1e-8)
    }

    /// Runs `body` under this separation's execution context for a track of `length` samples.
    ///
    /// The threads are shared among the segments in flight; inside a segment they split the
    /// matrix multiplies and the elementwise work (`Parallel`). The BLAS itself runs
    /// single-threaded: its own pool's threads spin between products.
    /// These settings belong to this separation alone (`ExecutionContext`): nothing
    /// process-wide is set and restored around it.
    func withContext<T>(length: Int, _ body: () throws -> T) throws -> T {
        let cores = threadCount
        let parallelSegments = options.split ? min(workerCount, max(1, totalPasses(length: length) / max(bag.models.count * max(options.shifts, 1), 1))) : 1
        _ = GEMM.singleThreadedBLAS
        if let reason = options.precision.unavailableReason { throw EngineError(.invalidArgument, reason) }
        let context = ExecutionContext(width: cores / max(parallelSegments, 1), precision: options.precision,
                                       tuning: options.tuning)
        LargeBuffer.retainFreedBlocks()
        defer { LargeBuffer.releaseRetained() }
        return try ExecutionContext.with(context, body)
    }

    /// The separation proper, on the normalised mix, under the separation's context.
    private func separateNormalised(_ mix: Tensor, mean: Float, std: Float,
                                    progress: (@Sendable (SeparationProgress) -> Void)?,
                                    isCancelled: (@Sendable () -> Bool)?) throws -> Stems {
        let channels = mix.shape[0], length = mix.shape[1]
        let counter = ProgressCounter(total: totalPasses(length: length), callback: progress)
        var rng = SplitMix64(seed: options.seed ?? UInt64.random(in: .min ... .max))
        var estimates = Stems(sources: bag.sources, channels: channels, length: length)
        // The bag's per-source weights, normalised by their column sums (demucs divides at the end).
        var totals = [Double](repeating: 0, count: bag.sources.count)
        for weights in bag.weights { for (k, w) in weights.enumerated() { totals[k] += w } }
        for (model, weights) in zip(bag.models, bag.weights) {
            let factors = weights.enumerated().map { Float($0.element / totals[$0.offset]) }
            try accumulateShifts(model, mix: mix, into: &estimates, factors: factors, rng: &rng,
                                 counter: counter, isCancelled: isCancelled)
        }
        for r in estimates.rows.indices {
            estimates.rows[r].withUnsafeMutableBufferPointer { p in
                for i in 0..<p.count { p[i] = p[i] * std + mean }
            }
        }
        return estimates
    }

    func segmentLength(_ model: any SeparationModel) -> Int {
        (options.segment ?? model.segment).timesTruncated(model.samplerate)
    }

    /// The number of model passes, for progress.
    func totalPasses(length: Int) -> Int {
        bag.models.reduce(0) { sum, model in
            let perSegment = model.applyGeneration == .v2 && options.split
            let shifted = options.shifts > 0 && !perSegment ? length + Int(0.5 * Double(model.samplerate)) : length
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

    /// Where a pass's output goes: sample `p` of the chunk lands on track sample `p - skip`,
    /// scaled by `factors[source] * scale`.
    struct Sink {
        var skip: Int
        var scale: Float
        var factors: [Float]
    }

    /// demucs's shift trick: the track is padded by half a second on each side and each shift
    /// looks at it from a random offset; the outputs are averaged. The padding is virtual: a
    /// chunk reaching outside the track reads zeros, exactly as the padded copy would hold.
    private func accumulateShifts(_ model: any SeparationModel, mix: Tensor, into estimates: inout Stems,
                                  factors: [Float], rng: inout SplitMix64,
                                  counter: ProgressCounter, isCancelled: (@Sendable () -> Bool)?) throws {
        let length = mix.shape[1]
        // demucs v2 shifts inside each segment (see `applyShifted`); without splitting both agree.
        let perSegment = model.applyGeneration == .v2 && options.split
        guard options.shifts > 0, !perSegment else {
            try accumulateSplit(model, AudioChunk(mix), into: &estimates,
                                sink: Sink(skip: 0, scale: 1, factors: factors), shifts: perSegment ? options.shifts : 0,
                                rng: &rng, counter: counter, isCancelled: isCancelled)
            return
        }
        let maxShift = Int(0.5 * Double(model.samplerate))
        for _ in 0..<options.shifts {
            let offset = Int(rng.next() % UInt64(maxShift + 1))
            // In demucs: padded = mix.padded(length + 2·maxShift); shifted = padded[offset ..< length + maxShift].
            let shifted = AudioChunk(mix, virtualOffset: offset - maxShift, length: length + maxShift - offset)
            try accumulateSplit(model, shifted, into: &estimates,
                                sink: Sink(skip: maxShift - offset, scale: 1 / Float(options.shifts), factors: factors),
                                shifts: 0, rng: &rng, counter: counter, isCancelled: isCancelled)
        }
    }

    /// demucs's split: overlapping segments cross-faded with triangular weights. Each segment's
    /// output is divided by the sum of the weights covering each sample (computed from the
    /// segment grid, not accumulated in a track-long array) and added into the stems.
    /// With `shifts > 0` (demucs v2), each segment is itself shifted `shifts` times.
    private func accumulateSplit(_ model: any SeparationModel, _ mix: AudioChunk, into estimates: inout Stems,
                                 sink: Sink, shifts: Int, rng: inout SplitMix64,
                                 counter: ProgressCounter, isCancelled: (@Sendable () -> Bool)?) throws {
        guard options.split else {
            let out = try applyOne(model, mix, counter: counter, isCancelled: isCancelled)
            fold(out, at: 0, weight: nil, normaliser: nil, into: &estimates, sink: sink)
            return
        }
        let length = mix.length
        let segment = segmentLength(model)
        guard segment > 0 else { throw EngineError(.invalidArgument, "the segment length must be positive") }
        let stride = Int((1 - options.overlap) * Double(segment))
        guard stride > 0 else { throw EngineError(.invalidArgument, "overlap \(options.overlap) leaves no stride between segments") }
        let weight = crossFade(segment)
        let grid = SegmentGrid(length: length, segment: segment, stride: stride, weight: weight)
        let offsets = Array(Swift.stride(from: 0, to: length, by: stride))
        // Segments are independent: run `workers` at a time and fold each batch in as it ends,
        // so only one batch of segment outputs is alive at once.
        let workers = workerCount
        var start = 0
        while start < offsets.count {
            let batch = Array(offsets[start..<min(offsets.count, start + workers)])
            // Shift offsets are drawn here, in segment order, so that a seed gives one result.
            let maxShift = Int(0.5 * Double(model.samplerate))
            let draws = batch.map { _ in (0..<shifts).map { _ in Int(rng.next() % UInt64(maxShift + 1)) } }
            let outputs = try mapConcurrently(Array(batch.indices)) { i in
                let chunk = mix.sub(offset: batch[i], length: segment)
                return shifts > 0
                    ? try applyShifted(model, chunk, offsets: draws[i], maxShift: maxShift, counter: counter, isCancelled: isCancelled)
                    : try applyOne(model, chunk, counter: counter, isCancelled: isCancelled)
            }
            for (offset, chunk) in zip(batch, outputs) {
                fold(chunk, at: offset, weight: weight, normaliser: grid, into: &estimates, sink: sink)
            }
            start += workers
        }
    }

    /// Triangular cross-fade weights of a segment, computed as demucs does in float32.
    func crossFade(_ segment: Int) -> [Float] {
        let half = segment / 2
        var weight = LargeBuffer.zeros(segment)
        for i in 0..<half { weight[i] = Float(i + 1) }
        for i in half..<segment { weight[i] = Float(segment - i) }
        let peak = weight.max() ?? 1
        let power = Float(options.transitionPower)
        for i in 0..<segment {
            let w = weight[i] / peak
            weight[i] = power == 1 ? w : powf(w, power)
        }
        return weight
    }

    /// Adds one pass's output `[sources, channels, n]`, which covers chunk samples
    /// `at ..< at + n`, into the stems.
    func fold(_ chunk: Tensor, at offset: Int, weight: [Float]?, normaliser: SegmentGrid?,
              into estimates: inout Stems, sink: Sink) {
        fold(chunk, at: offset, weight: weight, normaliser: normaliser, into: &estimates.rows,
             window: 0..<estimates.length, sink: sink)
    }

    /// As `fold`, into rows that hold the track samples of `window` only.
    func fold(_ chunk: Tensor, at offset: Int, weight: [Float]?, normaliser: SegmentGrid?,
              into rows: inout [[Float]], window: Range<Int>, sink: Sink) {
        let sources = chunk.shape[0], channels = chunk.shape[1], n = chunk.shape[2]
        // Chunk samples that land inside the window.
        let first = max(0, window.lowerBound + sink.skip - offset)
        let last = min(n, window.upperBound + sink.skip - offset)
        guard first < last else { return }
        var scale = [Float](repeating: 1, count: n)
        if let weight, let normaliser {
            for j in first..<last { scale[j] = weight[j] / normaliser.sum(at: offset + j) }
        }
        chunk.data.withUnsafeBufferPointer { cs in
            for k in 0..<sources {
                let f = sink.factors[k] * sink.scale
                for c in 0..<channels {
                    let src = cs.baseAddress! + (k * channels + c) * n
                    rows[k * channels + c].withUnsafeMutableBufferPointer { row in
                        let dst = row.baseAddress! + offset - sink.skip - window.lowerBound
                        for j in first..<last { dst[j] += f * scale[j] * src[j] }
                    }
                }
            }
        }
    }

    /// Segments run at the same time: `jobs`, or one when `jobs` is 0 (see `SeparationOptions.jobs`).
    var workerCount: Int {
        options.jobs > 0 ? options.jobs : 1
    }

    /// Threads in all: `threads`, or one per core when it is 0.
    var threadCount: Int {
        options.threads > 0 ? options.threads : ProcessInfo.processInfo.activeProcessorCount
    }

    /// Runs `body` on each element on its own thread, keeping the order of results.
    func mapConcurrently(_ items: [Int], _ body: @escaping @Sendable (Int) throws -> Tensor) throws -> [Tensor] {
        if items.count == 1 { return [try body(items[0])] }
        let results = ResultSlots(count: items.count)
        let context = ExecutionContext.current
        DispatchQueue.concurrentPerform(iterations: items.count) { i in
            ExecutionContext.with(context) { results.set(i, Result { try body(items[i]) }) }
        }
        return try results.values()
    }

    /// demucs v2's shifts of one segment: the segment padded by `maxShift` on each side (with its
    /// neighbouring audio, zeros past the track), looked at from each offset; the outputs from
    /// `maxShift - offset` on are averaged. The padding is a real copy: a pass that needs more
    /// context than it holds sees zeros, as in v2.
    func applyShifted(_ model: any SeparationModel, _ chunk: AudioChunk, offsets: [Int], maxShift: Int,
                              counter: ProgressCounter, isCancelled: (@Sendable () -> Bool)?) throws -> Tensor {
        let length = chunk.length
        let padded = chunk.padded(length + 2 * maxShift)
        var sum: Tensor?
        for offset in offsets {
            let shifted = AudioChunk(padded, offset: offset, length: length + maxShift - offset)
            let out = try applyOne(model, shifted, counter: counter, isCancelled: isCancelled)
            let skip = maxShift - offset, n = out.shape[2]
            let rows = out.shape[0] * out.shape[1]
            if sum == nil { sum = Tensor(zeros: [out.shape[0], out.shape[1], length]) }
            out.data.withUnsafeBufferPointer { os in
                sum!.data.withUnsafeMutableBufferPointer { ss in
                    for r in 0..<rows {
                        for j in 0..<length { ss[r * length + j] += os[r * n + skip + j] }
                    }
                }
            }
        }
        let scale = 1 / Float(offsets.count)
        sum!.data.withUnsafeMutableBufferPointer { ss in
            for i in 0..<ss.count { ss[i] *= scale }
        }
        return sum!
    }

    func applyOne(_ model: any SeparationModel, _ mix: AudioChunk,
                          counter: ProgressCounter, isCancelled: (@Sendable () -> Bool)?) throws -> Tensor {
        if isCancelled?() == true { throw EngineError(.cancelled, "separation cancelled") }
        let length = mix.length
        let out = try model.forward(mix.padded(validLength(model, length)))
        counter.step()
        return centerTrim(out, length)
    }

    /// The length a pass over `length` samples is padded to (with neighbouring audio).
    func validLength(_ model: any SeparationModel, _ length: Int) throws -> Int {
        if model.maxSegment != nil, let segment = options.segment {
            return segment.timesTruncated(model.samplerate)
        }
        return try model.validLength(length)
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

/// The sum of the cross-fade weights covering each sample of a split track (demucs's
/// `sum_weight`), computed on demand from the regular segment grid: a sample is covered by the
/// few segments whose start lies within one segment before it.
struct SegmentGrid {
    let length: Int
    let segment: Int
    let stride: Int
    let weight: [Float]

    func sum(at p: Int) -> Float {
        var total: Float = 0
        var o = (p / stride) * stride
        while o >= 0 && p - o < segment {
            let n = min(segment, length - o)
            if p - o < n { total += weight[p - o] }
            o -= stride
        }
        return total
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
