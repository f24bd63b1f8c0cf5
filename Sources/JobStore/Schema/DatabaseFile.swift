import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Creates the database file and its folder with the permissions operators rely on.
///
/// The daemon owns the database; `demucsctl status/jobs` is run by operators who are in the
/// service's group. So the folder is created `0750` and the file `0640`: group members can read
/// job status, nobody else can, and only the daemon's user writes. SQLite gives the `-wal` and
/// `-shm` files the same mode (and, when running as root, the same owner) as the database file,
/// so creating the main file ourselves with the right mode is enough. We create it before SQLite
/// does because SQLite would use 0644 masked by the process umask. An existing file keeps
/// whatever mode it has: an operator who changed it did so on purpose.
enum DatabaseFile {
    static let fileMode: mode_t = 0o640
    static let folderMode: Int = 0o750

    /// Makes sure `path`'s folder exists and that the file exists (empty means "new database"
    /// to SQLite). Returns whether the file was created now.
    @discardableResult
    static func create(at path: String) throws(JobStoreError) -> Bool {
        let folder = (path as NSString).deletingLastPathComponent
        if !folder.isEmpty, !FileManager.default.fileExists(atPath: folder) {
            do {
                try FileManager.default.createDirectory(
                    atPath: folder, withIntermediateDirectories: true,
                    attributes: [.posixPermissions: folderMode])
            } catch {
                throw JobStoreError(
                    .fileSystem, operation: "create database folder", path: path,
                    reason: "cannot create \(folder): \(error.localizedDescription)")
            }
        }
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, fileMode)
        if fd < 0 {
            let code = errno
            if code == EEXIST { return false }
            throw JobStoreError(
                .fileSystem, operation: "create database file", path: path,
                reason: String(cString: strerror(code)))
        }
        defer { close(fd) }
        // open(2) applied the umask; set the intended mode exactly.
        if fchmod(fd, fileMode) != 0 {
            let code = errno
            throw JobStoreError(
                .fileSystem, operation: "set database file mode 0640", path: path,
                reason: String(cString: strerror(code)))
        }
        return true
    }
}
