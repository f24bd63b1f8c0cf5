import Foundation

/// Writes all stems of one track so that they appear together or not at all: everything (the
/// spools of the streaming separation and the encoded stems) is written into a hidden staging
/// folder beside the outputs (same filesystem, so renames are atomic), and only when every stem
/// is complete are they renamed to their final names. The staging folder is removed in every case.
enum StemWriter {
    /// - Parameters:
    ///   - folder: where the staging folder is made (the model's output folder).
    ///   - write: fills the staging folder it is given and returns, for each file it wrote there,
    ///     its name in the staging folder and its final path.
    static func publish(stagingIn folder: String,
                        write: (_ staging: String) throws -> [(staged: String, path: String)]) throws {
        let fm = FileManager.default
        let stage = (folder as NSString).appendingPathComponent(".demucsctl-staging-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        do {
            try fm.createDirectory(atPath: stage, withIntermediateDirectories: true)
        } catch {
            throw CLIError("cannot write in the output folder \(folder): \(fileErrorReason(error))")
        }
        defer { try? fm.removeItem(atPath: stage) }
        let staged = try write(stage)
        var placed: [String] = []
        do {
            for (name, to) in staged {
                let parent = (to as NSString).deletingLastPathComponent
                do {
                    try fm.createDirectory(atPath: parent, withIntermediateDirectories: true)
                } catch {
                    throw CLIError("cannot create the folder \(parent) for \(to): \(fileErrorReason(error))")
                }
                guard rename((stage as NSString).appendingPathComponent(name), to) == 0 else {
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
