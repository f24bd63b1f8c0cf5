import DemucsEngine
import Foundation

/// Fixture paths and helpers for the checkpoint import tests.
enum Fixtures {
    static let root: String = {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures").path
    }()
    static var importDir: String { root + "/import" }
    static var tiny4Th: String { importDir + "/th/7e1a4c02-19380500.th" }
    static var tiny4Safetensors: String { root + "/models/7e1a4c02.safetensors" }
    static var uqwaveTh: String { importDir + "/th/uqwave.th" }
    static var tinyq: String { importDir + "/hub/9d1f0c7a.safetensors" }
    static func hostile(_ name: String) -> String { importDir + "/hostile/" + name }

    /// A fresh temporary folder, removed by the caller.
    static func temporaryFolder() throws -> String {
        let path = NSTemporaryDirectory() + "checkpoint-import-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func json(_ file: String) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: importDir + "/" + file)))
    }
}

/// FNV-1a 64, as tools/make_fixtures_import.py computes it.
struct FNV64 {
    private(set) var value: UInt64 = 0xCBF2_9CE4_8422_2325
    mutating func add(_ bytes: UnsafeRawBufferPointer) {
        for b in bytes {
            value ^= UInt64(b)
            value = value &* 0x100_0000_01B3
        }
    }
    mutating func add(_ floats: [Float]) { floats.withUnsafeBytes { add($0) } }
    mutating func add(_ data: Data) { data.withUnsafeBytes { add($0) } }
    var hex: String { String(format: "%016llx", value) }

    static func of(_ floats: [Float]) -> String { var h = FNV64(); h.add(floats); return h.hex }
    static func of(_ data: Data) -> String { var h = FNV64(); h.add(data); return h.hex }

    /// The hash of all tensors' float32 bytes in sorted name order.
    static func all(_ tensors: [String: Tensor]) -> String {
        var h = FNV64()
        for name in tensors.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) { h.add(tensors[name]!.data) }
        return h.hex
    }
}

/// 10·log10(Σ reference² / Σ (reference − estimate)²) in double precision, the SNR every parity
/// test of this target checks (infinite when the two are equal).
func snrDB(_ reference: [Float], _ estimate: [Float]) -> Double {
    precondition(reference.count == estimate.count)
    var signal = 0.0, noise = 0.0
    for (r, e) in zip(reference, estimate) {
        signal += Double(r) * Double(r)
        noise += (Double(r) - Double(e)) * (Double(r) - Double(e))
    }
    return noise == 0 ? .infinity : 10 * log10(signal / noise)
}
