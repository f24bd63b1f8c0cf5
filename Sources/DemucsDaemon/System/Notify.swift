#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Talks to systemd about the daemon's state: the `sd_notify(3)` protocol, spoken directly.
///
/// The protocol is one datagram of newline-separated `KEY=VALUE` lines sent to the AF_UNIX
/// SOCK_DGRAM socket named by `$NOTIFY_SOCKET`, which is simple enough not to need libsystemd
/// (and so the daemon builds and runs on machines without it). With `Type=notify` systemd waits
/// for `READY=1` before it considers the service started, shows `STATUS=` in `systemctl status`,
/// and with `WatchdogSec=` kills and restarts the daemon when `WATCHDOG=1` stops coming.
///
/// Without `$NOTIFY_SOCKET` (started from a terminal, or by another supervisor) every call does
/// nothing, so the daemon can call these unconditionally.
///
/// Call order: `ready()` once started; `status(_:)` whenever there is news; `watchdog()` every
/// `watchdogInterval / 2`; on SIGHUP `reloading()`, reload, then `ready()` again; on SIGTERM
/// `stopping()`.
public struct SystemdNotifier: Sendable {
    /// The socket address from `$NOTIFY_SOCKET` (a path, or `@name` for an abstract socket);
    /// nil when there is none or it is of a kind this implementation does not speak (`vsock:`).
    public let socket: String?
    /// How long systemd waits for a watchdog ping before it declares the daemon hung (from
    /// `$WATCHDOG_USEC`); nil when the watchdog is off or meant for another process. Ping at half
    /// this interval, as sd_watchdog_enabled(3) recommends, so one late ping is not fatal.
    public let watchdogInterval: Duration?

    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from `environment`.
    /// - Parameter pid: this process's id: systemd sets `WATCHDOG_PID` to say which process the
    ///   watchdog is for, so a child that inherited the environment does not ping on our behalf.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment, pid: Int32 = getpid()) {
        if let address = environment["NOTIFY_SOCKET"], address.hasPrefix("/") || (address.hasPrefix("@") && address.count > 1) {
            socket = address
        } else {
            socket = nil
        }
        watchdogInterval = Self.watchdogInterval(environment: environment, pid: pid)
    }

    /// Whether messages go anywhere at all.
    public var isEnabled: Bool { socket != nil }

    /// The interval at which to call `watchdog()`: half of `watchdogInterval`.
    public var watchdogPingInterval: Duration? { watchdogInterval.map { $0 / 2 } }

    /// `READY=1`: start-up (or a reload) is complete. With `Type=notify`, `systemctl start` returns
    /// only now, and units ordered after demucsd start only now.
    public func ready(status: String? = nil) {
        var fields = [("READY", "1")]
        if let status { fields.append(("STATUS", status)) }
        try? send(fields)
    }

    /// `STATUS=…`: a one-line summary shown by `systemctl status demucsd`.
    public func status(_ text: String) {
        try? send([("STATUS", text)])
    }

    /// `WATCHDOG=1`: the daemon is alive. Send it every `watchdogPingInterval`.
    public func watchdog() {
        try? send([("WATCHDOG", "1")])
    }

    /// `STOPPING=1`: shutdown has begun, so systemd shows "deactivating" instead of a hang.
    public func stopping(status: String? = nil) {
        var fields = [("STOPPING", "1")]
        if let status { fields.append(("STATUS", status)) }
        try? send(fields)
    }

    /// `RELOADING=1` (with `MONOTONIC_USEC`, which systemd ≥ 253 requires to match it with the
    /// reload request): the configuration is being re-read. Send `ready()` when done.
    public func reloading() {
        try? send([("RELOADING", "1"), ("MONOTONIC_USEC", String(Self.monotonicMicroseconds()))])
    }

    /// `EXTEND_TIMEOUT_USEC=…`: asks for more time for the current start-up or shutdown step (for
    /// example a model download taking longer than `TimeoutStartSec=`).
    public func extendTimeout(by duration: Duration) {
        try? send([("EXTEND_TIMEOUT_USEC", String(Self.microseconds(duration)))])
    }

    /// Sends `fields` as one datagram of `KEY=VALUE` lines. Newlines inside a value are replaced by
    /// spaces, since they would end the line and turn the rest into a bogus assignment.
    /// Does nothing when `socket` is nil.
    /// - Throws: `NotifyError` when the socket cannot be created or the datagram not sent.
    public func send(_ fields: [(String, String)]) throws {
        guard let socket else { return }
        var message = ""
        for (key, value) in fields {
            message += key + "=" + value.replacingOccurrences(of: "\n", with: " ") + "\n"
        }
        try Self.sendDatagram(Array(message.utf8), to: socket)
    }

    /// The watchdog timeout from `WATCHDOG_USEC`, when it is a positive number and `WATCHDOG_PID`
    /// is unset or names `pid`.
    static func watchdogInterval(environment: [String: String], pid: Int32) -> Duration? {
        guard let text = environment["WATCHDOG_USEC"], let usec = UInt64(text), usec > 0 else { return nil }
        if let owner = environment["WATCHDOG_PID"], !owner.isEmpty {
            guard Int32(owner) == pid else { return nil }
        }
        return .microseconds(Int64(clamping: usec))
    }

    private static func microseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000 + attoseconds / 1_000_000_000_000
    }

    private static func monotonicMicroseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1_000
    }

    /// Sends one datagram to the AF_UNIX socket `address`: a file system path, or `@name` for an
    /// abstract socket, whose address is a NUL byte followed by the name and whose length must
    /// count exactly those bytes (a trailing NUL would make it a different name).
    private static func sendDatagram(_ bytes: [UInt8], to address: String) throws {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var path = Array(address.utf8)
        let abstract = path.first == UInt8(ascii: "@")
        if abstract { path[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        // A path needs room for its terminating NUL; an abstract name does not have one.
        guard path.count <= (abstract ? capacity : capacity - 1) else {
            throw NotifyError(socket: address, reason: "the socket address is longer than \(capacity - 1) bytes")
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: path)
        }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)! + path.count + (abstract ? 0 : 1))

        #if canImport(Glibc)
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        let flags = Int32(MSG_NOSIGNAL)
        #else
        let fd = Darwin.socket(AF_UNIX, SOCK_DGRAM, 0)
        let flags: Int32 = 0
        #endif
        guard fd >= 0 else {
            throw NotifyError(socket: address, reason: "socket(): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        while true {
            let sent = bytes.withUnsafeBytes { buffer in
                withUnsafePointer(to: &addr) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(fd, buffer.baseAddress, buffer.count, flags, $0, length)
                    }
                }
            }
            if sent >= 0 { return }
            if errno == EINTR { continue }
            throw NotifyError(socket: address, reason: "sendto(): \(String(cString: strerror(errno)))")
        }
    }
}
