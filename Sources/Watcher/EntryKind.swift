/// What a folder entry is, as far as the daemon cares.
///
/// Only `regular` files are processed. The other kinds exist so the daemon can say *why* a
/// dropped item is not processed (and log it once), instead of silently skipping it.
public enum EntryKind: Sendable, Equatable, Hashable {
    /// A regular file (after `lstat`, so never a symbolic link to one).
    case regular
    /// A subfolder. The watcher is not recursive: subfolders of the input folder are ignored.
    case directory
    /// A symbolic link. Links are not followed: the target may live anywhere, including outside
    /// the folder the administrator granted the daemon.
    case symlink
    /// A FIFO, socket or device node.
    case other
    /// A name that is not valid UTF-8 (Linux names are arbitrary bytes). It cannot round-trip
    /// through `String`, so the daemon cannot open it by name; whatever its file type, it is
    /// reported as this kind with a lossy (U+FFFD) rendering of the name.
    case undecodableName
}
