#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file written under a hidden temporary name next to its destination, then renamed into place.
///
/// Stems are large and written while users (or the daemon's clients) watch the output folder:
/// renaming only after a successful `fsync` means a reader sees either the complete old file, the
/// complete new one, or nothing, and a failed or interrupted write never leaves a truncated file
/// at the final path. The temporary lives in the same folder so the rename stays atomic (same
/// file system).
final class AtomicFile {
    let finalPath: String
    let tempPath: String
    /// Open read-write descriptor on `tempPath`.
    let fd: Int32
    private var finished = false

    /// Creates the temporary file `.<name>.<random>.partial` beside `finalPath`.
    init(finalPath: String) throws {
        let (folder, name) = FileChecks.split(finalPath)
        guard !name.isEmpty, name != ".", name != ".." else {
            throw AudioIOError(.invalidArgument, .encode, path: finalPath, reason: "path does not name a file")
        }
        var st = stat()
        if stat(finalPath, &st) == 0, st.st_mode & S_IFMT == S_IFDIR {
            throw AudioIOError(.notARegularFile, .encode, path: finalPath, reason: "is a directory")
        }
        // Keep the temporary name within NAME_MAX even for very long stem names.
        let stem = String(name.prefix(100))
        for _ in 0..<16 {
            let tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
            let candidate = (folder == "/" ? "" : folder) + "/.\(stem).\(tag).partial"
            // 0o666 so the umask applies as for any normally created file (mkstemp would force 0600).
            let fd = open(candidate, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
            if fd >= 0 {
                self.finalPath = finalPath
                self.tempPath = candidate
                self.fd = fd
                return
            }
            if errno != EEXIST {
                let code = errno
                throw AudioIOError(FileChecks.kind(forErrno: code), .encode, path: finalPath,
                                   reason: "cannot create a file in '\(folder)': \(FileChecks.errnoReason(code))")
            }
        }
        throw AudioIOError(.ioFailed, .encode, path: finalPath, reason: "could not pick a unique temporary name")
    }

    /// Writes all of `bytes` at the current offset, retrying short writes and EINTR.
    func write(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let n = Glibc_write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw FileChecks.error(.encode, path: finalPath)
            }
            offset += n
        }
    }

    /// Writes all of `bytes` at absolute `offset` without moving the file position.
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw FileChecks.error(.encode, path: finalPath)
            }
            done += n
        }
    }

    /// Flushes to disk and renames onto the final path. On failure the temporary file is removed.
    func commit() throws {
        finished = true
        if fsync(fd) != 0 {
            let code = errno
            close(fd)
            unlink(tempPath)
            throw FileChecks.error(.encode, path: finalPath, action: "cannot flush to disk", errno: code)
        }
        if close(fd) != 0 {
            let code = errno
            unlink(tempPath)
            throw FileChecks.error(.encode, path: finalPath, action: "cannot close", errno: code)
        }
        if rename(tempPath, finalPath) != 0 {
            let code = errno
            unlink(tempPath)
            throw FileChecks.error(.encode, path: finalPath, action: "cannot move into place", errno: code)
        }
        // Persist the directory entry too, so the rename survives a crash; failure here is harmless.
        let folder = FileChecks.split(finalPath).folder
        let dirfd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirfd >= 0 {
            _ = fsync(dirfd)
            close(dirfd)
        }
    }

    /// Closes and deletes the temporary file; nothing is left behind.
    func abort() {
        guard !finished else { return }
        finished = true
        close(fd)
        unlink(tempPath)
    }

    deinit {
        if !finished {
            close(fd)
            unlink(tempPath)
        }
    }
}

/// `write(2)` under a name that does not clash with `AtomicFile.write`.
@inline(__always)
private func Glibc_write(_ fd: Int32, _ buf: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(fd, buf, count)
    #else
    return Darwin.write(fd, buf, count)
    #endif
}
