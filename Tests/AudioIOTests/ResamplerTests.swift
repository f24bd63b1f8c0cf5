import Foundation
import Testing
@testable import AudioIO

/// julius 0.2.8 `resample_frac` port: lengths, signal behaviour, and equality with the reference.
@Suite struct ResamplerTests {
    @Test func lengthIsFlooredRatio() throws {
        let r = try Resampler(from: 48000, to: 44100)
        #expect(r.resample([Float](repeating: 0.1, count: 48000)).count == 44100)
        #expect(r.resample([Float](repeating: 0.1, count: 1000)).count == 918)  // floor(147 * 1000 / 160)
        #expect(r.resample([Float](repeating: 0.1, count: 1)).count == 0)
        #expect(r.resample([]).isEmpty)
        let up = try Resampler(from: 44100, to: 48000)
        #expect(up.resample([Float](repeating: 0, count: 1000)).count == 1088)
    }

    @Test func constantStaysConstant() throws {
        // Kernels are normalised to sum 1 and the padding replicates edges: a DC signal is exact.
        let y = try Resampler(from: 16000, to: 44100).resample([Float](repeating: 0.25, count: 3000))
        #expect(y.allSatisfy { abs($0 - 0.25) < 1e-6 })
    }

    @Test func sineKeepsFrequencyAndAmplitude() throws {
        let x = TestSupport.sine(frequency: 1000, rate: 48000, frames: 48000, amplitude: 1)
        let y = try Resampler(from: 48000, to: 44100).resample(x)
        #expect(y.count == 44100)
        // Output sample m is the signal at time m / 44100: compare with the ideal 1 kHz sine there.
        let ideal = TestSupport.sine(frequency: 1000, rate: 44100, frames: 44100, amplitude: 1)
        var error: Float = 0
        var peak: Float = 0
        for m in 1000..<43100 {
            error = max(error, abs(y[m] - ideal[m]))
            peak = max(peak, abs(y[m]))
        }
        #expect(error < 1e-3)
        #expect(abs(peak - 1) < 1e-3)
    }

    @Test func identityRatesReturnInputUnchanged() throws {
        let x = TestSupport.sine(frequency: 440, rate: 44100, frames: 1000)
        #expect(try Resampler(from: 44100, to: 44100).resample(x) == x)
        #expect(try Resampler(from: 44100, to: 44100).isIdentity)
        let buffer = TestSupport.stereoTones(frames: 500)
        #expect(try buffer.resampled(to: 44100) == buffer)
    }

    @Test func bufferResamplingUpdatesRateAndChannels() throws {
        let buffer = TestSupport.stereoTones(rate: 22050, frames: 2205)
        let out = try buffer.resampled(to: 44100)
        #expect(out.sampleRate == 44100 && out.channelCount == 2 && out.frameCount == 4410)
        #expect(throws: AudioIOError.self) { try Resampler(from: 48000, to: 44100).resample(buffer) }
    }

    @Test func rejectsInvalidRates() {
        #expect(throws: AudioIOError.self) { try Resampler(from: 0, to: 44100) }
        #expect(throws: AudioIOError.self) { try Resampler(from: 44100, to: -1) }
        // Coprime rates would need a 48001 x ~94000 kernel table: refused with a clear error.
        #expect(throws: AudioIOError.self) { try Resampler(from: 44100, to: 48001) }
    }

    /// Compares with julius itself. Fixtures were made by `Fixtures/make_resample_fixtures.py`
    /// (julius 0.2.8, torch CPU, float32); the port matches to about 1 float32 ulp (~6e-7).
    static let referenceCases: [(Int, Int)] = [(48000, 44100), (44100, 48000), (44100, 22050), (16000, 44100)]

    @Test(arguments: referenceCases)
    func matchesJuliusReference(old: Int, new: Int) throws {
        let input = try TestSupport.readFloat32(TestSupport.fixture("resample_input.f32"))
        let expected = try TestSupport.readFloat32(TestSupport.fixture("resample_\(old)_\(new).f32"))
        #expect(input.count == 300)
        let y = try Resampler(from: old, to: new).resample(input)
        #expect(y.count == expected.count)
        #expect(TestSupport.maxAbsDifference(y, expected) < 1e-5)
    }
}
