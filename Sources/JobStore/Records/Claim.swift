/// The ownership token of one attempt at a job: which worker holds it, and which claim of the
/// job this is.
///
/// Every write a worker makes after claiming a job — progress, adopting the input's hash,
/// finishing (with the publish of its stems), failing, giving the job back — names its claim,
/// and changes nothing when the claim is no longer the job's current one: the job was cancelled,
/// retried by an operator, or handed to another worker meanwhile. A worker learns that through
/// ``JobStore/isCurrent(_:)`` at its next segment and stops without publishing.
///
/// `sequence` counts every claim of the job and is never reset (unlike `attempts`, which an
/// operator's retry sets back to 0), so a token is never reused for the same job. `worker`
/// names the worker (`host:pid/worker-N` for the daemon), so two workers can never hold the
/// same token even if a sequence were somehow repeated.
public struct Claim: Sendable, Hashable, CustomStringConvertible {
    public let jobID: Int64
    public let sequence: Int64
    public let worker: String

    public init(jobID: Int64, sequence: Int64, worker: String) {
        self.jobID = jobID
        self.sequence = sequence
        self.worker = worker
    }

    public var description: String { "job \(jobID) claim \(sequence) by \(worker)" }
}
