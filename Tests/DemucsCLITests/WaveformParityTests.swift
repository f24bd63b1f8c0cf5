import AudioIO
import Foundation
import Testing

/// Parity with PyTorch demucs for the waveform Demucs (`demucs.demucs.Demucs`): `demucsctl
/// separate` on the fixture models in `Tests/Fixtures/demucs/models` must reproduce demucs's own
/// CLI output (made by `tools/make_fixtures_demucs.py`) to at least 60 dB SNR on every stem.
@Suite struct WaveformParityTests {
    struct Case: Decodable, CustomTestStringConvertible {
        var `case`: String
        var model: String
        var input: String
        var flags: [String]
        var stems: [String]
        var frames: Int
        var testDescription: String { self.case }
    }

    static var root: String { TestSupport.fixtures + "/demucs" }

    static let cases: [Case] = {
        let url = URL(fileURLWithPath: root + "/expected/cases.json")
        guard let data = try? Data(contentsOf: url) else { return [] }
        return (try? JSONDecoder().decode([Case].self, from: data)) ?? []
    }()

    @Test func fixturesArePresent() {
        #expect(Self.cases.count >= 2)
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
        for stem in c.stems {
            let mine = try AudioDecoder.decode(path: "\(out)/\(c.model)/\(track)/\(stem).wav")
            let reference = try AudioDecoder.decode(path: "\(Self.root)/expected/\(c.case)/\(stem).flac")
            #expect(mine.frameCount == reference.frameCount)
            #expect(mine.frameCount == c.frames)
            #expect(mine.channelCount == reference.channelCount)
            let value = TestSupport.snr(reference: reference, estimate: mine)
            print("\(c.case)/\(stem): \(value) dB")
            #expect(value >= 60, "\(c.case)/\(stem): \(value) dB")
        }
    }
}
