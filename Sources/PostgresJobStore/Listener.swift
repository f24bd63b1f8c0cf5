import Foundation
import PostgresNIO

/// LISTEN on ``PostgresJobStore/notifyChannel`` on a connection of its own, calling `wake` at
/// each notification. A notification sent while the connection is down is lost, so `wake` is
/// also called at every (re)connection; the daemon's periodic look at the queue is the safety
/// net for the rest.
final class Listener: @unchecked Sendable {
    private let lock = NSLock()
    private var task: Task<Void, Never>?

    func start(store: PostgresJobStore, executor: any TaskExecutor, wake: @escaping @Sendable () -> Void) {
        lock.withLock {
            guard task == nil else { return }
            task = Task(executorPreference: executor) {
                while !Task.isCancelled {
                    do {
                        try await store.client.withConnection { connection in
                            try await connection.listen(on: PostgresJobStore.notifyChannel) { notifications in
                                wake()
                                for try await _ in notifications { wake() }
                            }
                        }
                    } catch {
                        if Task.isCancelled { break }
                        store.logger.debug("listening for new jobs failed, again in 2 s: \(error)")
                    }
                    try? await Task.sleep(for: .seconds(2))
                }
            }
        }
    }

    func stop() {
        lock.withLock {
            task?.cancel()
            task = nil
        }
    }
}
