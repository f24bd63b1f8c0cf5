import Foundation
import JobStore
import Logging
import PostgresJobStore
import Watcher

/// Opens the daemon's job queue as configured: PostgreSQL when `[database] url` (or
/// `--database`) is set, else the SQLite file in the data folder — which is refused on a
/// network filesystem, where its WAL's shared memory does not work across hosts.
enum QueueOpening {
    /// - Parameter network: the network filesystem a folder is on (statfs), replaceable in tests.
    static func open(_ config: DatabaseConfig, layout: DataLayout, logger: Logger,
                     network: (String) -> String? = NetworkFileSystem.name(of:)) throws -> any JobQueue {
        if let text = config.url {
            let url = try DatabaseURL(text)
            return try PostgresJobQueue(url: url, lease: config.leaseSeconds, migrate: true, logger: logger)
        }
        if let network = network(layout.state) {
            throw DaemonError("\(layout.state) is on \(network), a network filesystem: the SQLite job database does not work there (its WAL needs memory shared by one host's processes). Share the queue through PostgreSQL instead: demucsd --database postgresql://… (docs/SCALING.md)")
        }
        return try JobStore(path: layout.database)
    }
}
