import ArgumentParser
import DemucsEngine

/// `demucsctl`: separate songs into stems from the command line, and (with the daemon) look at
/// and steer its work.
public struct DemucsCtl: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "demucsctl",
        abstract: "Split music into stems (drums, bass, other, vocals) with Demucs, natively.",
        discussion: """
            Exit codes: 0 success; 1 one or more tracks failed (each is reported); 2 the model \
            could not be loaded; 64 bad usage.
            """,
        version: DemucsdVersion.string,
        subcommands: [Separate.self, Status.self, Jobs.self, Retry.self, Cancel.self, Models.self, Bench.self]
    )

    public init() {}
}
