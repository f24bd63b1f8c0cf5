import AudioIO
import CheckpointImport
import DemucsDaemon
import DemucsEngine
import Foundation

/// The parsers that read what strangers hand the daemon, each as one fuzz target: given any
/// bytes, a target either gets a value or throws its typed error; it must never crash, hang or
/// read out of bounds. `demucsd-fuzz` runs them under libFuzzer (`tools/fuzz.sh`) or replays
/// inputs, and the tests replay every committed finding.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// `SafeTensorsFile`: header, offsets, dtypes and shapes, then every tensor read.
    case safetensors
    /// The pickle reader alone (storages served as zeros, at most 1 MiB).
    case pickle
    /// A torch zip (`torch.save`'s format): the archive, its `data.pkl`, its storages.
    case torchzip
    /// `LegacyCheckpoint.convert`: what `demucsctl models import` does with a `.th` file —
    /// torch zip or legacy pickle, demucs v2 states, diffq and zlib-packed states.
    case checkpoint
    /// A bag of models' YAML (`BagFile`).
    case bagyaml
    /// The daemon's TOML configuration (`DaemonConfig.parse`).
    case config
    /// Audio decoding of arbitrary bytes through the daemon's entry point (`AudioDecoder.stream`,
    /// libsndfile; without ffmpeg), in process.
    case audio

    /// Runs the target on `data`. `scratch` is a file path the target may write (targets whose
    /// parser takes a path).
    public func run(_ data: Data, scratch: String) {
        switch self {
        case .safetensors:
            guard write(data, to: scratch), let file = try? SafeTensorsFile(path: scratch) else { return }
            for name in file.names.sorted() { _ = try? file.tensor(name) }
        case .pickle:
            _ = try? PickleReader.load(data: data, source: "fuzz", loadStorage: { _, dtype, count in
                let bytes = count.multipliedReportingOverflow(by: dtype.byteWidth)
                guard !bytes.overflow, bytes.partialValue >= 0, bytes.partialValue <= 1 << 20 else {
                    throw FuzzRefusal()
                }
                return Data(count: bytes.partialValue)
            })
        case .torchzip:
            _ = try? TorchZip.load(data: data, description: "fuzz")
        case .checkpoint:
            guard write(data, to: scratch) else { return }
            _ = try? LegacyCheckpoint.convert(path: scratch)
        case .bagyaml:
            _ = try? BagFile(yaml: String(decoding: data, as: UTF8.self), source: "fuzz")
        case .config:
            _ = try? DaemonConfig.parse(String(decoding: data, as: UTF8.self), file: "fuzz")
        case .audio:
            guard write(data, to: scratch) else { return }
            _ = try? AudioDecoder.stream(path: scratch, sampleRate: 44_100, channels: 2, ffmpeg: nil) { _ in }
        }
    }

    private func write(_ data: Data, to path: String) -> Bool {
        FileManager.default.createFile(atPath: path, contents: data)
    }
}

/// A storage the pickle target will not make up (too large or negative).
struct FuzzRefusal: Error {}
