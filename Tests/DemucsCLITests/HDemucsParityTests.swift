import Testing

/// Parity with PyTorch demucs for Hybrid Demucs (v3): `demucsctl separate` on the HDemucs
/// fixtures (`Tests/Fixtures/hdemucs`, made by `tools/make_fixtures_hdemucs.py`) must reproduce
/// demucs's own CLI output to at least 60 dB SNR on every stem. The cases: a small HDemucs on
/// its own (frequency layers, the merge, time layers on the merged tensor, BLSTM and local
/// attention in the DConv branches, 1 s chunks), and a bag of that HDemucs and the HTDemucs
/// fixture `tiny4` with a weights matrix and a `segment:` that only the HDemucs takes, and an
/// HDemucs whose two outermost frequency layers are split into bands (`multi_freqs`, MultiWrap).
@Suite struct HDemucsParityTests {
    static var root: String { TestSupport.fixtures + "/hdemucs" }
    static let cases = ParityCase.load(root: root)

    @Test func fixturesArePresent() {
        #expect(Self.cases.map(\.case) == ["hdemucs4_cut_b", "mixbag_cut_b", "hdmulti_cut_b", "segbag_cut_b"])
    }

    @Test(arguments: cases)
    func stemsMatchDemucs(_ c: ParityCase) throws {
        try c.check(root: Self.root)
    }
}
