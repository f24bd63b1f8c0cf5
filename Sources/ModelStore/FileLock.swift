#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An exclusive advisory lock (`flock`) on a lock file, held while a model is checked and fetched.
///
/// Downloads write to a fixed temporary name (`.<file>.part`) that is renamed into place when
/// complete. Two processes (the CLI and the daemon, say) fetching the same model at once would
/// write into the same temporary file, and one could rename the other's unfinished file into
/// place. Holding this lock around the whole fetch rules that out. The kernel releases the lock
/// when the process dies, so a crash never leaves the model locked.
struct FileLock: Sendable {
    let descriptor: Int32
    let path: String

    /// Waits (without blocking a thread: it polls every `pollInterval`) until the lock on `path`
    /// is free, then takes it. Creates the lock file if needed. Cancellable.
    static func acquire(path: String, pollInterval: Duration = .milliseconds(200)) async throws -> FileLock {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw ModelStoreError(.fileSystem, "cannot create the lock file \(path): \(String(cString: strerror(errno)))")
        }
        while true {
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { return FileLock(descriptor: fd, path: path) }
            let code = errno
            if code == EINTR { continue }
            guard code == EWOULDBLOCK else {
                close(fd)
                throw ModelStoreError(.fileSystem, "cannot lock \(path): \(String(cString: strerror(code)))")
            }
            do {
                try await Task.sleep(for: pollInterval)
            } catch {
                close(fd)
                throw ModelStoreError(.cancelled, "cancelled while waiting for another process to finish fetching into \(path)")
            }
        }
    }

    /// Releases the lock (closing the descriptor releases it).
    func release() {
        close(descriptor)
    }
}
