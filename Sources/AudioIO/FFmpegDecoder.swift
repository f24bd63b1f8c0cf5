import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Decodes what libsndfile cannot read — AAC in `.m4a`, Opus in `.webm`, the audio of `.mp4`,
/// `.mkv` or `.mov` videos, ALAC, WMA — with the system `ffmpeg`, as demucs 4.1 does.
///
/// The command is demucs's `AudioFile.read(streams=0, samplerate=…)`: the first audio stream
/// (`-map 0:a:0`), float32, resampled by ffmpeg to the requested rate (`-ar`); the channel count is
/// the stream's own, left to the caller to convert by demucs's rule. ffmpeg writes a float WAV to
/// a pipe, read while it runs (no temporary copy of the decode); the length is whatever the
/// decode gives, never a container's claim. A child that fails, crashes, hangs past a timeout
/// that grows with the file's size, or writes something that is not the WAV asked for fails
/// this decode only, with a reason.
public struct FFmpegDecoder: Sendable {
    /// The `ffmpeg` executable.
    public let executable: String
    /// A fixed time limit for one decode; nil: ``timeout(forBytes:)`` of the file.
    public let timeLimit: TimeInterval?

    public init(executable: String, timeLimit: TimeInterval? = nil) {
        self.executable = executable
        self.timeLimit = timeLimit
    }

    /// `ffmpeg` on `PATH` (of `environment`), or nil when it is not installed.
    public static func onPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> FFmpegDecoder? {
        let folders = (environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":")
        for folder in folders where !folder.isEmpty {
            let candidate = "\(folder)/ffmpeg"
            if access(candidate, X_OK) == 0 { return FFmpegDecoder(executable: candidate) }
        }
        return nil
    }

    /// Seconds a decode may take: a minute, plus a minute per 100 MB of input (ffmpeg decodes
    /// AAC at hundreds of times real time; a child that takes longer is stuck).
    static func timeout(forBytes bytes: Int64) -> TimeInterval {
        60 + Double(max(bytes, 0)) / 100_000_000 * 60
    }

    /// The arguments for decoding the file on the child's standard input, resampled to
    /// `sampleRate` when given. The file is opened by us and handed over as stdin, read by
    /// ffmpeg as `/proc/self/fd/0` (a file it can seek, which MP4 needs; not `/dev/stdin`, which
    /// a unit's private `/dev` need not have): no file name reaches its
    /// command line, so a name ffmpeg would take for a protocol or an option (`http:…`, `-x`)
    /// is just a name, and `/proc/self/fd/N` paths (the daemon's one open input) work.
    static func arguments(sampleRate: Int?) -> [String] {
        var arguments = ["-nostdin", "-hide_banner", "-loglevel", "error", "-i", "file:/proc/self/fd/0",
                         "-map", "0:a:0", "-map_metadata", "-1", "-threads", "1",
                         "-f", "wav", "-acodec", "pcm_f32le", "-bitexact"]
        if let sampleRate { arguments += ["-ar", String(sampleRate)] }
        return arguments + ["pipe:1"]
    }

    /// Decodes `path`'s first audio stream, at `sampleRate` when given (else the stream's own).
    /// - Throws: `AudioIOError` (`.unsupportedFormat` when ffmpeg cannot read the file,
    ///   `.corruptFile` for a decode that fails midway or gives nothing usable).
    public func decode(path: String, sampleRate: Int? = nil) throws -> AudioBuffer {
        var channels: [[Float]] = []
        let format = try decodeBlocks(path: path, sampleRate: sampleRate) { block in
            if channels.isEmpty { channels = block.channels } else {
                for c in channels.indices { channels[c] += block.channels[c] }
            }
        }
        return AudioBuffer(sampleRate: format.sampleRate, channels: channels.isEmpty ? Array(repeating: [], count: format.channels) : channels)
    }

    /// As `decode`, handing the audio to `body` block by block as ffmpeg writes it, so that
    /// memory holds one block; returns the stream's format and length. An error thrown by
    /// `body` stops ffmpeg and is rethrown as it is.
    public func decodeBlocks(path: String, sampleRate: Int? = nil,
                             _ body: (AudioBuffer) throws -> Void) throws -> (sampleRate: Int, channels: Int, frames: Int) {
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int64) ?? 0
        let limit = timeLimit ?? Self.timeout(forBytes: size)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = Self.arguments(sampleRate: sampleRate)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            throw AudioIOError(code == ENOENT ? .fileNotFound : .permissionDenied, .decode, path: path,
                               reason: String(cString: strerror(code)))
        }
        let input = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        defer { try? input.close() }
        process.standardInput = input
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        do {
            try process.run()
        } catch {
            throw AudioIOError(.unsupportedFormat, .decode, path: path,
                               reason: "cannot run \(executable) to decode it: \(error.localizedDescription)")
        }
        // ffmpeg's messages, read beside the audio so that neither pipe can fill and block it.
        let messages = ChildMessages()
        let reader = Thread { messages.collect(from: errors.fileHandleForReading) }
        reader.start()
        // A child that hangs is killed; the pipe then closes and the read below ends.
        let timedOut = ChildFlag()
        let deadline = DispatchWorkItem { [pid = process.processIdentifier] in
            timedOut.set()
            kill(pid, SIGKILL)
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + limit, execute: deadline)

        var stream = WAVStream(output.fileHandleForReading)
        let parsed = Result { try stream.readBlocks { block in
            do { try body(block) } catch { throw SinkFailure(error: error) }
        } }
        deadline.cancel()
        try? output.fileHandleForReading.close()
        process.waitUntilExit()
        messages.wait()

        if case .failure(let failure as SinkFailure) = parsed { throw failure.error }
        // ffmpeg names its input by the name it was given: ours is always the same one.
        let said = messages.text.replacingOccurrences(of: "file:/proc/self/fd/0: ", with: "")
            .split(whereSeparator: \.isNewline).suffix(3).joined(separator: "; ")
        if timedOut.isSet {
            throw AudioIOError(.corruptFile, .decode, path: path,
                               reason: "ffmpeg did not finish within \(Int(limit)) s and was stopped")
        }
        if process.terminationReason == .uncaughtSignal {
            throw AudioIOError(.corruptFile, .decode, path: path,
                               reason: "ffmpeg crashed (signal \(process.terminationStatus)) while decoding it")
        }
        if case .failure(let error as WAVStream.Malformed) = parsed {
            throw AudioIOError(.corruptFile, .decode, path: path, reason: "ffmpeg's output is not the float WAV asked for: \(error.reason)")
        }
        if process.terminationStatus != 0 {
            // Nothing decoded: ffmpeg could not read it at all. Something decoded: it broke midway.
            let nothing = (try? parsed.get())?.frames ?? 0 == 0
            let detail = said.isEmpty ? "it exited with status \(process.terminationStatus)" : said
            throw AudioIOError(nothing ? .unsupportedFormat : .corruptFile, .decode, path: path,
                               reason: nothing ? "ffmpeg cannot read it (\(detail))"
                                               : "ffmpeg's decode failed midway (\(detail))")
        }
        let audio = try parsed.get()
        guard audio.frames > 0 else {
            throw AudioIOError(.emptyFile, .decode, path: path, reason: "the file contains no audio frames (ffmpeg decoded nothing)")
        }
        if let sampleRate, audio.sampleRate != sampleRate {
            throw AudioIOError(.corruptFile, .decode, path: path,
                               reason: "ffmpeg gave \(audio.sampleRate) Hz where \(sampleRate) Hz was asked for")
        }
        return audio
    }
}

/// The float32 WAV ffmpeg writes to a pipe: a RIFF header whose sizes are unknown (0xFFFFFFFF),
/// a `fmt ` chunk (IEEE float or WAVE_FORMAT_EXTENSIBLE with the float subformat, 32 bits), then
/// `data` to the end of the stream.
struct WAVStream {
    struct Malformed: Error { let reason: String }

    private let handle: FileHandle
    private var pending = Data()

    init(_ handle: FileHandle) { self.handle = handle }

    /// The next `count` bytes; fewer only at the end of the stream.
    private mutating func read(_ count: Int) -> Data {
        while pending.count < count {
            guard let more = try? handle.read(upToCount: max(count - pending.count, 1 << 16)), !more.isEmpty else { break }
            pending.append(more)
        }
        let taken = pending.prefix(count)
        pending.removeFirst(taken.count)
        return Data(taken)
    }

    private mutating func readExactly(_ count: Int, _ what: String) throws -> Data {
        let data = read(count)
        guard data.count == count else { throw Malformed(reason: "the stream ends inside the \(what)") }
        return data
    }

    private static func uint32(_ d: Data, _ at: Int) -> UInt32 {
        d.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: at, as: UInt32.self)) }
    }

    private static func uint16(_ d: Data, _ at: Int) -> UInt16 {
        d.withUnsafeBytes { UInt16(littleEndian: $0.loadUnaligned(fromByteOffset: at, as: UInt16.self)) }
    }

    /// The stream's audio, handed to `body` in planar blocks; returns its format and length. A
    /// stream that ends before its header gives no frames (ffmpeg failed before writing
    /// anything: its exit status tells why).
    mutating func readBlocks(_ body: (AudioBuffer) throws -> Void) throws -> (sampleRate: Int, channels: Int, frames: Int) {
        let riff = read(12)
        if riff.isEmpty { return (1, 1, 0) }
        guard riff.count == 12, riff.prefix(4) == Data("RIFF".utf8), riff.suffix(4) == Data("WAVE".utf8) else {
            throw Malformed(reason: "no RIFF/WAVE header")
        }
        var channelCount = 0, sampleRate = 0
        while true {
            let header = try readExactly(8, "chunk header")
            let id = String(decoding: header.prefix(4), as: UTF8.self)
            let size = Int(Self.uint32(header, 4))
            if id == "data" { break }
            // Chunks other than data are small (fmt is 16–40 bytes); a huge one is not ffmpeg's.
            guard size <= 1 << 16 else { throw Malformed(reason: "a \(size)-byte '\(id)' chunk before the audio") }
            let body = try readExactly(size + (size & 1), "'\(id)' chunk")
            guard id == "fmt " else { continue }
            guard size >= 16 else { throw Malformed(reason: "a \(size)-byte fmt chunk") }
            var tag = Self.uint16(body, 0)
            if tag == 0xFFFE, size >= 40 { tag = Self.uint16(body, 24) }
            channelCount = Int(Self.uint16(body, 2))
            sampleRate = Int(Self.uint32(body, 4))
            let bits = Self.uint16(body, 14)
            guard tag == 3, bits == 32 else { throw Malformed(reason: "format \(tag) with \(bits) bits, not 32-bit float") }
            guard (1...64).contains(channelCount), AudioDecoder.sampleRates.contains(sampleRate) else {
                throw Malformed(reason: "\(channelCount) channels at \(sampleRate) Hz")
            }
        }
        guard channelCount > 0 else { throw Malformed(reason: "no fmt chunk before the audio") }
        let frameBytes = 4 * channelCount
        var carry = Data()
        var total = 0
        while true {
            var block = carry
            block.append(read(frameBytes * 16_384))
            if block.count < frameBytes { break }
            let frames = block.count / frameBytes
            var channels = [[Float]](repeating: [], count: channelCount)
            block.withUnsafeBytes { raw in
                for c in 0..<channelCount {
                    channels[c].reserveCapacity(frames)
                    for f in 0..<frames {
                        let bits = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: (f * channelCount + c) * 4, as: UInt32.self))
                        channels[c].append(Float(bitPattern: bits))
                    }
                }
            }
            carry = block.suffix(from: block.startIndex + frames * frameBytes)
            total += frames
            try body(AudioBuffer(sampleRate: sampleRate, channels: channels))
        }
        return (sampleRate, channelCount, total)
    }
}

/// An error of the block consumer, told apart from the stream's own.
private struct SinkFailure: Error { let error: any Error }

private final class ChildFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}
