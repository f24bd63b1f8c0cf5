import AudioIO
import Foundation

/// Writes all stems of one track so that they appear together or not at all: each is encoded
/// into a hidden staging folder beside the outputs (same filesystem, so renames are atomic), and
/// only when every stem is complete are they renamed to their final names.
enum StemWriter {
    /// - Parameter items: each output's final path and a closure making its audio, called only
    ///   when that output is encoded (so one stem's samples are copied at a time).
    static func writeAll(_ items: [(path: String, audio: () -> AudioBuffer)], stagingIn folder: String,
                         options: EncodeOptions) throws {
        let fm = FileManager.default
        let stage = (folder as NSString).appendingPathComponent(".demucsctl-staging-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        do {
            try fm.createDirectory(atPath: stage, withIntermediateDirectories: true)
        } catch {
            throw CLIError("cannot write in the output folder \(folder): \(fileErrorReason(error))")
        }
        defer { try? fm.removeItem(atPath: stage) }
        var staged: [(from: String, to: String)] = []
        for (index, item) in items.enumerated() {
            let ext = (item.path as NSString).pathExtension
            let temp = (stage as NSString).appendingPathComponent("\(index).\(ext)")
            try AudioEncoder.write(item.audio(), to: temp, options: options)
            staged.append((temp, item.path))
        }
        var placed: [String] = []
        do {
            for (from, to) in staged {
                let parent = (to as NSString).deletingLastPathComponent
                do {
                    try fm.createDirectory(atPath: parent, withIntermediateDirectories: true)
                } catch {
                    throw CLIError("cannot create the folder \(parent) for \(to): \(fileErrorReason(error))")
                }
                guard rename(from, to) == 0 else {
                    throw CLIError("cannot move the stem into place at \(to): \(String(cString: strerror(errno)))")
                }
                placed.append(to)
            }
        } catch {
            for path in placed { unlink(path) }
            throw error
        }
    }
}
