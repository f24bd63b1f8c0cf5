/// Why a configuration file (or a command-line flag overriding it) cannot be used.
///
/// The daemon refuses to start on any mistake in its configuration instead of guessing, because a
/// typo such as `mp3_bitrat = 128` silently ignored would produce hours of output in the wrong
/// format. So every message names the file and the key, shows the offending value and says what
/// would be accepted, e.g.
/// `/etc/demucsd.conf: [output] mp3_bitrate = 1000 is not a valid MP3 bitrate (8..320)`.
public struct ConfigError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The process exit status for a configuration error: `EX_CONFIG` from sysexits.h. The unit
    /// file lists it in `RestartPreventExitStatus=`, so systemd does not restart a daemon that
    /// would only fail again the same way.
    public static let exitCode: Int32 = 78

    /// The configuration file as it was given (or `command line` for a flag).
    public var file: String
    /// The key at fault as written in messages: `data` at the top level, `[output] mp3_bitrate`
    /// inside a section, `[outptu]` for a whole section, `--data` for a flag; `nil` when the file
    /// as a whole is at fault (unreadable, not TOML).
    public var key: String?
    /// What is wrong, phrased to follow the key (`= 1000 is not a valid MP3 bitrate (8..320)`).
    public var problem: String
    /// The 1-based line of a TOML syntax error, when the parser reported one.
    public var line: Int?

    public init(file: String, key: String?, problem: String, line: Int? = nil) {
        self.file = file
        self.key = key
        self.problem = problem
        self.line = line
    }

    public var description: String {
        if let key { return "\(file): \(key) \(problem)" }
        return "\(file): \(problem)"
    }
}
