import AudioIO
import DemucsEngine

/// A decoded mix spooled to disk, read by the streaming separation one stretch at a time.
struct SpoolMixSource: MixSource {
    let spool: PCMSpool
    var channels: Int { spool.channels }
    var length: Int { spool.frames }

    func read(from start: Int, count: Int, into buffer: UnsafeMutablePointer<Float>) throws {
        try spool.read(from: start, count: count, into: buffer)
    }
}
