import AudioIO
import Foundation
import Testing

/// The shipped unit's system-call filter, put on the real daemon where systemd cannot run it
/// (no systemd as PID 1 here or in CI): `tools/unit-filter-run.c` installs the seccomp filter
/// that `SystemCallFilter=` lines of `systemd/demucsd.service` name (expanded by
/// `systemd-analyze syscall-filter`, every other call failing with EPERM as
/// `SystemCallErrorNumber=EPERM` says) and `MemoryDenyWriteExecute=yes`, then runs the daemon.
/// Its ffmpeg child inherits the filter, as under systemd. What this does not cover — the
/// mount, user and device namespaces of the unit — is listed in docs/SYSTEMD.md.
enum UnitSandbox {
    static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    static var clang: String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/clang" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static var available: Bool {
        clang != nil && SystemTests.systemdAnalyze != nil && FileManager.default.fileExists(atPath: "/usr/include/seccomp.h")
            && FFmpegDecoder.onPath() != nil
    }

    /// The calls the unit allows: its first `SystemCallFilter=` sets, minus those of the `~` lines.
    static func allowedCalls() throws -> [String] {
        let analyze = try #require(SystemTests.systemdAnalyze)
        let listing = try runCommand(analyze, ["syscall-filter", "--no-pager"])
        try #require(listing.status == 0, "\(listing.stderr)")
        var groups: [String: [String]] = [:]
        var current: String?
        for raw in listing.stdout.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if raw.hasPrefix("@") {
                current = line
                groups[line] = []
            } else if let current, !line.isEmpty, !line.hasPrefix("#") {
                groups[current]?.append(line)
            }
        }
        func expand(_ item: String) -> Set<String> {
            guard item.hasPrefix("@") else { return [item] }
            return (groups[item] ?? []).reduce(into: Set<String>()) { $0.formUnion(expand($1)) }
        }
        let unit = try String(contentsOfFile: repositoryRoot + "/systemd/demucsd.service", encoding: .utf8)
        var allowed = Set<String>(), denied = Set<String>()
        for line in unit.split(separator: "\n") where line.hasPrefix("SystemCallFilter=") {
            var value = line.dropFirst("SystemCallFilter=".count)
            let deny = value.hasPrefix("~")
            if deny { value = value.dropFirst() }
            for item in value.split(separator: " ") {
                if deny { denied.formUnion(expand(String(item))) } else { allowed.formUnion(expand(String(item))) }
            }
        }
        try #require(allowed.count > 100, "the unit's filter did not expand: \(allowed.count) calls")
        try #require(unit.contains("MemoryDenyWriteExecute=yes"), "the helper also applies MemoryDenyWriteExecute")
        return allowed.subtracting(denied).sorted()
    }

    /// The helper and its list of allowed calls, built once: the command prefix that runs a
    /// program under the unit's filter.
    static let wrapper: Result<[String], any Error> = Result {
        let folder = NSTemporaryDirectory() + "demucsd-unit-filter-\(getpid())"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let helper = folder + "/unit-filter-run", list = folder + "/allowed"
        try (allowedCalls().joined(separator: "\n") + "\n").write(toFile: list, atomically: true, encoding: .utf8)
        let build = try runCommand(try #require(clang), ["-O2", "-o", helper, repositoryRoot + "/tools/unit-filter-run.c", "-lseccomp"])
        try #require(build.status == 0, "building the filter helper failed: \(build.stderr)")
        return [helper, list]
    }
}

extension DaemonEndToEnd {
    @Suite(.enabled(if: UnitSandbox.available,
                    "needs clang, libseccomp-dev (tools/install-deps.sh), systemd-analyze and ffmpeg"))
    struct UnderTheUnitFilter {
        /// The filter is in force: a call of `@resources`, which the unit denies, fails.
        @Test func theFilterDeniesWhatTheUnitDenies() throws {
            let wrapper = try UnitSandbox.wrapper.get()
            let denied = try runCommand(wrapper[0], [wrapper[1], "/usr/bin/taskset", "-c", "0", "true"])
            #expect(denied.status != 0 && denied.stderr.contains("Operation not permitted"), "\(denied.status) \(denied.stderr)")
            let allowed = try runCommand(wrapper[0], [wrapper[1], "/bin/true"])
            #expect(allowed.status == 0, "\(allowed.stderr)")
        }

        /// The daemon under the unit's filter separates a WAV in-process and an .m4a through its
        /// ffmpeg child, and stays up.
        @Test func theDaemonAndItsFFmpegChildWorkUnderIt() throws {
            let wrapper = try UnitSandbox.wrapper.get()
            let daemon = try DaemonHarness()
            defer { daemon.stop() }
            let source = daemon.root + "/plain.wav"
            let frames = try TestAudio.write(source, seconds: 2, seed: 811)
            try shell(FFmpegDecoder.onPath()!.executable,
                      ["-nostdin", "-loglevel", "error", "-y", "-i", source, "-c:a", "aac", daemon.root + "/song.m4a"])
            let m4aFrames = try AudioDecoder.load(path: daemon.root + "/song.m4a", sampleRate: 44100, channels: 2).frameCount
            try daemon.startAndWaitReady(wrapper: wrapper)
            // The daemon process itself (the helper execs it) runs under a seccomp filter.
            let status = try String(contentsOfFile: "/proc/\(daemon.pid)/status", encoding: .utf8)
            #expect(status.contains("Seccomp:\t2"), "\(status)")
            for name in ["plain.wav", "song.m4a"] {
                try shell("/bin/cp", [daemon.root + "/" + name, daemon.input + "/" + name])
            }
            try daemon.waitUntilDone(["plain.wav", "song.m4a"], timeout: 120)
            try daemon.expectCompleteOutput("plain", frames: frames)
            try daemon.expectCompleteOutput("song", frames: m4aFrames)
            #expect(daemon.isRunning)
            #expect(daemon.stop() == 0, "log:\n\(daemon.log)")
        }
    }
}
