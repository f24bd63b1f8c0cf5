import ArgumentParser
import DemucsDaemon
import DemucsEngine
import Logging
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

/// `demucsd`: the watch-folder service. Runs in the foreground (systemd supervises it).
@main
struct DemucsD: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demucsd",
        abstract: "Watch DATA/input for songs and write their stems to DATA/output/demucs/<name>/.",
        discussion: """
            Drop audio files into DATA/input (cp, mv, downloads, rsync). Each becomes a job in \
            DATA/state/jobs.sqlite; its stems (WAV and MP3 by default) appear complete in \
            DATA/output/demucs/<name>/. Follow it with `demucsctl status --data DATA`.

            Signals: SIGTERM/SIGINT stop after the current segment (the job is queued again); \
            SIGHUP reloads the configuration. Logs go to stderr with journald priority prefixes.

            Exit codes: 0 stopped cleanly; 1 could not start (e.g. the data folder is not \
            writable); 78 invalid configuration.
            """,
        version: DemucsdVersion.string
    )

    @Option(help: ArgumentHelp("Data folder (input/, output/demucs/, state/). Default: the config's data, else ./data.", valueName: "DIR"))
    var data: String?

    @Option(help: ArgumentHelp("Configuration file (TOML; see etc/demucsd.conf). Without it, the defaults.", valueName: "FILE"))
    var config: String?

    @Option(name: [.customShort("n"), .long], help: "Model name (as demucsctl separate -n).")
    var name: String?

    @Option(help: ArgumentHelp("Folder with the model files (as demucsctl separate --repo).", valueName: "DIR"))
    var repo: String?

    @Option(help: ArgumentHelp("Share the job queue with other hosts in PostgreSQL (postgresql://USER@HOST/DB, or postgresql:///DB?host=/run/postgresql for a unix socket) instead of DATA/state/jobs.sqlite. See docs/SCALING.md.", valueName: "URL"))
    var database: String?

    @Option(help: ArgumentHelp("This daemon's name in the shared queue's workers table. Default: hostname:pid.", valueName: "NAME"))
    var node: String?

    @Flag(name: [.customShort("v"), .long], help: "Log debug messages too.")
    var verbose = false

    func run() async throws {
        let level: Logger.Level = verbose ? .debug : .info
        // Log to a duplicate of stderr: the decoder silences fd 2 itself while libmpg123 talks.
        let logFD = dup(STDERR_FILENO)
        LoggingSystem.bootstrap { JournalLogHandler(label: $0, fileDescriptor: logFD >= 0 ? logFD : STDERR_FILENO, logLevel: level) }
        let logger = Logger(label: "demucsd")
        let (configPath, data, name, repo, database, node) = (config, data, name, repo, database, node)
        let load: @Sendable () throws -> DaemonConfig = {
            try DaemonConfig.load(path: configPath).overriding(data: data, modelName: name, repo: repo,
                                                               database: database, node: node)
        }
        let settings: DaemonConfig
        do {
            settings = try load()
        } catch {
            logger.critical("invalid configuration: \(error)")
            throw ExitCode(ConfigError.exitCode)
        }
        let daemon: Daemon
        do {
            daemon = try Daemon(layout: DataLayout(root: settings.data), settings: WorkSettings(config: settings),
                                version: DemucsdVersion.string, logger: logger,
                                reload: { WorkSettings(config: try load()) })
        } catch {
            logger.critical("cannot start: \(error)")
            throw ExitCode(1)
        }
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [daemon], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
