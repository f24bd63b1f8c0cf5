/// What `FolderWatcher.next(timeout:)` reports about the watched folder.
///
/// Names are single path components relative to the watched folder (never paths), so the daemon
/// joins them with the folder it configured. Swift `String` equality is Unicode-canonical: two
/// distinct Linux files whose names differ only in normalisation (NFC "é" vs NFD "e\u{301}")
/// compare equal as `String`s, so compare `name.utf8` when that matters.
public enum WatchEvent: Sendable, Equatable {
    /// A regular file with this name was completely written or renamed into the folder and has
    /// seen no further activity for the settle period; it is safe to start processing it.
    case ready(String)
    /// A candidate name left the folder (deleted or renamed away). Reported whether or not it
    /// was ever `ready`, since the daemon may know it from a scan and must drop a queued job.
    case removed(String)
    /// A settled candidate name the daemon cannot process: a symbolic link or special file moved
    /// in, or a name that is not valid UTF-8 (then the `String` is a lossy rendering with U+FFFD,
    /// good for a journal line only). Reported once per settle, like `ready`, so the daemon can
    /// tell the user why nothing happens.
    case ignored(String, EntryKind)
    /// The kernel's event queue overflowed and events were lost: the daemon must re-list the
    /// folder with `FolderWatcher.scan(path:)`. Names still settling keep settling.
    case rescanNeeded
    /// The watched folder was deleted, renamed away or its file system unmounted. The watcher is
    /// finished: later calls return `[.folderGone]` at once. Create a new watcher when the
    /// folder is back.
    case folderGone
}
