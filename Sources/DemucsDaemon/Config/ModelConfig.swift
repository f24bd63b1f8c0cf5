import ModelStore
import TOMLKit

/// The `[model]` section: which Demucs model separates the songs and where its files live.
public struct ModelConfig: Sendable, Equatable {
    /// Model name as the CLI's `-n` takes it (`htdemucs`, `htdemucs_ft`, `NAMESPACE/NAME`).
    public var name: String
    /// A folder holding the model files (the CLI's `--repo`); nil means the model cache, where a
    /// missing model is downloaded.
    public var repo: String?
    /// The model cache folder; nil means the default cache (see `resolvedCache(environment:)`).
    public var cache: String?

    public init(name: String = "htdemucs", repo: String? = nil, cache: String? = nil) {
        self.name = name
        self.repo = repo
        self.cache = cache
    }

    /// The cache folder to use: `cache` if set, else `$DEMUCSD_MODELS`, `$XDG_CACHE_HOME/demucsd/models`
    /// or `~/.cache/demucsd/models` — the same order `demucsctl` follows, so that a model fetched
    /// with `demucsctl models fetch` as the service user is the one the daemon finds.
    public func resolvedCache(environment: [String: String]) -> String {
        if let cache { return ModelCache(root: cache).root }
        return ModelCache.defaultRoot(environment: environment)
    }

    /// `true` when `name` is a model name the cache and the hub can use (letters, digits, `.`, `_`,
    /// `-`, optionally `NAMESPACE/NAME`); anything else could escape the cache folder.
    static func isValidName(_ name: String) -> Bool {
        (try? HubModelName(name)) != nil
    }

    init(reading reader: inout ConfigTableReader) throws {
        let defaults = ModelConfig()
        name = try reader.string("name", default: defaults.name)
        guard Self.isValidName(name) else {
            throw reader.error("name", "is not a valid model name (use NAME or NAMESPACE/NAME with letters, digits, '.', '_', '-', e.g. \"htdemucs\")")
        }
        let repo = try reader.string("repo", default: "")
        self.repo = repo.isEmpty ? nil : repo
        let cache = try reader.string("cache", default: "")
        self.cache = cache.isEmpty ? nil : cache
        try reader.rejectUnknownKeys()
    }
}
