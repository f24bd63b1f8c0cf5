import AudioIO
import Foundation
import Testing

/// Parity with PyTorch demucs for Hybrid Demucs (v3): `demucsctl separate` on the HDemucs
/// fixtures (`Tests/Fixtures/hdemucs`, made by `tools/make_fixtures_hdemucs.py`) must reproduce
/// demucs's own CLI output to at least 60 dB SNR on every stem. The cases: a small HDemucs on
/// its own (frequency layers, the merge, time layers on the merged tensor, BLSTM and local
/// attention in the DConv branches, 1 s chunks), and a bag of that HDemucs and the HTDemucs
/// fixture `tiny4` with a weights matrix and a `segment:` that only the HDemucs takes.
@Suite struct HDemucsParityTests {
    struct Case: Decodable, CustomTestStringConvertible {
        var `case`: String
        var model: String
        var input: String
        var flags: [String]
        var stems: [String]
        var frames: Int
        var testDescription: String { self.case }
    }

    static var root: String { TestSupport.fixtures + "/hdemucs" }

    static let cases: [Case] = {
        let url = URL(fileURLWithPath: root + "/expected/cases.json")
        guard let data = try? Data(contentsOf: url) else { return [] }
        return (try? JSONDecoder().decode([Case].self, from: data)) ?? []
    }()

    @Test func fixturesArePresent() {
        #expect(Self.cases.map(\.case) == ["hdemucs4_cut_b", "mixbag_cut_b"])
    }

    @Test(arguments: cases)
    func stemsMatchDemucs(_ c: Case) throws {
        let out = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: out) }
        let input = TestSupport.fixtures + "/" + c.input
        let run = try TestSupport.run(["separate", "--repo", Self.root + "/models", "-n", c.model, "-o", out,
                                       "--shifts", "0", "--float32", "--clip-mode", "none"] + c.flags + [input])
        #expect(run.status == 0, "demucsctl failed: \(run.stderr)")
        let track = ((c.input as NSString).lastPathComponent as NSString).deletingPathExtension
        let written = (try? FileManager.default.contentsOfDirectory(atPath: "\(out)/\(c.model)/\(track)")) ?? []
        #expect(written.sorted() == c.stems.map { "\($0).wav" }.sorted())
        for stem in c.stems {
            let mine = try AudioDecoder.decode(path: "\(out)/\(c.model)/\(track)/\(stem).wav")
            let reference = try AudioDecoder.decode(path: "\(Self.root)/expected/\(c.case)/\(stem).flac")
            #expect(mine.frameCount == reference.frameCount && mine.frameCount == c.frames)
            #expect(mine.channelCount == reference.channelCount)
            let value = TestSupport.snr(reference: reference, estimate: mine)
            print("\(c.case)/\(stem): \(value) dB")
            #expect(value >= 60, "\(c.case)/\(stem): \(value) dB")
        }
    }
}
