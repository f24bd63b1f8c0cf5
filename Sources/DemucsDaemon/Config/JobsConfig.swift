/// The `[jobs]` section: how many songs run at once, how failures are retried, what happens to
/// the input files, and which inputs are refused outright.
public struct JobsConfig: Sendable, Equatable {
    /// Songs separated at the same time. One is right for almost every machine: a single job
    /// already uses every core, and each running job holds a model and a song in memory.
    public var workers: Int
    /// Threads per job for the engine; 0 means one per core.
    public var threads: Int
    /// How often a failed job is retried before it is marked failed for good: N retries are at
    /// most N + 1 attempts.
    public var retryLimit: Int
    public var onSuccess: SuccessDisposition
    public var onFailure: FailureDisposition
    /// Larger inputs are refused without decoding; 0 means no limit.
    public var maxFileSizeMB: Int
    /// Longer songs are refused (decoding and separating them could exhaust memory); 0 means no limit.
    public var maxDurationMinutes: Int
    /// A new file must stay unchanged this long before it is picked up, so that a song still
    /// being copied into the input folder is not read half-written.
    public var settleSeconds: Double
    /// The `ffmpeg` that decodes what libsndfile cannot read (AAC, video files, …); nil: the
    /// one on `PATH`.
    public var ffmpeg: String?
    /// Limits of the decoder's child process (`demucsd-decode`): CPU seconds (RLIMIT_CPU),
    /// memory in MiB (RLIMIT_AS, its ffmpeg included), and how long it may send nothing before
    /// it is stopped. A file that crosses one fails with that reason.
    public var decoderCPUSeconds: Int = 3600
    public var decoderMemoryMB: Int = 4096
    public var decoderStallSeconds: Double = 120

    public init(workers: Int = 1, threads: Int = 0, retryLimit: Int = 3, onSuccess: SuccessDisposition = .keep,
                onFailure: FailureDisposition = .keep, maxFileSizeMB: Int = 2048, maxDurationMinutes: Int = 0,
                settleSeconds: Double = 1.0, ffmpeg: String? = nil) {
        self.workers = workers
        self.threads = threads
        self.retryLimit = retryLimit
        self.onSuccess = onSuccess
        self.onFailure = onFailure
        self.maxFileSizeMB = maxFileSizeMB
        self.maxDurationMinutes = maxDurationMinutes
        self.settleSeconds = settleSeconds
        self.ffmpeg = ffmpeg
    }

    /// `maxFileSizeMB` in bytes (MiB), or nil for no limit.
    public var maxFileSizeBytes: Int64? {
        maxFileSizeMB == 0 ? nil : Int64(maxFileSizeMB) * 1_048_576
    }

    /// `maxDurationMinutes` as a duration, or nil for no limit.
    public var maxDuration: Duration? {
        maxDurationMinutes == 0 ? nil : .seconds(maxDurationMinutes * 60)
    }

    /// `settleSeconds` as a duration.
    public var settle: Duration {
        .milliseconds(Int64((settleSeconds * 1000).rounded()))
    }

    init(reading reader: inout ConfigTableReader) throws {
        let defaults = JobsConfig()
        workers = try reader.int("workers", default: defaults.workers, range: 1...64, what: "number of workers")
        threads = try reader.int("threads", default: defaults.threads, range: 0...1024,
                                 what: "number of threads",
                                 note: "0 = all cores")
        retryLimit = try reader.int("retry_limit", default: defaults.retryLimit, range: 0...100, what: "retry limit")
        onSuccess = try reader.choice("on_success", default: defaults.onSuccess)
        onFailure = try reader.choice("on_failure", default: defaults.onFailure)
        maxFileSizeMB = try reader.int("max_file_size_mb", default: defaults.maxFileSizeMB, range: 0...1_048_576,
                                       what: "size in MiB",
                                       note: "0 = no limit")
        maxDurationMinutes = try reader.int("max_duration_minutes", default: defaults.maxDurationMinutes,
                                            range: 0...10_080, what: "duration in minutes", note: "0 = no limit")
        settleSeconds = try reader.double("settle_seconds", default: defaults.settleSeconds, range: 0...3600,
                                          rangeText: "0..3600", what: "settle time in seconds")
        let ffmpeg = try reader.string("ffmpeg", default: "")
        self.ffmpeg = ffmpeg.isEmpty ? nil : ffmpeg
        decoderCPUSeconds = try reader.int("decoder_cpu_seconds", default: defaults.decoderCPUSeconds, range: 1...86_400,
                                           what: "CPU time in seconds")
        decoderMemoryMB = try reader.int("decoder_memory_mb", default: defaults.decoderMemoryMB, range: 256...1_048_576,
                                         what: "memory in MiB")
        decoderStallSeconds = try reader.double("decoder_stall_seconds", default: defaults.decoderStallSeconds,
                                                range: 1...86_400, rangeText: "1..86400", what: "time in seconds")
        try reader.rejectUnknownKeys()
    }
}
