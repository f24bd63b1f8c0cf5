import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Moves a finished output folder from `state/staging/` to `output/demucs/<name>/` in one rename,
/// so a reader of `output/` sees either no folder or a complete one, never half of one.
enum OutputPublisher {
    /// A fresh staging folder for one job.
    static func makeStaging(_ layout: DataLayout, jobID: Int64) throws -> String {
        let path = layout.staging + "/job-\(jobID)-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Puts `staging` in place as `output/<name>`. An existing folder of that name (an earlier
    /// run for the same input) is first moved back into staging and removed after the swap.
    static func publish(staging: String, layout: DataLayout, name: String) throws {
        let target = layout.output + "/" + name
        var old: String?
        if FileManager.default.fileExists(atPath: target) {
            let aside = layout.staging + "/old-\(UInt32.random(in: 0...UInt32.max))"
            guard rename(target, aside) == 0 else {
                throw DaemonError("cannot move the previous output \(target) aside: \(String(cString: strerror(errno)))")
            }
            old = aside
        }
        guard rename(staging, target) == 0 else {
            let reason = String(cString: strerror(errno))
            if let old { _ = rename(old, target) }
            throw DaemonError("cannot move the stems into \(target): \(reason)")
        }
        if let old { try? FileManager.default.removeItem(atPath: old) }
    }

    /// Removes whatever a crash left in staging (called at start-up, before any worker runs).
    static func cleanStaging(_ layout: DataLayout) -> Int {
        let fm = FileManager.default
        let entries = (try? fm.contentsOfDirectory(atPath: layout.staging)) ?? []
        for entry in entries { try? fm.removeItem(atPath: layout.staging + "/" + entry) }
        return entries.count
    }

    /// Copies the files of an earlier identical job's output into `staging` (hard links where
    /// the filesystem allows, copies otherwise) — identical content is not separated twice.
    static func reuse(from folder: String, into staging: String) throws -> [String] {
        let fm = FileManager.default
        var names: [String] = []
        for name in try fm.contentsOfDirectory(atPath: folder).sorted() where !name.hasPrefix(".") {
            let src = folder + "/" + name, dst = staging + "/" + name
            if link(src, dst) != 0 { try fm.copyItem(atPath: src, toPath: dst) }
            names.append(name)
        }
        return names
    }
}

/// A daemon-level failure with a message for the journal and `demucsctl status`.
public struct DaemonError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
