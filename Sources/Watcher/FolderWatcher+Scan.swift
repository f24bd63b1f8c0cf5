import Glibc

extension FolderWatcher {
    /// The candidate regular files directly in `path`, oldest modification first (ties by name
    /// bytes), for start-up and after `.rescanNeeded`.
    ///
    /// Symbolic links, subfolders, special files and names that are not UTF-8 are left out; use
    /// `scanEntries` to report those. A listed file may still be being written (e.g. the daemon
    /// restarted in the middle of a copy); the watcher will report it `ready` again when that
    /// writer closes it.
    public static func scan(path: String) throws -> [String] {
        try scanEntries(path: path).filter { $0.kind == .regular }.map(\.name)
    }

    /// Every candidate entry directly in `path` with its kind (`lstat`, links not followed),
    /// oldest modification first, ties broken by name bytes.
    ///
    /// Hidden and temporary names (`isCandidate` false) are never listed: they are not the
    /// user's finished drops and not worth a journal line. Names that are not valid UTF-8 are
    /// listed as `.undecodableName` with a lossy rendering of the name.
    public static func scanEntries(path: String) throws -> [(name: String, kind: EntryKind)] {
        try scanSnapshots(path: path).map { item in
            guard let string = item.name.string else { return (item.name.displayString, .undecodableName) }
            return (string, item.snapshot.kind)
        }
    }

    /// Every candidate entry directly in `path` with its `lstat` snapshot, oldest
    /// modification first, ties broken by name bytes.
    static func scanSnapshots(path: String) throws -> [(name: FileName, snapshot: FileSnapshot)] {
        guard let dir = opendir(path) else {
            throw WatcherError.fromErrno("opendir", path: path)
        }
        defer { closedir(dir) }
        let folderFD = dirfd(dir)
        let nameOffset = MemoryLayout<dirent>.offset(of: \.d_name)!

        var found: [(name: FileName, snapshot: FileSnapshot)] = []
        while true {
            errno = 0
            guard let entry = readdir(dir) else {
                if errno != 0 { throw WatcherError.fromErrno("readdir", path: path) }
                break
            }
            let cName = UnsafeRawPointer(entry).advanced(by: nameOffset).assumingMemoryBound(to: CChar.self)
            let name = FileName(bytes: Array(UnsafeRawBufferPointer(start: cName, count: strlen(cName))))
            guard name.isCandidate else { continue }
            // Vanished between readdir and lstat: it is simply not there any more.
            guard let snapshot = FileSnapshot.lstat(folder: folderFD, name: name) else { continue }
            found.append((name, snapshot))
        }

        found.sort { a, b in
            let ta = (a.snapshot.modificationSeconds, a.snapshot.modificationNanoseconds)
            let tb = (b.snapshot.modificationSeconds, b.snapshot.modificationNanoseconds)
            return ta != tb ? ta < tb : FileName.precedes(a.name, b.name)
        }
        return found
    }
}
