import Foundation
import JobStore
import Logging
import ModelStore
#if canImport(Glibc)
import Glibc
#endif

/// Decides what to do with a name that appeared in `input/`: queue a job for a complete audio
/// file, record a failed job with the reason for an audio name that cannot be a job (a folder
/// named `x.wav`, a symbolic link — never followed — an unreadable or oversized file), or ignore
/// other names with a journal line.
struct Intake: Sendable {
    let layout: DataLayout
    let store: JobStore
    let logger: Logger

    /// Returns true when a job was queued.
    @discardableResult
    func consider(_ name: String, settings: WorkSettings) -> Bool {
        let path = layout.input + "/" + name
        var st = stat()
        guard lstat(path, &st) == 0 else { return false }  // gone again
        let kind = st.st_mode & S_IFMT
        guard AudioNames.isAudio(name) else {
            if kind == S_IFDIR {
                logger.info("ignoring folder input/\(name): subfolders of input/ are not watched; put the files themselves into input/")
            } else {
                logger.info("ignoring input/\(name): not an audio file name")
            }
            return false
        }
        let size = Int64(st.st_size)
        let modified = Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9
        let reject = { (reason: String) in
            do {
                if try store.recordRejected(inputName: name, size: size, modified: modified, reason: reason, model: settings.modelName) != nil {
                    logger.error("job failed: \(name): \(reason)", metadata: ["file": "\(name)"])
                }
            } catch {
                logger.error("cannot record the rejected input \(name): \(error)")
            }
        }
        switch kind {
        case S_IFREG: break
        case S_IFLNK: reject("symbolic links in input/ are not followed; copy or move the file itself"); return false
        case S_IFDIR: reject("this is a folder, not an audio file (subfolders of input/ are not watched)"); return false
        default: reject("not a regular file"); return false
        }
        if size == 0 { reject("the file is empty (0 bytes)"); return false }
        if size > settings.maxFileSize {
            reject("the file is \(size / (1 << 20)) MB, over the limit of \(settings.maxFileSize / (1 << 20)) MB (max_file_size_mb)")
            return false
        }
        // Skip hashing when this exact file (name, size, mtime) already has a job.
        if let known = try? store.latestJob(inputName: name), known.inputSize == size, known.inputModified == modified {
            return false
        }
        let hash: String
        do {
            hash = try FileDigest.sha256(ofFile: path)
        } catch {
            reject("cannot read the file: \(error)")
            return false
        }
        do {
            if let job = try store.enqueue(inputName: name, size: size, modified: modified, contentHash: hash, model: settings.modelName) {
                logger.info("job queued: \(name)", metadata: ["job": "\(job.id)", "file": "\(name)"])
                return true
            }
        } catch {
            logger.error("cannot queue \(name): \(error)", metadata: ["file": "\(name)"])
        }
        return false
    }
}
