import Foundation

/// Output paths as `python -m demucs.separate` builds them: `OUT/<model>/` plus the `--filename`
/// template with `{track}`, `{trackext}`, `{stem}` and `{ext}`.
struct OutputNaming: Sendable {
    let folder: String
    let template: String

    /// `out/<name>` with `hf://` dropped and `/` replaced as demucs does.
    init(out: String, modelName: String, template: String) {
        let cleaned = modelName.replacingOccurrences(of: "hf://", with: "").replacingOccurrences(of: "/", with: "_")
        folder = (out as NSString).appendingPathComponent(cleaned)
        self.template = template
    }

    /// Checks the template for placeholders other than the four known ones.
    static func validate(template: String) -> String? {
        var rest = Substring(template)
        while let open = rest.firstIndex(of: "{") {
            guard let close = rest[open...].firstIndex(of: "}") else { return "unclosed '{' in --filename" }
            let key = rest[rest.index(after: open)..<close]
            if !["track", "trackext", "stem", "ext"].contains(String(key)) {
                return "unknown placeholder {\(key)} in --filename (use {track}, {trackext}, {stem}, {ext})"
            }
            rest = rest[rest.index(after: close)...]
        }
        return nil
    }

    /// The path of one stem of `track` (Python's `name.rsplit(".", 1)` gives track and trackext).
    func path(track: String, stem: String, ext: String) -> String {
        let name = (track as NSString).lastPathComponent
        let base: String, trackExt: String
        if let dot = name.lastIndex(of: ".") {
            base = String(name[..<dot])
            trackExt = String(name[name.index(after: dot)...])
        } else {
            base = name
            trackExt = name
        }
        let relative = template
            .replacingOccurrences(of: "{track}", with: base)
            .replacingOccurrences(of: "{trackext}", with: trackExt)
            .replacingOccurrences(of: "{stem}", with: stem)
            .replacingOccurrences(of: "{ext}", with: ext)
        return (folder as NSString).appendingPathComponent(relative)
    }
}
