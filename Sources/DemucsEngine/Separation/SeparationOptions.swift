/// How to run a model over a whole track (the arguments of demucs's `apply_model`).
public struct SeparationOptions: Sendable, Equatable {
    /// Random time shifts to average over (0 = one deterministic pass).
    public var shifts: Int = 1
    /// Split the track into overlapping segments (demucs's default; `--no-split` turns it off).
    public var split: Bool = true
    /// Overlap between consecutive segments, as a fraction of the segment.
    public var overlap: Double = 0.25
    /// Exponent of the triangular cross-fade weights between segments (>= 1).
    public var transitionPower: Double = 1
    /// Segment length in seconds, overriding the model's own (`--segment`).
    public var segment: Fraction?
    /// Segments processed side by side (`-j`); 0 means automatic, which is one: each segment
    /// then has every thread inside its layers, which is as fast on a few cores and holds one
    /// segment's working set instead of one per core (docs/PERFORMANCE.md).
    public var jobs: Int = 0
    /// Threads the separation uses in all (shared among the segments in flight); 0 = one per core.
    public var threads: Int = 0
    /// Seed for the random shifts, for reproducible runs; nil draws a fresh one.
    public var seed: UInt64?
    /// The arithmetic of the matrix multiplies (`float32` as PyTorch, or the faster `bf16`).
    public var precision: EnginePrecision = .float32
    /// The kernels' block sizes (they change at most the last bits; tests choose small ones).
    public var tuning = KernelTuning()

    public init(shifts: Int = 1, split: Bool = true, overlap: Double = 0.25, transitionPower: Double = 1,
                segment: Fraction? = nil, jobs: Int = 0, threads: Int = 0, seed: UInt64? = nil,
                precision: EnginePrecision = .float32) {
        self.threads = threads
        self.precision = precision
        self.shifts = shifts
        self.split = split
        self.overlap = overlap
        self.transitionPower = transitionPower
        self.segment = segment
        self.jobs = jobs
        self.seed = seed
    }
}

/// Where a separation stands, passed to the progress callback after each model pass on a segment.
public struct SeparationProgress: Sendable, Equatable {
    /// Segment passes done and to do, over all models of the bag and all shifts.
    public var done: Int
    public var total: Int
    /// Share of the work done, 0...1.
    public var fraction: Double { total == 0 ? 1 : Double(done) / Double(total) }
}
