import AudioIO
import DemucsEngine
import Foundation
import Testing
@testable import SeparationPipeline

/// The whole streaming pipeline (decode to a spool, separate in track order, spool the
/// outputs, encode) writes the very files the in-memory path writes: decode with `load`,
/// `separateStems`, `AudioEncoder.write` of each output. Byte for byte, for the default 16-bit
/// WAV with rescale, 24-bit FLAC and MP3, every stem and both two-stem methods.
@Suite struct TrackSeparationTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").path

    static func folder() throws -> String {
        let path = NSTemporaryDirectory() + "pipeline-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// 3.5 s of two loud tones at 48 kHz (so the decode resamples and rescale divides).
    static func input(in folder: String) throws -> String {
        let rate = 48_000, frames = 168_000
        let left = (0..<frames).map { Float(0.9 * sin(Double($0) * 0.05) + 0.3 * sin(Double($0) * 0.0031)) }
        let right = (0..<frames).map { Float(0.8 * sin(Double($0) * 0.021 + 1)) }
        let path = folder + "/in.flac"
        try AudioEncoder.write(AudioBuffer(sampleRate: rate, channels: [left, right]), to: path,
                               options: EncodeOptions(bitsPerSample: 24))
        return path
    }

    static let formats: [(ext: String, options: EncodeOptions)] = [
        ("wav", EncodeOptions()), ("flac", EncodeOptions(format: .flac, bitsPerSample: 24)),
        ("mp3", EncodeOptions(format: .mp3, clip: .clamp)),
    ]

    @Test(arguments: [(nil, false), ("vocals", false), ("drums", true)] as [(String?, Bool)])
    func writesTheFilesOfTheInMemoryPath(_ twoStems: String?, _ minus: Bool) throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = try Self.input(in: dir)
        let bag = try ModelRepository(root: Self.fixtures + "/models").load("tiny4")
        let separator = Separator(bag: bag, options: SeparationOptions(shifts: 1, seed: 4))
        let recipes = StemRecipe.outputs(sources: bag.sources, twoStems: twoStems, minus: minus)

        let staging = dir + "/staging"
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        var seen: Int?
        let (files, frames) = try TrackSeparation(separator: separator, outputs: recipes, formats: Self.formats)
            .run(input: input, staging: staging, decoded: { seen = $0 })
        #expect(seen == frames && frames == 154_350)
        #expect(files == recipes.flatMap { r in Self.formats.map { "\(r.name).\($0.ext)" } })
        #expect(try FileManager.default.contentsOfDirectory(atPath: staging).sorted() == files.sorted(), "spools left behind")

        // The in-memory path.
        let audio = try AudioDecoder.load(path: input, sampleRate: bag.samplerate, channels: 2)
        let stems = try separator.separateStems(Tensor(shape: [2, audio.frameCount], data: audio.channels.flatMap { $0 }))
        let block = StemBlock(start: 0, count: stems.length, channels: 2, rows: stems.rows)
        let reference = dir + "/reference"
        try FileManager.default.createDirectory(atPath: reference, withIntermediateDirectories: true)
        for recipe in recipes {
            let rows = TrackSeparation.rows(of: recipe, block, sources: bag.sources.count, original: audio.channels)
            for (ext, options) in Self.formats {
                try AudioEncoder.write(AudioBuffer(sampleRate: bag.samplerate, channels: rows),
                                       to: reference + "/\(recipe.name).\(ext)", options: options)
            }
        }
        for file in files {
            let a = try Data(contentsOf: URL(fileURLWithPath: staging + "/" + file))
            let b = try Data(contentsOf: URL(fileURLWithPath: reference + "/" + file))
            #expect(a == b, "\(file) differs from the in-memory path's")
        }
    }

    @Test func anUndecodableInputIsADecodingFailure() throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data("not audio at all".utf8).write(to: URL(fileURLWithPath: dir + "/x.wav"))
        let bag = try ModelRepository(root: Self.fixtures + "/models").load("tiny4")
        let job = TrackSeparation(separator: Separator(bag: bag), outputs: StemRecipe.outputs(sources: bag.sources, twoStems: nil),
                                  formats: Self.formats, ffmpeg: nil)
        #expect(throws: TrackSeparation.DecodingFailure.self) { try job.run(input: dir + "/x.wav", staging: dir) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["x.wav"])
    }

    /// Progress comes from every stage — so it is also a heartbeat while a long track decodes
    /// or its MP3s are encoded — in stage order, never going back, and reaches 1 only at the end.
    @Test func reportsProgressThroughEveryStage() throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = try Self.input(in: dir)
        let bag = try ModelRepository(root: Self.fixtures + "/models").load("tiny4")
        let reports = Reports()
        _ = try TrackSeparation(separator: Separator(bag: bag), outputs: StemRecipe.outputs(sources: bag.sources, twoStems: nil),
                                formats: Self.formats)
            .run(input: input, staging: dir, progress: { reports.add($0) })
        let all = reports.all
        let stages = all.map(\.stage)
        #expect(stages.first == .decoding)
        #expect(stages.filter { $0 == .decoding }.count >= 2, "one report before the decode and one per block")
        #expect(stages.contains(.separating))
        // 4 stems × 3 formats × at least one chunk each.
        #expect(stages.filter { $0 == .encoding }.count >= 12)
        #expect(stages == stages.sorted { $0.order < $1.order }, "\(stages)")
        #expect(zip(all, all.dropFirst()).allSatisfy { $0.fraction <= $1.fraction })
        #expect(all.last?.fraction == 1)
        #expect(all.dropLast().allSatisfy { $0.fraction < 1 })
        let lastSeparating = all.last { $0.stage == .separating }?.fraction ?? 0
        #expect(lastSeparating > 0 && lastSeparating < 1)
    }

    /// A request to stop is heard in the decode and encode loops too, not only between segments.
    @Test(arguments: [TrackProgress.Stage.decoding, .encoding])
    func stopsWhenCancelledWhileItsStageRuns(_ stage: TrackProgress.Stage) throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = try Self.input(in: dir)
        let bag = try ModelRepository(root: Self.fixtures + "/models").load("tiny4")
        let reports = Reports()
        let job = TrackSeparation(separator: Separator(bag: bag), outputs: StemRecipe.outputs(sources: bag.sources, twoStems: nil),
                                  formats: Self.formats)
        #expect(throws: EngineError.self) {
            try job.run(input: input, staging: dir, progress: { reports.add($0) },
                        isCancelled: { reports.all.last?.stage == stage })
        }
        let stages = Set(reports.all.map(\.stage))
        if stage == .decoding { #expect(!stages.contains(.separating)) }
        #expect(reports.all.last?.fraction ?? 1 < 1)
    }
}

/// Progress reports collected from any thread.
final class Reports: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [TrackProgress] = []
    func add(_ p: TrackProgress) { lock.withLock { list.append(p) } }
    var all: [TrackProgress] { lock.withLock { list } }
}

extension TrackProgress.Stage {
    var order: Int {
        switch self {
        case .decoding: 0
        case .separating: 1
        case .encoding: 2
        }
    }
}
