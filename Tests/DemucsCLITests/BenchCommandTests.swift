import Testing

/// `demucsctl bench` reports time per audio second, the CPU share of each layer kind and memory.
@Suite struct BenchCommandTests {
    @Test func reportsLayerKindsAndMemory() throws {
        let run = try TestSupport.run(["bench", "--repo", TestSupport.models, "-n", "tiny4",
                                       TestSupport.fixtures + "/audio/cut_a.flac"])
        #expect(run.status == 0, "\(run.stderr)")
        for expected in ["per audio second", "peak RSS", "CPU time by layer kind", "convolution",
                         "transposedConvolution", "attention", "normalization", "stft", "I/O",
                         "s CPU, not in the separation's"] {
            #expect(run.stdout.contains(expected), "missing \(expected) in:\n\(run.stdout)")
        }
    }

    /// The streaming path (as separate and the daemon run it) by default; the in-memory one
    /// on request, for the speed comparison in docs/PERFORMANCE.md.
    @Test(arguments: [([String](), "path: streaming"), (["--in-memory"], "path: in memory")])
    func runsTheChosenPath(_ flags: [String], _ expected: String) throws {
        let run = try TestSupport.run(["bench", "--repo", TestSupport.models, "-n", "tiny4", "--seconds", "1"] + flags
                                      + [TestSupport.fixtures + "/audio/cut_a.flac"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains(expected), "\(run.stdout)")
        #expect(run.stdout.contains("audio: 1.0 s"), "\(run.stdout)")
    }

    @Test func missingModelIsExitTwo() throws {
        let run = try TestSupport.run(["bench", "--repo", TestSupport.models, "-n", "nosuch",
                                       TestSupport.fixtures + "/audio/cut_a.flac"])
        #expect(run.status == 2)
    }
}
