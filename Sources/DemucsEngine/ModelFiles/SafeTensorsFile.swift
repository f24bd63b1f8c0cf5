import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A `.safetensors` file, mapped read-only into memory.
///
/// The format is an 8-byte little-endian header length, a JSON header (tensor name → dtype, shape,
/// byte range; plus a `__metadata__` map of strings) and the raw little-endian tensor data.
/// Mapping the file means the weights are read once, straight from the page cache, instead of
/// being read into a buffer and then copied again into tensors.
public final class SafeTensorsFile {
    /// One tensor's entry in the header.
    public struct Entry: Sendable {
        public var dtype: String
        public var shape: [Int]
        public var begin: Int
        public var end: Int
    }

    public let path: String
    /// The `__metadata__` strings (demucs stores `klass`, `args`, `kwargs` here).
    public let metadata: [String: String]
    public let entries: [String: Entry]
    private let base: UnsafeRawPointer
    private let size: Int
    private let dataStart: Int

    /// Maps and validates the file: the header must parse, and every tensor's byte range must lie
    /// inside the file and match its dtype and shape.
    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw EngineError(.modelNotFound, "cannot open model file \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            throw EngineError(.invalidModelFile, "model file \(path) is not a regular file")
        }
        let size = Int(st.st_size)
        guard size >= 8 else {
            throw EngineError(.invalidModelFile, "model file \(path) is truncated (\(size) bytes)")
        }
        guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), mapped != MAP_FAILED else {
            throw EngineError(.invalidModelFile, "cannot map model file \(path): \(String(cString: strerror(errno)))")
        }
        let base = UnsafeRawPointer(mapped)
        do {
            let lengthField = UInt64(littleEndian: base.loadUnaligned(as: UInt64.self))
            guard lengthField > 0, lengthField <= UInt64(size - 8) else {
                throw EngineError(.invalidModelFile, "model file \(path) is truncated or not a safetensors file (header length \(lengthField), file size \(size))")
            }
            let headerLength = Int(lengthField)
            let headerData = Data(bytes: base + 8, count: headerLength)
            guard let header = (try? JSONSerialization.jsonObject(with: headerData)) as? [String: Any] else {
                throw EngineError(.invalidModelFile, "model file \(path) has an unreadable safetensors header")
            }
            let dataStart = 8 + headerLength
            var entries: [String: Entry] = [:]
            var metadata: [String: String] = [:]
            for (name, value) in header {
                if name == "__metadata__" {
                    metadata = (value as? [String: String]) ?? [:]
                    continue
                }
                guard let info = value as? [String: Any],
                      let dtype = info["dtype"] as? String,
                      let shape = Self.sizes(info["shape"]),
                      let offsets = Self.sizes(info["data_offsets"]),
                      offsets.count == 2
                else {
                    throw EngineError(.invalidModelFile, "model file \(path): bad header entry for tensor \(name) (dtype, shape and data_offsets must be a name and lists of whole numbers from 0)")
                }
                guard let width = SafeTensorsFile.byteWidth(dtype) else {
                    throw EngineError(.invalidModelFile, "model file \(path): tensor \(name) has unsupported dtype \(dtype)")
                }
                // The size in bytes, refused where it would not fit an Int (a forged shape).
                var bytes = width
                for dimension in shape {
                    let product = bytes.multipliedReportingOverflow(by: dimension)
                    guard !product.overflow else {
                        throw EngineError(.invalidModelFile, "model file \(path): tensor \(name) has an impossible shape \(shape)")
                    }
                    bytes = product.partialValue
                }
                guard offsets[1] >= offsets[0], offsets[1] - offsets[0] == bytes else {
                    throw EngineError(.invalidModelFile, "model file \(path): tensor \(name) byte range does not match its shape \(shape)")
                }
                guard offsets[1] <= size - dataStart else {
                    throw EngineError(.invalidModelFile, "model file \(path) is truncated: tensor \(name) ends past the end of the file")
                }
                entries[name] = Entry(dtype: dtype, shape: shape, begin: offsets[0], end: offsets[1])
            }
            self.base = base
            self.size = size
            self.dataStart = dataStart
            self.entries = entries
            self.metadata = metadata
        } catch {
            munmap(mapped, size)
            throw error
        }
    }

    deinit {
        munmap(UnsafeMutableRawPointer(mutating: base), size)
    }

    /// A JSON list of whole numbers from 0 (sizes and offsets), or nil for anything else: a
    /// fraction, a negative number, one too large to be a size (`1e30`), a string.
    static func sizes(_ value: Any?) -> [Int]? {
        guard let numbers = value as? [NSNumber] else { return nil }
        var result: [Int] = []
        for number in numbers {
            // Checked on the double first: converting an out-of-range double to an integer traps.
            let double = number.doubleValue
            guard double.isFinite, double >= 0, double == double.rounded(.towardZero), double < 0x1p62 else { return nil }
            // Exact for integers (the double may have rounded one above 2^53).
            let int = number.int64Value
            guard int >= 0 else { return nil }
            result.append(Int(int))
        }
        return result
    }

    static func byteWidth(_ dtype: String) -> Int? {
        switch dtype {
        case "F32", "I32": return 4
        case "F16", "BF16", "I16": return 2
        case "F64", "I64": return 8
        case "U8", "I8", "BOOL": return 1
        default: return nil
        }
    }

    /// The names of all tensors.
    public var names: [String] { Array(entries.keys) }

    /// A tensor converted to float32.
    public func tensor(_ name: String) throws -> Tensor {
        guard let e = entries[name] else {
            throw EngineError(.invalidModelFile, "model file \(path) has no tensor \(name)")
        }
        let count = e.shape.reduce(1, *)
        let raw = base + dataStart + e.begin
        var out = LargeBuffer.zeros(count)
        switch e.dtype {
        case "F32":
            out.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(start: raw, count: count * 4)) }
        case "F64":
            for i in 0..<count { out[i] = Float(raw.loadUnaligned(fromByteOffset: i * 8, as: Double.self)) }
        case "F16":
            for i in 0..<count {
                out[i] = Float(Float16(bitPattern: raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))
            }
        case "BF16":
            for i in 0..<count {
                let bits = UInt32(raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) << 16
                out[i] = Float(bitPattern: bits)
            }
        default:
            throw EngineError(.invalidModelFile, "model file \(path): tensor \(name) has dtype \(e.dtype), not a float type")
        }
        return Tensor(shape: e.shape, data: out)
    }
}
