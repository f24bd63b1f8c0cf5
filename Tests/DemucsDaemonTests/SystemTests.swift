#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Logging
import Testing
@testable import DemucsDaemon

/// The systemd integration: sd_notify datagrams, journal log lines, and the unit file.
@Suite struct SystemTests {
    // MARK: - sd_notify

    @Test func notifierSendsDatagramsToAPathSocket() throws {
        let folder = try TemporaryFolder()
        let path = folder.path + "/notify.sock"
        let receiver = try DatagramReceiver(address: path)
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": path])
        #expect(notifier.isEnabled)

        notifier.ready()
        #expect(try receiver.receive() == "READY=1\n")
        notifier.ready(status: "idle")
        #expect(try receiver.receive() == "READY=1\nSTATUS=idle\n")
        notifier.status("separating song.mp3\n(1 of 3)")
        #expect(try receiver.receive() == "STATUS=separating song.mp3 (1 of 3)\n")
        notifier.watchdog()
        #expect(try receiver.receive() == "WATCHDOG=1\n")
        notifier.reloading()
        let reloading = try receiver.receive()
        #expect(reloading.range(of: #"^RELOADING=1\nMONOTONIC_USEC=[0-9]+\n$"#, options: .regularExpression) != nil)
        notifier.stopping()
        #expect(try receiver.receive() == "STOPPING=1\n")
        notifier.extendTimeout(by: .seconds(90))
        #expect(try receiver.receive() == "EXTEND_TIMEOUT_USEC=90000000\n")
    }

    @Test func notifierSpeaksToAbstractSockets() throws {
        let name = "@demucsd-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let receiver = try DatagramReceiver(address: name)
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": name])
        notifier.ready(status: "up")
        #expect(try receiver.receive() == "READY=1\nSTATUS=up\n")
        notifier.watchdog()
        #expect(try receiver.receive() == "WATCHDOG=1\n")
    }

    @Test func notifierIsANoOpWithoutSocket() throws {
        let notifier = SystemdNotifier(environment: [:])
        #expect(!notifier.isEnabled)
        #expect(notifier.socket == nil)
        #expect(notifier.watchdogInterval == nil)
        try notifier.send([("READY", "1")])
        notifier.ready()
        notifier.watchdog()
        #expect(!SystemdNotifier(environment: ["NOTIFY_SOCKET": ""]).isEnabled)
        #expect(!SystemdNotifier(environment: ["NOTIFY_SOCKET": "vsock:2:1234"]).isEnabled)
    }

    @Test func notifierReportsASocketThatIsGone() throws {
        let folder = try TemporaryFolder()
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": folder.path + "/absent.sock"])
        let error = try #require(throws: NotifyError.self) { try notifier.send([("READY", "1")]) }
        #expect(error.description.contains("absent.sock"))
        notifier.ready() // must not trap or throw
    }

    @Test func watchdogIntervalFromEnvironment() {
        let pid: Int32 = 4242
        let on = SystemdNotifier(environment: ["WATCHDOG_USEC": "60000000"], pid: pid)
        #expect(on.watchdogInterval == .seconds(60))
        #expect(on.watchdogPingInterval == .seconds(30))
        #expect(SystemdNotifier(environment: ["WATCHDOG_USEC": "1500", "WATCHDOG_PID": "4242"], pid: pid).watchdogInterval
            == .microseconds(1500))
        #expect(SystemdNotifier(environment: ["WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1"], pid: pid).watchdogInterval == nil)
        #expect(SystemdNotifier(environment: ["WATCHDOG_USEC": "0"], pid: pid).watchdogInterval == nil)
        #expect(SystemdNotifier(environment: ["WATCHDOG_USEC": "soon"], pid: pid).watchdogInterval == nil)
        #expect(SystemdNotifier(environment: [:], pid: pid).watchdogPingInterval == nil)
    }

    // MARK: - Journal log handler

    @Test func journalLinesCarryPriorityAndMetadata() throws {
        let pipe = try PipePair()
        var logger = Logger(label: "demucsd") { JournalLogHandler(label: $0, fileDescriptor: pipe.write) }
        logger.logLevel = .trace
        logger[metadataKey: "worker"] = "1"
        logger.critical("disk on fire")
        logger.error("cannot decode", metadata: ["file": "My Song.mp3", "reason": "bad \"header\""])
        logger.warning("slow")
        logger.notice("model loaded", metadata: ["model": "htdemucs", "worker": "2"])
        logger.info("job done", metadata: ["seconds": .stringConvertible(12.5), "empty": ""])
        logger.debug("segment", metadata: ["stems": ["drums", "bass"]])
        logger.trace("line one\nline two")
        pipe.closeWrite()

        let lines = try pipe.readAll().split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines == [
            "<2>disk on fire worker=1",
            #"<3>cannot decode file="My Song.mp3" reason="bad \"header\"" worker=1"#,
            "<4>slow worker=1",
            "<5>model loaded model=htdemucs worker=2",
            #"<6>job done empty="" seconds=12.5 worker=1"#,
            "<7>segment stems=[drums,bass] worker=1",
            #"<7>line one\nline two worker=1"#,
            "",
        ])
    }

    @Test func journalPriorities() {
        let expected: [(Logger.Level, Int)] = [(.critical, 2), (.error, 3), (.warning, 4), (.notice, 5), (.info, 6),
                                               (.debug, 7), (.trace, 7)]
        for (level, priority) in expected {
            #expect(JournalLogHandler.priority(level) == priority)
        }
    }

    @Test func terminalLinesHaveTimestampAndLevelWord() throws {
        // A pipe is not a terminal, so the automatic choice is the journal format.
        let pipe = try PipePair()
        #expect(JournalLogHandler(label: "x", fileDescriptor: pipe.write).style == .journal)

        let logger = Logger(label: "demucsd") { JournalLogHandler(label: $0, fileDescriptor: pipe.write, style: .terminal) }
        logger.warning("cannot decode", metadata: ["file": "a b.mp3"])
        logger.info("ready")
        pipe.closeWrite()
        let lines = try pipe.readAll().split(separator: "\n").map(String.init)
        #expect(lines.count == 2)
        #expect(lines[0].range(of: #"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} WARN  cannot decode file="a b\.mp3"$"#,
                               options: .regularExpression) != nil, "\(lines[0])")
        #expect(lines[1].range(of: #"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} INFO  ready$"#, options: .regularExpression) != nil,
                "\(lines[1])")
    }

    @Test func errorsAndProvidersAddMetadata() throws {
        struct Boom: Error, CustomStringConvertible { var description: String { "boom" } }
        let pipe = try PipePair()
        let provider = Logger.MetadataProvider { ["request": "7"] }
        let handler = JournalLogHandler(label: "x", fileDescriptor: pipe.write, metadataProvider: provider)
        handler.log(event: LogEvent(level: .error, message: "failed", error: Boom(), metadata: ["job": "3"],
                                    source: "t", file: #fileID, function: #function, line: #line))
        pipe.closeWrite()
        #expect(try pipe.readAll() == "<3>failed error=boom job=3 request=7\n")
    }

    /// Many threads logging at once must produce whole lines only (one write(2) per event).
    @Test func concurrentLinesDoNotInterleave() throws {
        let pipe = try PipePair()
        let logger = Logger(label: "demucsd") { JournalLogHandler(label: $0, fileDescriptor: pipe.write) }
        // The pipe holds only 64 KiB, so a reader thread drains it while the writers run.
        let collected = CollectedText()
        let finished = DispatchSemaphore(value: 0)
        Thread {
            collected.text = (try? pipe.readAll()) ?? ""
            finished.signal()
        }.start()
        let padding = String(repeating: "x", count: 200)
        DispatchQueue.concurrentPerform(iterations: 8) { t in
            for i in 0..<200 { logger.info("message \(t)-\(i) \(padding)") }
        }
        pipe.closeWrite()
        finished.wait()
        let lines = collected.text.split(separator: "\n")
        #expect(lines.count == 1600)
        #expect(lines.allSatisfy { $0.hasPrefix("<6>message ") && $0.hasSuffix(padding) })
    }

    // MARK: - Unit file

    private static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    private static let unitFile = repositoryRoot + "/systemd/demucsd.service"
    /// The optional drop-in that gives the network back. It is kept away from the unit (systemd-analyze
    /// would merge a `demucsd.service.d/` next to the unit file into every check of the unit) and
    /// reaches the checks through `SYSTEMD_UNIT_PATH=<this folder>:`.
    private static let dropInFolder = repositoryRoot + "/systemd/drop-ins"
    private static let onlineDropIn = dropInFolder + "/demucsd.service.d/online.conf"
    /// The drop-in of a host sharing its queue (docs/SCALING.md), in a folder of its own.
    private static let sharedDropInFolder = dropInFolder + "/shared-queue"
    private static let sharedDropIn = sharedDropInFolder + "/demucsd.service.d/shared-queue.conf"

    static var systemdAnalyze: String? {
        ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    private static func settingLines(_ path: String) throws -> Set<String> {
        Set(try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init))
    }

    @Test func unitFileHasTheRequiredSettings() throws {
        let lines = try Self.settingLines(Self.unitFile)
        for required in [
            "Type=notify", "NotifyAccess=main",
            "ExecStart=/usr/local/bin/demucsd --data /var/lib/demucsd --config /etc/demucsd.conf",
            "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure", "RestartPreventExitStatus=78",
            "WatchdogSec=60", "TimeoutStopSec=30", "User=demucsd", "Group=demucsd", "StateDirectory=demucsd",
            "Environment=DEMUCSD_MODELS=/var/lib/demucsd/models", "ProtectSystem=strict", "NoNewPrivileges=yes",
            // Offline: the model is installed beforehand with `demucsctl models fetch`.
            "PrivateNetwork=yes", "RestrictAddressFamilies=AF_UNIX", "IPAddressDeny=any",
        ] {
            #expect(lines.contains(required), "missing \(required)")
        }
        #expect(!lines.contains { $0.contains("network-online.target") }, "the unit is offline; online.conf orders it")
        #expect(!lines.contains { $0.hasPrefix("RestrictAddressFamilies=") && $0.contains("AF_INET") })
        #expect(!FileManager.default.fileExists(atPath: Self.repositoryRoot + "/systemd/demucsd.service.d"),
                "a drop-in folder next to the unit is merged into every systemd-analyze check of it")
    }

    @Test func onlineDropInGivesTheNetworkBack() throws {
        let lines = try Self.settingLines(Self.onlineDropIn)
        for required in [
            "Wants=network-online.target", "After=network-online.target", "PrivateNetwork=no", "IPAddressDeny=",
            "RestrictAddressFamilies=", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        ] {
            #expect(lines.contains(required), "missing \(required)")
        }
    }

    @Test func sharedQueueDropInAllowsTheDatabaseAndNothingElse() throws {
        let lines = try Self.settingLines(Self.sharedDropIn)
        for required in [
            "After=network-online.target remote-fs.target", "RequiresMountsFor=/srv/demucsd", "ExecStart=",
            "ReadWritePaths=/srv/demucsd", "PrivateNetwork=no", "RestrictAddressFamilies=",
            "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "IPAddressAllow=192.0.2.10",
        ] {
            #expect(lines.contains(required), "missing \(required)")
        }
        let exec = try #require(lines.first { $0.hasPrefix("ExecStart=/") })
        #expect(exec.contains("--data /srv/demucsd") && exec.contains("--database postgresql://demucsd@192.0.2.10/demucsd"))
        #expect(!lines.contains { $0.hasPrefix("IPAddressDeny=") }, "the unit's IPAddressDeny=any must stay")
        let config = try DaemonConfig.parse("").overriding(database: "postgresql://demucsd@192.0.2.10/demucsd")
        #expect(config.database.url == "postgresql://demucsd@192.0.2.10/demucsd")
    }

    /// `systemd-analyze verify` must print nothing at all: it exits 0 on many mistakes and only
    /// complains on stderr. It checks that ExecStart's binary exists, so it runs with a dummy
    /// /usr/local/bin/demucsd on a tmpfs in a private mount namespace (`unshare -rm`), which leaves
    /// the real /usr/local/bin untouched; where unprivileged namespaces are not allowed, a copy of the
    /// unit whose ExecStart points to a dummy in a temporary folder is verified instead.
    @Test(.enabled(if: SystemTests.systemdAnalyze != nil, "systemd-analyze is not installed"),
          arguments: [nil, "online", "shared-queue"])
    func unitFileVerifiesCleanly(withDropIn dropIn: String?) throws {
        let analyze = try #require(Self.systemdAnalyze)
        let unitPath = dropIn.map { $0 == "online" ? Self.dropInFolder + ":" : Self.sharedDropInFolder + ":" }
        let output: String
        if try run("/usr/bin/env", ["unshare", "-rm", "true"]).status == 0 {
            let script = """
            mount -t tmpfs tmpfs /usr/local/bin && printf '#!/bin/sh\\n' > /usr/local/bin/demucsd && \
            chmod 755 /usr/local/bin/demucsd && exec "$0" verify "$1"
            """
            let result = try run("/usr/bin/env", ["unshare", "-rm", "sh", "-c", script, analyze, Self.unitFile],
                                 unitPath: unitPath)
            #expect(result.status == 0)
            output = result.output
        } else {
            let folder = try TemporaryFolder()
            let dummy = folder.path + "/demucsd"
            try "#!/bin/sh\n".write(toFile: dummy, atomically: true, encoding: .utf8)
            chmod(dummy, 0o755)
            let unit = try String(contentsOfFile: Self.unitFile, encoding: .utf8)
                .replacingOccurrences(of: "ExecStart=/usr/local/bin/demucsd", with: "ExecStart=\(dummy)")
            let copy = folder.path + "/demucsd.service"
            try unit.write(toFile: copy, atomically: true, encoding: .utf8)
            output = try run(analyze, ["verify", copy], unitPath: unitPath).output
        }
        #expect(output == "", "systemd-analyze verify complained:\n\(output)")
    }

    /// The overall line of `systemd-analyze security --offline=yes`, e.g.
    /// "→ Overall exposure level for demucsd.service: 0.2 SAFE 😀", as (0.2, "SAFE").
    private func exposure(unitPath: String?) throws -> (score: Double, rating: String) {
        let analyze = try #require(Self.systemdAnalyze)
        let result = try run(analyze, ["security", "--offline=yes", "--no-pager", Self.unitFile], unitPath: unitPath)
        #expect(!result.output.contains("Failed"), "\(result.output)")
        let line = try #require(result.output.split(separator: "\n").first { $0.contains("Overall exposure level") },
                                "no exposure line in:\n\(result.output)")
        let words = try #require(line.split(separator: ":").last).split(separator: " ")
        let score = try #require(words.first.flatMap { Double($0) }, "\(line)")
        let rating = words.count > 1 ? String(words[1]) : ""
        return (score, rating)
    }

    /// The shipped unit is offline and must rate SAFE (systemd's word for below 1.0).
    @Test(.enabled(if: SystemTests.systemdAnalyze != nil, "systemd-analyze is not installed"))
    func unitFileExposureIsSafe() throws {
        let (score, rating) = try exposure(unitPath: nil)
        #expect(score <= 2.0, "exposure \(score) \(rating)")
        #expect(rating == "SAFE", "exposure \(score) \(rating)")
    }

    /// With online.conf the network findings come back (1.1 OK with systemd 252); still low.
    @Test(.enabled(if: SystemTests.systemdAnalyze != nil, "systemd-analyze is not installed"))
    func onlineDropInExposureStaysLow() throws {
        let (offline, _) = try exposure(unitPath: nil)
        let (online, rating) = try exposure(unitPath: Self.dropInFolder + ":")
        #expect(online <= 2.0, "exposure with online.conf \(online) \(rating)")
        #expect(online > offline, "online.conf was not picked up: \(online) \(rating)")
    }

    /// The shared-queue drop-in opens the network to one address; still well below "exposed".
    @Test(.enabled(if: SystemTests.systemdAnalyze != nil, "systemd-analyze is not installed"))
    func sharedQueueDropInExposureStaysLow() throws {
        let (offline, _) = try exposure(unitPath: nil)
        let (shared, rating) = try exposure(unitPath: Self.sharedDropInFolder + ":")
        #expect(shared <= 2.0, "exposure with shared-queue.conf \(shared) \(rating)")
        #expect(shared > offline, "shared-queue.conf was not picked up: \(shared) \(rating)")
    }

    /// Runs `executable` and returns its exit status and stdout + stderr together.
    /// `unitPath` becomes `SYSTEMD_UNIT_PATH` (nil: unset, so only the unit's own folder and the
    /// system's are searched for drop-ins).
    private func run(_ executable: String, _ arguments: [String], unitPath: String? = nil) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["SYSTEMD_COLORS"] = "0"
        environment["SYSTEMD_PAGER"] = ""
        environment["SYSTEMD_UNIT_PATH"] = unitPath
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

/// A folder under the temporary directory, removed when the value goes away.
private final class TemporaryFolder {
    let path: String

    init() throws {
        var template = Array((NSTemporaryDirectory() + "/demucsd-system-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        path = String(cString: made)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Text handed from the reader thread to the test (published by a semaphore).
private final class CollectedText: @unchecked Sendable {
    var text = ""
}

/// A pipe whose write end is handed to the log handler and whose read end collects the lines.
private final class PipePair: @unchecked Sendable {
    let read: Int32
    let write: Int32
    private var writeOpen = true

    init() throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        read = fds[0]
        write = fds[1]
    }

    func closeWrite() {
        if writeOpen { close(write); writeOpen = false }
    }

    /// Everything written until the write end is closed.
    func readAll() throws -> String {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(read, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
            if n == 0 { break }
            data += buffer[0..<n]
        }
        return String(decoding: data, as: UTF8.self)
    }

    deinit {
        closeWrite()
        close(read)
    }
}
