import Foundation
import PostgresNIO

/// A `postgresql://` URL as libpq takes it, turned into PostgresNIO's client configuration:
/// `postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE`, and for a unix socket the folder in
/// `?host=/run/postgresql` (libpq's rule: a host that starts with `/` is a socket folder, the
/// socket being `FOLDER/.s.PGSQL.PORT`). TLS is not used: the hosts reach their database over a
/// unix socket or a private network.
public struct DatabaseURL: Sendable, Equatable, CustomStringConvertible {
    public var user: String
    public var password: String?
    public var database: String
    /// A TCP host, or nil for a unix socket in `socketFolder`.
    public var host: String?
    public var port: Int
    public var socketFolder: String?

    public struct Invalid: Error, CustomStringConvertible {
        public let url: String
        public let reason: String
        public var description: String { "invalid database URL \(url): \(reason)" }
    }

    public init(_ text: String) throws {
        guard let components = URLComponents(string: text),
              let scheme = components.scheme, ["postgresql", "postgres"].contains(scheme) else {
            throw Invalid(url: Self.redacted(text), reason: "it must start with postgresql://")
        }
        let query = Dictionary((components.queryItems ?? []).map { ($0.name, $0.value ?? "") }) { $1 }
        for key in query.keys where !["host", "port", "user", "password", "dbname"].contains(key) {
            throw Invalid(url: Self.redacted(text), reason: "unknown parameter \(key)")
        }
        user = query["user"] ?? components.user ?? "postgres"
        password = query["password"] ?? components.password
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        database = query["dbname"] ?? (path.isEmpty ? user : path)
        let portText = query["port"] ?? components.port.map(String.init) ?? "5432"
        guard let port = Int(portText), (1...65535).contains(port) else {
            throw Invalid(url: Self.redacted(text), reason: "port \(portText) is not a port number")
        }
        self.port = port
        let hostText = query["host"] ?? components.host ?? ""
        if hostText.hasPrefix("/") {
            socketFolder = hostText
            host = nil
        } else if hostText.isEmpty {
            socketFolder = "/run/postgresql"
            host = nil
        } else {
            socketFolder = nil
            host = hostText
        }
    }

    /// The socket file libpq would connect to, for a socket URL.
    public var socketPath: String? { socketFolder.map { "\($0)/.s.PGSQL.\(port)" } }

    public var clientConfiguration: PostgresClient.Configuration {
        if let socketPath {
            return PostgresClient.Configuration(unixSocketPath: socketPath, username: user, password: password, database: database)
        }
        return PostgresClient.Configuration(host: host ?? "localhost", port: port, username: user, password: password,
                                            database: database, tls: .disable)
    }

    /// The URL without its password, for logs and errors.
    public var description: String {
        let place = host.map { "\($0):\(port)" } ?? ""
        let socket = socketFolder.map { "?host=\($0)&port=\(port)" } ?? ""
        return "postgresql://\(user)@\(place)/\(database)\(socket)"
    }

    static func redacted(_ text: String) -> String {
        guard var components = URLComponents(string: text) else { return "(unparsable)" }
        if components.password != nil { components.password = "***" }
        return components.string ?? "(unparsable)"
    }
}
