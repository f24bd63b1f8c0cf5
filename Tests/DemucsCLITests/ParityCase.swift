import AudioIO
import Foundation
import Testing

/// One parity case of a fixture folder's `expected/cases.json` (written by the
/// `tools/make_fixtures*.py` generators): a model of `<root>/models`, an input, demucs's extra
/// CLI flags and the stems demucs wrote into `<root>/expected/<case>/`.
struct ParityCase: Decodable, CustomTestStringConvertible, Sendable {
    var `case`: String
    var model: String
    var input: String
    var flags: [String]
    var stems: [String]
    var frames: Int
    var testDescription: String { self.case }

    /// The cases of a fixture folder (empty when the file is missing: `fixturesArePresent` fails).
    static func load(root: String) -> [ParityCase] {
        let url = URL(fileURLWithPath: root + "/expected/cases.json")
        guard let data = try? Data(contentsOf: url) else { return [] }
        return (try? JSONDecoder().decode([ParityCase].self, from: data)) ?? []
    }

    /// Runs `demucsctl separate --shifts 0 --float32 --clip-mode none` as demucs was run, and
    /// requires every stored stem to match demucs's to at least 60 dB SNR, at the same length.
    /// `repo` is the model folder (default `<root>/models`); `extraFlags` go to demucsctl only
    /// (`--precision bf16`, checked against `minimumSNR`).
    func check(root: String, repo: String? = nil, extraFlags: [String] = [], minimumSNR: Double = 60) throws {
        let out = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: out) }
        let inputPath = TestSupport.fixtures + "/" + input
        let run = try TestSupport.run(["separate", "--repo", repo ?? root + "/models", "-n", model, "-o", out,
                                       "--shifts", "0", "--float32", "--clip-mode", "none"] + flags + extraFlags + [inputPath])
        #expect(run.status == 0, "demucsctl failed: \(run.stderr)")
        let track = ((input as NSString).lastPathComponent as NSString).deletingPathExtension
        for stem in stems {
            let mine = try AudioDecoder.decode(path: "\(out)/\(model)/\(track)/\(stem).wav")
            let reference = try AudioDecoder.decode(path: "\(root)/expected/\(self.case)/\(stem).flac")
            #expect(mine.frameCount == reference.frameCount)
            #expect(mine.frameCount == frames)
            #expect(mine.channelCount == reference.channelCount)
            let value = TestSupport.snr(reference: reference, estimate: mine)
            #expect(value >= minimumSNR, "\(self.case)/\(stem): \(value) dB")
        }
    }
}
