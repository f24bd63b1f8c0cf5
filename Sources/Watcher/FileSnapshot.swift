import Glibc

/// The `lstat(2)` facts about one folder entry that tell whether it is still being written.
///
/// inotify reports `IN_CLOSE_WRITE` per close, but a writer may reopen the file right after and
/// keep appending without closing for longer than the settle period (no event at all until its
/// next close). Comparing a snapshot taken at the last event with one taken when the settle
/// timer fires catches that without watching `IN_MODIFY`, which would wake the daemon on every
/// `write(2)` of a multi-gigabyte copy. `ctime` is in the stamp because, unlike `mtime`, tools
/// cannot set it (`cp -p`, `touch -d`), and every write moves it.
struct FileSnapshot: Sendable, Equatable {
    var kind: EntryKind
    var size: Int64
    var modificationSeconds: Int
    var modificationNanoseconds: Int
    var changeSeconds: Int
    var changeNanoseconds: Int
    var inode: UInt64
    var device: UInt64

    init(_ st: stat) {
        switch st.st_mode & S_IFMT {
        case S_IFREG: kind = .regular
        case S_IFDIR: kind = .directory
        case S_IFLNK: kind = .symlink
        default: kind = .other
        }
        size = Int64(st.st_size)
        modificationSeconds = Int(st.st_mtim.tv_sec)
        modificationNanoseconds = Int(st.st_mtim.tv_nsec)
        changeSeconds = Int(st.st_ctim.tv_sec)
        changeNanoseconds = Int(st.st_ctim.tv_nsec)
        inode = UInt64(st.st_ino)
        device = UInt64(st.st_dev)
    }

    /// Which file this is, independent of its name.
    var identity: FileIdentity { FileIdentity(device: device, inode: inode) }

    /// `fstatat(folder, name, AT_SYMLINK_NOFOLLOW)`; `nil` when the entry is gone or unreadable.
    ///
    /// Failures are not thrown: the entry may vanish between an event and this call, and the
    /// caller then simply has nothing to report (a removal event follows on its own).
    static func lstat(folder: Int32, name: FileName) -> FileSnapshot? {
        lstat(at: folder, pathBytes: name.bytes)
    }

    /// `lstat` of `name` inside the folder at `folder` (path bytes), for callers that must not
    /// hold the folder open.
    static func lstat(folder: [UInt8], name: FileName) -> FileSnapshot? {
        lstat(at: AT_FDCWD, pathBytes: folder + [UInt8(ascii: "/")] + name.bytes)
    }

    private static func lstat(at folder: Int32, pathBytes: [UInt8]) -> FileSnapshot? {
        var st = stat()
        let rc = (pathBytes + [0]).withUnsafeBufferPointer { bytes in
            bytes.withMemoryRebound(to: CChar.self) { cPath in
                var rc: Int32
                repeat {
                    rc = fstatat(folder, cPath.baseAddress!, &st, AT_SYMLINK_NOFOLLOW)
                } while rc < 0 && errno == EINTR
                return rc
            }
        }
        return rc == 0 ? FileSnapshot(st) : nil
    }
}
