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

/// `--precision bf16` on a CPU with AVX512_BF16: the same fixtures stay within 30 dB of
/// PyTorch's float32 stems (a wrong kernel gives about 0 dB). The tiny random fixture models
/// lose more to bf16 rounding (32–36 dB) than the full-size architecture, where the 40 dB bound
/// of the mode is measured (51–53 dB, docs/PERFORMANCE.md). Elsewhere the flag is refused,
/// naming why.
@Suite struct BF16PrecisionTests {
    @Test(arguments: ParityTests.cases)
    func stemsStayCloseToFloat32(_ c: ParityCase) throws {
        guard bf16Supported() else {
            let run = try TestSupport.run(["separate", "--precision", "bf16", TestSupport.fixtures + "/" + c.input])
            #expect(run.status == 64)
            #expect(run.stderr.contains("AVX512_BF16"), "\(run.stderr)")
            return
        }
        try c.check(root: ParityTests.root, extraFlags: ["--precision", "bf16"], minimumSNR: 30)
    }

    /// The CPU flag as the kernel reports it (the test does not take the engine's word for it).
    func bf16Supported() -> Bool {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return false }
        let flags = info.split(separator: "\n").first { $0.hasPrefix("flags") } ?? ""
        let set = Set(flags.split(separator: " ").map(String.init))
        return ["avx512f", "avx512bw", "avx512dq", "avx512_bf16"].allSatisfy(set.contains)
    }
}
