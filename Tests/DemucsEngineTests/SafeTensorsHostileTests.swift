import DemucsEngine
import Foundation
import Testing

/// Forged safetensors files: each is refused with an error naming the file (and the tensor),
/// never a crash — a header length or size past Int, a shape whose product overflows, offsets
/// past the end or reversed, numbers that are not integers, negative dimensions.
@Suite struct SafeTensorsHostileTests {
    /// A file of `header` (JSON text) and `data` bytes, with a length field that says `length`
    /// (default: the header's true length).
    static func file(header: String, data: Int = 16, length: UInt64? = nil) throws -> String {
        let path = NSTemporaryDirectory() + "demucsd-st-\(UUID().uuidString).safetensors"
        var bytes = Data()
        var field = (length ?? UInt64(header.utf8.count)).littleEndian
        bytes.append(Data(bytes: &field, count: 8))
        bytes.append(Data(header.utf8))
        bytes.append(Data(count: data))
        try bytes.write(to: URL(fileURLWithPath: path))
        return path
    }

    static func refused(_ path: String, saying text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        defer { unlink(path) }
        let error = #expect(throws: EngineError.self, sourceLocation: sourceLocation) {
            let file = try SafeTensorsFile(path: path)
            for name in file.names { _ = try file.tensor(name) }
        }
        #expect(error.map { "\($0)".contains(text) && "\($0)".contains(path) } == true,
                "\(String(describing: error))", sourceLocation: sourceLocation)
    }

    @Test func aHeaderLengthPastIntIsRefused() throws {
        Self.refused(try Self.file(header: "{}", length: UInt64.max), saying: "header length")
        Self.refused(try Self.file(header: "{}", length: 1 << 62), saying: "header length")
    }

    @Test func aShapeWhoseSizeOverflowsIsRefused() throws {
        let huge = #"{"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,16]}}"#
        Self.refused(try Self.file(header: huge), saying: "tensor w")
        let wide = #"{"w":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]}}"#
        Self.refused(try Self.file(header: wide), saying: "tensor w")
    }

    @Test func offsetsPastTheEndOrReversedAreRefused() throws {
        let past = #"{"w":{"dtype":"U8","shape":[16],"data_offsets":[9223372036854775800,9223372036854775807]}}"#
        Self.refused(try Self.file(header: past), saying: "tensor w")
        let reversed = #"{"w":{"dtype":"U8","shape":[4],"data_offsets":[8,4]}}"#
        Self.refused(try Self.file(header: reversed), saying: "tensor w")
        let beyond = #"{"w":{"dtype":"U8","shape":[64],"data_offsets":[0,64]}}"#
        Self.refused(try Self.file(header: beyond), saying: "tensor w")
    }

    @Test func numbersThatAreNotSizesAreRefused() throws {
        for shape in ["[1e30]", "[2.5]", "[-4, -4]", "[-1, 0]", "[\"4\"]"] {
            let header = #"{"w":{"dtype":"U8","shape":"# + shape + #","data_offsets":[0,16]}}"#
            Self.refused(try Self.file(header: header), saying: "tensor w")
        }
        let offsets = #"{"w":{"dtype":"U8","shape":[16],"data_offsets":[0,1e300]}}"#
        Self.refused(try Self.file(header: offsets), saying: "tensor w")
    }
}
