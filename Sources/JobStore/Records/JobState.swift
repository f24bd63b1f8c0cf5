/// The life-cycle state of a ``Job``, stored as its raw value in `job.state`.
///
/// Transitions (everything else is refused):
/// - `queued → running` by ``JobStore/claimNext(worker:model:)``, which hands out a ``Claim``;
/// - `running → done` by ``JobStore/finish(_:result:publish:)``;
/// - `running → queued | failed` by ``JobStore/fail(_:error:retries:)``;
/// - `running → queued` by ``JobStore/requeue(_:reason:)`` (shutdown, machine faults) and
///   ``JobStore/requeueInterrupted(retries:)`` (crash recovery);
/// - `queued | running → cancelled` by ``JobStore/cancel(id:)``;
/// - `failed | cancelled | running → queued` by ``JobStore/retry(id:)``.
///
/// The worker's transitions (finish, fail, requeue, progress) name its claim and do nothing
/// once the claim is no longer current; a job cancelled or retried while running keeps its
/// holder until the worker has stopped and released it, and is not claimed again before.
///
/// The raw values are part of the on-disk format (and of `demucsctl jobs --state`), so they
/// must never be renamed.
public enum JobState: String, Codable, Sendable, CaseIterable {
    case queued
    case running
    case done
    case failed
    case cancelled

    /// States in which a job still counts as "known" for ``JobStore/enqueue(inputName:size:modified:contentHash:model:)``:
    /// the file is waiting, being separated, or already separated, so seeing it again must not
    /// queue it twice. Failed and cancelled jobs do not block a new job for the same content.
    static let blocksEnqueue: [JobState] = [.queued, .running, .done]

    /// States from which a job can no longer change on its own (only ``JobStore/retry(id:)``
    /// revives failed/cancelled ones).
    public var isFinal: Bool {
        switch self {
        case .done, .failed, .cancelled: return true
        case .queued, .running: return false
        }
    }
}
