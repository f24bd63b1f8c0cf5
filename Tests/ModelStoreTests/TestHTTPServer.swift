import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A minimal HTTP/1.1 server on 127.0.0.1 for the download tests, so they need no network and can
/// stage failures (404, redirects, bodies cut short) that a real hub would not produce on demand.
///
/// It answers one request per connection (`Connection: close`) on a background thread. Its loops
/// are bounded: it stops by itself after `lifetime` seconds or `maxRequests` requests even if a test
/// forgets `stop()`, and every socket read has a timeout, so a test can never hang on it.
final class TestHTTPServer: @unchecked Sendable {
    /// What the server answers for a path.
    enum Route: Sendable {
        /// 200 with these bytes.
        case file(Data)
        /// 302 to this location: an absolute path, or a URL in which `{base}` stands for this
        /// server's own `http://127.0.0.1:<port>` (unknown until it has started).
        case redirect(String)
        /// 200 announcing `declaredLength` bytes, sending only `body`, then closing the connection.
        case truncated(declaredLength: Int, body: Data)
        /// Like `truncated`, but then keeps the connection open, silent, for up to `seconds`
        /// (or until `stop()`), so a client can be caught mid-download.
        case stall(declaredLength: Int, body: Data, seconds: TimeInterval)
    }

    let port: UInt16
    var baseURL: URL { URL(string: "http://127.0.0.1:\(port)")! }

    private let routes: [String: Route]
    private let listener: Int32
    private let deadline: TimeInterval
    private let maxRequests: Int
    private let lock = NSLock()
    private var stopRequested = false
    private var paths: [String] = []
    private let done = DispatchSemaphore(value: 0)

    /// Starts serving `routes` (path → answer) on a port the kernel picks; any other path is a 404.
    /// The lifetime is long: in a full `swift test` on two cores a test that made its server can
    /// wait more than 30 s for a thread before its request goes out (measured: 34–44 s).
    init(routes: [String: Route], lifetime: TimeInterval = 300, maxRequests: Int = 200) throws {
        self.routes = routes
        self.deadline = ProcessInfo.processInfo.systemUptime + lifetime
        self.maxRequests = maxRequests
        let (fd, port) = try Self.bindLoopback()
        guard listen(fd, 16) == 0 else {
            close(fd)
            throw ServerError("listen failed: \(String(cString: strerror(errno)))")
        }
        self.listener = fd
        self.port = port
        let thread = Thread { [self] in
            serve()
            done.signal()
        }
        thread.start()
    }

    deinit { stop() }

    /// The paths requested so far, in order.
    var requestedPaths: [String] { lock.withLock { paths } }

    /// Stops the server and waits (briefly) for its thread to finish. Safe to call more than once.
    func stop() {
        let first = lock.withLock { () -> Bool in
            defer { stopRequested = true }
            return !stopRequested
        }
        guard first else { return }
        _ = done.wait(timeout: .now() + 5)
        close(listener)
    }

    /// A port on 127.0.0.1 with nothing listening on it: bound to learn a free port, then closed.
    static func closedPort() throws -> UInt16 {
        let (fd, port) = try bindLoopback()
        close(fd)
        return port
    }

    private var shouldRun: Bool {
        lock.withLock { !stopRequested && paths.count < maxRequests } && ProcessInfo.processInfo.systemUptime < deadline
    }

    private func serve() {
        while shouldRun {
            var waiting = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&waiting, 1, 50) > 0 else { continue }
            let client = accept(listener, nil, nil)
            guard client >= 0 else { continue }
            handle(client)
            shutdown(client, Int32(SHUT_WR))
            close(client)
        }
    }

    private func handle(_ client: Int32) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard let path = readRequestPath(client) else { return }
        lock.withLock { paths.append(path) }
        switch routes[path] {
        case .file(let body):
            respond(client, status: "200 OK", length: body.count)
            transmit(client, body)
        case .redirect(let location):
            let target = location.replacingOccurrences(of: "{base}", with: baseURL.absoluteString)
            respond(client, status: "302 Found", length: 0, extra: "Location: \(target)\r\n")
        case .truncated(let declared, let body):
            respond(client, status: "200 OK", length: declared)
            transmit(client, body)
        case .stall(let declared, let body, let seconds):
            respond(client, status: "200 OK", length: declared)
            transmit(client, body)
            let until = ProcessInfo.processInfo.systemUptime + seconds
            while ProcessInfo.processInfo.systemUptime < until, !lock.withLock({ stopRequested }) {
                usleep(20_000)
            }
        case nil:
            let body = Data("Entry not found".utf8)
            respond(client, status: "404 Not Found", length: body.count)
            transmit(client, body)
        }
    }

    /// Reads the request head (bounded to 16 KiB) and returns the path of its request line.
    private func readRequestPath(_ client: Int32) -> String? {
        var head = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        let end: [UInt8] = Array("\r\n\r\n".utf8)
        while head.count < 16384 {
            let count = recv(client, &buffer, buffer.count, 0)
            guard count > 0 else { return nil }
            head += buffer[0..<count]
            if head.count >= 4, (0...(head.count - 4)).contains(where: { Array(head[$0..<($0 + 4)]) == end }) { break }
        }
        guard let line = String(decoding: head, as: UTF8.self).split(separator: "\r\n").first else { return nil }
        let parts = line.split(separator: " ")
        return parts.count >= 2 ? String(parts[1]) : nil
    }

    private func respond(_ client: Int32, status: String, length: Int, extra: String = "") {
        let head = "HTTP/1.1 \(status)\r\nContent-Length: \(length)\r\nContent-Type: application/octet-stream\r\n\(extra)Connection: close\r\n\r\n"
        transmit(client, Data(head.utf8))
    }

    /// Sends all of `data` in 64 KiB pieces, so a large body arrives at the client in several parts.
    private func transmit(_ client: Int32, _ data: Data) {
        var offset = 0
        while offset < data.count {
            let piece = min(65536, data.count - offset)
            let sent = data[(data.startIndex + offset)...].withUnsafeBytes { raw in
                #if canImport(Glibc)
                send(client, raw.baseAddress, piece, Int32(MSG_NOSIGNAL))
                #else
                send(client, raw.baseAddress, piece, 0)
                #endif
            }
            guard sent > 0 else { return }
            offset += sent
        }
    }

    /// A TCP socket bound to 127.0.0.1 on a port the kernel picks, and that port.
    private static func bindLoopback() throws -> (Int32, UInt16) {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw ServerError("socket failed: \(String(cString: strerror(errno)))") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else {
            close(fd)
            throw ServerError("bind failed: \(String(cString: strerror(errno)))")
        }
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else {
            close(fd)
            throw ServerError("getsockname failed: \(String(cString: strerror(errno)))")
        }
        return (fd, UInt16(bigEndian: address.sin_port))
    }

    struct ServerError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }
}
