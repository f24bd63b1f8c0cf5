import Foundation
import JobStore
import Logging
import Testing
@testable import DemucsDaemon
@testable import Watcher

/// Which queue and which watch the daemon chooses from its configuration and its folders.
@Suite struct QueueChoiceTests {
    static func folder() throws -> DataLayout {
        let path = NSTemporaryDirectory() + "demucsd-choice-\(UUID().uuidString)"
        let layout = DataLayout(root: path)
        try layout.create()
        return layout
    }

    /// SQLite's WAL needs memory shared by one host's processes: a data folder on NFS is
    /// refused with the way out (a shared queue), and nothing is created there.
    @Test func sqliteOnANetworkFileSystemIsRefused() throws {
        let layout = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: layout.root) }
        let error = #expect(throws: DaemonError.self) {
            _ = try QueueOpening.open(DatabaseConfig(), layout: layout, logger: Logger(label: "test"),
                                      network: { $0 == layout.state ? "NFS" : nil })
        }
        #expect(error?.description.contains("on NFS, a network filesystem") == true, "\(String(describing: error))")
        #expect(error?.description.contains("--database postgresql://") == true)
        #expect(!FileManager.default.fileExists(atPath: layout.database))
        // A local folder gets its SQLite queue.
        let queue = try QueueOpening.open(DatabaseConfig(), layout: layout, logger: Logger(label: "test"), network: { _ in nil })
        #expect(!queue.isShared && queue.location == layout.database)
        try queue.close()
    }

    @Test func theWatchPollsWhenAskedOrOnANetworkFileSystem() {
        let local: (String) -> String? = { _ in nil }
        #expect(WatchMode.choose(WatchConfig(), folder: "/in", network: local).watcherMode == .inotify)
        #expect(WatchMode.choose(WatchConfig(), folder: "/in", network: { _ in "CIFS" })
                    == WatchMode(watcherMode: .poll(every: .seconds(2)), reason: "CIFS"))
        #expect(WatchMode.choose(WatchConfig(pollSeconds: 0.5), folder: "/in", network: local).watcherMode
                    == .poll(every: .milliseconds(500)))
        #expect(WatchMode.choose(WatchConfig(), folder: "/in", network: { _ in "NFS" }).description
                    == "a scan every 2.0 s (the folder is on NFS, where inotify does not see other hosts' writes)")
    }

    @Test func databaseAndWatchSectionsAreChecked() throws {
        let config = try DaemonConfig.parse("""
            [database]
            url = "postgresql:///demucsd?host=/run/postgresql"
            lease_seconds = 30
            heartbeat_seconds = 10
            node = "box1"
            [watch]
            poll_seconds = 5
            """)
        #expect(config.database == DatabaseConfig(url: "postgresql:///demucsd?host=/run/postgresql", leaseSeconds: 30,
                                                  heartbeatSeconds: 10, node: "box1"))
        #expect(config.watch == WatchConfig(pollSeconds: 5))
        #expect(try DaemonConfig.parse("[database]\nlease_seconds = 9\n").database.heartbeatSeconds == 3,
                "the heartbeat defaults to a third of a short lease")
        for (text, message) in [
            ("[database]\nurl = \"mysql://x\"\n", "[database] url = \"mysql://x\" is not a PostgreSQL URL"),
            ("[database]\nlease_seconds = 10\nheartbeat_seconds = 6\n", "must be at most half of lease_seconds"),
            ("[database]\nnode = \"a/b\"\n", "must not contain '/'"),
            ("[watch]\npoll = 1\n", "poll"),
        ] {
            let error = #expect(throws: ConfigError.self) { try DaemonConfig.parse(text) }
            #expect(error?.description.contains(message) == true, "\(String(describing: error))")
        }
        let flags = try DaemonConfig().overriding(database: "postgres://u@h/d", node: "n1")
        #expect(flags.database.url == "postgres://u@h/d" && flags.database.node == "n1")
        #expect(throws: ConfigError.self) { try DaemonConfig().overriding(database: "jobs.sqlite") }
    }
}
