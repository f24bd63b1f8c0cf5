@testable import DemucsEngine
import Testing

/// Both families refuse audio they cannot take, in memory and streaming, with the same errors:
/// a channel count other than the model's, and a track of no samples.
struct SeparatorInputTests {
    static func separators() throws -> [(String, any StemSeparator)] {
        let bag = try ModelRepository(root: FixturePaths.models).load("tiny4")
        return [("demucs", Separator(bag: bag, options: SeparationOptions(shifts: 0))),
                ("roformer", try RoFormerDriverTests.separator())]
    }

    static func refusal(_ body: () throws -> Void) -> String? {
        do { try body() } catch let error as EngineError { return error.kind == .invalidArgument ? error.message : "\(error)" } catch {
            return "\(error)"
        }
        return nil
    }

    @Test func monoAudioIsRefusedByAStereoModel() throws {
        for (family, separator) in try Self.separators() {
            let mono = Tensor(zeros: [1, 4_410])
            let expected = "the model takes 2 channels, the audio has 1"
            #expect(Self.refusal { _ = try separator.separateStems(mono, progress: nil, isCancelled: nil) } == expected, "\(family)")
            #expect(Self.refusal {
                try separator.separateStreaming(TensorMixSource(mono), emit: { _ in }, progress: nil, isCancelled: nil)
            } == expected, "\(family), streaming")
        }
    }

    @Test func emptyAudioIsRefused() throws {
        for (family, separator) in try Self.separators() {
            let empty = Tensor(zeros: [2, 0])
            #expect(Self.refusal { _ = try separator.separateStems(empty, progress: nil, isCancelled: nil) } == "the audio is empty", "\(family)")
            #expect(Self.refusal {
                try separator.separateStreaming(TensorMixSource(empty), emit: { _ in }, progress: nil, isCancelled: nil)
            } == "the audio is empty", "\(family), streaming")
        }
    }
}
