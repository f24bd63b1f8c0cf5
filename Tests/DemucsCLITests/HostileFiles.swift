@testable import DemucsEngine
import Foundation
import ZIPFoundation

/// Makers of hostile files for `HostileFileSweepTests`: mutations of real files, forged
/// safetensors headers, pickles that try to run code, zips whose entries climb out of their
/// folder. Every random choice comes from a `SweepRandom` whose seed the tests print, so a
/// failing file can be made again.
enum HostileFiles {}

/// The engine's SplitMix64, seeded from `DEMUCSD_SWEEP_SEED` when set (to replay a failure),
/// otherwise afresh for each run, so every run of the suite meets files no earlier run has seen.
struct SweepRandom: RandomNumberGenerator {
    private var generator: SplitMix64

    init(seed: UInt64) { generator = SplitMix64(seed: seed) }

    static let seed: UInt64 = {
        if let text = ProcessInfo.processInfo.environment["DEMUCSD_SWEEP_SEED"], let value = UInt64(text) { return value }
        return UInt64.random(in: 1...UInt64.max)
    }()

    /// A generator for one case: the run's seed mixed with the case's name, so cases are
    /// independent of the order the tests run in.
    static func forCase(_ name: String) -> SweepRandom {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return SweepRandom(seed: seed ^ hash)
    }

    mutating func next() -> UInt64 { generator.next() }
}

// MARK: - Mutations of real files

extension HostileFiles {
    /// The ways a real file is damaged, each applied with fresh random positions.
    enum Mutation: String, CaseIterable, CustomStringConvertible, Sendable {
        case headerBitFlips, scatteredBitFlips, truncated, truncatedInHeader, extremeHeaderWord,
             junkInserted, zeroedRange, bodyReplaced

        var description: String { rawValue }

        func apply(to original: Data, rng: inout SweepRandom) -> Data {
            var bytes = [UInt8](original)
            let header = min(bytes.count, 256)
            switch self {
            case .headerBitFlips:
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    bytes[Int.random(in: 0..<min(header, 64), using: &rng)] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
                }
            case .scatteredBitFlips:
                for _ in 0..<Int.random(in: 8...64, using: &rng) {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
                }
            case .truncated:
                bytes.removeLast(Int.random(in: 1...bytes.count - 1, using: &rng))
            case .truncatedInHeader:
                bytes = Array(bytes.prefix(Int.random(in: 0..<header, using: &rng)))
            case .extremeHeaderWord:
                // A size or count field set to a value no file can hold.
                let word: [UInt8] = [[0xFF, 0xFF, 0xFF, 0xFF], [0xFF, 0xFF, 0xFF, 0x7F], [0, 0, 0, 0x80], [0, 0, 0, 0]]
                    .randomElement(using: &rng)!
                let at = Int.random(in: 0..<(min(header, 128) - 4), using: &rng)
                bytes.replaceSubrange(at..<(at + 4), with: word)
            case .junkInserted:
                let junk = (0..<Int.random(in: 1...512, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                bytes.insert(contentsOf: junk, at: Int.random(in: 0..<min(bytes.count, 1024), using: &rng))
            case .zeroedRange:
                let length = min(Int.random(in: 16...1024, using: &rng), bytes.count)
                let at = Int.random(in: 0...(bytes.count - length), using: &rng)
                bytes.replaceSubrange(at..<(at + length), with: repeatElement(0, count: length))
            case .bodyReplaced:
                for i in header..<bytes.count { bytes[i] = UInt8.random(in: 0...255, using: &rng) }
            }
            return Data(bytes)
        }
    }
}

// MARK: - Forged safetensors

extension HostileFiles {
    /// A safetensors file taken apart: its JSON header and the data after it.
    struct SafeTensors {
        var header: [String: Any]
        var data: Data

        init(_ file: Data) throws {
            let length = Int(file.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self).littleEndian })
            header = try JSONSerialization.jsonObject(with: file.subdata(in: 8..<(8 + length))) as! [String: Any]
            data = file.subdata(in: (8 + length)..<file.count)
        }

        var tensorNames: [String] { header.keys.filter { $0 != "__metadata__" }.sorted() }

        /// The file again, with `headerLength` in place of the true length when given.
        func file(headerLength: UInt64? = nil) -> Data {
            let json = try! JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
            return Self.file(headerText: json, data: data, headerLength: headerLength)
        }

        static func file(headerText: Data, data: Data, headerLength: UInt64? = nil) -> Data {
            var out = Data()
            withUnsafeBytes(of: (headerLength ?? UInt64(headerText.count)).littleEndian) { out.append(contentsOf: $0) }
            return out + headerText + data
        }

        mutating func setTensor(_ name: String, _ field: String, _ value: Any) {
            var entry = header[name] as! [String: Any]
            entry[field] = value
            header[name] = entry
        }

        /// The model's constructor arguments (`kwargs` in the metadata), changed by `change`.
        mutating func changeKwargs(_ change: (inout [String: Any]) -> Void) {
            var metadata = header["__metadata__"] as! [String: String]
            var kwargs = try! JSONSerialization.jsonObject(with: Data(metadata["kwargs"]!.utf8)) as! [String: Any]
            change(&kwargs)
            metadata["kwargs"] = String(decoding: try! JSONSerialization.data(withJSONObject: kwargs), as: UTF8.self)
            header["__metadata__"] = metadata
        }

        mutating func setMetadata(_ key: String, _ value: Any) {
            var metadata = header["__metadata__"] as! [String: Any]
            metadata[key] = value
            header["__metadata__"] = metadata
        }
    }

    /// The forgeries of a real safetensors model: each must be refused.
    enum Forgery: String, CaseIterable, CustomStringConvertible, Sendable {
        case headerLengthPastEnd, headerLength2p62, headerLengthMax, headerLengthZero, headerLengthShort,
             offsetsReversed, offsetsPastEnd, offsetsNegative, offsetsHuge, shapeOverflow, shapeNegative,
             shapeDisagreesWithBytes, unknownDtype, dtypeNotAString, tensorMissing, headerIsArray, headerIsJunk,
             dataTruncated, kwargsNotJSON, kwargsHugeChannels, kwargsHugeDepth, kwargsNoSources,
             kwargsNegativeFFT, kwargsZeroDenominator, kwargsZeroSampleRate, kwargsHugeSampleRate, kwargsLargeSampleRate, kwargsHugeSegment,
             kwargsLargeSegment,
             kwargsNegativeSegment, klassUnknown, metadataNotStrings

        var description: String { rawValue }

        func apply(to original: Data, rng: inout SweepRandom) throws -> Data {
            var file = try SafeTensors(original)
            let name = file.tensorNames.randomElement(using: &rng)!
            let entry = file.header[name] as! [String: Any]
            let offsets = entry["data_offsets"] as! [Int]
            let dataSize = file.data.count
            switch self {
            case .headerLengthPastEnd: return file.file(headerLength: UInt64(original.count + Int.random(in: 1...100_000, using: &rng)))
            case .headerLength2p62: return file.file(headerLength: 1 << 62)
            case .headerLengthMax: return file.file(headerLength: .max)
            case .headerLengthZero: return file.file(headerLength: 0)
            case .headerLengthShort: return file.file(headerLength: UInt64.random(in: 1...64, using: &rng))
            case .offsetsReversed: file.setTensor(name, "data_offsets", [offsets[1], offsets[0]])
            case .offsetsPastEnd: file.setTensor(name, "data_offsets", [offsets[0], dataSize + Int.random(in: 1...1 << 20, using: &rng)])
            case .offsetsNegative: file.setTensor(name, "data_offsets", [-Int.random(in: 1...1 << 20, using: &rng), offsets[1]])
            case .offsetsHuge: file.setTensor(name, "data_offsets", [Int.max - 8, Int.max])
            case .shapeOverflow: file.setTensor(name, "shape", [1 << 31, 1 << 31, 1 << 31])
            case .shapeNegative: file.setTensor(name, "shape", [-1, offsets[1] - offsets[0]])
            case .shapeDisagreesWithBytes: file.setTensor(name, "shape", [(offsets[1] - offsets[0]) * Int.random(in: 2...9, using: &rng)])
            case .unknownDtype: file.setTensor(name, "dtype", ["F128", "Q4_K", "f16", "", "F8_E4M3FNUZ"].randomElement(using: &rng)!)
            case .dtypeNotAString: file.setTensor(name, "dtype", 16)
            case .tensorMissing: file.header[name] = nil
            case .headerIsArray:
                return SafeTensors.file(headerText: Data("[1, 2, 3]".utf8), data: file.data)
            case .headerIsJunk:
                let junk = Data((0..<Int.random(in: 1...4096, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) })
                return SafeTensors.file(headerText: junk, data: file.data)
            case .dataTruncated:
                let whole = file.file()
                return whole.prefix(whole.count - Int.random(in: 1...dataSize, using: &rng))
            case .kwargsNotJSON: file.setMetadata("kwargs", "{\"channels\": ")
            case .kwargsHugeChannels: file.changeKwargs { $0["channels"] = 1 << 40 }
            case .kwargsHugeDepth: file.changeKwargs { $0["depth"] = 1_000_000 }
            case .kwargsNoSources: file.changeKwargs { $0["sources"] = [String]() }
            case .kwargsNegativeFFT: file.changeKwargs { $0["nfft"] = -4096 }
            case .kwargsZeroDenominator: file.changeKwargs { $0["segment"] = ["_type": "fraction", "numerator": 1, "denominator": 0] }
            case .kwargsZeroSampleRate: file.changeKwargs { $0["samplerate"] = 0 }
            case .kwargsHugeSampleRate: file.changeKwargs { $0["samplerate"] = 1 << 62 }
            case .kwargsLargeSampleRate: file.changeKwargs { $0["samplerate"] = 2_000_000_000 }
            case .kwargsLargeSegment: file.changeKwargs { $0["segment"] = ["_type": "fraction", "numerator": 2_000_000_000, "denominator": 1] }
            case .kwargsHugeSegment: file.changeKwargs { $0["segment"] = ["_type": "fraction", "numerator": 1 << 62, "denominator": 1] }
            case .kwargsNegativeSegment: file.changeKwargs { $0["segment"] = ["_type": "fraction", "numerator": -8, "denominator": 1] }
            case .klassUnknown: file.setMetadata("klass", ["os.system", "builtins.eval", "demucs.htdemucs.Evil", ""].randomElement(using: &rng)!)
            case .metadataNotStrings: file.setMetadata("kwargs", ["channels": 4])
            }
            return file.file()
        }
    }
}

// MARK: - Pickles that try to run code

extension HostileFiles {
    /// Writes pickle opcodes (protocol 2, or 4 where a payload needs STACK_GLOBAL).
    struct PickleWriter {
        private(set) var bytes: [UInt8]

        init(protocol version: UInt8 = 2) { bytes = [0x80, version] }

        mutating func global(_ module: String, _ name: String) { bytes += [UInt8(ascii: "c")] + Array("\(module)\n\(name)\n".utf8) }
        mutating func string(_ text: String) {
            let utf8 = Array(text.utf8)
            bytes.append(UInt8(ascii: "X"))
            withUnsafeBytes(of: UInt32(utf8.count).littleEndian) { bytes += $0 }
            bytes += utf8
        }
        mutating func int(_ value: Int32) {
            bytes.append(UInt8(ascii: "J"))
            withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
        }
        mutating func op(_ code: Opcode) { bytes.append(code.rawValue) }
        mutating func inst(_ module: String, _ name: String) { bytes += [UInt8(ascii: "i")] + Array("\(module)\n\(name)\n".utf8) }

        enum Opcode: UInt8 {
            case mark = 0x28, stop = 0x2E, reduce = 0x52, tuple = 0x74, tuple1 = 0x85, tuple2 = 0x86, emptyTuple = 0x29,
                 emptyDict = 0x7D, setItems = 0x75, object = 0x6F, stackGlobal = 0x93, binPersId = 0x51, newFalse = 0x89,
                 build = 0x62
        }
    }

    /// Pickles that would run `command` if they were unpickled by Python's pickle module.
    enum Payload: String, CaseIterable, CustomStringConvertible, Sendable {
        case osSystem, posixSystem, builtinsEval, python2Eval, builtinsExec, instSubprocess, stackGlobal,
             objOpcode, insideCheckpointDict, getattrChain, buildSetState, storagePathClimb

        var description: String { rawValue }

        func pickle(command: String) -> Data {
            var p = PickleWriter(protocol: self == .stackGlobal ? 4 : 2)
            func call(_ module: String, _ name: String, _ argument: String) {
                p.global(module, name); p.string(argument); p.op(.tuple1); p.op(.reduce)
            }
            switch self {
            case .osSystem: call("os", "system", command)
            case .posixSystem: call("posix", "system", command)
            case .builtinsEval: call("builtins", "eval", "__import__('os').system(\(pythonString(command)))")
            case .python2Eval: call("__builtin__", "eval", "__import__('os').system(\(pythonString(command)))")
            case .builtinsExec: call("builtins", "exec", "import os; os.system(\(pythonString(command)))")
            case .instSubprocess:
                p.op(.mark); p.string(command); p.inst("subprocess", "getoutput")
            case .stackGlobal:
                p.string("os"); p.string("system"); p.op(.stackGlobal); p.string(command); p.op(.tuple1); p.op(.reduce)
            case .objOpcode:
                p.op(.mark); p.global("os", "system"); p.string(command); p.op(.object)
            case .insideCheckpointDict:
                // Shaped like a demucs package, with the payload where the class belongs.
                p.op(.emptyDict); p.op(.mark)
                p.string("klass"); call("os", "system", command)
                p.string("args"); p.op(.emptyTuple)
                p.string("kwargs"); p.op(.emptyDict)
                p.string("state"); p.op(.emptyDict)
                p.op(.setItems)
            case .getattrChain:
                p.global("builtins", "getattr")
                p.global("builtins", "__import__"); p.string("os"); p.op(.tuple1); p.op(.reduce)
                p.string("system"); p.op(.tuple2); p.op(.reduce)
                p.string(command); p.op(.tuple1); p.op(.reduce)
            case .buildSetState:
                // An allowed container whose state names a callable, for a reader that calls __setstate__.
                p.global("collections", "OrderedDict"); p.op(.emptyTuple); p.op(.reduce)
                p.op(.emptyDict); p.op(.mark); p.string("__setstate__"); p.global("os", "system"); p.op(.setItems)
                p.op(.build)
                p.op(.emptyDict); p.op(.mark); p.string("x"); p.string(command); p.op(.setItems); p.op(.build)
            case .storagePathClimb:
                // A tensor whose storage key climbs out of the archive's data folder.
                p.global("torch._utils", "_rebuild_tensor_v2")
                p.op(.mark)
                p.op(.mark); p.string("storage"); p.global("torch", "FloatStorage"); p.string("../../../../etc/passwd")
                p.string("cpu"); p.int(4); p.op(.tuple); p.op(.binPersId)
                p.int(0)
                p.int(4); p.op(.tuple1)
                p.int(1); p.op(.tuple1)
                p.op(.newFalse)
                p.global("collections", "OrderedDict"); p.op(.emptyTuple); p.op(.reduce)
                p.op(.tuple); p.op(.reduce)
            }
            p.op(.stop)
            return Data(p.bytes)
        }

        private func pythonString(_ text: String) -> String {
            "'" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
        }
    }
}

// MARK: - Torch zip archives

extension HostileFiles {
    /// Writes a zip with `entries` in order, stored (not compressed), names taken as given:
    /// ZIPFoundation does not clean up a `../` or an absolute name when it writes.
    static func zip(_ entries: [(name: String, data: Data)], to path: String) throws {
        let archive = try Archive(url: URL(fileURLWithPath: path), accessMode: .create)
        for (name, data) in entries {
            try archive.addEntry(with: name, type: .file, uncompressedSize: Int64(data.count)) { position, size in
                data.subdata(in: Int(position)..<(Int(position) + size))
            }
        }
    }

    /// The entries of the zip at `path`, in the archive's order.
    static func entries(ofZip path: String) throws -> [(name: String, data: Data)] {
        let archive = try Archive(url: URL(fileURLWithPath: path), accessMode: .read)
        return try archive.map { entry in
            var data = Data()
            _ = try archive.extract(entry) { data.append($0) }
            return (entry.path, data)
        }
    }
}
