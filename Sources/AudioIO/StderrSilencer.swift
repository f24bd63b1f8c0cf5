import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Silences file descriptor 2 while libsndfile decodes.
///
/// libsndfile's MP3 decoder (libmpg123) prints "Note: Illegal Audio-MPEG-Header…" lines straight
/// to stderr for damaged or mislabelled files; the error itself reaches us through
/// `sf_strerror`, so those lines only add noise to a terminal or, worse, unprioritised lines to
/// the journal. Nested and concurrent calls share one redirection (a counter under a lock).
/// Callers that log to stderr from other threads should log to a `dup` of it (the daemon does).
enum StderrSilencer {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var depth = 0
    nonisolated(unsafe) private static var saved: Int32 = -1

    static func silenced<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        if depth == 0 {
            let null = open("/dev/null", O_WRONLY | O_CLOEXEC)
            if null >= 0 {
                saved = dup(STDERR_FILENO)
                if saved >= 0 { dup2(null, STDERR_FILENO) }
                close(null)
            }
        }
        depth += 1
        lock.unlock()
        defer {
            lock.lock()
            depth -= 1
            if depth == 0 && saved >= 0 {
                dup2(saved, STDERR_FILENO)
                close(saved)
                saved = -1
            }
            lock.unlock()
        }
        return try body()
    }
}
