import CheckpointImport
import Foundation

/// Makes sure a pretrained model is in the cache, downloading what is missing from the hub.
///
/// `ensure(name:progress:)` is what the CLI and daemon call before loading a model by name:
/// - if the cache holds the yaml and every safetensors it lists, and each still has the sha256
///   recorded in `<model>.sha256`, it returns at once without touching the network;
/// - otherwise it downloads the missing files (the yaml first, since it lists the others), records
///   each one's sha256 as soon as it is in place, and returns;
/// - if a download fails it throws `ModelStoreError(.notInstalled)` whose message names the exact
///   files, where to get them and which folder to put them in, because on an offline machine
///   installing them by hand is the way forward.
///
/// Files found in the cache without a recorded hash (put there by hand, as that message suggests)
/// are trusted as they are and their hash recorded; from then on they are checked like downloaded
/// ones. A file whose hash no longer matches is reported, never silently replaced, so a damaged
/// disk or an edited file does not go unnoticed.
public struct ModelDownloader: Sendable {
    /// Where models are kept.
    public var cache: ModelCache
    /// Where models are fetched from.
    public var hub: HubClient

    /// Where demucs v2's pretrained `.th` files are fetched from (`V2Models`).
    public var v2BaseURL: URL
    /// v2's model names and the sha256 prefixes their files must have (`V2Models.signatures`;
    /// a mirror of other v2-format files, or a test, passes its own).
    public var v2Signatures = V2Models.signatures

    /// Where the published RoFormers are fetched from (`RoFormerModels`).
    public var roformerBaseURL = RoFormerModels.baseURL(environment: ProcessInfo.processInfo.environment)
    /// The RoFormers known by name (`RoFormerModels.known`; a test passes its own).
    public var roformerModels = RoFormerModels.known

    public init(cache: ModelCache, hub: HubClient, v2BaseURL: URL? = nil) {
        self.cache = cache
        self.hub = hub
        self.v2BaseURL = v2BaseURL ?? V2Models.baseURL(environment: ProcessInfo.processInfo.environment)
    }

    /// A downloader for the cache `cacheRoot` (else the default one for `environment`, see
    /// `ModelCache`) and the hub `hubURL` (else `$DEMUCSD_HUB_URL`, else https://huggingface.co).
    public init(cacheRoot: String? = nil, hubURL: URL? = nil,
                environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.cache = cacheRoot.map { ModelCache(root: $0) } ?? ModelCache(environment: environment)
        self.hub = HubClient(baseURL: hubURL, environment: environment)
        self.v2BaseURL = V2Models.baseURL(environment: environment)
        self.roformerBaseURL = RoFormerModels.baseURL(environment: environment)
    }

    /// Returns the installed model `name` (`NAME` or `NAMESPACE/NAME`), downloading missing files
    /// first; see the type's documentation. `progress` is called per file as bytes arrive (from a
    /// background thread). Load the result with `installed.repository.load(installed.name)`.
    public func ensure(name: String,
                       progress: (@Sendable (DownloadProgress) -> Void)? = nil) async throws -> InstalledModel {
        let model = try HubModelName(name)
        let folder = cache.folder(for: model)
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw ModelStoreError(.fileSystem, "cannot create the model cache folder \(folder): \(error)")
        }
        let lock = try await FileLock.acquire(path: cache.path(of: "." + model.model + ".lock", for: model))
        defer { lock.release() }

        let manifestPath = cache.manifestPath(for: model)
        var manifest = try ChecksumManifest.load(path: manifestPath) ?? ChecksumManifest()
        var downloaded: [String] = []

        if try cache.files(of: model) == nil, let entry = RoFormerModels.entry(of: model, in: roformerModels) {
            try await fetchRoFormer(model, entry: entry, name: name, manifest: &manifest, progress: progress)
            downloaded = [model.model + ".ckpt", model.yamlFile]
        } else if try cache.files(of: model) == nil, let signature = V2Models.signature(of: model, in: v2Signatures) {
            try await fetchV2(model, signature: signature, name: name, manifest: &manifest, progress: progress)
            downloaded = [model.yamlFile, model.model + ".safetensors"]
        } else if try cache.files(of: model) == nil {
            let missing = [model.yamlFile] + (KnownModels.signatures(of: model)?.map { $0 + ".safetensors" } ?? [])
            try await fetch(model.yamlFile, of: model, name: name, stillMissing: missing,
                            manifest: &manifest, progress: progress)
            downloaded.append(model.yamlFile)
        }
        guard let files = try cache.files(of: model) else {
            throw ModelStoreError(.fileSystem, "\(cache.path(of: model.yamlFile, for: model)) vanished right after it was downloaded")
        }
        let missing = files.filter { !FileManager.default.fileExists(atPath: cache.path(of: $0, for: model)) }
        for (index, file) in missing.enumerated() {
            try await fetch(file, of: model, name: name, stillMissing: Array(missing[index...]),
                            manifest: &manifest, progress: progress)
            downloaded.append(file)
        }

        // Files installed by hand: trust them once, and check them like the others from now on.
        let unrecorded = files.filter { manifest.hashes[$0] == nil }
        for file in unrecorded {
            manifest.hashes[file] = try FileDigest.sha256(ofFile: cache.path(of: file, for: model))
        }
        if !unrecorded.isEmpty { try manifest.write(path: manifestPath) }

        // Just downloaded or just recorded files were hashed a moment ago; check the rest.
        let fresh = Set(downloaded + unrecorded)
        try cache.verify(files: files.filter { !fresh.contains($0) }, of: model, against: manifest)
        return InstalledModel(name: model.model, folder: folder, files: files, downloaded: downloaded)
    }

    /// Checks the installed model `name` against its recorded hashes; see `ModelCache.verify(name:)`.
    @discardableResult
    public func verify(name: String) throws -> InstalledModel {
        try cache.verify(name: name)
    }

    /// Downloads one file of `model` into the cache and records its sha256 in the manifest (written
    /// at once, so a later failure does not lose it). A failed transfer becomes the "not installed"
    /// error listing `stillMissing`.
    private func fetch(_ file: String, of model: HubModelName, name: String, stillMissing: [String],
                       manifest: inout ChecksumManifest,
                       progress: (@Sendable (DownloadProgress) -> Void)?) async throws {
        let destination = cache.path(of: file, for: model)
        do {
            try await hub.download(hub.fileURL(file, of: model), to: destination, progress: progress)
        } catch let error as DownloadError {
            throw notInstalled(name: name, model: model, missing: stillMissing, reason: error.reason)
        }
        manifest.hashes[file] = try FileDigest.sha256(ofFile: destination)
        try manifest.write(path: cache.manifestPath(for: model))
    }

    /// Downloads demucs v2's `<name>-<sig>.th`, checks its sha256 against the signature, converts
    /// it into `<name>.safetensors` and writes the one-model `<name>.yaml` (in that order, so the
    /// yaml never lists a missing file), recording both in the manifest. The `.th` is deleted.
    private func fetchV2(_ model: HubModelName, signature: String, name: String, manifest: inout ChecksumManifest,
                         progress: (@Sendable (DownloadProgress) -> Void)?) async throws {
        let folder = cache.folder(for: model)
        let file = V2Models.fileName(model.model, signature: signature)
        let url = V2Models.url(of: file, base: v2BaseURL)
        // The converter reads the name and checksum from the file name, so it keeps it, in a
        // private folder that is removed whatever happens.
        let staging = try Self.makeStaging(in: folder, kind: "v2")
        defer { try? FileManager.default.removeItem(atPath: staging) }
        let downloadedPath = ModelCache.join(staging, file)
        do {
            try await hub.download(url, to: downloadedPath, progress: progress)
        } catch let error as DownloadError {
            throw ModelStoreError(.notInstalled, "model \(name) is not installed and could not be downloaded (\(error.reason)). Download \(url.absoluteString) and install it with: demucsctl models import \(file)")
        }
        let digest = try FileDigest.sha256(ofFile: downloadedPath)
        guard digest.hasPrefix(signature) else {
            throw ModelStoreError(.checksumMismatch, "\(url.absoluteString) arrived damaged or is not demucs's file: its sha256 is \(digest), the name says \(signature)...")
        }
        do {
            try LegacyCheckpoint.importFile(path: downloadedPath, into: folder)
        } catch {
            throw ModelStoreError(.invalidModelFile, "\(url.absoluteString) could not be converted: \(error)")
        }
        let weights = model.model + ".safetensors"
        manifest.hashes[weights] = try FileDigest.sha256(ofFile: cache.path(of: weights, for: model))
        let yamlPath = cache.path(of: model.yamlFile, for: model)
        let yamlTemp = ModelCache.join(staging, model.yamlFile)
        try Data("models: ['\(model.model)']\n".utf8).write(to: URL(fileURLWithPath: yamlTemp))
        guard rename(yamlTemp, yamlPath) == 0 else {
            throw ModelStoreError(.fileSystem, "cannot move \(yamlTemp) to \(yamlPath): \(String(cString: strerror(errno)))")
        }
        manifest.hashes[model.yamlFile] = try FileDigest.sha256(ofFile: yamlPath)
        try manifest.write(path: cache.manifestPath(for: model))
    }

    /// A new private folder inside `folder` (`.KIND-PID-RANDOM`: hidden, on the cache's file
    /// system so that what is staged there moves into place by rename) for a download to be
    /// checked in before anything is installed. The caller removes it.
    private static func makeStaging(in folder: String, kind: String) throws -> String {
        let staging = ModelCache.join(folder, ".\(kind)-\(getpid())-\(UUID().uuidString.prefix(8))")
        do {
            try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: false)
        } catch {
            throw ModelStoreError(.fileSystem, "cannot create \(staging): \(error)")
        }
        return staging
    }

    /// Downloads a published RoFormer's checkpoint and config into a private folder, loads them
    /// (so a damaged or mismatched pair is refused before anything is installed), then moves the
    /// checkpoint and then the config into place as `NAME.ckpt` and `NAME.yaml`, recording both.
    private func fetchRoFormer(_ model: HubModelName, entry: RoFormerModels.Entry, name: String,
                               manifest: inout ChecksumManifest,
                               progress: (@Sendable (DownloadProgress) -> Void)?) async throws {
        let folder = cache.folder(for: model)
        let staging = try Self.makeStaging(in: folder, kind: "roformer")
        defer { try? FileManager.default.removeItem(atPath: staging) }
        let checkpoint = model.model + ".ckpt"
        let urls = [(RoFormerModels.configURL(entry, base: roformerBaseURL), model.yamlFile),
                    (RoFormerModels.checkpointURL(entry, base: roformerBaseURL), checkpoint)]
        for (url, file) in urls {
            do {
                try await hub.download(url, to: ModelCache.join(staging, file), progress: progress)
            } catch let error as DownloadError {
                let all = urls.map(\.0.absoluteString).joined(separator: " and ")
                throw ModelStoreError(.notInstalled, "model \(name) is not installed and could not be downloaded (\(error.reason)). Download \(all) and install them with: demucsctl models import \(entry.config) \(entry.checkpoint)")
            }
        }
        do {
            _ = try RoFormerCheckpoint.load(config: ModelCache.join(staging, model.yamlFile),
                                            checkpoint: ModelCache.join(staging, checkpoint))
        } catch {
            throw ModelStoreError(.invalidModelFile, "model \(name) was downloaded but does not load, nothing was installed: \(error)")
        }
        for file in [checkpoint, model.yamlFile] {
            let destination = cache.path(of: file, for: model)
            guard rename(ModelCache.join(staging, file), destination) == 0 else {
                throw ModelStoreError(.fileSystem, "cannot move \(file) into \(folder): \(String(cString: strerror(errno)))")
            }
            manifest.hashes[file] = try FileDigest.sha256(ofFile: destination)
            try manifest.write(path: cache.manifestPath(for: model))
        }
    }

    /// The error for a model that could not be downloaded, naming what to install by hand:
    ///
    ///     model htdemucs is not installed and could not be downloaded (<reason>). Put htdemucs.yaml
    ///     and 955717e8.safetensors from https://huggingface.co/adefossez/HTDemucs into
    ///     /root/.cache/demucsd/models, or pass --repo DIR.
    func notInstalled(name: String, model: HubModelName, missing: [String], reason: String) -> ModelStoreError {
        var items = missing
        if missing == [model.yamlFile] { items.append("the .safetensors files it lists") }
        let message = "model \(name) is not installed and could not be downloaded (\(reason)). Put \(Self.list(items)) from \(hub.repositoryURL(for: model).absoluteString) into \(cache.folder(for: model)), or pass --repo DIR."
        return ModelStoreError(.notInstalled, message)
    }

    /// `a`, `a and b`, `a, b and c`.
    static func list(_ items: [String]) -> String {
        guard items.count > 1 else { return items.first ?? "" }
        return items.dropLast().joined(separator: ", ") + " and " + items.last!
    }
}
