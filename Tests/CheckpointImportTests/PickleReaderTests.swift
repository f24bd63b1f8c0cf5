@testable import CheckpointImport
import DemucsEngine
import Foundation
import Testing

/// The pickle reader on plain data (protocols 2 and 4) and on `torch.save` files.
@Suite struct PickleReaderTests {
    /// `pickle.dumps(obj, protocol)` of
    /// `{'a': x, 'b': (x, x), 'c': OrderedDict(k='v', n=2), 'big': -2**40, 'pos': 2**63-1, 's': {1, 2},
    ///   'f': Fraction(39, 5), 'u': 'café', 'bytes': b'\x00\xff', 'i2': 40000, 'i4': -70000}`
    /// with `x = [1, -2, 3.5, None, True]` (the same list three times, through the memo).
    static let protocol4 = "800495d8000000000000007d94288c0161945d94284b014afeffffff47400c0000000000004e88658c0162946802680286948c0163948c0b636f6c6c656374696f6e73948c0b4f72646572656444696374949394295294288c016b948c0176948c016e944b02758c03626967948a060000000000ff8c03706f73948a08ffffffffffffff7f8c0173948f94284b014b02908c0166948c096672616374696f6e73948c084672616374696f6e9493944b274b05869452948c0175948c05636166c3a9948c05627974657394430200ff948c026932944d409c8c026934944a90eefeff752e"
    static let protocol2 = "80027d71002858010000006171015d7102284b014afeffffff47400c0000000000004e8865580100000062710368026802867104580100000063710563636f6c6c656374696f6e730a4f726465726564446963740a7106295271072858010000006b7108580100000076710958010000006e710a4b02755803000000626967710b8a060000000000ff5803000000706f73710c8a08ffffffffffffff7f580100000073710d635f5f6275696c74696e5f5f0a7365740a710e5d710f284b014b02658571105271115801000000667112636672616374696f6e730a4672616374696f6e0a71134b274b0586711452711558010000007571165805000000636166c3a97117580500000062797465737118635f636f646563730a656e636f64650a7119580300000000c3bf711a58060000006c6174696e31711b86711c52711d58020000006932711e4d409c58020000006934711f4a90eefeff752e"

    static func bytes(_ hex: String) -> Data {
        var out = Data()
        var it = hex.makeIterator()
        while let a = it.next(), let b = it.next() { out.append(UInt8(String([a, b]), radix: 16)!) }
        return out
    }

    static func load(_ data: Data) throws -> PickleValue {
        try PickleReader.load(data: data, source: "test.pkl") { key, _, _ in
            throw CheckpointError("no storage \(key)")
        }
    }

    @Test(arguments: [protocol2, protocol4])
    func plainData(_ hex: String) throws {
        let v = try Self.load(Self.bytes(hex))
        guard case .list(let a)? = v["a"] else { Issue.record("a is not a list"); return }
        #expect(a.items.count == 5)
        if case .int(let i) = a.items[1] { #expect(i == -2) } else { Issue.record("a[1]") }
        if case .double(let d) = a.items[2] { #expect(d == 3.5) } else { Issue.record("a[2]") }
        if case .none = a.items[3] {} else { Issue.record("a[3]") }
        if case .bool(true) = a.items[4] {} else { Issue.record("a[4]") }
        // The memoised list is the same object everywhere, filled after it was memoised.
        guard case .tuple(let b)? = v["b"], b.count == 2, case .list(let b0) = b[0] else { Issue.record("b"); return }
        #expect(b0 === a && b0.items.count == 5)
        guard case .dict(let c)? = v["c"] else { Issue.record("c"); return }
        #expect(c.pairs.count == 2)
        if case .int(let big)? = v["big"] { #expect(big == -(1 << 40)) } else { Issue.record("big") }
        if case .int(let pos)? = v["pos"] { #expect(pos == Int.max) } else { Issue.record("pos") }
        if case .set(let s)? = v["s"] { #expect(s.items.count == 2) } else { Issue.record("s") }
        if case .fraction(39, 5)? = v["f"] {} else { Issue.record("f") }
        if case .string(let u)? = v["u"] { #expect(u == "café") } else { Issue.record("u") }
        if case .bytes(let d)? = v["bytes"] { #expect(d == Data([0, 255])) } else { Issue.record("bytes") }
        if case .int(40000)? = v["i2"] {} else { Issue.record("i2") }
        if case .int(-70000)? = v["i4"] {} else { Issue.record("i4") }
    }

    /// A list that contains itself is refused as it is built (`PickleCycleTests`), so nothing
    /// downstream (the JSON encoder of the metadata, the converters) ever walks one.
    @Test func aListThatContainsItselfIsNotFollowedForever() throws {
        // EMPTY_LIST, BINPUT 0, BINGET 0, APPEND, STOP: l = []; l.append(l)
        #expect(throws: CheckpointError.self) {
            try Self.load(Data([0x80, 0x02, 0x5D, 0x71, 0x00, 0x68, 0x00, 0x61, 0x2E]))
        }
    }

    @Test func truncatedPickleIsAnError() throws {
        let data = Self.bytes(Self.protocol4).prefix(100)
        #expect(throws: CheckpointError.self) { try Self.load(Data(data)) }
    }

    @Test func unknownGlobalsAreRefusedByName() throws {
        // cposix\nsystem\n(X\x02\x00\x00\x00idtR.
        let evil = Data([0x80, 0x02]) + Data("cposix\nsystem\n".utf8) + Data([0x58, 2, 0, 0, 0]) + Data("id".utf8) + Data([0x85, 0x52, 0x2E])
        do {
            _ = try Self.load(evil)
            Issue.record("loaded")
        } catch let error as CheckpointError {
            #expect(error.message.contains("refusing to load: the pickle asks for global posix.system"), "\(error)")
        }
        // An allow-listed class may be referred to, never called.
        let construct = Data([0x80, 0x02]) + Data("cdiffq.diffq\nDiffQuantizer\n".utf8) + Data([0x29, 0x52, 0x2E])
        #expect { try Self.load(construct) } throws: { ($0 as? CheckpointError)?.message.contains("must not construct") == true }
        // INST / OBJ / NEWOBJ_EX and the extension registry are refused outright.
        for op: UInt8 in [0x69, 0x6F, 0x82, 0x92] {
            #expect(throws: CheckpointError.self) { try Self.load(Data([0x80, 0x02, 0x28, op, 0x2E])) }
        }
    }

    @Test func tensorViewsAreGathered() throws {
        let v = try TorchZip.load(path: Fixtures.importDir + "/views.th")
        func tensor(_ name: String) throws -> RawTensor {
            guard case .tensor(let t)? = v[name] else { throw CheckpointError("\(name) is not a tensor") }
            return t
        }
        let transposed = try tensor("transposed")
        #expect(transposed.shape == [4, 3])
        // arange(12).reshape(3, 4).t()
        #expect(transposed.floats() == [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11])
        #expect(try tensor("offset").floats() == [5, 6, 7, 8])
        let strided = try tensor("strided")
        #expect(strided.shape == [3, 3])
        #expect(strided.floats() == [6, 8, 10, 12, 14, 16, 18, 20, 22])
        let half = try tensor("half_t")
        #expect(half.dtype == .f16 && half.shape == [3, 2] && half.floats() == [0, 3, 1, 4, 2, 5])
        let long = try tensor("long")
        #expect(long.dtype == .i64 && long.integers() == [-3, -2, -1, 0, 1, 2])
        let scalar = try tensor("scalar")
        #expect(scalar.shape == [] && scalar.floats() == [2.5])
        #expect(try tensor("empty").shape == [0, 3])
        guard case .dict(let sd)? = v["state_dict"] else { Issue.record("state_dict"); return }
        #expect(sd.pairs.count == 2)
        if case .tensor(let w)? = v["state_dict"]?["weight"] { #expect(w.shape == [2, 3]) } else { Issue.record("weight") }
    }
}

@Suite struct PythonCompatibilityTests {
    @Test func floatsAreWrittenAsPythonReprDoes() {
        let cases: [(Double, String)] = [
            (0.1, "0.1"), (1e-05, "1e-05"), (1e16, "1e+16"), (1e15, "1000000000000000.0"),
            (123456789012345678.0, "1.2345678901234568e+17"), (Double.leastNonzeroMagnitude, "5e-324"), (0.0001, "0.0001"),
            (0.00012345, "0.00012345"), (2.5, "2.5"), (100.0, "100.0"), (1.7976931348623157e308, "1.7976931348623157e+308"),
            (-3.25e-7, "-3.25e-07"), (12345.678, "12345.678"), (1e22, "1e+22"), (3.0, "3.0"),
            (1.0 / 3.0, "0.3333333333333333"), (0, "0.0"), (.nan, "NaN"), (-.infinity, "-Infinity"),
        ]
        for (value, text) in cases { #expect(PythonJSON.float(value) == text) }
        #expect(PythonJSON.string("a\"b\\c\né♫") == "\"a\\\"b\\\\c\\n\\u00e9\\u266b\"")
    }

    @Test func fileSHA256() throws {
        let path = NSTemporaryDirectory() + "sha-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        // 1,000,000 'a's: the FIPS 180-2 test vector, longer than one read chunk would be if small.
        try Data(repeating: 0x61, count: 1_000_000).write(to: URL(fileURLWithPath: path))
        #expect(try FileSHA256.hex(ofFile: path) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}

/// A pickle that puts a container into itself (through the memo) builds a reference cycle,
/// which leaked (the pickle fuzz target's finding) and which no checkpoint has: refused. The
/// same list shared by several containers (a DAG, as `plainData` has) is still read.
@Suite struct PickleCycleTests {
    @Test(arguments: [
        "80025d71006800612e",                  // L = []; L.append(L)
        "80027d71005801000000 6b6800732e",     // D = {}; D['k'] = D
        "80025d7100680085612e",                // L = []; L.append((L,))
        "80025d71005d71016801 6800 61 61 2e",  // L = []; M = []; M.append(L)... L.append(M) via memo
    ])
    func aContainerPutIntoItselfIsRefused(hex: String) {
        let data = PickleReaderTests.bytes(hex.replacingOccurrences(of: " ", with: ""))
        let error = #expect(throws: CheckpointError.self) { try PickleReaderTests.load(data) }
        #expect(error.map { "\($0)".contains("into itself") } == true, "\(String(describing: error))")
    }
}
