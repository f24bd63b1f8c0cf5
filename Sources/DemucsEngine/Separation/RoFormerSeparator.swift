import Foundation

/// How to run a RoFormer over a whole track (audio-separator's MDXC options).
public struct RoFormerOptions: Sendable, Equatable {
    /// STFT frames per chunk (`--mdxc_segment_size` with the override on); nil: the config's
    /// `inference.dim_t`, or 256 for a track under 10 s, as audio-separator chooses.
    public var dimT: Int?
    /// Overlapping chunks per sample (`--mdxc_overlap`); nil: the config's
    /// `inference.num_overlap`, else 8.
    public var numOverlap: Int?
    /// Threads in all; 0 = one per core.
    public var threads: Int
    public var precision: EnginePrecision

    public init(dimT: Int? = nil, numOverlap: Int? = nil, threads: Int = 0, precision: EnginePrecision = .float32) {
        self.dimT = dimT
        self.numOverlap = numOverlap
        self.threads = threads
        self.precision = precision
    }
}

/// Separates whole tracks with a RoFormer as audio-separator's `MDXCSeparator.demix` does
/// (docs/ROFORMER.md): chunks of `hop · (dim_t − 1)` samples every `chunk / num_overlap`
/// samples, the last one moved back to end with the track; each chunk's output weighted by a
/// symmetric Hamming window over the chunk and added up; the sum divided by the summed windows
/// (clamped at 1e-10). A single-target model also gives the mix minus the target, as the
/// reference's secondary stem (`residualName`).
///
/// The reference's peak normalisation of the input and of each stem to 0.9 is not applied: the
/// networks are scale-equivariant up to their norms' epsilon, and the stems here keep the mix's
/// level so that they add up to it (clipping is the writer's `--clip-mode`).
public struct RoFormerSeparator: Sendable {
    public let model: RoFormer
    public let options: RoFormerOptions

    public init(model: RoFormer, options: RoFormerOptions = RoFormerOptions()) {
        self.model = model
        self.options = options
    }

    /// The stems, in order: the model's outputs, then the residual stem if there is one.
    public var sources: [String] { model.stems + (residualName.map { [$0] } ?? []) }

    /// The stem that is the mix minus the target, for a single-target model, named as
    /// audio-separator names its secondary stem: the first of the first two instruments that is
    /// not the target, or for a config listing the target alone its pair ("Vocals" and
    /// "Instrumental", ...) or "No <target>".
    var residualName: String? {
        guard let target = model.config.targetInstrument else { return nil }
        let instruments = model.config.instruments
        if instruments.count >= 2 { return instruments[0] == target ? instruments[1] : instruments[0] }
        let pairs = ["Vocals": "Instrumental", "Instrumental": "Vocals", "Lead Vocals": "Backing Vocals",
                     "Backing Vocals": "Lead Vocals", "Primary Stem": "Secondary Stem"]
        return pairs[target] ?? "No \(target)"
    }

    /// The chunking of a track of `length` samples: chunk and step in samples, and where each
    /// chunk starts (`_roformer_chunk_starts`).
    public func schedule(length: Int) -> (chunk: Int, step: Int, starts: [Int]) {
        let config = model.config
        let dimT = options.dimT
            ?? (Double(length) / Double(config.sampleRate) < 10 ? 256 : config.dimT ?? config.chunkSize / config.hopLength + 1)
        let chunk = config.hopLength * (dimT - 1)
        let step = max(1, chunk / (options.numOverlap ?? config.numOverlap ?? 8))
        var starts: [Int] = []
        var offset = 0
        while offset < length {
            if offset + chunk >= length {
                let tail = max(length - chunk, 0)
                if starts.last != tail { starts.append(tail) }
                break
            }
            starts.append(offset)
            offset += step
        }
        return (chunk, step, starts)
    }

    /// scipy's `windows.hamming(n)` (symmetric), computed in double and rounded to float.
    static func hamming(_ n: Int) -> [Float] {
        guard n > 1 else { return [Float](repeating: 1, count: n) }
        let step = 2 * Double.pi / Double(n - 1)
        return (0..<n).map { i in
            let x = i == n - 1 ? Double.pi : -Double.pi + Double(i) * step
            return Float(0.54 + 0.46 * cos(x))
        }
    }

    /// Separates a track read from `source`, handing finished samples to `emit` in track order.
    /// Memory: one chunk's network and two chunk-long accumulators, whatever the track's length.
    public func separateStreaming(
        _ source: some MixSource,
        emit: (StemBlock) throws -> Void,
        progress: (@Sendable (SeparationProgress) -> Void)? = nil,
        isCancelled: (@Sendable () -> Bool)? = nil
    ) throws {
        let channels = source.channels, length = source.length
        try checkInput(channels: channels, length: length)
        let (chunk, _, starts) = schedule(length: length)
        let window = Self.hamming(chunk)
        let stems = model.stems.count, rowsOut = stems * channels
        let residual = residualName != nil
        try withContext {
            // Accumulators for track samples base ..< base + chunk.
            var sums = [[Float]](repeating: [Float](repeating: 0, count: chunk), count: rowsOut)
            var weights = [Float](repeating: 0, count: chunk)
            var base = 0
            func finish(upTo end: Int) throws {
                guard end > base else { return }
                let count = end - base
                var rows = (0..<rowsOut).map { r in (0..<count).map { i in sums[r][i] / max(weights[i], 1e-10) } }
                if residual {
                    var mix = [Float](repeating: 0, count: channels * count)
                    try mix.withUnsafeMutableBufferPointer { try source.read(from: base, count: count, into: $0.baseAddress!) }
                    for c in 0..<channels {
                        rows.append((0..<count).map { mix[c * count + $0] - rows[c][$0] })
                    }
                }
                try emit(StemBlock(start: base, count: count, channels: channels, rows: rows))
                for r in 0..<rowsOut {
                    sums[r].removeFirst(count)
                    sums[r].append(contentsOf: repeatElement(0, count: count))
                }
                weights.removeFirst(count)
                weights.append(contentsOf: repeatElement(0, count: count))
                base = end
            }
            for (index, start) in starts.enumerated() {
                if isCancelled?() == true { throw EngineError(.cancelled, "separation cancelled") }
                try finish(upTo: start)
                let count = min(chunk, length - start)
                var part = Tensor(zeros: [channels, count])
                try part.data.withUnsafeMutableBufferPointer { try source.read(from: start, count: count, into: $0.baseAddress!) }
                let out = try model.forward(part)
                let produced = out.shape[2]
                let used = min(count, produced, chunk)
                let offset = start - base
                for r in 0..<rowsOut {
                    out.data.withUnsafeBufferPointer { o in
                        let src = o.baseAddress! + r * produced
                        for i in 0..<used { sums[r][offset + i] += src[i] * window[i] }
                    }
                }
                for i in 0..<used { weights[offset + i] += window[i] }
                progress?(SeparationProgress(done: index + 1, total: starts.count))
            }
            try finish(upTo: length)
        }
    }

    /// Separates `[channels, length]` audio at the model's rate into its stems.
    public func separateStems(
        _ mix: consuming Tensor,
        progress: (@Sendable (SeparationProgress) -> Void)? = nil,
        isCancelled: (@Sendable () -> Bool)? = nil
    ) throws -> Stems {
        let mix = mix
        let channels = mix.shape[0], length = mix.shape[1]
        var stems = Stems(sources: sources, channels: channels, length: length)
        try separateStreaming(TensorMixSource(mix), emit: { block in
            for r in block.rows.indices {
                stems.rows[r].replaceSubrange(block.start..<(block.start + block.count), with: block.rows[r])
            }
        }, progress: progress, isCancelled: isCancelled)
        return stems
    }

    func withContext<T>(_ body: () throws -> T) throws -> T {
        _ = GEMM.singleThreadedBLAS
        if let reason = options.precision.unavailableReason { throw EngineError(.invalidArgument, reason) }
        let width = options.threads > 0 ? options.threads : ProcessInfo.processInfo.activeProcessorCount
        LargeBuffer.retainFreedBlocks()
        defer { LargeBuffer.releaseRetained() }
        return try ExecutionContext.with(ExecutionContext(width: width, precision: options.precision), body)
    }
}
