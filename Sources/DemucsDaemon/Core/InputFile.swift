import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The input of one attempt, held open from hashing to the end of decoding, so that the hash
/// recorded for the job is the hash of the bytes that were decoded.
///
/// The file is opened once (`O_NOFOLLOW`: a link put in its place is refused), hashed through
/// that descriptor, and decoded through `/proc/self/fd/N` — the same open file, whatever is
/// renamed over the name meanwhile. ``checkUnchanged()`` after decoding compares the file's
/// size, modification and change times with those at opening: a writer the settle rule missed
/// (an in-place rewrite) makes the attempt void instead of separating a mix of two versions.
final class InputFile {
    let path: String
    private let fd: Int32
    private let opened: stat
    /// SHA-256 of the content, lowercase hex.
    let contentHash: String

    var size: Int64 { Int64(opened.st_size) }
    var modified: Double { Double(opened.st_mtim.tv_sec) + Double(opened.st_mtim.tv_nsec) / 1e9 }
    /// A path that reads the open file, for decoders that take a path.
    var decodePath: String { "/proc/self/fd/\(fd)" }

    init(path: String, maxSize: Int64) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            if code == ELOOP { throw PermanentFailure("the input was replaced by a symbolic link (links are not followed)") }
            throw PermanentFailure("the input file cannot be opened (\(String(cString: strerror(code))))")
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            close(fd)
            throw PermanentFailure("the input file cannot be examined (\(String(cString: strerror(errno))))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw PermanentFailure("the input is not a regular file")
        }
        if Int64(st.st_size) > maxSize {
            close(fd)
            throw PermanentFailure("the file is \(st.st_size / (1 << 20)) MB, over the limit of \(maxSize / (1 << 20)) MB (max_file_size_mb)")
        }
        do {
            contentHash = try Self.sha256(fd: fd, path: path)
        } catch {
            close(fd)
            throw error
        }
        self.fd = fd
        opened = st
    }

    deinit { close(fd) }

    /// Throws ``InputChanged`` when the file is not as it was at opening.
    func checkUnchanged() throws {
        var now = stat()
        guard fstat(fd, &now) == 0 else { throw InputChanged(description: "the input cannot be examined any more") }
        let same = now.st_size == opened.st_size
            && now.st_mtim.tv_sec == opened.st_mtim.tv_sec && now.st_mtim.tv_nsec == opened.st_mtim.tv_nsec
            && now.st_ctim.tv_sec == opened.st_ctim.tv_sec && now.st_ctim.tv_nsec == opened.st_ctim.tv_nsec
        if !same { throw InputChanged(description: "the input file was written to while it was being read") }
    }

    /// Whether the name still leads to the file that was opened, unchanged since.
    func isStillAtPath() -> Bool {
        var now = stat()
        guard lstat(path, &now) == 0 else { return false }
        return now.st_dev == opened.st_dev && now.st_ino == opened.st_ino && now.st_size == opened.st_size
            && now.st_mtim.tv_sec == opened.st_mtim.tv_sec && now.st_mtim.tv_nsec == opened.st_mtim.tv_nsec
    }

    private static func sha256(fd: Int32, path: String) throws -> String {
        var hasher = SHA256()
        let chunk = 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        var offset: off_t = 0
        while true {
            let n = pread(fd, buffer.baseAddress, chunk, offset)
            if n < 0 {
                if errno == EINTR { continue }
                let code = errno
                if let fault = MachineFault(errno: code, "reading \(path)"), code == EIO { throw fault }
                throw PermanentFailure("cannot read the input file (\(String(cString: strerror(code))))")
            }
            if n == 0 { break }
            hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            offset += off_t(n)
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }
}
