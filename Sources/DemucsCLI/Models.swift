import ArgumentParser
import CheckpointImport
import DemucsEngine
import Foundation
import ModelStore

/// `demucsctl models`: what is installed in the model cache, and fetching from the hub.
struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List installed models, fetch one from the hub, import or remove one, or verify the cache.",
        discussion: """
            The model cache is $DEMUCSD_MODELS, else $XDG_CACHE_HOME/demucsd/models, else \
            ~/.cache/demucsd/models (the systemd unit uses /var/lib/demucsd/models).
            """,
        subcommands: [List.self, Fetch.self, Verify.self, Import.self, Remove.self]
    )

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the models in the cache (or in --repo) with their sizes.")

        @Option(help: ArgumentHelp("A model folder instead of the cache.", valueName: "DIR"))
        var repo: String?

        func run() throws {
            let root = repo ?? ModelCache().root
            let repository = ModelRepository(root: root)
            let listing = repository.list()
            let roformers = repository.roFormers()
            print("models in \(root):")
            if listing.bags.isEmpty && listing.single.isEmpty && roformers.isEmpty {
                print("  none; fetch one with: demucsctl models fetch htdemucs")
                return
            }
            for bag in listing.bags {
                let sigs = (try? BagFile(path: root + "/" + bag + ".yaml").models) ?? []
                let size = sigs.reduce(Int64(0)) { $0 + fileSize(root + "/" + $1 + ".safetensors") }
                let missing = sigs.filter { !FileManager.default.fileExists(atPath: root + "/" + $0 + ".safetensors") }
                let source = FileManager.default.fileExists(atPath: root + "/" + bag + ".sha256") ? "hub (checksums recorded)" : "local"
                var line = String(format: "  %-16@ %3d model(s) %8.1f MB  %@", bag, sigs.count, Double(size) / 1e6, source)
                if !missing.isEmpty { line += "  MISSING: " + missing.map { $0 + ".safetensors" }.joined(separator: ", ") }
                print(line)
            }
            for name in roformers {
                let family = (try? RoFormerConfig(path: root + "/" + name + ".yaml").family.rawValue) ?? "RoFormer (config unreadable)"
                let source = FileManager.default.fileExists(atPath: root + "/" + name + ".sha256") ? "checksums recorded" : "local"
                print(String(format: "  %-16@ %@ %8.1f MB  %@", name, family, Double(fileSize(root + "/" + name + ".ckpt")) / 1e6, source))
            }
            // A model installed with its own one-model yaml (imports, v2 downloads) is listed once, as a bag.
            for single in listing.single where !listing.bags.contains(single) {
                print(String(format: "  %-16@ single    %8.1f MB", single, Double(fileSize(root + "/" + single + ".safetensors")) / 1e6))
            }
        }
    }

    struct Fetch: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Download a model (e.g. htdemucs, htdemucs_ft, htdemucs_6s) into the cache.")

        @Argument(help: "Model name, optionally NAMESPACE/NAME.")
        var name: String

        func run() throws {
            do {
                let installed = try ModelLocator.ensureInstalled(name: name)
                if installed.downloaded.isEmpty {
                    print("\(name) is already installed in \(installed.folder)")
                } else {
                    print("\(name) installed in \(installed.folder) (\(installed.downloaded.joined(separator: ", ")))")
                }
                _ = try installed.repository.loadModel(installed.name)
            } catch {
                printError("\(error)")
                throw Exit.modelFailed
            }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check a cached model's files against their recorded sha256 and load it.")

        @Argument(help: "Model name.")
        var name: String

        func run() throws {
            do {
                let installed = try ModelCache().verify(name: name)
                let model = try installed.repository.loadModel(installed.name)
                print("\(name): \(installed.files.count) file(s) match their checksums; \(model.summary), sources \(model.sources.joined(separator: ", "))")
            } catch {
                printError("\(error)")
                throw Exit.modelFailed
            }
        }
    }
}

private func fileSize(_ path: String) -> Int64 {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.int64Value ?? 0
}
