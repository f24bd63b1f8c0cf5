import ArgumentParser

/// Exit codes of `demucsctl`, documented in the README and in `--help`.
enum Exit {
    /// At least one track could not be separated or written.
    static let trackFailed = ExitCode(1)
    /// The model could not be found, downloaded or loaded.
    static let modelFailed = ExitCode(2)
    /// Interrupted (SIGINT), after cleaning up.
    static let interrupted = ExitCode(130)
}
