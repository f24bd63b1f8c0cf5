/// Why a message to systemd's notification socket could not be sent.
///
/// The convenience methods of `SystemdNotifier` swallow it (a daemon must not stop because its
/// supervisor went away); `SystemdNotifier.send(_:)` throws it so tests and callers that care can
/// see what happened.
public struct NotifyError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The socket address from `$NOTIFY_SOCKET`, as given.
    public var socket: String
    /// What failed, including the system's reason.
    public var reason: String

    public init(socket: String, reason: String) {
        self.socket = socket
        self.reason = reason
    }

    public var description: String { "cannot notify systemd via \(socket): \(reason)" }
}
