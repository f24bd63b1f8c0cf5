/// One input file seen by the daemon, and what became of it.
///
/// A plain value snapshot of a `job` row: it does not update itself, re-read it with
/// ``JobStore/job(id:)``. Times are seconds since the Unix epoch as `Double` because that is what
/// both `stat` (mtime) and `Date().timeIntervalSince1970` give, and SQLite stores it exactly as
/// a REAL without time-zone questions.
public struct Job: Codable, Sendable, Equatable, Identifiable {
    /// Row id; `AUTOINCREMENT`, so an id is never reused even after rows are deleted, which keeps
    /// `demucsctl retry 12` from ever hitting a different job than the one the operator saw.
    public var id: Int64
    /// File name inside the input folder. Stored as TEXT (UTF-8); names that are not valid UTF-8
    /// must be made so by the caller before they get here (Swift `String` repairs them).
    public var inputName: String
    /// Size in bytes when the job was recorded.
    public var inputSize: Int64
    /// Modification time when the job was recorded (seconds since epoch).
    public var inputModified: Double
    /// SHA-256 of the file content, lowercase hex. Compared byte-for-byte.
    public var contentHash: String
    public var state: JobState
    /// How many times the job was claimed by a worker. Reset by ``JobStore/retry(id:)``, given
    /// back by ``JobStore/requeue(id:)``, and kept across crashes so a file that kills the daemon
    /// eventually ends failed.
    public var attempts: Int
    /// Last error text. Kept when a failed attempt is re-queued so operators see why it retried.
    public var error: String?
    /// Fraction done, 0...1 (1 exactly when done).
    public var progress: Double
    /// Model name the job was queued with (e.g. `htdemucs`).
    public var model: String
    /// Folder name under `output/demucs/`, chosen by
    /// ``JobStore/allocateOutputName(for:preferred:)`` when the job first runs; `nil` before.
    public var outputName: String?
    /// Paths of the written files, relative to the output root (stored as a JSON array).
    public var outputs: [String]
    /// Duration of the decoded input, known once the job ran.
    public var audioSeconds: Double?
    /// When the job row was created.
    public var createdAt: Double
    /// When the job last entered the queue; the queue is served in `queuedAt` order (ties by id).
    /// Equal to `createdAt` for a new job; a failed attempt that is re-queued, or a job retried
    /// by an operator, goes to the back of the queue so one bad file cannot monopolise the
    /// worker. Crash recovery and shutdown re-queueing keep it, so the job resumes first.
    public var queuedAt: Double
    /// When the current or last attempt started; `nil` while queued.
    public var startedAt: Double?
    /// When the job reached done, failed or cancelled.
    public var finishedAt: Double?
    /// The earlier done job whose stems were reused for this one (same content, same model).
    public var reusedFrom: Int64?
    /// How many times the job was claimed, ever; the `sequence` of its ``Claim``s. Unlike
    /// `attempts` it is never reset, so a stale worker's token can never match again.
    public var claimSequence: Int64
    /// The worker that holds the job's current claim, or `nil` when nobody does. A cancelled or
    /// retried job keeps its holder until that worker has stopped and released it, and a queued
    /// job with a holder is not claimed again before then.
    public var holder: String?
    /// The worker that ran (or runs) the latest attempt.
    public var worker: String?
    /// What the stems depend on besides the content and the model (stems, shifts, overlap,
    /// formats and their settings, …), recorded when the job finished; stems are only reused
    /// from a job with the same recipe. `nil` for jobs finished before it was recorded.
    public var recipe: String?
    /// Set when a later job published over this job's folder: its files are gone, so it can no
    /// longer be reused.
    public var superseded: Bool

    /// The current claim, while a worker holds one.
    public var claim: Claim? {
        holder.map { Claim(jobID: id, sequence: claimSequence, worker: $0) }
    }

    public init(
        id: Int64, inputName: String, inputSize: Int64, inputModified: Double, contentHash: String,
        state: JobState, attempts: Int = 0, error: String? = nil, progress: Double = 0,
        model: String, outputName: String? = nil, outputs: [String] = [],
        audioSeconds: Double? = nil, createdAt: Double, queuedAt: Double? = nil,
        startedAt: Double? = nil, finishedAt: Double? = nil, reusedFrom: Int64? = nil,
        claimSequence: Int64 = 0, holder: String? = nil, worker: String? = nil,
        recipe: String? = nil, superseded: Bool = false
    ) {
        self.id = id
        self.inputName = inputName
        self.inputSize = inputSize
        self.inputModified = inputModified
        self.contentHash = contentHash
        self.state = state
        self.attempts = attempts
        self.error = error
        self.progress = progress
        self.model = model
        self.outputName = outputName
        self.outputs = outputs
        self.audioSeconds = audioSeconds
        self.createdAt = createdAt
        self.queuedAt = queuedAt ?? createdAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.reusedFrom = reusedFrom
        self.claimSequence = claimSequence
        self.holder = holder
        self.worker = worker
        self.recipe = recipe
        self.superseded = superseded
    }
}
