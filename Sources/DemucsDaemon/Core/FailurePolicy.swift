import AudioIO
import Foundation
import JobStore
#if canImport(Glibc)
import Glibc
#endif

/// What a failed attempt means for its job, decided from the error's type and errno — never
/// from its text.
///
/// | class | examples | what happens |
/// |---|---|---|
/// | `permanent` | cannot decode, input gone, not a regular file, over a limit | the job fails at once |
/// | `machine` | ENOSPC/EDQUOT, EXDEV, EIO, EROFS, EACCES/EPERM on our own folders, a locked or busy database | the job is queued again without counting the attempt, and the whole queue pauses with a growing backoff (`QueuePause`); status and the journal say why |
/// | `inputChanged` | the input changed while it was being read | queued again without counting; the next attempt reads it anew |
/// | `retryable` | anything else (an engine error, an unknown failure) | one attempt counted; queued again while `retry_limit` retries are left |
enum FailurePolicy {
    enum Class: Equatable {
        case permanent
        case machine(cause: String)
        case inputChanged
        case retryable
    }

    static func classify(_ error: any Error) -> Class {
        switch error {
        case is PermanentFailure:
            return .permanent
        case is InputChanged:
            return .inputChanged
        case let error as MachineFault:
            return .machine(cause: error.cause)
        case let error as JobStoreError:
            switch error.kind {
            case .busy: return .machine(cause: "the job database is locked by another process")
            case .fileSystem, .readOnly: return .machine(cause: "the job database cannot be written")
            case .sqlite, .database: return .machine(cause: "the job database failed")
            case .unreachable: return .machine(cause: "the job database does not answer")
            default: return .retryable
            }
        case let error as AudioIOError:
            switch (error.operation, error.kind) {
            case (.decode, .unsupportedFormat), (.decode, .corruptFile), (.decode, .emptyFile),
                 (.decode, .notARegularFile), (.decode, .fileNotFound), (.decode, .permissionDenied),
                 (.decode, .unsupportedChannelConversion):
                return .permanent
            case (.encode, .noSpace): return .machine(cause: "no space left on the output disk")
            case (.encode, .permissionDenied): return .machine(cause: "the output folder cannot be written")
            case (.encode, .ioFailed): return .machine(cause: "writing the stems failed: \(error.reason)")
            default: return .retryable
            }
        default:
            if let code = errnoCode(of: error), let cause = machineCause(errno: code) {
                return .machine(cause: cause)
            }
            return .retryable
        }
    }

    /// The cause of a machine fault for an errno from writing our own files, or nil when the
    /// errno says nothing about the machine.
    static func machineCause(errno code: Int32) -> String? {
        switch code {
        case ENOSPC, EDQUOT: return "no space left on the output disk"
        case EXDEV: return "staging and output are on different filesystems (EXDEV)"
        case EIO: return "an I/O error on the disk (EIO)"
        case EROFS: return "the data folder is on a read-only filesystem"
        case EACCES, EPERM: return "the daemon may not write its data folder (\(String(cString: strerror(code))))"
        case ENOMEM: return "out of memory"
        default: return nil
        }
    }

    /// errno carried by Foundation's errors (`NSPOSIXErrorDomain`, or a Cocoa error with a POSIX
    /// underlying error) and by ``MachineFault``-free system errors.
    static func errnoCode(of error: any Error) -> Int32? {
        if let posix = error as? POSIXError { return posix.code.rawValue }
        let ns = error as NSError
        if ns.domain == NSPOSIXErrorDomain { return Int32(ns.code) }
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return Int32(underlying.code)
        }
        if ns.domain == NSCocoaErrorDomain {
            switch CocoaError.Code(rawValue: ns.code) {
            case .fileWriteOutOfSpace: return ENOSPC
            case .fileWriteVolumeReadOnly: return EROFS
            case .fileWriteNoPermission: return EACCES
            default: return nil
            }
        }
        return nil
    }
}

/// A failure that retrying cannot fix (a corrupt or oversized file): the job fails at once.
struct PermanentFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// The input file changed while the worker was reading it (a writer the settle rule missed):
/// the attempt is void, and the job is read again from scratch.
struct InputChanged: Error, CustomStringConvertible {
    let description: String
}

/// A failure of the machine rather than the file (disk full, filesystem read-only, …), with an
/// errno-derived cause for status and the journal.
struct MachineFault: Error, CustomStringConvertible {
    let cause: String
    let detail: String
    var description: String { "\(cause): \(detail)" }

    /// From an errno of a call on our own files; nil when the errno is not a machine fault.
    init?(errno code: Int32, _ detail: String) {
        guard let cause = FailurePolicy.machineCause(errno: code) else { return nil }
        self.cause = cause
        self.detail = detail
    }
}
