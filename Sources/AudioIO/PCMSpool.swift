#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Float32 audio kept on disk instead of in memory: a decoded mix, or a separated stem, written
/// block by block and read back by frame range. The file is raw interleaved native float32
/// frames, private to this process (no header: it lives in a job's staging folder and is removed
/// with it), so that any stretch can be read with one `pread` and memory never holds a track.
///
/// It also keeps the largest absolute sample written, which the rescale clip mode needs before
/// the first sample of an integer file can be written.
public final class PCMSpool: @unchecked Sendable {
    public let path: String
    public let channels: Int
    public let sampleRate: Int
    /// Frames written so far.
    public private(set) var frames = 0
    /// Largest absolute sample written (as `AudioBuffer.peak`).
    public private(set) var peak: Float = 0
    private let fd: Int32
    private var scratch: [Float] = []

    /// Creates (or truncates) the spool file at `path`.
    public init(path: String, channels: Int, sampleRate: Int) throws {
        guard channels > 0, sampleRate > 0 else {
            throw AudioIOError(.invalidArgument, .encode, path: path, reason: "a spool needs channels and a sample rate")
        }
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FileChecks.error(.encode, path: path) }
        self.fd = fd
        self.path = path
        self.channels = channels
        self.sampleRate = sampleRate
    }

    deinit { close(fd) }

    /// Bytes a spool of `frames` frames of `channels` channels takes on disk (float32 samples,
    /// no header): what the daemon's disk check reserves per spool.
    public static func bytes(frames: Int, channels: Int) -> Int64 {
        Int64(frames) * Int64(channels) * Int64(MemoryLayout<Float>.size)
    }

    /// Bytes written so far.
    public var bytes: Int64 { Self.bytes(frames: frames, channels: channels) }

    /// Appends planar frames (`block` at the spool's rate and channel count).
    public func append(_ block: AudioBuffer) throws {
        precondition(block.channelCount == channels, "spool of \(channels) channels given \(block.channelCount)")
        try append(block.channels)
    }

    /// Appends planar rows, one per channel, all the same length.
    public func append(_ rows: [[Float]]) throws {
        let n = rows.first?.count ?? 0
        guard n > 0 else { return }
        if scratch.count < n * channels { scratch = [Float](repeating: 0, count: n * channels) }
        var m = peak
        scratch.withUnsafeMutableBufferPointer { dst in
            for c in 0..<channels {
                rows[c].withUnsafeBufferPointer { src in
                    for f in 0..<n {
                        dst[f * channels + c] = src[f]
                        m = max(m, abs(src[f]))
                    }
                }
            }
        }
        try scratch.withUnsafeBytes { raw in
            let bytes = n * channels * MemoryLayout<Float>.size
            var done = 0
            while done < bytes {
                let w = pwrite(fd, raw.baseAddress! + done, bytes - done, off_t(frames * channels * 4 + done))
                if w < 0 {
                    if errno == EINTR { continue }
                    throw FileChecks.error(.encode, path: path)
                }
                done += w
            }
        }
        peak = m
        frames += n
    }

    /// Reads frames `start ..< start + count` (inside what was written) into `buffer`, planar:
    /// channel `c` at `buffer + c * count`.
    public func read(from start: Int, count: Int, into buffer: UnsafeMutablePointer<Float>) throws {
        precondition(start >= 0 && count >= 0 && start + count <= frames, "spool read \(start)..<\(start + count) past \(frames) frames")
        guard count > 0 else { return }
        if scratch.count < count * channels { scratch = [Float](repeating: 0, count: count * channels) }
        try scratch.withUnsafeMutableBytes { raw in
            let bytes = count * channels * MemoryLayout<Float>.size
            var done = 0
            while done < bytes {
                let r = pread(fd, raw.baseAddress! + done, bytes - done, off_t(start * channels * 4 + done))
                if r < 0 {
                    if errno == EINTR { continue }
                    throw FileChecks.error(.decode, path: path)
                }
                guard r > 0 else {
                    throw AudioIOError(.ioFailed, .decode, path: path, reason: "the spool file is shorter than written")
                }
                done += r
            }
        }
        scratch.withUnsafeBufferPointer { src in
            for c in 0..<channels {
                for f in 0..<count { buffer[c * count + f] = src[f * channels + c] }
            }
        }
    }

    /// Frames `start ..< start + count` as a buffer.
    public func read(from start: Int, count: Int) throws -> AudioBuffer {
        var planar = [Float](repeating: 0, count: count * channels)
        try planar.withUnsafeMutableBufferPointer { try read(from: start, count: count, into: $0.baseAddress!) }
        return AudioBuffer(sampleRate: sampleRate, channels: (0..<channels).map { Array(planar[($0 * count)..<(($0 + 1) * count)]) })
    }

    /// Removes the file (the open descriptor stays usable until the spool goes away).
    public func remove() { unlink(path) }
}
