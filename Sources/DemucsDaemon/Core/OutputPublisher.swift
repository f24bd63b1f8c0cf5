import CSystemShims
import Foundation
import JobStore
#if canImport(Glibc)
import Glibc
#endif

/// Moves a finished output folder from `state/staging/` to `output/demucs/<name>/` in one rename,
/// so a reader of `output/` sees either no folder or a complete one, never half of one — and,
/// after a power cut, a job that reads `done` has its folder.
///
/// The order, each step durable before the next: every staged file and the staging folder are
/// fsynced; one `renameat2` puts the folder in place — `RENAME_NOREPLACE` for a new name,
/// `RENAME_EXCHANGE` to swap with the folder of an earlier run for the same input, so there is
/// no moment where neither exists; `output/demucs/` (and staging, which now holds the old
/// folder) is fsynced; only then does the caller's transaction mark the job done (SQLite with
/// `synchronous = FULL`). Where the filesystem has no `renameat2` flags (some network and FUSE
/// filesystems), a new name falls back to a plain rename after checking the target is absent,
/// and replacing refuses rather than opening a window without either folder.
enum OutputPublisher {
    /// The staging folder of one claim of a job, `state/staging/job-ID-claim-SEQ`: a claim is
    /// never made twice (its sequence is never reused), so on a data folder that several hosts
    /// share, no two attempts write into one folder. Folders of the job's earlier claims (a
    /// dead or frozen host's, whose claim was handed on) are removed here: whoever takes the
    /// job over cleans what its last holder left.
    static func makeStaging(_ layout: DataLayout, claim: Claim) throws -> String {
        let fm = FileManager.default
        for entry in (try? fm.contentsOfDirectory(atPath: layout.staging)) ?? [] {
            if let (id, sequence) = stagingClaim(entry), id == claim.jobID, sequence < claim.sequence {
                try? fm.removeItem(atPath: layout.staging + "/" + entry)
            }
        }
        let path = stagingPath(layout, jobID: claim.jobID, sequence: claim.sequence)
        try? fm.removeItem(atPath: path)
        try fm.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func stagingPath(_ layout: DataLayout, jobID: Int64, sequence: Int64) -> String {
        layout.staging + "/job-\(jobID)-claim-\(sequence)"
    }

    /// The job id and claim sequence a staging folder's name carries.
    static func stagingClaim(_ name: String) -> (Int64, Int64)? {
        let parts = name.split(separator: "-")
        guard parts.count == 4, parts[0] == "job", parts[2] == "claim",
              let id = Int64(parts[1]), let sequence = Int64(parts[3]) else { return nil }
        return (id, sequence)
    }

    /// Puts `staging` in place as `output/<name>`. An existing folder of that name is swapped
    /// out (the old folder ends in staging and is removed): `name` comes from
    /// ``JobStore/allocateOutputName(for:preferred:existsOnDisk:)``, which never hands out the
    /// name of a folder the daemon did not publish for this input, so what is replaced is an
    /// earlier run's output (or this job's own, when a crash fell between rename and commit).
    /// An existing entry that is not a folder is an error and is left untouched.
    ///
    /// - Throws: ``MachineFault`` for a failure of the disk (ENOSPC, EIO, EXDEV, …),
    ///   ``DaemonError`` otherwise.
    static func publish(staging: String, layout: DataLayout, name: String) throws {
        try syncFolder(staging, files: true)
        let target = layout.output + "/" + name
        var st = stat()
        let exists = lstat(target, &st) == 0
        if exists {
            guard (st.st_mode & S_IFMT) == S_IFDIR else {
                throw DaemonError("output/demucs/\(name) exists and is not a folder; it is left as it is")
            }
            if demucsd_renameat2(AT_FDCWD, staging, AT_FDCWD, target, DEMUCSD_RENAME_EXCHANGE) != 0 {
                let code = errno
                if code == EINVAL || code == ENOSYS {
                    throw DaemonError("cannot replace output/demucs/\(name) atomically on this filesystem (renameat2 RENAME_EXCHANGE: \(String(cString: strerror(code))))")
                }
                throw fault(code, "cannot swap the stems into \(target)")
            }
            // `staging` now holds the previous folder.
            try syncFolder(layout.output, files: false)
            try? FileManager.default.removeItem(atPath: staging)
        } else {
            if demucsd_renameat2(AT_FDCWD, staging, AT_FDCWD, target, DEMUCSD_RENAME_NOREPLACE) != 0 {
                let code = errno
                if code == EINVAL || code == ENOSYS {
                    guard lstat(target, &st) != 0 else { throw DaemonError("output/demucs/\(name) appeared meanwhile; it is left as it is") }
                    guard rename(staging, target) == 0 else { throw fault(errno, "cannot move the stems into \(target)") }
                } else if code == EEXIST {
                    throw DaemonError("output/demucs/\(name) appeared meanwhile; it is left as it is")
                } else {
                    throw fault(code, "cannot move the stems into \(target)")
                }
            }
            try syncFolder(layout.output, files: false)
        }
    }

    /// fsync of every regular file in `folder` (when `files`) and of the folder itself.
    static func syncFolder(_ folder: String, files: Bool) throws {
        if files {
            for entry in try FileManager.default.contentsOfDirectory(atPath: folder) {
                try sync(folder + "/" + entry, flags: O_RDONLY)
            }
        }
        try sync(folder, flags: O_RDONLY | O_DIRECTORY)
    }

    private static func sync(_ path: String, flags: Int32) throws {
        let fd = open(path, flags | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw fault(errno, "cannot open \(path) to sync it") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw fault(errno, "cannot sync \(path) to disk") }
    }

    private static func fault(_ code: Int32, _ what: String) -> any Error {
        let detail = "\(what): \(String(cString: strerror(code)))"
        return MachineFault(errno: code, detail) ?? DaemonError(detail)
    }

    /// Removes what a crash left in staging (called at start-up, before any worker runs):
    /// every folder but those `keep` names by job id and claim sequence (on a shared data
    /// folder: the attempts other hosts are running now). Returns how many it removed.
    static func cleanStaging(_ layout: DataLayout, keep: (Int64, Int64) -> Bool = { _, _ in false }) -> Int {
        let fm = FileManager.default
        var removed = 0
        for entry in (try? fm.contentsOfDirectory(atPath: layout.staging)) ?? [] {
            if let (id, sequence) = stagingClaim(entry), keep(id, sequence) { continue }
            try? fm.removeItem(atPath: layout.staging + "/" + entry)
            removed += 1
        }
        return removed
    }

    /// Links the files of an earlier identical job's output into `staging` (copies where the
    /// filesystem has no hard links) — identical content is not separated twice. `files` are
    /// the names that job recorded; every one must still be there.
    static func reuse(from folder: String, files: [String], into staging: String) throws -> [String] {
        let fm = FileManager.default
        for name in files {
            let src = folder + "/" + name, dst = staging + "/" + name
            if link(src, dst) != 0 { try fm.copyItem(atPath: src, toPath: dst) }
        }
        return files
    }
}

/// A daemon-level failure with a message for the journal and `demucsctl status`.
public struct DaemonError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
