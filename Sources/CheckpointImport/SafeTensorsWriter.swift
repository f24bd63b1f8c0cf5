import DemucsEngine
import Foundation

/// Writes a `.safetensors` file: an 8-byte little-endian header length, the JSON header
/// (`__metadata__` first, then the tensors sorted by name, each with dtype, shape and byte range)
/// padded with spaces to a multiple of 8 bytes, and the tensors' bytes in the same order.
/// The output depends only on the tensors and metadata, so a conversion is reproducible.
public enum SafeTensorsWriter {
    public static func data(tensors: [String: RawTensor], metadata: [String: String]) -> Data {
        let names = tensors.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        var header = "{\"__metadata__\":{"
        header += metadata.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            .map { PythonJSON.string($0) + ":" + PythonJSON.string(metadata[$0]!) }
            .joined(separator: ",")
        header += "}"
        var offset = 0
        for name in names {
            let t = tensors[name]!
            let end = offset + t.data.count
            header += "," + PythonJSON.string(name) + ":{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":["
                + t.shape.map(String.init).joined(separator: ",") + "],\"data_offsets\":[\(offset),\(end)]}"
            offset = end
        }
        header += "}"
        var headerBytes = Data(header.utf8)
        headerBytes.append(contentsOf: [UInt8](repeating: 0x20, count: (8 - headerBytes.count % 8) % 8))
        var out = Data(capacity: 8 + headerBytes.count + offset)
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(headerBytes)
        for name in names { out.append(tensors[name]!.data) }
        return out
    }

    /// Writes the file atomically: to a temporary name in the same folder, then renamed.
    public static func write(tensors: [String: RawTensor], metadata: [String: String], to path: String) throws {
        let bytes = data(tensors: tensors, metadata: metadata)
        let url = URL(fileURLWithPath: path)
        let temp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(getpid()).partial")
        do {
            try bytes.write(to: temp)
            guard rename(temp.path, path) == 0 else {
                throw CheckpointError(String(cString: strerror(errno)))
            }
        } catch {
            try? FileManager.default.removeItem(at: temp)
            throw CheckpointError("cannot write \(path): \(error.localizedDescription)")
        }
    }
}
