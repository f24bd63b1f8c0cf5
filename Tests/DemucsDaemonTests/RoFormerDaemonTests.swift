import AudioIO
import Foundation
import JobStore
import Testing

extension DaemonEndToEnd {
    /// The daemon with a RoFormer as its model (`-n mel_1stem` from the RoFormer fixtures'
    /// folder, NAME.yaml + NAME.ckpt): a dropped file gets the model's stems — the target and
    /// the residual a single-target model gives — as WAV and MP3, and `status` names the model.
    @Suite struct RoFormerModel {
        @Test func aDroppedFileGetsTheRoFormersStems() throws {
            let daemon = try DaemonHarness(repo: E2EPaths.repoRoot + "/Tests/Fixtures/roformer")
            daemon.modelName = "mel_1stem"
            defer { daemon.stop() }
            try daemon.startAndWaitReady()
            let input = E2EPaths.fixtureAudio + "/cut_a.flac"
            try shell("/bin/cp", [input, daemon.input + "/song.flac"])
            let jobs = try daemon.waitUntilDone(["song.flac"])
            #expect(jobs.count == 1 && jobs.first?.state == .done, "\(jobs) \(daemon.log)")

            let folder = daemon.output + "/song"
            #expect(daemon.entries(folder) == ["other.mp3", "other.wav", "vocals.mp3", "vocals.wav"])
            let mix = try AudioDecoder.decode(path: input)
            let vocals = try AudioDecoder.decode(path: folder + "/vocals.wav")
            let other = try AudioDecoder.decode(path: folder + "/other.wav")
            #expect(vocals.frameCount == mix.frameCount && other.frameCount == mix.frameCount)
            // The residual is the mix minus the target: the two 16-bit stems add up to the mix.
            var worst: Float = 0
            for c in 0..<2 {
                for i in 0..<mix.frameCount {
                    worst = max(worst, abs(vocals.channels[c][i] + other.channels[c][i] - mix.channels[c][i]))
                }
            }
            #expect(worst <= 2.0 / 32768, "largest difference \(worst)")
            #expect(vocals.channels[0].contains { abs($0) > 1e-3 }, "the vocals are not silent")

            let (status, _) = try daemon.statusJSON()
            let model = (status["daemon"] as? [String: Any])?["model"] as? String
            #expect(model == "mel_1stem", "\(status)")
            #expect(daemon.log.contains("Mel-Band RoFormer"), "the journal says what the model is: \(daemon.log)")
            #expect(daemon.stop() == 0)
        }
    }
}
