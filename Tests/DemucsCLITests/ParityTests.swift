import Testing

/// Parity with PyTorch demucs: `demucsctl separate` on the committed HTDemucs fixture models and
/// inputs (`Tests/Fixtures`, made by `tools/make_fixtures.py`: a 4-stem model, a 6-stem model, a
/// bag with a weights matrix, a 48 kHz mono input) must reproduce demucs's own CLI output to at
/// least 60 dB SNR on every stem.
@Suite struct ParityTests {
    static var root: String { TestSupport.fixtures }
    static let cases = ParityCase.load(root: root)

    @Test func fixturesArePresent() {
        #expect(Self.cases.count >= 4)
    }

    @Test(arguments: cases)
    func stemsMatchDemucs(_ c: ParityCase) throws {
        try c.check(root: Self.root)
    }
}
