import ArgumentParser
import CheckpointImport
import DemucsEngine
import Foundation
import ModelStore

extension Models {
    /// `demucsctl models import FILE…`: installs model files into the cache (or `--repo DIR`).
    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Install model files: demucs .th checkpoints (converted), <name>.yaml bags with their .safetensors, or a RoFormer's .yaml config with its .ckpt.",
            discussion: """
                A .th checkpoint (what demucs's serialize_model / torch.save write, e.g. \
                955717e8-8726e21a.th) is converted to <sig>.safetensors in the demucs 4.1 hub \
                layout; its pickle is read without running any code. In the model cache a \
                one-model <sig>.yaml is written beside it, so that `-n <sig>` finds it. A \
                <name>.yaml is copied with the <sig>.safetensors it lists, taken from the \
                arguments or from beside the yaml; a .safetensors that no yaml lists is \
                installed as a single model. A RoFormer (BS-RoFormer or Mel-Band RoFormer) is \
                its MSST .yaml config with its .ckpt, as published: both are installed as \
                NAME.yaml + NAME.ckpt, NAME being the checkpoint's name or --name; with several \
                checkpoints, each pairs with the config of the same name. Everything is checked \
                by loading it before anything is installed; files that already exist with other \
                content are only replaced with --force.
                """
        )

        @Argument(help: ArgumentHelp("Files to install (.th, .yaml, .safetensors).", valueName: "FILE"))
        var files: [String]

        @Option(help: ArgumentHelp("Install into this model folder instead of the cache.", valueName: "DIR"))
        var repo: String?

        @Flag(help: "Replace existing files of the same name that have other content.")
        var force = false

        @Option(help: ArgumentHelp("The name to install a RoFormer under (one .ckpt only; default: the checkpoint's file name).", valueName: "NAME"))
        var name: String?

        func run() throws {
            do {
                let destination = repo ?? ModelCache().root
                let lines = try ModelImporter(destination: destination, isCache: repo == nil, force: force, name: name).install(files)
                for line in lines { print(line) }
            } catch {
                printError("\(error)")
                throw Exit.modelFailed
            }
        }
    }

    /// `demucsctl models rm NAME`: removes a model and the weights no other bag uses.
    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rm",
            abstract: "Remove a model from the cache (or --repo): its yaml, checksums and the .safetensors no other bag uses."
        )

        @Argument(help: "Model name (a bag NAME.yaml or a single NAME.safetensors).")
        var name: String

        @Option(help: ArgumentHelp("A model folder instead of the cache.", valueName: "DIR"))
        var repo: String?

        func run() throws {
            do {
                let folder: String
                let model: String
                if let repo {
                    guard LegacyCheckpointName.isSafe(name) else {
                        throw ModelStoreError(.invalidName, "model name '\(name)' is not valid: names may only use letters, digits, '.', '_' and '-'")
                    }
                    folder = repo
                    model = name
                } else {
                    let hub = try HubModelName(name)
                    folder = ModelCache().folder(for: hub)
                    model = hub.model
                }
                for line in try ModelImporter.remove(name: model, from: folder) { print(line) }
            } catch {
                printError("\(error)")
                throw Exit.modelFailed
            }
        }
    }
}

enum LegacyCheckpointName {
    /// Letters, digits, `.`, `_`, `-`, not starting with `.`: usable as a file name as it is.
    static func isSafe(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, first != "." else { return false }
        return s.unicodeScalars.allSatisfy {
            switch $0 {
            case "a"..."z", "A"..."Z", "0"..."9", ".", "_", "-": return true
            default: return false
            }
        }
    }
}

/// Stages, checks and installs model files; see `Models.Import`.
struct ModelImporter {
    var destination: String
    var isCache: Bool
    var force: Bool
    /// The name for the one RoFormer being installed (`--name`).
    var name: String? = nil

    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ message: String) { description = message }
    }

    /// One model or bag to install: its name and its files (names in the staging folder).
    struct Item {
        var name: String
        var files: [String]
        var origin: String
    }

    func install(_ arguments: [String]) throws -> [String] {
        let fm = FileManager.default
        guard !arguments.isEmpty else { throw Failure("nothing to import: pass .th, .yaml or .safetensors files") }
        var th: [String] = [], yaml: [String] = [], safetensors: [String] = [], ckpt: [String] = []
        for path in arguments {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue else {
                throw Failure("cannot import \(path): no such file")
            }
            switch (path as NSString).pathExtension.lowercased() {
            case "th": th.append(path)
            case "yaml", "yml": yaml.append(path)
            case "safetensors": safetensors.append(path)
            case "ckpt": ckpt.append(path)
            default: throw Failure("cannot import \(path): expected a .th checkpoint, a .yaml bag, a .safetensors model or a RoFormer .ckpt")
            }
        }
        do {
            try fm.createDirectory(atPath: destination, withIntermediateDirectories: true)
        } catch {
            throw Failure("cannot create the model folder \(destination): \(error.localizedDescription)")
        }
        let staging = join(destination, ".import-\(getpid())-\(UUID().uuidString.prefix(8))")
        try fm.createDirectory(atPath: staging, withIntermediateDirectories: false)
        defer { try? fm.removeItem(atPath: staging) }

        var items: [Item] = []
        var staged: [String: String] = [:]  // file name -> where it came from
        func stage(_ source: String, as name: String) throws {
            if let previous = staged[name] {
                guard try sameContent(previous, source) else {
                    throw Failure("two different files would be installed as \(name): \(previous) and \(source)")
                }
                return
            }
            try fm.copyItem(atPath: source, toPath: join(staging, name))
            staged[name] = source
        }
        func stageYAML(for sig: String, origin: String) throws -> [String] {
            guard isCache else { return [] }
            let file = sig + ".yaml"
            try Data("models: ['\(sig)']\n".utf8).write(to: URL(fileURLWithPath: join(staging, file)))
            staged[file] = origin
            return [file]
        }

        for path in th {
            let (sig, _) = try LegacyCheckpoint.importFile(path: path, into: staging)
            guard staged[sig + ".safetensors"] == nil else {
                throw Failure("two checkpoints have the signature \(sig): \(staged[sig + ".safetensors"]!) and \(path)")
            }
            staged[sig + ".safetensors"] = path
            items.append(Item(name: sig, files: [sig + ".safetensors"] + (try stageYAML(for: sig, origin: path)), origin: path))
        }
        // RoFormers: each .ckpt with its config (the only RoFormer config given, or the one of
        // the same name), installed as NAME.ckpt + NAME.yaml.
        let configs = yaml.filter { RoFormerConfig.isRoFormerConfig(path: $0) }
        if name != nil && ckpt.count != 1 { throw Failure("--name names one RoFormer; \(ckpt.count) .ckpt files were given") }
        for path in ckpt {
            let base = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
            let model = name ?? base
            guard LegacyCheckpointName.isSafe(model) else { throw Failure("cannot import \(path): '\(model)' cannot be used as a model name (pass --name)") }
            let sameName = configs.filter { (($0 as NSString).lastPathComponent as NSString).deletingPathExtension == base }
            guard let config = sameName.first ?? (configs.count == 1 && ckpt.count == 1 ? configs.first : nil) else {
                throw Failure("cannot import \(path): a RoFormer checkpoint needs its .yaml config among the files (\(configs.isEmpty ? "none was given" : "none is named \(base).yaml"))")
            }
            try stage(path, as: model + ".ckpt")
            try stage(config, as: model + ".yaml")
            items.append(Item(name: model, files: [model + ".yaml", model + ".ckpt"], origin: path))
        }
        if ckpt.isEmpty, let config = configs.first {
            throw Failure("\(config) is a RoFormer config; import it together with its .ckpt")
        }
        var claimed = Set<String>()
        for path in yaml where !configs.contains(path) {
            let name = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
            guard LegacyCheckpointName.isSafe(name) else { throw Failure("cannot import \(path): '\(name)' cannot be used as a model name") }
            let bag = try BagFile(path: path)
            var files = [name + ".yaml"]
            for sig in bag.models {
                guard LegacyCheckpointName.isSafe(sig) else { throw Failure("\(path) lists the signature '\(sig)', which cannot be used as a file name") }
                let file = sig + ".safetensors"
                let fromArguments = safetensors.first { ($0 as NSString).lastPathComponent == file }
                let beside = join((path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent, file)
                guard let source = fromArguments ?? (fm.fileExists(atPath: beside) ? beside : nil) else {
                    throw Failure("\(path) lists model \(sig), but \(file) is neither beside it nor among the files to import")
                }
                if let fromArguments { claimed.insert(fromArguments) }
                try stage(source, as: file)
                if !files.contains(file) { files.append(file) }
            }
            try stage(path, as: name + ".yaml")
            items.append(Item(name: name, files: files, origin: path))
        }
        for path in safetensors where !claimed.contains(path) {
            let name = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
            guard LegacyCheckpointName.isSafe(name) else { throw Failure("cannot import \(path): '\(name)' cannot be used as a model name") }
            try stage(path, as: name + ".safetensors")
            items.append(Item(name: name, files: [name + ".safetensors"] + (try stageYAML(for: name, origin: path)), origin: path))
        }

        // Load every model from the staging folder before anything is installed.
        var descriptions: [String: String] = [:]
        for item in items {
            do {
                let model = try ModelRepository(root: staging).loadModel(item.name)
                descriptions[item.name] = "\(model.summary), sources \(model.sources.joined(separator: ", "))"
            } catch {
                throw Failure("\(item.origin) does not load, nothing was installed: \(String(describing: error).replacingOccurrences(of: staging + "/", with: ""))")
            }
        }

        // Files already there: identical ones are left alone, others need --force.
        var unchanged = Set<String>(), replaced: [String] = []
        for file in staged.keys {
            let target = join(destination, file)
            guard fm.fileExists(atPath: target) else { continue }
            if try sameContent(target, join(staging, file)) {
                unchanged.insert(file)
            } else if force {
                replaced.append(file)
            } else {
                throw Failure("\(target) already exists with other content; nothing was installed (pass --force to replace it, or remove the model first with `demucsctl models rm`)")
            }
        }
        // Weights first, bags last, so that a yaml never lists a file that is not there yet.
        let order = staged.keys.sorted { a, b in
            let ay = a.hasSuffix(".yaml"), by = b.hasSuffix(".yaml")
            return ay == by ? a < b : !ay
        }
        for file in order where !unchanged.contains(file) {
            guard rename(join(staging, file), join(destination, file)) == 0 else {
                throw Failure("cannot move \(file) into \(destination): \(String(cString: strerror(errno)))")
            }
        }
        if isCache { try updateManifests(items: items, replaced: replaced) }

        var lines: [String] = []
        for item in items {
            let state = item.files.allSatisfy(unchanged.contains) ? "already installed" : "installed"
            lines.append("\(item.name) \(state) in \(destination): \(item.files.joined(separator: ", ")) (\(descriptions[item.name]!))")
        }
        if !replaced.isEmpty { lines.append("replaced: \(replaced.sorted().joined(separator: ", "))") }
        for item in items {
            lines.append("  use it with: demucsctl separate -n \(item.name)\(isCache ? "" : " --repo \(destination)") FILE")
        }
        return lines
    }

    /// Records the sha256 of the installed files in each bag's manifest, and in any other
    /// manifest that records a file that was replaced.
    func updateManifests(items: [Item], replaced: [String]) throws {
        var digests: [String: String] = [:]
        func digest(_ file: String) throws -> String {
            if let d = digests[file] { return d }
            let d = try FileDigest.sha256(ofFile: join(destination, file))
            digests[file] = d
            return d
        }
        for item in items {
            let path = join(destination, item.name + ".sha256")
            // A damaged manifest is rebuilt: the files were just checked by loading them.
            var manifest = ((try? ChecksumManifest.load(path: path)) ?? nil) ?? ChecksumManifest()
            for file in item.files { manifest.hashes[file] = try digest(file) }
            try manifest.write(path: path)
        }
        guard !replaced.isEmpty else { return }
        let names = Set(items.map { $0.name + ".sha256" })
        for file in (try? FileManager.default.contentsOfDirectory(atPath: destination)) ?? [] where file.hasSuffix(".sha256") && !names.contains(file) {
            let path = join(destination, file)
            guard var manifest = try? ChecksumManifest.load(path: path) else { continue }
            var changed = false
            for r in replaced where manifest.hashes[r] != nil {
                manifest.hashes[r] = try digest(r)
                changed = true
            }
            if changed { try manifest.write(path: path) }
        }
    }

    /// Removes `name` from `folder`; see `Models.Remove`.
    static func remove(name: String, from folder: String) throws -> [String] {
        let fm = FileManager.default
        let yamls = ((try? fm.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".yaml") }.sorted()
        // Which bags use each safetensors, not counting `name` itself.
        var users: [String: [String]] = [:]
        for file in yamls where file != name + ".yaml" {
            guard let bag = try? BagFile(path: join(folder, file)) else { continue }
            for sig in bag.models { users[sig + ".safetensors", default: []].append(String(file.dropLast(5))) }
        }
        var removed: [String] = [], kept: [String] = []
        let yaml = join(folder, name + ".yaml")
        if ModelRepository(root: folder).isRoFormer(name) {
            // The config first: a half-removed model then reads as missing, not as damaged.
            for file in [name + ".yaml", name + ".ckpt", name + ".sha256"] where fm.fileExists(atPath: join(folder, file)) {
                try fm.removeItem(atPath: join(folder, file))
                removed.append(file)
            }
        } else if fm.fileExists(atPath: yaml) {
            let bag = try BagFile(path: yaml)
            var candidates = [name + ".yaml", name + ".sha256"]
            for sig in bag.models where LegacyCheckpointName.isSafe(sig) {
                let file = sig + ".safetensors"
                if let others = users[file] {
                    kept.append("\(file) (still used by \(others.joined(separator: ", ")))")
                } else if !candidates.contains(file) {
                    candidates.append(file)
                }
            }
            // The bag file first: a half-removed model then reads as missing, not as damaged.
            for file in candidates where fm.fileExists(atPath: join(folder, file)) {
                try fm.removeItem(atPath: join(folder, file))
                removed.append(file)
            }
        } else if fm.fileExists(atPath: join(folder, name + ".safetensors")) {
            let file = name + ".safetensors"
            if let others = users[file] {
                throw Failure("\(join(folder, file)) is used by \(others.joined(separator: ", ")); remove \(others.count == 1 ? "that model" : "those models") first")
            }
            for f in [file, name + ".sha256"] where fm.fileExists(atPath: join(folder, f)) {
                try fm.removeItem(atPath: join(folder, f))
                removed.append(f)
            }
        } else {
            throw Failure("model \(name) is not in \(folder): neither \(name).yaml nor \(name).safetensors is there")
        }
        var lines = ["removed \(name) from \(folder): \(removed.joined(separator: ", "))"]
        if !kept.isEmpty { lines.append("kept \(kept.joined(separator: ", "))") }
        return lines
    }

    func sameContent(_ a: String, _ b: String) throws -> Bool {
        let fm = FileManager.default
        let sa = (try fm.attributesOfItem(atPath: a)[.size] as? NSNumber)?.int64Value
        let sb = (try fm.attributesOfItem(atPath: b)[.size] as? NSNumber)?.int64Value
        guard sa == sb else { return false }
        return fm.contentsEqual(atPath: a, andPath: b)
    }
}

private func join(_ folder: String, _ name: String) -> String {
    (folder as NSString).appendingPathComponent(name)
}
