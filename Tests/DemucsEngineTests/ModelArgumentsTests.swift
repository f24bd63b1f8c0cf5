import Foundation
import Testing
@testable import DemucsEngine

/// One reader of a checkpoint's `kwargs` per model family: the parameter layout (the order a
/// diffq state is restored in, and what an imported checkpoint is checked against) and the model
/// are built from the same configuration, so they agree on every file; and the reader follows
/// Python's meaning of the values.
@Suite struct ModelArgumentsTests {
    /// Zero tensors of exactly the layout's names and shapes.
    static func weights(for layout: [ParameterLayout.Parameter]) -> Weights {
        var tensors: [String: Tensor] = [:]
        for p in layout { tensors[p.name] = Tensor(zeros: p.shape) }
        return Weights(tensors: tensors, source: "layout")
    }

    static func buildFromLayout(_ klass: String, _ kwargs: String) throws {
        let layout = try ParameterLayout.parameters(klass: klass, kwargsJSON: kwargs, source: "test")
        var arguments = try ModelArguments(json: kwargs, source: "test")
        // Throws when the model needs a tensor the layout lacks, or leaves one unused.
        _ = try ModelLoader.build(klass: klass, kwargs: &arguments, weights: weights(for: layout), path: "test")
    }

    static let four = #""sources": ["drums", "bass", "other", "vocals"]"#
    static let smallHT = four + #", "channels": 4, "depth": 2, "t_layers": 1, "t_heads": 2, "nfft": 256"#
    static let smallHD = four + #", "channels": 4, "depth": 3, "nfft": 256"#
    static let smallWave = four + #", "channels": 4, "depth": 2"#

    /// Values the two former readers took differently: `None` for a float option (the layout
    /// said "no embedding", the model's configuration took the default), Python ints and bools
    /// for one another, a float for an int.
    @Test(arguments: [
        ("demucs.htdemucs.HTDemucs", "{\(smallHT), \"freq_emb\": null}"),
        ("demucs.hdemucs.HDemucs", "{\(smallHD), \"freq_emb\": null}"),
        ("demucs.htdemucs.HTDemucs", "{\(smallHT), \"rewrite\": 0, \"t_layer_scale\": 0, \"cac\": 1}"),
        ("demucs.hdemucs.HDemucs", "{\(smallHD), \"hybrid\": 0, \"dconv_mode\": true, \"depth\": 3.0}"),
        ("demucs.demucs.Demucs", "{\(smallWave), \"glu\": 0, \"rewrite\": null, \"lstm_layers\": 1}"),
        ("demucs.model.Demucs", "{\(smallWave), \"glu\": null, \"lstm_layers\": 1}"),
        ("demucs.tasnet.ConvTasNet", "{\(four), \"N\": 8, \"B\": 4, \"H\": 8, \"X\": 2, \"R\": 1, \"causal\": 0}"),
    ])
    func theModelTakesExactlyTheLayoutOfItsArguments(_ klass: String, _ kwargs: String) throws {
        try Self.buildFromLayout(klass, kwargs)
    }

    /// Every configuration of the PyTorch layout fixture that the engine runs builds from its
    /// own layout; the others are refused by name.
    @Test func everyLayoutFixtureTheEngineRunsBuildsFromItsLayout() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: FixturePaths.root + "/import/layouts.json"))
        let rows = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        var built = 0, refused = 0
        for row in rows {
            let klass = try #require(row["klass"] as? String), kwargs = try #require(row["kwargs"] as? String)
            do {
                try Self.buildFromLayout(klass, kwargs)
                built += 1
            } catch let error as EngineError where error.kind == .unsupportedModel {
                refused += 1
            }
        }
        #expect(built >= 11 && refused >= 4, "built \(built), refused \(refused)")
    }

    // MARK: The reader's rules

    @Test func valuesReadWithPythonMeaning() throws {
        var a = try ModelArguments(json: #"""
            {"i": 3.0, "b": true, "f": {"_type": "fraction", "numerator": 39, "denominator": 5},
             "n": null, "s": "", "l": [], "t": [1], "z": 0}
            """#, source: "test")
        #expect(try a.int("i", 0) == 3)
        #expect(try a.int("b", 0) == 1)
        #expect(try a.double("f", 0) == 7.8)
        #expect(try a.fraction("f", Fraction(1, 1)) == Fraction(39, 5))
        #expect(try a.bool("n", true) == false, "None is falsy")
        #expect(try a.bool("s", true) == false)
        #expect(try a.bool("l", true) == false)
        #expect(try a.bool("t", false) == true)
        #expect(try a.bool("z", true) == false)
        #expect(try a.bool("absent", true) == true)
        #expect(try a.int("n", 7) == 7, "None for a number takes the default")
        #expect(try a.optionalInt("n") == nil)
        #expect(try a.doubles("n") == [])
        try a.rejectUnknown(model: "Test")
    }

    @Test(arguments: [
        #"{"x": 1.5}"#, #"{"x": "4"}"#, #"{"x": [4]}"#, #"{"x": 1e300}"#, #"{"x": 9007199254740993}"#,
    ])
    func anIntegerThatIsNotOneIsRefused(_ json: String) throws {
        var a = try ModelArguments(json: json, source: "test")
        #expect(throws: EngineError.self) { _ = try a.int("x", 0) }
    }

    /// `int(segment * samplerate)` multiplies the fraction's parts by sample counts: parts that
    /// could overflow it are refused.
    @Test(arguments: [
        #"{"x": {"_type": "fraction", "numerator": 9223372036854775807, "denominator": 1}}"#,
        #"{"x": {"_type": "fraction", "numerator": 1, "denominator": 0}}"#,
        #"{"x": {"_type": "fraction", "numerator": 1, "denominator": 4294967296}}"#,
        #"{"x": 1e12}"#,
    ])
    func aFractionThatCouldOverflowIsRefused(_ json: String) throws {
        var a = try ModelArguments(json: json, source: "test")
        #expect(throws: EngineError.self) { _ = try a.fraction("x", Fraction(1, 1)) }
    }

    @Test func anUnknownKeyIsRefusedByName() throws {
        var a = try ModelArguments(json: "{\(Self.smallWave), \"wobble\": 1}", source: "f.safetensors")
        let error = try #require(throws: EngineError.self) { _ = try WaveformDemucsConfig(&a) }
        #expect(error.kind == .unsupportedModel && error.message.contains("wobble"))
    }
}
