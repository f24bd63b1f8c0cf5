/// What happens to a song whose separation failed for good (`[jobs] on_failure`), i.e. after
/// `retry_limit` retries. There is deliberately no `delete`: a failed input may be the only copy.
public enum FailureDisposition: String, Sendable, CaseIterable, Equatable {
    /// Leave the file in the input folder (the job store records the failure and won't retry it).
    case keep
    /// Move it to `<data>/failed/`, where it is easy to inspect and to drop back in.
    case move
}
