/// What happens to a song in the input folder once its stems are written (`[jobs] on_success`).
///
/// The default keeps it, so nothing is ever lost by accident; the job store remembers that it is
/// done (by content hash), so a kept file is not separated again.
public enum SuccessDisposition: String, Sendable, CaseIterable, Equatable {
    /// Leave the file where it is.
    case keep
    /// Move it to `<data>/done/`, so the input folder shows only what is still to do.
    case move
    /// Delete it: the stems are what the user wanted.
    case delete
}
