import Foundation
import JobStore
import Logging

/// Retries a job-database write that failed because of the database, not the request: a lock
/// held by another process past the busy timeout, a disk that refused the write. A state
/// change is never papered over (the old `try? … ?? .failed`): the write is tried again with a
/// growing pause (0.5 s doubling to 10 s) until it succeeds or the daemon stops; then the
/// error is thrown and the row is left as it was, for the next start-up's recovery.
struct PersistentWrite: Sendable {
    let logger: Logger
    var firstPause: Double = 0.5
    var longestPause: Double = 10
    /// Called before each pause: the thread is waiting on the machine, not hung (liveness).
    var onWait: @Sendable () -> Void = {}

    func run<T>(_ what: String, stop: () -> Bool, _ body: () throws -> T) throws -> T {
        var pause = firstPause
        var reported = false
        while true {
            do {
                let value = try body()
                if reported { logger.notice("the job database answers again: \(what) done") }
                return value
            } catch let error as JobStoreError where Self.isTransient(error) {
                if stop() { throw error }
                if !reported {
                    logger.error("cannot \(what) yet, retrying until it can: \(error)")
                    reported = true
                }
                onWait()
                Thread.sleep(forTimeInterval: pause)
                pause = min(pause * 2, longestPause)
            }
        }
    }

    /// Failures of the database rather than of the request.
    static func isTransient(_ error: JobStoreError) -> Bool {
        switch error.kind {
        case .busy, .fileSystem, .readOnly, .sqlite, .unreachable, .database: return true
        default: return false
        }
    }
}
