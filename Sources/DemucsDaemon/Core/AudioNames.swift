/// Which file names the daemon treats as audio. Anything else dropped into `input/` (cover art,
/// playlists, notes) is ignored with a journal line rather than failing as a job.
enum AudioNames {
    static let extensions: Set<String> = [
        "wav", "wave", "flac", "mp3", "ogg", "oga", "opus", "aif", "aiff", "aifc", "au", "snd",
        "caf", "w64", "rf64", "m4a", "aac", "wma", "mp4", "mka", "webm", "alac", "ape", "wv",
    ]

    static func isAudio(_ name: String) -> Bool {
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return false }
        return extensions.contains(name[name.index(after: dot)...].lowercased())
    }

    /// The output folder name for an input: its name without the extension.
    static func outputName(for name: String) -> String {
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return name }
        return String(name[..<dot])
    }
}
