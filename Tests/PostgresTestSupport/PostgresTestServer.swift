import Foundation
import PostgresJobStore
#if canImport(Glibc)
import Glibc
#endif

/// A real PostgreSQL server of Debian's package (`apt install postgresql`, which
/// `tools/install-deps.sh` does), started for one test on a temporary folder: `initdb` and
/// `pg_ctl` as the `postgres` user when the tests run as root (initdb refuses root), trust
/// authentication, no TCP listener, its unix socket in the folder. Stopped and removed when it
/// goes away.
public final class PostgresTestServer: @unchecked Sendable {
    public let folder: String
    public let url: DatabaseURL
    private var running = true

    /// The newest installed server's binaries.
    public static let binaries: String? = {
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).compactMap(Int.init).sorted()
        return versions.last.map { "\(root)/\($0)/bin" }.flatMap {
            FileManager.default.isExecutableFile(atPath: $0 + "/initdb") ? $0 : nil
        }
    }()

    public static var available: Bool {
        binaries != nil && (getuid() != 0 || getpwnam("postgres") != nil)
    }

    public init() throws {
        let bin = try Self.require(Self.binaries, "no PostgreSQL server installed")
        var template = Array((NSTemporaryDirectory() + "/demucsd-pg-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw ServerError("mkdtemp failed") }
        folder = String(cString: made)
        if getuid() == 0, let user = getpwnam("postgres") {
            chown(folder, user.pointee.pw_uid, user.pointee.pw_gid)
        }
        try Self.asPostgres(bin + "/initdb", ["-D", folder + "/db", "-A", "trust", "-U", "postgres", "--no-sync"])
        try Self.asPostgres(bin + "/pg_ctl", [
            "-D", folder + "/db", "-l", folder + "/log", "-w", "-t", "60", "-o",
            "-k \(folder) -c listen_addresses='' -p 5432 -c fsync=off -c max_connections=50", "start",
        ])
        url = try DatabaseURL("postgresql://postgres@/postgres?host=\(folder)")
    }

    deinit { stop() }

    /// `pg_ctl restart`: every connection is cut, the server comes back on the same socket.
    public func restart() throws {
        let bin = try Self.require(Self.binaries, "no PostgreSQL server installed")
        try Self.asPostgres(bin + "/pg_ctl", ["-D", folder + "/db", "-l", folder + "/log", "-m", "fast", "-w", "-t", "60", "restart"])
    }

    public func stop() {
        guard running, let bin = Self.binaries else { return }
        running = false
        try? Self.asPostgres(bin + "/pg_ctl", ["-D", folder + "/db", "-m", "immediate", "-w", "stop"])
        try? FileManager.default.removeItem(atPath: folder)
    }

    public var log: String { (try? String(contentsOfFile: folder + "/log", encoding: .utf8)) ?? "" }

    public struct ServerError: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    private static func require<T>(_ value: T?, _ message: String) throws -> T {
        guard let value else { throw ServerError(message) }
        return value
    }

    /// Runs a server program, through `runuser -u postgres` when this process is root. Spawned
    /// and reaped with posix_spawn and waitpid (Foundation's Process waits through a run loop,
    /// which the async tests' threads do not turn); its messages go to a file, not a pipe: the
    /// server pg_ctl starts would hold a pipe open for as long as it runs.
    private static func asPostgres(_ program: String, _ arguments: [String]) throws {
        let command = getuid() == 0 ? ["/usr/sbin/runuser", "-u", "postgres", "--", program] + arguments : [program] + arguments
        let messages = NSTemporaryDirectory() + "/demucsd-pg-\(UUID().uuidString).err"
        defer { unlink(messages) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, messages, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        var argv = command.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid = pid_t()
        let rc = posix_spawn(&pid, command[0], &actions, nil, &argv, environ)
        guard rc == 0 else { throw ServerError("cannot run \(command[0]): \(String(cString: strerror(rc)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        guard status == 0 else {
            let said = (try? String(contentsOfFile: messages, encoding: .utf8)) ?? ""
            throw ServerError("\((program as NSString).lastPathComponent) failed (status \(status)): \(said)")
        }
    }
}
