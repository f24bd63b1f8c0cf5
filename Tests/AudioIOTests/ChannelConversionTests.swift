import Testing
import AudioIO

/// demucs `convert_audio_channels` rules.
@Suite struct ChannelConversionTests {
    let stereo = AudioBuffer(sampleRate: 44100, channels: [[1, 0.5, -1, 0.25], [0, 0.5, 1, -0.75]])

    @Test func sameCountIsUnchanged() throws {
        #expect(try stereo.convertingChannels(to: 2) == stereo)
    }

    @Test func downmixToMonoIsTheMean() throws {
        let mono = try stereo.convertingChannels(to: 1)
        #expect(mono.channels == [[0.5, 0.5, 0, -0.25]])
        #expect(mono.sampleRate == 44100)

        let six = AudioBuffer(sampleRate: 48000, channels: (0..<6).map { c in [Float(c), Float(-c), 1] })
        #expect(try six.convertingChannels(to: 1).channels == [[2.5, -2.5, 1]])
    }

    @Test func monoIsDuplicated() throws {
        let mono = AudioBuffer(sampleRate: 22050, channels: [[0.1, -0.2, 0.3]])
        #expect(try mono.convertingChannels(to: 2).channels == [[0.1, -0.2, 0.3], [0.1, -0.2, 0.3]])
        #expect(try mono.convertingChannels(to: 4).channelCount == 4)
    }

    @Test func extraChannelsAreDropped() throws {
        let six = AudioBuffer(sampleRate: 48000, channels: (0..<6).map { c in [Float(c), Float(c) + 0.5] })
        #expect(try six.convertingChannels(to: 2).channels == [[0, 0.5], [1, 1.5]])
    }

    @Test func upmixFromStereoThrows() throws {
        let error = try #require(throws: AudioIOError.self) { try stereo.convertingChannels(to: 3) }
        #expect(error.kind == .unsupportedChannelConversion)
        #expect(error.description.contains("2 channels"))
        #expect(throws: AudioIOError.self) { try stereo.convertingChannels(to: 0) }
    }

    @Test func interleavingRoundTrips() {
        let interleaved = stereo.interleaved()
        #expect(interleaved == [1, 0, 0.5, 0.5, -1, 1, 0.25, -0.75])
        #expect(AudioBuffer(interleaved: interleaved, channelCount: 2, sampleRate: 44100) == stereo)
        #expect(stereo.frameCount == 4 && stereo.channelCount == 2)
    }
}
