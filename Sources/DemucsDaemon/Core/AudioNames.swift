/// Which file names the daemon treats as audio: what libsndfile reads (first line) and what
/// ffmpeg reads beside it (audio containers, then video files, whose first audio stream is
/// taken). Anything else dropped into `input/` (cover art, playlists, notes) is ignored with a
/// journal line rather than failing as a job. The README lists the same set.
enum AudioNames {
    static let extensions: Set<String> = [
        "wav", "wave", "flac", "mp3", "ogg", "oga", "opus", "aif", "aiff", "aifc", "au", "snd", "caf", "w64", "rf64",
        "m4a", "m4b", "aac", "alac", "wma", "mka", "webm", "ape", "wv", "ac3", "tta",
        "mp4", "m4v", "mkv", "mov", "avi",
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
