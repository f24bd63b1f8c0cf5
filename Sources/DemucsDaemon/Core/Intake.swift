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
    let store: any JobQueue
    let logger: Logger

    /// What became of a name.
    enum Outcome: Equatable {
        /// A job was queued (or a waiting job took the file's new content).
        case queued
        /// Nothing to do: gone, known, not audio, or recorded as rejected.
        case settled
        /// The job database could not be written: try the name again later.
        case retryLater(String)
    }

    @discardableResult
    func consider(_ name: String, settings: WorkSettings) -> Outcome {
        let path = layout.input + "/" + name
        var st = stat()
        guard lstat(path, &st) == 0 else { return .settled }  // gone again
        let kind = st.st_mode & S_IFMT
        guard AudioNames.isAudio(name) else {
            if kind == S_IFDIR {
                logger.info("ignoring folder input/\(name): subfolders of input/ are not watched; put the files themselves into input/")
            } else {
                logger.info("ignoring input/\(name): not an audio file name")
            }
            return .settled
        }
        let size = Int64(st.st_size)
        let modified = Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9
        let reject = { (reason: String) -> Outcome in
            do {
                if try store.recordRejected(inputName: name, size: size, modified: modified, reason: reason, model: settings.modelName) != nil {
                    logger.error("job failed: \(name): \(reason)", metadata: ["file": "\(name)"])
                }
                return .settled
            } catch let error as JobStoreError where PersistentWrite.isTransient(error) {
                return .retryLater("cannot record the rejected input \(name): \(error)")
            } catch {
                logger.error("cannot record the rejected input \(name): \(error)")
                return .settled
            }
        }
        switch kind {
        case S_IFREG: break
        case S_IFLNK: return reject("symbolic links in input/ are not followed; copy or move the file itself")
        case S_IFDIR: return reject("this is a folder, not an audio file (subfolders of input/ are not watched)")
        default: return reject("not a regular file")
        }
        if size == 0 { return reject("the file is empty (0 bytes)") }
        if size > settings.maxFileSize {
            return reject("the file is \(size / (1 << 20)) MB, over the limit of \(settings.maxFileSize / (1 << 20)) MB (max_file_size_mb)")
        }
        // Skip hashing when this exact file (name, size, mtime) already has a job.
        if let known = try? store.latestJob(inputName: name), known.inputSize == size, known.inputModified == modified {
            return .settled
        }
        let hash: String
        do {
            hash = try FileDigest.sha256(ofFile: path)
        } catch {
            return reject("cannot read the file: \(error)")
        }
        do {
            if let job = try store.enqueue(inputName: name, size: size, modified: modified, contentHash: hash, model: settings.modelName) {
                logger.info("job queued: \(name)", metadata: ["job": "\(job.id)", "file": "\(name)"])
                return .queued
            }
            return .settled
        } catch let error as JobStoreError where PersistentWrite.isTransient(error) {
            return .retryLater("cannot queue \(name) yet: \(error)")
        } catch {
            logger.error("cannot queue \(name): \(error)", metadata: ["file": "\(name)"])
            return .settled
        }
    }
}
