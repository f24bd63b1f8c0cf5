import Foundation
import Fuzzing
import Testing

/// Every input a fuzz run found (Tests/Fixtures/fuzz/TARGET/), and the hostile fixtures, through
/// their fuzz target in process: each must end in a value or a thrown error, never a crash.
@Suite struct FuzzRegressionTests {
    static let fixtures = E2EPaths.repoRoot + "/Tests/Fixtures"

    static func files(_ folder: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted().map { folder + "/" + $0 }
    }

    /// The inputs of a target: its findings, and the fixtures of its format.
    static func inputs(_ target: FuzzTarget) -> [String] {
        var found = files(fixtures + "/fuzz/" + target.rawValue)
        switch target {
        case .pickle, .torchzip, .checkpoint:
            found += files(fixtures + "/import/th") + files(fixtures + "/import/hostile")
        case .safetensors:
            found += files(fixtures + "/import/hostile").filter { $0.hasSuffix(".safetensors") }
        default: break
        }
        return found
    }

    @Test(arguments: FuzzTarget.allCases)
    func findingsAndHostileFilesEndInAValueOrAnError(target: FuzzTarget) throws {
        let scratch = NSTemporaryDirectory() + "demucsd-fuzz-regression-\(target.rawValue)-\(UUID().uuidString)"
        defer { unlink(scratch) }
        let inputs = Self.inputs(target)
        for input in inputs {
            target.run(try Data(contentsOf: URL(fileURLWithPath: input)), scratch: scratch)
        }
        // Also what fuzzers try first: nothing, one byte, and a run of one byte value.
        for data in [Data(), Data([0]), Data(repeating: 0xFF, count: 4096)] { target.run(data, scratch: scratch) }
    }
}
