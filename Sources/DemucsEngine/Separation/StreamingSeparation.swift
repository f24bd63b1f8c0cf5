import Foundation

/// Random access to a track's mix at the model's sample rate and channel count. The streaming
/// separation reads each part of the track a few times (twice for the statistics, once per
/// pass that covers it) and never the whole track at once.
public protocol MixSource {
    var channels: Int { get }
    /// Frames in the track.
    var length: Int { get }
    /// Reads frames `start ..< start + count`, all inside the track, into `buffer`, planar:
    /// channel `c` at `buffer + c * count`.
    func read(from start: Int, count: Int, into buffer: UnsafeMutablePointer<Float>) throws
}

/// A mix held in memory as a `[channels, length]` tensor.
public struct TensorMixSource: MixSource {
    public let tensor: Tensor
    public var channels: Int { tensor.shape[0] }
    public var length: Int { tensor.shape[1] }

    public init(_ tensor: Tensor) {
        precondition(tensor.shape.count == 2, "a mix is [channels, length]")
        self.tensor = tensor
    }

    public func read(from start: Int, count: Int, into buffer: UnsafeMutablePointer<Float>) throws {
        tensor.data.withUnsafeBufferPointer { p in
            for c in 0..<channels {
                (buffer + c * count).update(from: p.baseAddress! + c * length + start, count: count)
            }
        }
    }
}

/// Finished samples of every stem: track frames `start ..< start + count`, one row per
/// (source, channel) as in ``Stems``.
public struct StemBlock: Sendable {
    public let start: Int
    public let count: Int
    public let channels: Int
    /// `rows[source * channels + channel]`, each `count` samples.
    public var rows: [[Float]]

    public init(start: Int, count: Int, channels: Int, rows: [[Float]]) {
        self.start = start
        self.count = count
        self.channels = channels
        self.rows = rows
    }
}

extension Separator {
    /// Frames per read of the statistics passes: a multiple of the 32 lanes of `DoubleSums`, so
    /// that every sample lands in the lane it lands in when the whole track is summed at once.
    static let statisticsChunk = 1 << 15

    /// Separates a track read from `source`, handing finished samples to `emit` in track order.
    ///
    /// The same samples as `separateStems` (bit for bit): the statistics are summed in the same
    /// lanes, the random shifts are drawn in the same order, every pass sees the same padded
    /// input, and each output sample adds up the same terms in the same order (model, shift,
    /// segment), because a sample is emitted only once every pass that covers it has run.
    ///
    /// Memory: the passes covering the current stretch of the track (about one segment per
    /// model and shift), the input they read and one block of output; nothing grows with the
    /// track. Without splitting (`split == false`) the model sees the whole track at once, so
    /// the track is held in memory as in `separateStems`.
    public func separateStreaming(
        _ source: some MixSource,
        emit: (StemBlock) throws -> Void,
        progress: (@Sendable (SeparationProgress) -> Void)? = nil,
        isCancelled: (@Sendable () -> Bool)? = nil
    ) throws {
        let channels = source.channels, length = source.length
        try checkInput(channels: channels, length: length)
        guard options.split else {
            var mix = Tensor(zeros: [channels, length])
            try mix.data.withUnsafeMutableBufferPointer { try source.read(from: 0, count: length, into: $0.baseAddress!) }
            let stems = try separateStems(mix, progress: progress, isCancelled: isCancelled)
            try emit(StemBlock(start: 0, count: length, channels: channels, rows: stems.rows))
            return
        }
        let (rawMean, rawStd) = try mixStatistics(source)
        let (mean, std) = normaliser(mean: rawMean, rawStd: rawStd)
        try withContext(length: length) {
            var lanes = try makeLanes(length: length)
            let counter = ProgressCounter(total: totalPasses(length: length), callback: progress)
            let workers = workerCount
            let step = workers * (lanes.map(\.stride).max() ?? 1)
            var target = 0, finalised = 0
            while finalised < length {
                target += step
                for l in lanes.indices {
                    var due: [Int] = []
                    while lanes[l].next < lanes[l].starts.count && lanes[l].trackStart(lanes[l].next) < target {
                        due.append(lanes[l].next)
                        lanes[l].next += 1
                    }
                    var first = 0
                    while first < due.count {
                        let group = Array(due[first..<min(due.count, first + workers)])
                        let outputs = try run(lanes[l], group, source: source, mean: mean, std: std,
                                              counter: counter, isCancelled: isCancelled)
                        for (g, out) in zip(group, outputs) { lanes[l].outputs.append((lanes[l].starts[g], out)) }
                        first += workers
                    }
                }
                let frontier = min(length, max(finalised, lanes.map { $0.complete(length: length) }.min()!))
                guard frontier > finalised else { continue }
                var rows = (0..<(bag.sources.count * channels)).map { _ in [Float](repeating: 0, count: frontier - finalised) }
                for lane in lanes {
                    for (offset, out) in lane.outputs {
                        fold(out, at: offset, weight: lane.weight, normaliser: lane.grid, into: &rows,
                             window: finalised..<frontier, sink: lane.sink)
                    }
                }
                for r in rows.indices {
                    rows[r].withUnsafeMutableBufferPointer { p in
                        for i in 0..<p.count { p[i] = p[i] * std + mean }
                    }
                }
                try emit(StemBlock(start: finalised, count: frontier - finalised, channels: channels, rows: rows))
                finalised = frontier
                for l in lanes.indices {
                    let skip = lanes[l].sink.skip
                    lanes[l].outputs.removeAll { $0.offset - skip + $0.chunk.shape[2] <= frontier }
                }
            }
        }
    }

    /// The mono mix's mean and standard deviation, summed exactly as `Normalization.meanStd`
    /// sums a whole track (two passes, in Double, in the same lanes).
    func mixStatistics(_ source: some MixSource) throws -> (mean: Float, std: Float) {
        let channels = source.channels, length = source.length
        let chunk = Self.statisticsChunk
        var buffer = [Float](repeating: 0, count: chunk * channels)
        var mono = [Float](repeating: 0, count: chunk)
        func monoChunk(_ start: Int, _ n: Int) throws {
            try buffer.withUnsafeMutableBufferPointer { try source.read(from: start, count: n, into: $0.baseAddress!) }
            for i in 0..<n { mono[i] = 0 }
            for c in 0..<channels { for i in 0..<n { mono[i] += buffer[c * n + i] } }
            for i in 0..<n { mono[i] /= Float(channels) }
        }
        var sum = DoubleSums()
        for start in stride(from: 0, to: length, by: chunk) {
            let n = min(chunk, length - start)
            try monoChunk(start, n)
            mono.withUnsafeBufferPointer { sum.add($0.baseAddress!, count: n) }
        }
        let mean = sum.total / Double(length)
        var squares = DoubleSums()
        for start in stride(from: 0, to: length, by: chunk) {
            let n = min(chunk, length - start)
            try monoChunk(start, n)
            mono.withUnsafeBufferPointer { squares.addSquaredDeviations($0.baseAddress!, count: n, from: mean) }
        }
        return (Float(mean), Float((squares.total / Double(max(length - 1, 1))).squareRoot()))
    }

    /// One (model, shift) of the bag: the segments of one `accumulateSplit` call, with what
    /// its passes need and the outputs that are not yet emitted.
    struct Lane: Sendable {
        let model: any SeparationModel
        let sink: Sink
        /// The shifted view of the track the segments are cut from, in track positions.
        let chunkOffset: Int
        let chunkLength: Int
        let segment: Int
        let stride: Int
        let weight: [Float]
        let grid: SegmentGrid
        /// Segment starts in the shifted view.
        let starts: [Int]
        /// demucs v2's shift offsets of each segment (empty without per-segment shifts).
        let draws: [[Int]]
        let maxShift: Int
        /// The first segment not run yet.
        var next = 0
        /// Outputs run but not yet wholly emitted, in segment order.
        var outputs: [(offset: Int, chunk: Tensor)] = []

        func trackStart(_ i: Int) -> Int { starts[i] - sink.skip }

        /// Track samples before this one are covered by no segment still to run.
        func complete(length: Int) -> Int { next < starts.count ? trackStart(next) : length }

        /// The chunk of segment `i`.
        func chunk(_ i: Int) -> (offset: Int, length: Int) {
            (chunkOffset + starts[i], min(segment, chunkLength - starts[i]))
        }
    }

    /// The lanes in the order `separateNormalised` runs them, drawing the random shifts in the
    /// same order from the same seed.
    func makeLanes(length: Int) throws -> [Lane] {
        var rng = SplitMix64(seed: options.seed ?? UInt64.random(in: .min ... .max))
        var totals = [Double](repeating: 0, count: bag.sources.count)
        for weights in bag.weights { for (k, w) in weights.enumerated() { totals[k] += w } }
        var lanes: [Lane] = []
        for (model, weights) in zip(bag.models, bag.weights) {
            let factors = weights.enumerated().map { Float($0.element / totals[$0.offset]) }
            let segment = segmentLength(model)
            guard segment > 0 else { throw EngineError(.invalidArgument, "the segment length must be positive") }
            let stride = Int((1 - options.overlap) * Double(segment))
            guard stride > 0 else { throw EngineError(.invalidArgument, "overlap \(options.overlap) leaves no stride between segments") }
            let weight = crossFade(segment)
            let maxShift = Int(0.5 * Double(model.samplerate))
            func lane(offset chunkOffset: Int, length chunkLength: Int, scale: Float, draws: (Int) -> [[Int]]) -> Lane {
                let starts = Array(Swift.stride(from: 0, to: chunkLength, by: stride))
                return Lane(model: model, sink: Sink(skip: -chunkOffset, scale: scale, factors: factors),
                            chunkOffset: chunkOffset, chunkLength: chunkLength, segment: segment, stride: stride,
                            weight: weight, grid: SegmentGrid(length: chunkLength, segment: segment, stride: stride, weight: weight),
                            starts: starts, draws: draws(starts.count), maxShift: maxShift)
            }
            let perSegment = model.applyGeneration == .v2
            if options.shifts > 0 && !perSegment {
                for _ in 0..<options.shifts {
                    let offset = Int(rng.next() % UInt64(maxShift + 1))
                    lanes.append(lane(offset: offset - maxShift, length: length + maxShift - offset,
                                      scale: 1 / Float(options.shifts), draws: { _ in [] }))
                }
            } else {
                let shifts = perSegment ? options.shifts : 0
                lanes.append(lane(offset: 0, length: length, scale: 1, draws: { count in
                    shifts == 0 ? [] : (0..<count).map { _ in (0..<shifts).map { _ in Int(rng.next() % UInt64(maxShift + 1)) } }
                }))
            }
        }
        return lanes
    }

    /// Runs segments `group` of `lane` side by side, on the normalised input they read.
    private func run(_ lane: Lane, _ group: [Int], source: some MixSource, mean: Float, std: Float,
                     counter: ProgressCounter, isCancelled: (@Sendable () -> Bool)?) throws -> [Tensor] {
        let length = source.length
        let channels = source.channels
        // The track positions the passes read (the chunk with the padding each pass takes).
        var lo = Int.max, hi = Int.min
        for i in group {
            let (offset, n) = lane.chunk(i)
            let target = lane.draws.isEmpty ? try validLength(lane.model, n) : n + 2 * lane.maxShift
            let range = AudioChunk.paddedRange(offset: offset, length: n, target: target, total: length)
            if !range.isEmpty { lo = min(lo, range.lowerBound); hi = max(hi, range.upperBound) }
        }
        if lo > hi { lo = 0; hi = 0 }
        var window = Tensor(zeros: [channels, hi - lo])
        if hi > lo {
            try window.data.withUnsafeMutableBufferPointer { p in
                try source.read(from: lo, count: hi - lo, into: p.baseAddress!)
                for i in 0..<p.count { p[i] = (p[i] - mean) / std }
            }
        }
        let input = window, base = lo
        return try mapConcurrently(Array(group.indices)) { k in
            let (offset, n) = lane.chunk(group[k])
            let chunk = AudioChunk(input, base: base, total: length, virtualOffset: offset, length: n)
            return lane.draws.isEmpty
                ? try applyOne(lane.model, chunk, counter: counter, isCancelled: isCancelled)
                : try applyShifted(lane.model, chunk, offsets: lane.draws[group[k]], maxShift: lane.maxShift,
                                   counter: counter, isCancelled: isCancelled)
        }
    }
}
