import DemucsEngine

/// A model that is present in the cache, as `ModelDownloader.ensure` and `ModelCache.verify` return it.
///
/// Carries the local name as well as the folder because a `someuser/NAME` model lives in a subfolder
/// and must be loaded as `NAME` from there: `installed.repository.load(installed.name)`.
public struct InstalledModel: Sendable, Equatable {
    /// The name to pass to `ModelRepository.load` (the model's name without namespace).
    public var name: String
    /// The folder holding the model's files (absolute).
    public var folder: String
    /// The model's files: the yaml first, then one safetensors per signature.
    public var files: [String]
    /// The files that this call had to download (empty when everything was already cached).
    public var downloaded: [String]

    public init(name: String, folder: String, files: [String], downloaded: [String]) {
        self.name = name
        self.folder = folder
        self.files = files
        self.downloaded = downloaded
    }

    /// The folder as an engine model repository.
    public var repository: ModelRepository { ModelRepository(root: folder) }
}
