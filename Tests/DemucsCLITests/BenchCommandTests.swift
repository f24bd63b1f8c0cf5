import Testing

/// `demucsctl bench` reports time per audio second, the CPU share of each layer kind and memory.
@Suite struct BenchCommandTests {
    @Test func reportsLayerKindsAndMemory() throws {
        let run = try TestSupport.run(["bench", "--repo", TestSupport.models, "-n", "tiny4",
                                       TestSupport.fixtures + "/audio/cut_a.flac"])
        #expect(run.status == 0, "\(run.stderr)")
        for expected in ["per audio second", "peak RSS", "CPU time by layer kind", "convolution",
                         "transposedConvolution", "attention", "normalization", "stft", "I/O"] {
            #expect(run.stdout.contains(expected), "missing \(expected) in:\n\(run.stdout)")
        }
    }

    @Test func missingModelIsExitTwo() throws {
        let run = try TestSupport.run(["bench", "--repo", TestSupport.models, "-n", "nosuch",
                                       TestSupport.fixtures + "/audio/cut_a.flac"])
        #expect(run.status == 2)
    }
}
