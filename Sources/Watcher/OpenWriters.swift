import Glibc

/// A file by device and inode: what two names, or a name and an open descriptor, share when
/// they are the same file.
public struct FileIdentity: Hashable, Sendable {
    public var device: UInt64
    public var inode: UInt64
}

/// Finds files that some process holds open for writing, `fuser`-style, from `/proc`.
///
/// A writer that pauses longer than the settle period (a slow network copy, a download that
/// stalls, a copy that was under way when the daemon started) leaves a file that looks settled
/// by size and times but is not complete. Every `/proc/PID/fd/N` whose target is one of the
/// asked-for files is checked in `/proc/PID/fdinfo/N`: an access mode of `O_WRONLY` or `O_RDWR`
/// means a writer still has it.
///
/// - Important: only processes whose `/proc` entries this process may read are seen (all of
///   them as root; the same user's otherwise, and `ProtectProc=`/`hidepid=` hide more). A writer
///   that is not seen falls back to the settle rule alone. A process that keeps a finished file
///   open read-write without writing delays it until it closes it.
public enum OpenWriters {
    /// The subset of `files` that a process other than this one has open for writing.
    public static func openForWriting(_ files: Set<FileIdentity>) -> Set<FileIdentity> {
        guard !files.isEmpty, let proc = opendir("/proc") else { return [] }
        defer { closedir(proc) }
        let me = getpid()
        var found: Set<FileIdentity> = []
        while let entry = readdir(proc) {
            let name = entryName(entry)
            guard let pid = Int32(name), pid != me else { continue }
            scan(pid: pid, for: files, into: &found)
            if found.count == files.count { break }
        }
        return found
    }

    private static func scan(pid: Int32, for files: Set<FileIdentity>, into found: inout Set<FileIdentity>) {
        let fdFolder = "/proc/\(pid)/fd"
        guard let dir = opendir(fdFolder) else { return }  // gone, or not ours to read
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let fd = entryName(entry)
            guard Int(fd) != nil else { continue }
            var st = stat()
            guard stat(fdFolder + "/" + fd, &st) == 0 else { continue }
            let identity = FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
            guard files.contains(identity), !found.contains(identity) else { continue }
            if let flags = openFlags(pid: pid, fd: fd), flags & Int(O_ACCMODE) != Int(O_RDONLY) {
                found.insert(identity)
            }
        }
    }

    /// The `flags:` line of `/proc/PID/fdinfo/FD` (octal), or nil when it cannot be read.
    static func openFlags(pid: Int32, fd: String) -> Int? {
        guard let file = fopen("/proc/\(pid)/fdinfo/\(fd)", "r") else { return nil }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(cString: line)
            if text.hasPrefix("flags:") {
                let digits = text.dropFirst("flags:".count).filter { $0 >= "0" && $0 <= "7" }
                return Int(digits, radix: 8)
            }
        }
        return nil
    }

    private static func entryName(_ entry: UnsafeMutablePointer<dirent>) -> String {
        withUnsafePointer(to: entry.pointee.d_name) { pointer in
            pointer.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
        }
    }
}
