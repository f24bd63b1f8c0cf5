#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging

/// A swift-log handler writing one line per event to stderr, in the form journald understands.
///
/// Under systemd, stderr is a stream to journald, which reads a leading `<N>` as the syslog
/// priority of the line (so `journalctl -p warning` works) and adds its own timestamp, unit name
/// and pid — so the line carries neither. From a terminal the same events are printed for a
/// person instead: a timestamp and a short level word, no `<N>`.
///
/// Journal:  `<4>cannot decode song.mp3 file=song.mp3 reason="not an audio file"`
/// Terminal: `2025-06-01 12:00:00.123 WARN  cannot decode song.mp3 file=song.mp3 …`
///
/// Each line goes out in a single write(2), so lines from concurrent threads never interleave
/// (journald would otherwise split or merge them).
public struct JournalLogHandler: LogHandler {
    /// How lines are written.
    public enum Style: Sendable, Equatable {
        /// `<N>` priority prefix, no timestamp: for journald (or any syslog-aware reader).
        case journal
        /// Timestamp and level word: for a person at a terminal.
        case terminal
    }

    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    /// The label the logger was created with (not printed: journald already names the unit).
    public let label: String
    /// Where lines are written; stderr unless a test passes a pipe.
    public let fileDescriptor: Int32
    public let style: Style

    /// - Parameters:
    ///   - fileDescriptor: the output; stderr by default.
    ///   - style: nil picks `.terminal` when `fileDescriptor` is a terminal, `.journal` otherwise.
    public init(label: String, fileDescriptor: Int32 = STDERR_FILENO, style: Style? = nil, logLevel: Logger.Level = .info,
                metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.fileDescriptor = fileDescriptor
        self.style = style ?? (isatty(fileDescriptor) == 1 ? .terminal : .journal)
        self.logLevel = logLevel
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let own = event.metadata { merged.merge(own) { _, new in new } }
        if let error = event.error, merged["error"] == nil { merged["error"] = .string("\(error)") }
        let line = Self.format(level: event.level, message: event.message.description, metadata: merged, style: style,
                               timestamp: style == .terminal ? Self.timestamp() : "")
        Self.writeAll(Array(line.utf8), to: fileDescriptor)
    }

    /// The syslog priority journald should record for `level`.
    public static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .critical: 2
        case .error: 3
        case .warning: 4
        case .notice: 5
        case .info: 6
        case .debug, .trace: 7
        }
    }

    /// The level word of terminal lines, padded to one width so messages line up.
    static func word(_ level: Logger.Level) -> String {
        switch level {
        case .critical: "CRIT "
        case .error: "ERROR"
        case .warning: "WARN "
        case .notice: "NOTE "
        case .info: "INFO "
        case .debug: "DEBUG"
        case .trace: "TRACE"
        }
    }

    /// One complete line, newline included. Newlines inside the message become `\n` so an event is
    /// always one journal entry with one priority.
    static func format(level: Logger.Level, message: String, metadata: Logger.Metadata, style: Style,
                       timestamp: String) -> String {
        var line = style == .journal ? "<\(priority(level))>" : "\(timestamp) \(word(level)) "
        line += escapeControls(message)
        for key in metadata.keys.sorted() {
            line += " " + key + "=" + render(metadata[key]!)
        }
        return line + "\n"
    }

    /// A metadata value as `value`, or `"quoted value"` when it holds spaces, quotes, `=` or
    /// control characters (or is empty), so `key=value` pairs can be split again unambiguously.
    static func render(_ value: Logger.Metadata.Value) -> String {
        let text: String
        switch value {
        case .string(let s): text = s
        case .stringConvertible(let c): text = c.description
        case .array(let items): text = "[" + items.map { render($0) }.joined(separator: ",") + "]"
        case .dictionary(let dict):
            text = "{" + dict.keys.sorted().map { "\($0)=\(render(dict[$0]!))" }.joined(separator: ",") + "}"
        }
        let needsQuotes = text.isEmpty || text.unicodeScalars.contains {
            $0 == " " || $0 == "\"" || $0 == "=" || $0 == "\\" || $0.properties.isWhitespace || $0.value < 0x20 || $0.value == 0x7F
        }
        guard needsQuotes else { return text }
        var quoted = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": quoted += "\\\""
            case "\\": quoted += "\\\\"
            default: quoted += escapeControls(String(scalar))
            }
        }
        return quoted + "\""
    }

    /// `\n`, `\r`, `\t` and other control characters spelled out, keeping the event on one line.
    private static func escapeControls(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                let hex = String(scalar.value, radix: 16)
                out += "\\x" + (hex.count < 2 ? "0" + hex : hex)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// Local time with milliseconds, `2025-06-01 12:00:00.123`.
    private static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var seconds = ts.tv_sec
        var parts = tm()
        localtime_r(&seconds, &parts)
        var buffer = [CChar](repeating: 0, count: 32)
        let n = strftime(&buffer, buffer.count, "%Y-%m-%d %H:%M:%S", &parts)
        let millis = Int(ts.tv_nsec) / 1_000_000
        let ms = millis < 10 ? "00\(millis)" : millis < 100 ? "0\(millis)" : "\(millis)"
        let date = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return date + "." + ms
    }

    /// One write(2) for the whole line; the loop only finishes a partial write (possible for lines
    /// longer than PIPE_BUF) or retries after a signal. Errors are dropped: logging must not fail
    /// the daemon, and there is nowhere left to report them.
    private static func writeAll(_ bytes: [UInt8], to fd: Int32) {
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n > 0 {
                    offset += n
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    return
                }
            }
        }
    }
}
