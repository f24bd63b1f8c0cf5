import DemucsEngine
import Foundation

/// The folder where downloaded models are kept, and what is installed in it.
///
/// Where the cache is, first match wins:
/// 1. an explicit folder passed to `ModelCache(root:)` (the CLI's option);
/// 2. `$DEMUCSD_MODELS`, if set and not empty;
/// 3. `$XDG_CACHE_HOME/demucsd/models`, if `XDG_CACHE_HOME` is set to an absolute path (the XDG
///    base directory spec says relative values are to be ignored);
/// 4. `$HOME/.cache/demucsd/models` (the home folder of the current user if `HOME` is unset).
///
/// A leading `~` in `DEMUCSD_MODELS` is expanded and relative paths are made absolute, so error
/// messages always show a folder the user can find.
///
/// Layout: models of the default hub namespace (`adefossez`) sit directly in the root, exactly as a
/// `--repo DIR` folder would (`htdemucs.yaml`, `955717e8.safetensors`, ...), so the cache root can
/// itself be passed to `--repo`. A model `someuser/NAME` goes into the subfolder `someuser/`, so that
/// two namespaces publishing the same NAME cannot overwrite each other. Beside each `NAME.yaml` is
/// `NAME.sha256`, the `ChecksumManifest` of its files.
public struct ModelCache: Sendable, Equatable {
    /// The cache root folder (absolute).
    public let root: String

    /// A cache in an explicit folder.
    public init(root: String) {
        self.root = Self.absolute(root)
    }

    /// The default cache for `environment` (see the type's documentation for the order).
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.root = Self.defaultRoot(environment: environment)
    }

    /// The default cache root for `environment`: `$DEMUCSD_MODELS`, else
    /// `$XDG_CACHE_HOME/demucsd/models`, else `$HOME/.cache/demucsd/models`.
    ///
    /// Takes the environment as a parameter so it can be tested without touching the process's.
    public static func defaultRoot(environment: [String: String]) -> String {
        if let explicit = environment["DEMUCSD_MODELS"], !explicit.isEmpty {
            return absolute(explicit)
        }
        if let xdg = environment["XDG_CACHE_HOME"], xdg.hasPrefix("/") {
            return absolute(xdg + "/demucsd/models")
        }
        var home = environment["HOME"] ?? ""
        if home.isEmpty { home = NSHomeDirectory() }
        return absolute(home + "/.cache/demucsd/models")
    }

    /// The folder that holds `model`: the root for the default namespace, `root/<namespace>` else.
    public func folder(for model: HubModelName) -> String {
        model.isDefaultNamespace ? root : Self.join(root, model.namespace)
    }

    /// The path of `file` in `model`'s folder.
    public func path(of file: String, for model: HubModelName) -> String {
        Self.join(folder(for: model), file)
    }

    /// The path of `model`'s checksum manifest, `<folder>/<model>.sha256`.
    public func manifestPath(for model: HubModelName) -> String {
        path(of: model.model + ".sha256", for: model)
    }

    /// The files `model` is made of according to its cached yaml: the yaml first, then one
    /// `<sig>.safetensors` per signature. Nil when the yaml is not in the cache.
    /// A RoFormer (`NAME.ckpt` beside the yaml) is its config and its checkpoint.
    public func files(of model: HubModelName) throws -> [String]? {
        let yamlPath = path(of: model.yamlFile, for: model)
        guard FileManager.default.fileExists(atPath: yamlPath) else { return nil }
        let checkpoint = model.model + ".ckpt"
        if FileManager.default.fileExists(atPath: path(of: checkpoint, for: model)) { return [model.yamlFile, checkpoint] }
        let bag: BagFile
        do {
            bag = try BagFile(path: yamlPath)
        } catch {
            throw ModelStoreError(.invalidModelFile, "\(yamlPath) is not a usable model bag (\(error)). Delete it and fetch the model again.")
        }
        for signature in bag.models where !HubModelName.isSafeComponent(signature) {
            throw ModelStoreError(.invalidName, "\(yamlPath) lists the model signature '\(signature)', which cannot be used as a file name. Delete the yaml and fetch the model again.")
        }
        var files = [model.yamlFile]
        for signature in bag.models where !files.contains(signature + ".safetensors") {
            files.append(signature + ".safetensors")
        }
        return files
    }

    /// Checks that `name` is fully installed and unchanged: the yaml and every safetensors it lists
    /// are present, recorded in the manifest, and still have the recorded sha256.
    ///
    /// Recomputes every hash (it reads every byte of the model), so call it when you want to be
    /// sure, not on every hot path. Returns the installed model; throws `ModelStoreError` naming the
    /// first file that is missing, unrecorded or changed, and what to do about it.
    @discardableResult
    public func verify(name: String) throws -> InstalledModel {
        let model = try HubModelName(name)
        let folder = folder(for: model)
        guard let files = try files(of: model) else {
            throw ModelStoreError(.notInstalled, "model \(name) is not installed: \(model.yamlFile) is not in \(folder)")
        }
        let manifestPath = manifestPath(for: model)
        guard let manifest = try ChecksumManifest.load(path: manifestPath) else {
            throw ModelStoreError(.checksumMismatch, "model \(name) has no checksum manifest (\(manifestPath)), so its files cannot be verified; run the model once to record their checksums, or delete its files in \(folder) and fetch it again")
        }
        try verify(files: files, of: model, against: manifest)
        return InstalledModel(name: model.model, folder: folder, files: files, downloaded: [])
    }

    /// Checks each of `files` against `manifest`; shared by `verify(name:)` and the downloader.
    func verify(files: some Sequence<String>, of model: HubModelName, against manifest: ChecksumManifest) throws {
        for file in files {
            let filePath = path(of: file, for: model)
            guard FileManager.default.fileExists(atPath: filePath) else {
                throw ModelStoreError(.notInstalled, "model \(model.model) is incomplete: \(filePath) is missing; fetch the model again")
            }
            guard let expected = manifest.hashes[file] else {
                throw ModelStoreError(.checksumMismatch, "model \(model.model): \(file) has no recorded sha256 in \(manifestPath(for: model)); run the model once to record it, or delete \(filePath) and fetch it again")
            }
            let actual = try FileDigest.sha256(ofFile: filePath)
            guard actual == expected else {
                throw ModelStoreError(.checksumMismatch, "model \(model.model): \(filePath) is damaged or was changed (sha256 \(actual), recorded \(expected)). Delete \(filePath) and fetch the model again.")
            }
        }
    }

    static func join(_ folder: String, _ name: String) -> String {
        folder.hasSuffix("/") ? folder + name : folder + "/" + name
    }

    static func absolute(_ path: String) -> String {
        let expanded = (path as NSString).expandingTildeInPath
        return URL(fileURLWithPath: expanded).standardizedFileURL.path
    }
}
