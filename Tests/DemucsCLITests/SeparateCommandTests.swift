import AudioIO
import Foundation
import Testing

/// `demucsctl separate` on bad input, bad output folders, broken models and bad usage: each must
/// fail with a clear one-line error naming the culprit, the documented exit code (1 track failed,
/// 2 model failed, 64 usage), and nothing (no stem, no staging leftover) in the output folder.
@Suite struct SeparateCommandTests {
    typealias S = SeparateSupport

    /// Asserts that nothing but `allowed` files exists under `out` and that no staging is left.
    static func expectNoStems(under out: String, allowing allowed: Set<String> = [],
                              sourceLocation: SourceLocation = #_sourceLocation) {
        let files = S.files(under: out).filter { !allowed.contains($0) }
        #expect(files.isEmpty, "unexpected files under the output folder: \(files)", sourceLocation: sourceLocation)
        let left = S.leftovers(under: out)
        #expect(left.isEmpty, "staging leftovers: \(left)", sourceLocation: sourceLocation)
    }

    /// Asserts exactly one `error:` line mentions `culprit`, and that it mentions `reason`.
    static func expectOneErrorLine(_ run: TestSupport.Run, naming culprit: String, saying reason: String,
                                   sourceLocation: SourceLocation = #_sourceLocation) {
        let lines = S.errorLines(run).filter { $0.contains(culprit) }
        #expect(lines.count == 1, "expected one error line naming \(culprit); stderr:\n\(run.stderr)", sourceLocation: sourceLocation)
        if let line = lines.first {
            #expect(line.localizedCaseInsensitiveContains(reason), "error line \"\(line)\" does not say \"\(reason)\"", sourceLocation: sourceLocation)
        }
    }

    // MARK: - Bad tracks (exit 1)

    enum BadTrack: String, CaseIterable, Sendable {
        case corruptWAV, emptyFile, textAsMP3, missingFile, folder

        /// Creates the bad track in `dir`; returns its path and a word the error must contain.
        func make(in dir: String) throws -> (path: String, reason: String) {
            switch self {
            case .corruptWAV:
                let path = dir + "/noise.wav"
                // Seeded noise, so that it never happens to start like some real format.
                var state: UInt64 = 0x5EED
                let bytes = (0..<20_000).map { _ -> UInt8 in
                    state = state &* 6364136223846793005 &+ 1442695040888963407
                    return UInt8(truncatingIfNeeded: state >> 56)
                }
                try Data(bytes).write(to: URL(fileURLWithPath: path))
                return (path, "format")
            case .emptyFile:
                let path = dir + "/empty.wav"
                FileManager.default.createFile(atPath: path, contents: Data())
                return (path, "empty")
            case .textAsMP3:
                let path = dir + "/notes.mp3"
                try Data(String(repeating: "This is a text file, not an MP3.\n", count: 40).utf8).write(to: URL(fileURLWithPath: path))
                return (path, "format")
            case .missingFile:
                return (dir + "/no such song.wav", "does not exist")
            case .folder:
                let path = dir + "/album.wav"
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
                return (path, "folder")
            }
        }
    }

    @Test(arguments: BadTrack.allCases)
    func badTrackFailsWithExit1AndWritesNothing(_ kind: BadTrack) throws {
        let dir = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (track, reason) = try kind.make(in: dir)
        let out = dir + "/out"
        let run = try S.separate(["-o", out, track])
        #expect(run.status == 1, "stderr: \(run.stderr)")
        Self.expectOneErrorLine(run, naming: track, saying: reason)
        Self.expectNoStems(under: out)
    }

    @Test func badTrackDoesNotStopTheGoodOnes() throws {
        let dir = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let good = dir + "/good.wav"
        let input = try S.writeInput(good, frames: 22050)
        let corrupt = dir + "/corrupt.wav"
        try Data((0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 7919) }).write(to: URL(fileURLWithPath: corrupt))
        let missing = dir + "/missing.flac"
        let out = dir + "/out"
        // The bad ones come first: the good one after them must still be separated.
        let run = try S.separate(["-o", out, "--shifts", "0", corrupt, missing, good])
        #expect(run.status == 1, "stderr: \(run.stderr)")
        Self.expectOneErrorLine(run, naming: corrupt, saying: "format")
        Self.expectOneErrorLine(run, naming: missing, saying: "does not exist")
        #expect(run.stderr.contains("2 of 3 track(s) failed"), "stderr: \(run.stderr)")
        #expect(S.files(under: out) == ["tiny4/good/bass.wav", "tiny4/good/drums.wav", "tiny4/good/other.wav", "tiny4/good/vocals.wav"])
        #expect(S.leftovers(under: out).isEmpty)
        for (_, stem) in try S.stems(in: out + "/tiny4/good") {
            #expect(stem.frameCount == input.frameCount)
            #expect(stem.channelCount == 2)
        }
    }

    // MARK: - Unwritable output (exit 1)

    enum BadOutput: String, CaseIterable, Sendable {
        /// `-o` names a regular file.
        case outIsAFile
        /// `-o` names a path under a regular file.
        case outUnderAFile
        /// The output folder is fine, but the track's folder (`OUT/tiny4/<track>`) is a file:
        /// the stems are encoded, then cannot be moved into place.
        case trackFolderIsAFile
    }

    @Test(arguments: BadOutput.allCases)
    func unwritableOutputFailsWithExit1(_ kind: BadOutput) throws {
        let dir = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let track = dir + "/song.wav"
        try S.writeInput(track, frames: 22050)
        let blocker: String, out: String, culprit: String, reason: String
        switch kind {
        case .outIsAFile:
            blocker = dir + "/results"; out = blocker; culprit = out; reason = "not a directory"
        case .outUnderAFile:
            blocker = dir + "/results"; out = blocker + "/run1"; culprit = out; reason = "not a directory"
        case .trackFolderIsAFile:
            out = dir + "/results"; blocker = out + "/tiny4/song"; culprit = blocker; reason = "exists"
            try FileManager.default.createDirectory(atPath: out + "/tiny4", withIntermediateDirectories: true)
        }
        FileManager.default.createFile(atPath: blocker, contents: Data("not a folder\n".utf8))
        let run = try S.separate(["-o", out, "--shifts", "0", track])
        #expect(run.status == 1, "stderr: \(run.stderr)")
        Self.expectOneErrorLine(run, naming: culprit, saying: reason)
        #expect(try String(contentsOfFile: blocker, encoding: .utf8) == "not a folder\n")
        Self.expectNoStems(under: dir, allowing: ["song.wav", String(blocker.dropFirst(dir.count + 1))])
    }

    /// A stem that cannot be moved into place takes the already placed ones with it: a track's
    /// stems appear all together or not at all.
    @Test func failedMoveRemovesTheStemsAlreadyPlaced() throws {
        let dir = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let track = dir + "/song.wav"
        try S.writeInput(track, frames: 22050)
        let out = dir + "/out"
        // Stems go to OUT/tiny4/<stem>/song.wav; "other" (the third of four) is blocked by a file.
        try FileManager.default.createDirectory(atPath: out + "/tiny4", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: out + "/tiny4/other", contents: Data())
        let run = try S.separate(["-o", out, "--shifts", "0", "--filename", "{stem}/{track}.{ext}", track])
        #expect(run.status == 1, "stderr: \(run.stderr)")
        Self.expectOneErrorLine(run, naming: out + "/tiny4/other", saying: "exists")
        Self.expectNoStems(under: out, allowing: ["tiny4/other"])
    }

    // MARK: - Broken models (exit 2)

    enum BadModel: String, CaseIterable, Sendable {
        case missingModel, truncatedSafetensors, wrongTensorShape, unknownClass
    }

    @Test(arguments: BadModel.allCases)
    func brokenModelFailsWithExit2(_ kind: BadModel) throws {
        let dir = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let track = dir + "/song.wav"
        try S.writeInput(track, frames: 22050)
        let repo = dir + "/repo"
        var model = "tiny4"
        let culprit: String, reason: String
        switch kind {
        case .missingModel:
            try FileManager.default.createDirectory(atPath: repo, withIntermediateDirectories: true)
            _ = try S.copyTiny4(to: repo)
            model = "nosuch"; culprit = "nosuch"; reason = "not found"
        case .truncatedSafetensors:
            let weights = try S.copyTiny4(to: repo)
            let handle = try #require(FileHandle(forUpdatingAtPath: weights))
            let size = try handle.seekToEnd()
            try handle.truncate(atOffset: size / 2)
            try handle.close()
            culprit = weights; reason = "truncated"
        case .wrongTensorShape:
            let weights = try S.copyTiny4(to: repo)
            // Transpose one tensor's declared shape: same byte size, so only the shape check can catch it.
            try S.rewriteSafetensorsHeader(weights) { header in
                var entry = try #require(header["freq_emb.embedding.weight"] as? [String: Any])
                let shape = try #require(entry["shape"] as? [Int])
                #expect(shape.count == 2 && shape[0] != shape[1])
                entry["shape"] = Array(shape.reversed())
                header["freq_emb.embedding.weight"] = entry
            }
            culprit = weights; reason = "freq_emb.embedding.weight"
        case .unknownClass:
            let weights = try S.copyTiny4(to: repo)
            try S.rewriteSafetensorsHeader(weights) { header in
                var metadata = try #require(header["__metadata__"] as? [String: String])
                metadata["klass"] = "somepackage.models.UnknownNet"
                header["__metadata__"] = metadata
            }
            culprit = weights; reason = "somepackage.models.UnknownNet"
        }
        let out = dir + "/out"
        let run = try S.separate(["-o", out, track], model: model, repo: repo)
        #expect(run.status == 2, "stderr: \(run.stderr)")
        Self.expectOneErrorLine(run, naming: culprit, saying: reason)
        #expect(!run.stdout.contains("Separating track"))
        Self.expectNoStems(under: out)
    }

    @Test func segmentLongerThanTrainedIsRefused() throws {
        let dir = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let track = dir + "/song.wav"
        try S.writeInput(track, frames: 22050)
        let out = dir + "/out"
        let run = try S.separate(["-o", out, "--segment", "2", track])
        #expect(run.status == 2, "stderr: \(run.stderr)")
        let lines = S.errorLines(run)
        #expect(lines.count == 1 && lines[0].contains("longer segment than it was trained for"), "stderr: \(run.stderr)")
        #expect(lines.first?.contains("Maximum segment is: 1") == true)
        Self.expectNoStems(under: out)
    }

    // MARK: - Usage (exit 64)

    enum Usage: String, CaseIterable, Sendable {
        case noTracks, flacAndMP3, int24AndFloat32, unknownStem, unknownPlaceholder, badPreset,
             negativeShifts, overlapOne, segmentAndNoSplit, unknownFlag, gpuDevice

        var arguments: [String] {
            switch self {
            case .noTracks: []
            case .flacAndMP3: ["--flac", "--mp3"]
            case .int24AndFloat32: ["--int24", "--float32"]
            case .unknownStem: ["--two-stems", "guitar"]
            case .unknownPlaceholder: ["--filename", "{track}/{model}.{ext}"]
            case .badPreset: ["--mp3", "--mp3-preset", "9"]
            case .negativeShifts: ["--shifts=-1"]
            case .overlapOne: ["--overlap", "1"]
            case .segmentAndNoSplit: ["--segment", "1", "--no-split"]
            case .unknownFlag: ["--frobnicate"]
            case .gpuDevice: ["-d", "cuda"]
            }
        }

        /// A word of the message.
        var says: String {
            switch self {
            case .noTracks: "tracks"
            case .flacAndMP3: "--flac"
            case .int24AndFloat32: "--int24"
            case .unknownStem: "guitar"
            case .unknownPlaceholder: "{model}"
            case .badPreset: "--mp3-preset"
            case .negativeShifts: "--shifts"
            case .overlapOne: "--overlap"
            case .segmentAndNoSplit: "--no-split"
            case .unknownFlag: "--frobnicate"
            case .gpuDevice: "cuda"
            }
        }
    }

    @Test(arguments: Usage.allCases)
    func badUsageExits64(_ usage: Usage) throws {
        let dir = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let track = dir + "/song.wav"
        try S.writeInput(track, frames: 4410)
        let out = dir + "/out"
        let run = try S.separate(["-o", out] + usage.arguments + (usage == .noTracks ? [] : [track]))
        #expect(run.status == 64, "stderr: \(run.stderr)")
        let lines = S.errorLines(run)
        #expect(lines.count == 1, "stderr: \(run.stderr)")
        #expect(lines.first?.contains(usage.says) == true, "stderr: \(run.stderr)")
        Self.expectNoStems(under: out)
    }
}
