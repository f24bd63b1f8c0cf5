#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import TOMLKit

/// Everything the daemon can be configured with, read from a TOML file (`/etc/demucsd.conf` under
/// systemd) and then overridden by command-line flags.
///
/// Every key is optional and has the default documented in `etc/demucsd.conf`, so an empty file —
/// or no file at all — is a working configuration. Anything the daemon does not understand is an
/// error rather than a warning: a misspelt key silently ignored would only show up hours later as
/// output in the wrong format or in the wrong place. See `ConfigError` for the messages.
///
/// File layout:
/// ```toml
/// data = "./data"
/// [model]       # name, repo, cache
/// [separation]  # shifts, overlap, segment, two_stems, precision
/// [output]      # wav, wav_format, mp3, mp3_bitrate, mp3_preset, flac, clip_mode
/// [jobs]        # workers, threads, retry_limit, on_success, on_failure,
///               # max_file_size_mb, max_duration_minutes, settle_seconds
/// ```
public struct DaemonConfig: Sendable, Equatable {
    /// The data folder holding `input/`, `output/demucs/`, `done/`, `failed/` and the job store.
    /// A relative path is relative to the daemon's working directory; the packaged unit passes
    /// `--data /var/lib/demucsd`.
    public var data: String
    public var model: ModelConfig
    public var separation: SeparationConfig
    public var output: OutputConfig
    public var jobs: JobsConfig
    public var database: DatabaseConfig
    public var watch: WatchConfig

    /// The built-in defaults: exactly what an empty configuration file gives.
    public init(data: String = "./data", model: ModelConfig = ModelConfig(),
                separation: SeparationConfig = SeparationConfig(), output: OutputConfig = OutputConfig(),
                jobs: JobsConfig = JobsConfig(), database: DatabaseConfig = DatabaseConfig(),
                watch: WatchConfig = WatchConfig()) {
        self.data = data
        self.model = model
        self.separation = separation
        self.output = output
        self.jobs = jobs
        self.database = database
        self.watch = watch
    }

    /// The keys of each section, so a key written under the wrong header (or before any header)
    /// can be pointed to where it belongs. Kept in step with the section parsers by the tests.
    static let sectionKeys: [(section: String, keys: [String])] = [
        ("model", ["name", "repo", "cache"]),
        ("separation", ["shifts", "overlap", "segment", "two_stems", "precision"]),
        ("output", ["wav", "wav_format", "mp3", "mp3_bitrate", "mp3_preset", "flac", "clip_mode"]),
        ("jobs", ["workers", "threads", "retry_limit", "on_success", "on_failure", "max_file_size_mb",
                  "max_duration_minutes", "settle_seconds", "ffmpeg", "decoder_cpu_seconds", "decoder_memory_mb",
                  "decoder_stall_seconds"]),
        ("database", ["url", "lease_seconds", "heartbeat_seconds", "node"]),
        ("watch", ["poll_seconds", "rescan_seconds"]),
    ]

    /// Reads the configuration file at `path`; nil gives the defaults (the daemon without `--config`).
    /// - Throws: `ConfigError` when the file cannot be read, is not TOML, or holds an unknown key,
    ///   a value of the wrong type or one out of range.
    public static func load(path: String?) throws -> DaemonConfig {
        guard let path else { return DaemonConfig() }
        return try parse(readFile(path), file: path)
    }

    /// Parses the text of a configuration file; `file` is the name its errors carry.
    /// - Throws: `ConfigError`, as `load(path:)`.
    public static func parse(_ text: String, file: String = "demucsd.conf") throws -> DaemonConfig {
        let root: TOMLTable
        try TableHeaderCheck.check(text, file: file)
        do {
            root = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            let position = error.source.begin
            throw ConfigError(file: file, key: nil,
                              problem: "line \(position.line), column \(position.column): \(error.description) (not valid TOML)",
                              line: position.line)
        }

        var config = DaemonConfig()
        var top = ConfigTableReader(file: file, section: nil, table: root, elsewhere: elsewhere(forSection: nil))
        config.data = try top.string("data", default: config.data)
        if config.data.isEmpty { throw top.error("data", "must name a folder (the default is \"./data\")") }

        let sectionNames = sectionKeys.map(\.section)
        for key in root.keys.sorted() where !sectionNames.contains(key) && key != "data" {
            // A table here is a whole unknown section, which deserves its own message.
            guard root[key]?.type == .table else { continue }
            var problem = "is not a known section"
            if let guess = ConfigTableReader.closest(to: key, in: sectionNames) {
                problem += "; did you mean [\(guess)]?"
            } else {
                problem += " (known sections: \(sectionNames.map { "[\($0)]" }.joined(separator: ", ")))"
            }
            throw ConfigError(file: file, key: "[\(key)]", problem: problem)
        }
        try top.rejectUnknownKeys(alsoKnown: sectionNames)

        for name in sectionNames {
            guard let value = root[name] else { continue }
            guard let table = value.table else {
                throw top.error(name, "must be a section ([\(name)] on a line of its own, then its keys), not \(ConfigTableReader.typeName(value.type))")
            }
            var reader = ConfigTableReader(file: file, section: name, table: table, elsewhere: elsewhere(forSection: name))
            switch name {
            case "model": config.model = try ModelConfig(reading: &reader)
            case "separation": config.separation = try SeparationConfig(reading: &reader)
            case "output": config.output = try OutputConfig(reading: &reader)
            case "database": config.database = try DatabaseConfig(reading: &reader)
            case "watch": config.watch = try WatchConfig(reading: &reader)
            default: config.jobs = try JobsConfig(reading: &reader)
            }
        }
        return config
    }

    /// This configuration with the command-line flags applied: flags win over the file, so an
    /// operator can try another model or data folder without editing `/etc/demucsd.conf`.
    /// nil leaves a setting alone; `repo: ""` switches back to the model cache.
    /// - Parameters:
    ///   - data: `--data DIR`.
    ///   - modelName: `-n NAME`.
    ///   - repo: `--repo DIR`.
    /// - Throws: `ConfigError` (file `command line`) for an empty `--data` or an invalid `-n`.
    public func overriding(data: String? = nil, modelName: String? = nil, repo: String? = nil,
                           database: String? = nil, node: String? = nil) throws -> DaemonConfig {
        var out = self
        if let database {
            guard database.hasPrefix("postgresql://") || database.hasPrefix("postgres://") else {
                throw ConfigError(file: "command line", key: "--database", problem: "\"\(database)\" is not a PostgreSQL URL (postgresql://USER@HOST/DB, or postgresql:///DB?host=/run/postgresql)")
            }
            out.database.url = database
        }
        if let node {
            guard !node.isEmpty, !node.contains("/") else {
                throw ConfigError(file: "command line", key: "--node", problem: "must be a name without '/'")
            }
            out.database.node = node
        }
        if let data {
            guard !data.isEmpty else {
                throw ConfigError(file: "command line", key: "--data", problem: "must name a folder")
            }
            out.data = data
        }
        if let modelName {
            guard ModelConfig.isValidName(modelName) else {
                throw ConfigError(file: "command line", key: "-n", problem: "\"\(modelName)\" is not a valid model name (use NAME or NAMESPACE/NAME, e.g. htdemucs)")
            }
            out.model.name = modelName
        }
        if let repo {
            out.model.repo = repo.isEmpty ? nil : repo
        }
        return out
    }

    /// Where each key belongs, seen from `section` (nil = top level).
    private static func elsewhere(forSection section: String?) -> [String: String] {
        var map: [String: String] = [:]
        for (other, keys) in sectionKeys where other != section {
            for key in keys { map[key] = "[\(other)]" }
        }
        if section != nil { map["data"] = "the top of the file, before any [section] header" }
        return map
    }

    /// The whole file as UTF-8 text, with errors that say why it cannot be read.
    private static func readFile(_ path: String) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw ConfigError(file: path, key: nil, problem: "cannot be opened: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ConfigError(file: path, key: nil, problem: "cannot be read: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            bytes += chunk[0..<n]
            if bytes.count > 1_048_576 {
                throw ConfigError(file: path, key: nil, problem: "is larger than 1 MiB; is it really the configuration file?")
            }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ConfigError(file: path, key: nil, problem: "is not UTF-8 text")
        }
        return text
    }
}
