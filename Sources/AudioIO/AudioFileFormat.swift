/// Container formats demucsd can write, chosen like demucs does: from the output extension.
public enum AudioFileFormat: String, Sendable, CaseIterable, Equatable {
    case wav
    case flac
    case mp3

    /// The format implied by `path`'s extension (case-insensitive).
    /// - Throws: `AudioIOError` (`.invalidArgument`) for any other extension.
    public init(path: String) throws {
        let ext = FileChecks.pathExtension(path)
        guard let format = AudioFileFormat(rawValue: ext) else {
            let found = ext.isEmpty ? "the path has no extension" : "unsupported output extension '.\(ext)'"
            throw AudioIOError(.invalidArgument, .encode, path: path, reason: "\(found) (use .wav, .flac or .mp3)")
        }
        self = format
    }
}
