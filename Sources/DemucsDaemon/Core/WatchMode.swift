import Foundation
import Watcher

/// How the daemon watches its input folder: `[watch] poll_seconds` when set; else polling
/// every 2 s on a network filesystem (inotify there sees only this host's own writes, never
/// another host's), inotify elsewhere.
struct WatchMode: Sendable, Equatable, CustomStringConvertible {
    var watcherMode: FolderWatcher.Mode
    /// Why this mode: "poll_seconds", the network filesystem's name, or nil (inotify, local).
    var reason: String?

    /// The scan interval on a network filesystem when `poll_seconds` is 0.
    static let networkPollSeconds = 2.0

    static func choose(_ config: WatchConfig, folder: String, network: (String) -> String? = NetworkFileSystem.name(of:)) -> WatchMode {
        if config.pollSeconds > 0 {
            return WatchMode(watcherMode: .poll(every: .milliseconds(Int64(config.pollSeconds * 1000))), reason: "poll_seconds")
        }
        if let name = network(folder) {
            return WatchMode(watcherMode: .poll(every: .milliseconds(Int64(networkPollSeconds * 1000))), reason: name)
        }
        return WatchMode(watcherMode: .inotify, reason: nil)
    }

    var description: String {
        switch watcherMode {
        case .inotify:
            return "inotify"
        case .poll(let interval):
            let seconds = Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18
            let why = reason == "poll_seconds" ? "[watch] poll_seconds" : "the folder is on \(reason ?? "a network filesystem"), where inotify does not see other hosts' writes"
            return "a scan every \(seconds) s (\(why))"
        }
    }
}
