import AudioIO
import Foundation
import JobStore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The end-to-end tests of the real `demucsd` binary. They all hang under this suite, which runs
/// them one at a time: each one separates audio on every core, and two at once on a small CI box
/// would only make both slow and their time bounds meaningless.
@Suite(.serialized) enum DaemonEndToEnd {}

/// Paths of the repository, its fixtures and the built binaries.
enum E2EPaths {
    static let repoRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()
    static var models: String { repoRoot + "/Tests/Fixtures/models" }
    static var fixtureAudio: String { repoRoot + "/Tests/Fixtures/audio" }
    /// 20 s of real music (MP3), shared by the projects of this workspace.
    static var testMP3: String { URL(fileURLWithPath: repoRoot + "/../shared/test-audio/test.mp3").standardizedFileURL.path }

    /// The build products folder: the test bundle's own folder, where SwiftPM also puts
    /// `demucsd` and `demucsctl` (the test target depends on both).
    static let products: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).deletingLastPathComponent().path
    }()
    static var demucsd: String { products + "/demucsd" }
    static var demucsctl: String { products + "/demucsctl" }
}

/// Polls `condition` every `step` seconds until it holds or `timeout` seconds passed.
/// Errors thrown by the condition count as "not yet" (the database may not exist yet).
@discardableResult
func waitUntil(timeout: Double = 60, step: Double = 0.1, _ condition: () throws -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        if (try? condition()) == true { return true }
        if Date() >= deadline { return false }
        Thread.sleep(forTimeInterval: step)
    }
}

/// One finished run of a command-line program.
struct CommandRun {
    var status: Int32
    var stdout: String
    var stderr: String
    /// Wall-clock seconds from launch to exit.
    var seconds: Double
}

/// Runs `executable` to completion (stdout and stderr go through files, so nothing blocks on a
/// full pipe), killing it after `timeout` seconds.
func runCommand(_ executable: String, _ arguments: [String], timeout: Double = 60) throws -> CommandRun {
    let scratch = NSTemporaryDirectory() + "demucsd-e2e-cmd-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: scratch) }
    _ = FileManager.default.createFile(atPath: scratch + "/out", contents: nil)
    _ = FileManager.default.createFile(atPath: scratch + "/err", contents: nil)
    let out = try FileHandle(forWritingTo: URL(fileURLWithPath: scratch + "/out"))
    let err = try FileHandle(forWritingTo: URL(fileURLWithPath: scratch + "/err"))
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.environment = DaemonHarness.childEnvironment
    process.standardInput = FileHandle.nullDevice
    process.standardOutput = out
    process.standardError = err
    let started = Date()
    try process.run()
    if !waitUntil(timeout: timeout, step: 0.005, { !process.isRunning }) {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
    process.waitUntilExit()
    let seconds = Date().timeIntervalSince(started)
    try out.close()
    try err.close()
    return CommandRun(status: process.terminationStatus,
                      stdout: (try? String(contentsOfFile: scratch + "/out", encoding: .utf8)) ?? "",
                      stderr: (try? String(contentsOfFile: scratch + "/err", encoding: .utf8)) ?? "",
                      seconds: seconds)
}

/// A temporary folder with a data folder for one `demucsd`, the daemon process itself, and the
/// ways the tests look at it. The daemon is killed and the folder removed when the harness goes
/// away, whatever the test did.
final class DaemonHarness: @unchecked Sendable {
    let root: String
    let data: String
    var repo: String
    var modelName = "tiny4"
    /// The configuration file passed with `--config` (nil: none).
    var configPath: String?
    private(set) var process: Process?
    private var logHandle: FileHandle?
    let logPath: String

    /// The environment of the child processes: ours, without anything that would make the
    /// daemon talk to a systemd that is not its own.
    static let childEnvironment: [String: String] = {
        var environment = ProcessInfo.processInfo.environment
        for key in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "DEMUCSD_DATA"] {
            environment[key] = nil
        }
        return environment
    }()

    /// New files settle after 0.3 s instead of 1 s, to keep the tests quick.
    static let quickConfig = "[jobs]\nsettle_seconds = 0.3\n"
    /// Also one thread per job: a long file then takes about as long on any machine (many cores
    /// would finish it before a test can interrupt it), and it leaves a core to the test.
    static let oneThreadConfig = "[jobs]\nsettle_seconds = 0.3\nthreads = 1\n"

    /// - Parameter config: TOML text for `--config` (written into the temporary folder); the
    ///   default is `quickConfig`.
    /// - Parameter data: a data folder another harness made (hosts sharing one); default: one
    ///   of its own in its temporary folder.
    init(config: String? = DaemonHarness.quickConfig, repo: String = E2EPaths.models, data: String? = nil) throws {
        var template = Array((NSTemporaryDirectory() + "/demucsd-e2e-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        root = String(cString: made)
        self.data = data ?? root + "/data"
        logPath = root + "/daemon.log"
        self.repo = repo
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        if let config {
            configPath = root + "/demucsd.conf"
            try config.write(toFile: configPath!, atomically: true, encoding: .utf8)
        }
    }

    deinit {
        if let process, process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? logHandle?.close()
        try? FileManager.default.removeItem(atPath: root)
    }

    var input: String { data + "/input" }
    var output: String { data + "/output/demucs" }
    var staging: String { data + "/state/staging" }
    var database: String { data + "/state/jobs.sqlite" }

    /// Everything the daemon(s) of this harness wrote to stdout and stderr so far.
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    var isRunning: Bool { process?.isRunning ?? false }
    var pid: Int32 { process?.processIdentifier ?? -1 }

    /// Starts `demucsd --data DATA --repo REPO -n NAME [--config FILE]` in the background, its
    /// output appended to `logPath`.
    /// - Parameter environment: added to the child's environment (`NOTIFY_SOCKET` for a test
    ///   that plays systemd).
    /// - Parameter wrapper: a command that runs the daemon (its executable and arguments, the
    ///   daemon's command line appended), e.g. a sandbox.
    func start(extraArguments: [String] = [], environment: [String: String] = [:], wrapper: [String] = []) throws {
        precondition(!isRunning, "the daemon already runs")
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        try handle.seekToEnd()
        let process = Process()
        var arguments = ["--data", data, "--repo", repo, "-n", modelName]
        if let configPath { arguments += ["--config", configPath] }
        arguments += extraArguments
        if let tool = wrapper.first {
            process.executableURL = URL(fileURLWithPath: tool)
            process.arguments = Array(wrapper.dropFirst()) + [E2EPaths.demucsd] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: E2EPaths.demucsd)
            process.arguments = arguments
        }
        process.environment = Self.childEnvironment.merging(environment) { $1 }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        self.process = process
        try? logHandle?.close()
        logHandle = handle
    }

    /// Starts the daemon and waits until `demucsctl status` would call it running (its row is in
    /// the database with a live pid), so files dropped afterwards are seen by its watch.
    func startAndWaitReady(timeout: Double = 30, wrapper: [String] = []) throws {
        try start(wrapper: wrapper)
        let ready = waitUntil(timeout: timeout) {
            guard isRunning else { return false }
            let store = try JobStore.openReadOnly(path: database)
            defer { try? store.close() }
            guard let info = try store.daemonInfo(), info.pid == pid else { return false }
            // "starting" is written before the watch exists; the first heartbeat follows it.
            return info.status != "starting"
        }
        try #require(ready, "demucsd did not come up within \(timeout) s; log:\n\(log)")
    }

    func signal(_ number: Int32) {
        if let process, process.isRunning { kill(process.processIdentifier, number) }
    }

    /// Waits up to `timeout` seconds for the daemon to exit; its exit status, or nil while it runs.
    /// A death by signal reads as 128 + the signal number.
    @discardableResult
    func waitForExit(timeout: Double) -> Int32? {
        guard let process else { return nil }
        guard waitUntil(timeout: timeout, step: 0.02, { !process.isRunning }) else { return nil }
        process.waitUntilExit()
        return process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
    }

    /// SIGTERM, then SIGKILL if it is still there after `timeout` seconds. Returns the exit status
    /// (0 for a clean stop).
    @discardableResult
    func stop(timeout: Double = 15) -> Int32? {
        guard let process else { return nil }
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        if let status = waitForExit(timeout: timeout) { return status }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        return nil
    }

    /// SIGKILL, and waits until the process is gone.
    func killHard() {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    // MARK: Looking at the results

    /// Every job, oldest first, read through the library the way `demucsctl` reads it.
    func jobs() throws -> [Job] {
        let store = try JobStore.openReadOnly(path: database)
        defer { try? store.close() }
        return try store.jobs(limit: 10_000).reversed()
    }

    func jobs(named name: String) throws -> [Job] {
        try jobs().filter { $0.inputName == name }
    }

    /// Waits until `condition` holds for the job list; fails the test (with the daemon's log)
    /// when it does not within `timeout` seconds.
    @discardableResult
    func waitForJobs(_ what: String, timeout: Double = 60,
                     sourceLocation: SourceLocation = #_sourceLocation,
                     _ condition: ([Job]) -> Bool) throws -> [Job] {
        var last: [Job] = []
        let ok = waitUntil(timeout: timeout) {
            last = try jobs()
            return condition(last)
        }
        let summary = last.map { "#\($0.id) \($0.inputName) \($0.state.rawValue) attempts=\($0.attempts) error=\($0.error ?? "-")" }
        try #require(ok, "timed out after \(timeout) s waiting for \(what); jobs:\n\(summary.joined(separator: "\n"))\nlog:\n\(log)",
                     sourceLocation: sourceLocation)
        return last
    }

    /// Waits until every job named in `names` is done (and fails the test if one ends otherwise).
    @discardableResult
    func waitUntilDone(_ names: [String], timeout: Double = 60,
                       sourceLocation: SourceLocation = #_sourceLocation) throws -> [Job] {
        try waitForJobs("\(names) to be done", timeout: timeout, sourceLocation: sourceLocation) { jobs in
            names.allSatisfy { name in jobs.contains { $0.inputName == name && $0.state == .done } }
        }
    }

    /// Runs `demucsctl ARGS --data DATA`.
    func ctl(_ arguments: [String]) throws -> CommandRun {
        try runCommand(E2EPaths.demucsctl, arguments + ["--data", data])
    }

    /// `demucsctl status --json`, parsed, with the run itself.
    func statusJSON() throws -> (object: [String: Any], run: CommandRun) {
        let run = try ctl(["status", "--json"])
        let object = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
        return (try #require(object, "status --json printed no object: \(run.stdout) \(run.stderr)"), run)
    }

    /// Entries of a folder ([] when it does not exist).
    func entries(_ folder: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted()
    }

    /// Checks that `output/demucs/<name>/` holds the four stems as WAV and MP3, and that every
    /// WAV decodes to 44.1 kHz stereo of `frames` frames.
    func expectCompleteOutput(_ name: String, frames: Int, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let folder = output + "/" + name
        let expected = ["bass", "drums", "other", "vocals"].flatMap { ["\($0).mp3", "\($0).wav"] }
        #expect(entries(folder) == expected, "output/demucs/\(name)/", sourceLocation: sourceLocation)
        for stem in ["drums", "bass", "other", "vocals"] {
            let wav = try AudioDecoder.decode(path: "\(folder)/\(stem).wav")
            #expect(wav.sampleRate == 44_100, sourceLocation: sourceLocation)
            #expect(wav.channelCount == 2, sourceLocation: sourceLocation)
            #expect(wav.frameCount == frames, "\(name)/\(stem).wav", sourceLocation: sourceLocation)
            let size = (try FileManager.default.attributesOfItem(atPath: "\(folder)/\(stem).mp3")[.size] as? Int) ?? 0
            #expect(size > 1000, "\(name)/\(stem).mp3 is \(size) bytes", sourceLocation: sourceLocation)
        }
    }

    /// A folder for `output/demucs/<name>` is either absent or complete (never half written).
    func expectAbsentOrComplete(_ name: String, frames: Int, sourceLocation: SourceLocation = #_sourceLocation) throws {
        if FileManager.default.fileExists(atPath: output + "/" + name) {
            try expectCompleteOutput(name, frames: frames, sourceLocation: sourceLocation)
        }
    }
}

/// Test audio made on the fly: a few sines with a wobble and some noise, different for every
/// seed (so two files never share a content hash unless asked to).
enum TestAudio {
    static let sampleRate = 44_100

    static func buffer(seconds: Double, seed: UInt64) -> AudioBuffer {
        let frames = Int(seconds * Double(sampleRate))
        var state = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        func noise() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(Int64(bitPattern: state >> 11) % 2001 - 1000) / 1000
        }
        let base = 110 + Double(seed % 97) * 3.7
        var left = [Float](repeating: 0, count: frames), right = left
        for i in 0..<frames {
            let t = Double(i) / Double(sampleRate)
            let beat = (t * 2).truncatingRemainder(dividingBy: 1) < 0.05 ? 0.4 : 0
            let tone = 0.25 * sin(2 * .pi * base * t) + 0.15 * sin(2 * .pi * base * 2.01 * t + 1)
                + 0.1 * sin(2 * .pi * 880 * t * (1 + 0.01 * sin(2 * .pi * 0.5 * t)))
            let n = noise()
            left[i] = Float(tone + beat * Double(n)) + 0.02 * n
            right[i] = Float(0.8 * tone - beat * Double(n)) + 0.02 * noise()
        }
        return AudioBuffer(sampleRate: sampleRate, channels: [left, right])
    }

    /// Writes `seconds` of audio to `path` (WAV or FLAC by the extension) and returns its frames.
    @discardableResult
    static func write(_ path: String, seconds: Double, seed: UInt64) throws -> Int {
        let audio = buffer(seconds: seconds, seed: seed)
        let format: AudioFileFormat = path.hasSuffix(".flac") ? .flac : .wav
        try AudioEncoder.write(audio, to: path, options: EncodeOptions(format: format))
        return audio.frameCount
    }
}

/// `cp`, `mv` and friends, as a user would run them.
func shell(_ executable: String, _ arguments: [String]) throws {
    let run = try runCommand(executable, arguments)
    try #require(run.status == 0, "\(executable) \(arguments) failed: \(run.stderr)")
}
