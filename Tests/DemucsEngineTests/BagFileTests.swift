@testable import DemucsEngine
import Testing

/// The bag YAML reader on what a bag holds and on what only a hostile file holds.
struct BagFileTests {
    @Test func signaturesAreKeptAsWritten() throws {
        // YAML 1.1 reads 0123 as octal 83; a signature is a name, whatever its digits.
        let bag = try BagFile(yaml: "models: [0123, 955717e8, 'f7e0c4bc', 75fc33f5]\n", source: "bag.yaml")
        #expect(bag.models == ["0123", "955717e8", "f7e0c4bc", "75fc33f5"])
    }

    @Test func weightsAndSegmentAreRead() throws {
        let bag = try BagFile(yaml: "models: [a, b]\nweights: [[1, 0.5, 0, 1.], [0, .5, 1e0, 1]]\nsegment: 7.8\n",
                              source: "bag.yaml")
        #expect(bag.weights == [[1, 0.5, 0, 1], [0, 0.5, 1, 1]])
        #expect(bag.segment == Fraction(39, 5))
    }

    @Test(arguments: [
        "weights: [[90:9, 999999995999995995:9]]",  // base 60: Yams's Int conversion overflows (fuzz finding)
        "weights: [[.inf, 1]]",
        "weights: [[.nan, 1]]",
        "weights: [['1', 1]]",
        "weights: [[1e400, 1]]",
        "weights: [[0x10, 1]]",
        "segment: 1:30",
    ])
    func aNumberThatIsNotAPlainFiniteDecimalIsRefused(_ line: String) {
        #expect(throws: EngineError.self) { try BagFile(yaml: "models: [a]\n\(line)\n", source: "bag.yaml") }
    }
}
