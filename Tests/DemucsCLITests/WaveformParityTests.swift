import Testing

/// Parity with PyTorch demucs for the waveform Demucs (`demucs.demucs.Demucs`): `demucsctl
/// separate` on the fixture models in `Tests/Fixtures/demucs/models` must reproduce demucs's own
/// CLI output (made by `tools/make_fixtures_demucs.py`) to at least 60 dB SNR on every stem.
@Suite struct WaveformParityTests {
    static var root: String { TestSupport.fixtures + "/demucs" }
    static let cases = ParityCase.load(root: root)

    @Test func fixturesArePresent() {
        #expect(Self.cases.count >= 2)
    }

    @Test(arguments: cases)
    func stemsMatchDemucs(_ c: ParityCase) throws {
        try c.check(root: Self.root)
    }
}
