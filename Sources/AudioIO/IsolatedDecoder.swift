import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Decoding in a short-lived child process (`demucsd-decode`), for files strangers drop into the
/// watch folder: libsndfile and ffmpeg are large C code bases, and a crash or a hang on a
/// crafted file must be a failed job with its reason, never the daemon's death.
///
/// The child gets the input as its standard input (the caller's open file: it decodes exactly
/// what was opened), limits its own CPU time and memory (setrlimit; an ffmpeg it starts inherits
/// them) and streams the samples back over a pipe as raw interleaved float32 frames — the very
/// samples ``AudioDecoder/stream(path:sampleRate:channels:ffmpeg:into:)`` gives in process. The
/// parent kills it when no sample came for ``stallSeconds``.
///
/// What comes out of it: the blocks, as from `AudioDecoder.stream`; the child's decode errors as
/// the same ``AudioIOError`` (kind and reason); a child killed by a signal as
/// `.corruptFile` "the decoder crashed on signal 11 (Segmentation fault)"; one that used up its
/// CPU time, or was stopped for making no progress, as `.corruptFile` with that said; one that
/// ran out of its memory dies of the signal its allocator raises; a child that could not start
/// or set its limits as `.ioFailed` (a fault of the installation, not of the file).
public struct IsolatedDecoder: Sendable {
    /// The `demucsd-decode` executable.
    public var helper: String
    /// The ffmpeg the child uses for what libsndfile cannot read; nil: none.
    public var ffmpeg: String?
    /// RLIMIT_CPU of the child (SIGXCPU, then SIGKILL a second later); 0: none.
    public var cpuSeconds: Int
    /// RLIMIT_AS of the child, in MiB; 0: none.
    public var memoryMB: Int
    /// The child is killed when it sends no sample for this long.
    public var stallSeconds: Double
    /// Added to the child's environment (this process's own, otherwise).
    public var environment: [String: String] = [:]

    public init(helper: String, ffmpeg: String?, cpuSeconds: Int = 3600, memoryMB: Int = 4096, stallSeconds: Double = 120) {
        self.helper = helper
        self.ffmpeg = ffmpeg
        self.cpuSeconds = cpuSeconds
        self.memoryMB = memoryMB
        self.stallSeconds = stallSeconds
    }

    /// `demucsd-decode` beside the running executable (they are installed together), if there.
    public static func helperBesideExecutable() -> String? {
        guard let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else { return nil }
        let path = URL(fileURLWithPath: executable).deletingLastPathComponent().appendingPathComponent("demucsd-decode").path
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }

    /// Decodes `path` in the child, handing the audio to `body` in blocks at `sampleRate` with
    /// `channels` channels; returns the frames handed on. An error thrown by `body` stops the
    /// child and is rethrown as it is.
    @discardableResult
    public func stream(path: String, sampleRate: Int, channels: Int, into body: (AudioBuffer) throws -> Void) throws -> Int {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileChecks.error(.decode, path: path) }
        let input = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        defer { try? input.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: helper)
        var arguments = ["--rate", "\(sampleRate)", "--channels", "\(channels)",
                         "--cpu-seconds", "\(cpuSeconds)", "--memory-mb", "\(memoryMB)"]
        if let ffmpeg { arguments += ["--ffmpeg", ffmpeg] }
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        // A crash is reported by its signal; Swift's backtracer would only delay it.
        environment["SWIFT_BACKTRACE"] = "enable=no"
        environment.merge(self.environment) { $1 }
        process.environment = environment
        process.standardInput = input
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        do {
            try process.run()
        } catch {
            throw AudioIOError(.ioFailed, .decode, path: path, reason: "cannot run the decoder \(helper): \(error.localizedDescription)")
        }
        let messages = ChildMessages()
        let reader = Thread { messages.collect(from: errors.fileHandleForReading) }
        reader.start()
        let watch = StallWatch(pid: process.processIdentifier, limit: stallSeconds)

        var frames = 0
        var consumerError: (any Error)?
        var pending = Data()
        let frameBytes = channels * MemoryLayout<Float>.size
        let handle = output.fileHandleForReading
        while consumerError == nil {
            let chunk = handle.readData(ofLength: 1 << 18)
            if chunk.isEmpty { break }
            watch.progressed()
            pending.append(chunk)
            let whole = pending.count / frameBytes
            guard whole > 0 else { continue }
            let block = Self.planar(pending.prefix(whole * frameBytes), frames: whole, channels: channels, sampleRate: sampleRate)
            pending.removeFirst(whole * frameBytes)
            do {
                try body(block)
                frames += whole
            } catch {
                consumerError = error
                kill(process.processIdentifier, SIGKILL)
            }
        }
        try? handle.close()
        process.waitUntilExit()
        watch.stop()
        messages.wait()
        if let consumerError { throw consumerError }

        if watch.fired {
            throw AudioIOError(.corruptFile, .decode, path: path,
                               reason: "the decoder made no progress for \(Int(stallSeconds)) s and was stopped")
        }
        if process.terminationReason == .uncaughtSignal {
            let signal = process.terminationStatus
            var reason = "the decoder crashed on signal \(signal) (\(String(cString: strsignal(signal))))"
            if signal == SIGXCPU {
                reason = "the decoder used up its CPU time limit of \(cpuSeconds) s (decoder_cpu_seconds) and was stopped"
            } else if signal == SIGKILL, cpuSeconds > 0 {
                reason += "; its CPU time limit is \(cpuSeconds) s"
            }
            throw AudioIOError(.corruptFile, .decode, path: path, reason: reason)
        }
        let said = messages.text.split(whereSeparator: { $0.isNewline }).last.map(String.init) ?? ""
        switch process.terminationStatus {
        case 0:
            guard pending.isEmpty else {
                throw AudioIOError(.corruptFile, .decode, path: path, reason: "the decoder's output ended inside a frame")
            }
            return frames
        case 2:
            let parts = said.split(separator: "\t", maxSplits: 1).map(String.init)
            let kind = parts.first.flatMap(AudioIOError.Kind.init(rawValue:)) ?? .corruptFile
            let reason = parts.count > 1 ? parts[1] : said
            throw AudioIOError(kind, .decode, path: path, reason: reason.replacingOccurrences(of: "/proc/self/fd/0", with: path))
        default:
            let detail = said.isEmpty ? "exit status \(process.terminationStatus)" : said
            throw AudioIOError(.ioFailed, .decode, path: path, reason: "the decoder failed: \(detail)")
        }
    }

    /// Interleaved native float32 frames as planar rows.
    static func planar(_ bytes: Data, frames: Int, channels: Int, sampleRate: Int) -> AudioBuffer {
        var rows = [[Float]](repeating: [Float](repeating: 0, count: frames), count: channels)
        bytes.withUnsafeBytes { raw in
            let samples = raw.bindMemory(to: Float.self)
            for c in 0..<channels {
                rows[c].withUnsafeMutableBufferPointer { row in
                    for f in 0..<frames { row[f] = samples[f * channels + c] }
                }
            }
        }
        return AudioBuffer(sampleRate: sampleRate, channels: rows)
    }
}

/// Kills a child that sent nothing for `limit` seconds.
private final class StallWatch: @unchecked Sendable {
    private let lock = NSLock()
    private var last = Date()
    private var stopped = false
    private var didFire = false
    private let pid: Int32
    private let limit: Double

    init(pid: Int32, limit: Double) {
        self.pid = pid
        self.limit = limit
        let thread = Thread { [self] in watch() }
        thread.start()
    }

    var fired: Bool { lock.withLock { didFire } }
    func progressed() { lock.withLock { last = Date() } }
    func stop() { lock.withLock { stopped = true } }

    private func watch() {
        while true {
            Thread.sleep(forTimeInterval: min(1, max(0.05, limit / 4)))
            let (done, idle) = lock.withLock { (stopped, Date().timeIntervalSince(last)) }
            if done { return }
            if idle > limit {
                lock.withLock { didFire = true }
                kill(pid, SIGKILL)
                return
            }
        }
    }
}
