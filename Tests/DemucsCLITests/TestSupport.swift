import AudioIO
import Foundation

/// Paths and helpers shared by the command-line tests, which run the real `demucsctl` binary.
enum TestSupport {
    static let repoRoot: String = {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
    }()
    static var fixtures: String { repoRoot + "/Tests/Fixtures" }
    static var models: String { fixtures + "/models" }

    /// The built `demucsctl`, next to the test bundle in the build products folder.
    static let demucsctl: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("demucsctl").path
    }()

    struct Run {
        var status: Int32
        var stdout: String
        var stderr: String
        /// Killed (SIGKILL) for running past the caller's `timeout`.
        var timedOut = false
    }

    /// Runs `demucsctl` with `arguments` and waits for it, killing it after `timeout` seconds.
    @discardableResult
    static func run(_ arguments: [String], environment: [String: String]? = nil, cwd: String? = nil,
                    timeout: Double? = nil) throws -> Run {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: demucsctl)
        process.arguments = arguments
        if let environment { process.environment = environment }
        if let cwd { process.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let watchdog = Watchdog()
        if let timeout {
            let pid = process.processIdentifier
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout) { watchdog.fire(pid) }
        }
        // Read both pipes to the end before waiting, so a chatty child never blocks on a full pipe.
        let errData = ReadBox()
        let t = Thread { errData.data = err.fileHandleForReading.readDataToEndOfFile() }
        t.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let timedOut = watchdog.finish()
        while !errData.done { usleep(1000) }
        return Run(status: process.terminationStatus,
                   stdout: String(decoding: outData, as: UTF8.self),
                   stderr: String(decoding: errData.data, as: UTF8.self), timedOut: timedOut)
    }

    /// Kills a child that is still running when its time is up.
    final class Watchdog: @unchecked Sendable {
        private let lock = NSLock()
        private var finished = false, fired = false

        func fire(_ pid: pid_t) {
            lock.lock(); defer { lock.unlock() }
            if !finished { fired = true; kill(pid, SIGKILL) }
        }

        /// Marks the child as exited; true when the watchdog killed it.
        func finish() -> Bool {
            lock.lock(); defer { lock.unlock() }
            finished = true
            return fired
        }
    }

    final class ReadBox: @unchecked Sendable {
        private let lock = NSLock()
        private var value = Data()
        private var finished = false
        var data: Data {
            get { lock.lock(); defer { lock.unlock() }; return value }
            set { lock.lock(); value = newValue; finished = true; lock.unlock() }
        }
        var done: Bool { lock.lock(); defer { lock.unlock() }; return finished }
    }

    /// A fresh temporary folder, removed by the caller.
    static func temporaryFolder() throws -> String {
        let path = NSTemporaryDirectory() + "demucsctl-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// SNR in dB of `estimate` against `reference` over all channels: 10·log10(Σref² / Σ(ref−est)²).
    static func snr(reference: AudioBuffer, estimate: AudioBuffer) -> Double {
        var signal = 0.0, noise = 0.0
        for (r, e) in zip(reference.channels, estimate.channels) {
            for i in 0..<min(r.count, e.count) {
                let d = Double(r[i]) - Double(e[i])
                signal += Double(r[i]) * Double(r[i])
                noise += d * d
            }
        }
        return noise == 0 ? .infinity : 10 * log10(signal / noise)
    }
}
