#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Small POSIX helpers shared by the decoder and encoder.
///
/// They exist so common mistakes (missing file, a folder, an empty download) are diagnosed with
/// a precise message before libsndfile gets a chance to say something vaguer.
enum FileChecks {
    /// The current `errno` as text, e.g. "Permission denied".
    static func errnoReason(_ code: Int32 = errno) -> String {
        String(cString: strerror(code))
    }

    /// Maps an errno value to the closest error kind.
    static func kind(forErrno code: Int32) -> AudioIOError.Kind {
        switch code {
        case ENOENT, ENOTDIR: return .fileNotFound
        case EACCES, EPERM, EROFS: return .permissionDenied
        case ENOSPC, EDQUOT, EFBIG: return .noSpace
        case EISDIR: return .notARegularFile
        default: return .ioFailed
        }
    }

    /// An `AudioIOError` for the current errno.
    static func error(_ operation: AudioIOError.Operation, path: String, action: String? = nil,
                      errno code: Int32 = errno) -> AudioIOError {
        let reason = errnoReason(code)
        return AudioIOError(kind(forErrno: code), operation, path: path,
                            reason: action.map { "\($0): \(reason)" } ?? reason)
    }

    /// Throws unless `path` is an existing, non-empty, readable regular file.
    static func requireReadableFile(_ path: String) throws {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw error(.decode, path: path)
        }
        let type = st.st_mode & S_IFMT
        if type == S_IFDIR {
            throw AudioIOError(.notARegularFile, .decode, path: path, reason: "is a directory, not an audio file")
        }
        guard type == S_IFREG else {
            throw AudioIOError(.notARegularFile, .decode, path: path, reason: "is not a regular file")
        }
        guard st.st_size > 0 else {
            throw AudioIOError(.emptyFile, .decode, path: path, reason: "file is empty (0 bytes)")
        }
        guard access(path, R_OK) == 0 else {
            throw error(.decode, path: path)
        }
    }

    /// Splits a path into its folder (".": current folder) and last component.
    static func split(_ path: String) -> (folder: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let folder = String(path[..<slash])
        return (folder.isEmpty ? "/" : folder, String(path[path.index(after: slash)...]))
    }

    /// Lower-cased extension of the last path component, without the dot ("" if none).
    static func pathExtension(_ path: String) -> String {
        let name = split(path).name
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return "" }
        return String(name[name.index(after: dot)...]).lowercased()
    }
}
