import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Shows a separation's progress on stderr: a bar with elapsed time and ETA redrawn in place on
/// a terminal, or a plain line every 10% when stderr is a file or a pipe (logs stay readable).
final class ProgressDisplay: @unchecked Sendable {
    private let label: String
    private let isTerminal: Bool
    private let start = Date()
    private let lock = NSLock()
    private var lastDecile = -1
    private var lastDraw = Date.distantPast

    init(label: String, isTerminal: Bool = isatty(STDERR_FILENO) != 0) {
        self.label = label
        self.isTerminal = isTerminal
    }

    func update(_ fraction: Double) {
        lock.lock()
        defer { lock.unlock() }
        let elapsed = Date().timeIntervalSince(start)
        if isTerminal {
            let now = Date()
            guard fraction >= 1 || now.timeIntervalSince(lastDraw) > 0.1 else { return }
            lastDraw = now
            let width = 30
            let filled = Int(fraction * Double(width))
            let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
            let eta = fraction > 0 ? elapsed / fraction - elapsed : 0
            let text = String(format: "\r%@ %@ %3d%% %@ elapsed, ETA %@ ", label, bar, Int(fraction * 100),
                              Self.clock(elapsed), fraction > 0 ? Self.clock(eta) : "--:--")
            FileHandle.standardError.write(Data(text.utf8))
        } else {
            let decile = Int(fraction * 10)
            guard decile > lastDecile else { return }
            lastDecile = decile
            let line = String(format: "%@: %d%% (%.1fs)\n", label, decile * 10, elapsed)
            FileHandle.standardError.write(Data(line.utf8))
        }
    }

    /// Ends the bar's line on a terminal.
    func finish() {
        if isTerminal { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    static func clock(_ seconds: Double) -> String {
        let s = max(0, Int(seconds.rounded()))
        return String(format: "%d:%02d", s / 60, s % 60)
    }
}
