import AudioIO
import Testing

/// Parity with PyTorch demucs on inputs only ffmpeg decodes (`Tests/Fixtures/ffmpeg`, made by
/// `tools/make_fixtures_ffmpeg.py`): AAC in .m4a, 48 kHz Opus in .webm (resampled by ffmpeg to
/// the model's rate), the AAC track of an .mp4 video, the first of two streams of an .mkv.
/// demucs decoded them through ffmpeg itself; `demucsctl separate` must match its stems to at
/// least 60 dB.
@Suite(.enabled(if: FFmpegDecoder.onPath() != nil, "ffmpeg is not installed (tools/install-deps.sh installs it)"))
struct FFmpegParityTests {
    static var root: String { TestSupport.fixtures + "/ffmpeg" }
    static let cases = ParityCase.load(root: root)

    @Test func fixturesArePresent() {
        #expect(Self.cases.count == 4)
    }

    @Test(arguments: cases)
    func stemsMatchDemucs(_ c: ParityCase) throws {
        try c.check(root: Self.root, repo: TestSupport.fixtures + "/models")
    }
}
