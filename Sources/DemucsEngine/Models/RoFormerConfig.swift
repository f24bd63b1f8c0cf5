import Foundation
import Yams

/// A RoFormer model's `.yaml`, in the layout the published BS-RoFormer and Mel-Band RoFormer
/// checkpoints come with (ZFTurbo's Music-Source-Separation-Training, which UVR and
/// audio-separator read): `audio` (chunk size, sample rate), `model` (the constructor's
/// arguments), `training` (`instruments`, `target_instrument`), `inference` (`num_overlap`,
/// `batch_size`).
///
/// The file does not name the class: a `model.num_bands` makes it a Mel-Band RoFormer, anything
/// else a BS-RoFormer (with the reference's default band split when `freqs_per_bands` is absent),
/// as audio-separator tells them apart. `model` is read strictly — an unknown key, a value of
/// the wrong type or out of range is refused naming the file and the key — since it shapes the
/// network; keys of the other sections that inference does not use (learning rates,
/// augmentations) are ignored. Defaults are the reference's (audio-separator 0.47.1,
/// docs/ROFORMER.md).
public struct RoFormerConfig: Sendable, Equatable {
    public enum Family: String, Sendable { case bandSplit = "BS-RoFormer", melBand = "Mel-Band RoFormer" }

    public var family: Family
    public var dim: Int
    public var depth: Int
    public var stereo: Bool
    public var numStems: Int
    public var timeTransformerDepth: Int
    public var freqTransformerDepth: Int
    /// Linear-attention transformer layers before the time and frequency ones (BS-RoFormer).
    public var linearTransformerDepth: Int
    /// Bins per band (BS-RoFormer); empty for Mel-Band.
    public var freqsPerBands: [Int]
    /// Mel bands (Mel-Band RoFormer); 0 for BS-RoFormer.
    public var numBands: Int
    public var dimHead: Int
    public var heads: Int
    public var mlpExpansionFactor: Int
    public var maskEstimatorDepth: Int
    public var nFFT: Int
    public var hopLength: Int
    public var sampleRate: Int
    /// Mel-Band's option to pad its output back to the input's length.
    public var matchInputAudioLength: Bool

    /// `audio.chunk_size`: frames per chunk of the chunking driver.
    public var chunkSize: Int
    /// `inference.dim_t`: STFT frames per chunk of the chunking driver (chunks of
    /// `hop · (dim_t − 1)` samples); nil when the file has none (`audio.chunk_size` then gives it).
    public var dimT: Int?
    /// `inference.num_overlap`: overlapping chunks per sample; nil when the file has none (the
    /// driver then takes audio-separator's 8).
    public var numOverlap: Int?
    /// `training.instruments`, and the stems the model gives: all of them, in order, or (one
    /// stem and a `target_instrument`) that one.
    public var instruments: [String]
    public var targetInstrument: String?

    /// The reference's default band split (62 bands over the 1,025 bins of n_fft 2048).
    public static let defaultFreqsPerBands = [Int](repeating: 2, count: 24) + [Int](repeating: 4, count: 12)
        + [Int](repeating: 12, count: 8) + [Int](repeating: 24, count: 8) + [Int](repeating: 48, count: 8) + [128, 129]

    public init(path: String) throws {
        try self.init(yaml: ModelYAML.text(path: path, kind: "model config"), source: path)
    }

    public init(yaml text: String, source: String) throws {
        let root = try ModelYAML.compose(text, kind: "model config", source: source)
        let top = try Section(root, name: nil, source: source, strict: false)
        let audio = try Section(top.node("audio"), name: "audio", source: source, strict: false)
        let model = try Section(top.node("model"), name: "model", source: source, strict: true)
        let training = try Section(top.node("training"), name: "training", source: source, strict: false)
        let inference = try Section(top.node("inference"), name: "inference", source: source, strict: false)

        family = model.has("num_bands") ? .melBand : .bandSplit
        dim = try model.int("dim", nil, 1...4096)
        depth = try model.int("depth", nil, 1...64)
        stereo = try model.bool("stereo", false)
        numStems = try model.int("num_stems", 1, 1...16)
        timeTransformerDepth = try model.int("time_transformer_depth", 2, 0...64)
        freqTransformerDepth = try model.int("freq_transformer_depth", 2, 0...64)
        dimHead = try model.int("dim_head", 64, 1...1024)
        heads = try model.int("heads", 8, 1...256)
        mlpExpansionFactor = try model.int("mlp_expansion_factor", 4, 1...64)
        nFFT = try model.int("stft_n_fft", 2048, 16...65_536)
        hopLength = try model.int("stft_hop_length", 512, 1...nFFT)
        let window = try model.int("stft_win_length", 2048, 1...65_536)
        guard window == nFFT else {
            throw model.error("stft_win_length", "is \(window); only a window as long as stft_n_fft (\(nFFT)) is supported")
        }
        if try model.bool("stft_normalized", false) {
            throw model.error("stft_normalized", "is true; no published RoFormer uses a normalized STFT and it is not supported")
        }
        try model.forbid("stft_window_fn", "a window function other than Hann is not supported")
        let bins = nFFT / 2 + 1
        switch family {
        case .bandSplit:
            linearTransformerDepth = try model.int("linear_transformer_depth", 0, 0...64)
            freqsPerBands = try model.ints("freqs_per_bands", Self.defaultFreqsPerBands, 1...bins)
            guard freqsPerBands.count > 1, freqsPerBands.reduce(0, +) == bins else {
                throw model.error("freqs_per_bands", "has \(freqsPerBands.count) bands of \(freqsPerBands.reduce(0, +)) bins in all; it needs at least 2 bands covering the \(bins) bins of stft_n_fft \(nFFT)")
            }
            numBands = 0
            maskEstimatorDepth = try model.int("mask_estimator_depth", 2, 1...16)
            sampleRate = try audio.int("sample_rate", 44_100, TrainingSegment.sampleRates)
            matchInputAudioLength = false
        case .melBand:
            try model.forbid("linear_transformer_depth", "Mel-Band RoFormer has no linear-attention layers")
            try model.forbid("freqs_per_bands", "Mel-Band RoFormer takes num_bands, not freqs_per_bands")
            linearTransformerDepth = 0
            freqsPerBands = []
            numBands = try model.int("num_bands", 60, 2...1024)
            maskEstimatorDepth = try model.int("mask_estimator_depth", 1, 1...16)
            sampleRate = try model.int("sample_rate", 44_100, TrainingSegment.sampleRates)
            matchInputAudioLength = try model.bool("match_input_audio_length", false)
        }
        _ = try model.int("dim_freqs_in", 1025, 1...32_769)  // taken and ignored by the reference: the bins come from the STFT
        // Accepted and without effect on inference (training only, or stored and unused by the
        // reference's forward).
        for key in ["attn_dropout", "ff_dropout"] { _ = try model.number(key, 0, 0...1) }
        for key in ["flash_attn", "sage_attention", "zero_dc", "use_torch_checkpoint", "skip_connection",
                    "multi_stft_normalized"] { _ = try model.bool(key, false) }
        _ = try model.number("multi_stft_resolution_loss_weight", 1, 0...1e6)
        _ = try model.ints("multi_stft_resolutions_window_sizes", [], 1...1 << 20)
        _ = try model.int("multi_stft_hop_size", 147, 1...1 << 20)
        try model.refuseUnknown()

        chunkSize = try audio.int("chunk_size", 352_800, 1...TrainingSegment.largestFrames)
        dimT = inference.has("dim_t") ? try inference.int("dim_t", nil, 2...(TrainingSegment.largestFrames / hopLength + 1)) : nil
        numOverlap = inference.has("num_overlap") ? try inference.int("num_overlap", nil, 1...64) : nil
        instruments = try training.strings("instruments")
        targetInstrument = try training.optionalString("target_instrument")
        guard !instruments.isEmpty, Set(instruments).count == instruments.count else {
            throw training.error("instruments", "must name each stem once")
        }
        if let targetInstrument {
            guard numStems == 1, instruments.contains(targetInstrument) else {
                throw training.error("target_instrument", "is '\(targetInstrument)'; it must be one of instruments and the model must have one stem (num_stems \(numStems))")
            }
        } else {
            guard numStems == instruments.count else {
                throw training.error("instruments", "names \(instruments.count) stems but model.num_stems is \(numStems) (and no target_instrument)")
            }
        }
    }

    /// Whether the YAML file at `path` is a RoFormer config (a top-level `model` section) rather
    /// than a demucs bag (`models`); false for a file that cannot be read as YAML.
    public static func isRoFormerConfig(path: String) -> Bool {
        guard let text = try? ModelYAML.text(path: path, kind: "model config"),
              let mapping = (try? ModelYAML.compose(text, kind: "model config", source: path))??.mapping else { return false }
        let keys = Set(mapping.keys.compactMap(\.string))
        return keys.contains("model") && !keys.contains("models")
    }

    /// The names of the model's output stems, in order.
    public var stems: [String] { targetInstrument.map { [$0] } ?? instruments }
}

/// One mapping of the config, read key by key; `refuseUnknown` names any key not read.
private final class Section {
    let fields: [String: Node]
    let name: String?
    let source: String
    var read: Set<String> = []

    init(_ node: Node?, name: String?, source: String, strict: Bool) throws {
        self.name = name
        self.source = source
        if let node {
            guard let mapping = node.mapping else {
                throw EngineError(.invalidModelFile, "model config \(source): '\(name ?? "the document")' is not a mapping")
            }
            fields = try ModelYAML.fields(mapping, kind: "model config", source: source, section: name)
        } else if strict || name == nil {
            throw EngineError(.invalidModelFile, "model config \(source) has no '\(name ?? "document")' section")
        } else {
            fields = [:]
        }
    }

    func has(_ key: String) -> Bool { fields[key] != nil }

    func node(_ key: String) -> Node? {
        read.insert(key)
        return fields[key]
    }

    func error(_ key: String, _ message: String) -> EngineError {
        EngineError(.invalidModelFile, "model config \(source): \(name.map { "\($0)." } ?? "")\(key) \(message)")
    }

    private func scalar(_ key: String) -> String? {
        guard let scalar = node(key)?.scalar, scalar.style == .plain || scalar.style == .any else { return nil }
        return scalar.string
    }

    func int(_ key: String, _ fallback: Int?, _ range: ClosedRange<Int>) throws -> Int {
        guard has(key) else {
            read.insert(key)
            if let fallback { return fallback }
            throw error(key, "is missing")
        }
        guard let text = scalar(key), let value = Int(text) else { throw error(key, "must be a whole number") }
        guard range.contains(value) else { throw error(key, "is \(value); it must be from \(range.lowerBound) to \(range.upperBound)") }
        return value
    }

    func number(_ key: String, _ fallback: Double, _ range: ClosedRange<Double>) throws -> Double {
        guard has(key) else { read.insert(key); return fallback }
        guard let value = node(key).flatMap(ModelYAML.decimal) else { throw error(key, "must be a decimal number") }
        guard range.contains(value) else { throw error(key, "is \(value); it must be from \(range.lowerBound) to \(range.upperBound)") }
        return value
    }

    func bool(_ key: String, _ fallback: Bool) throws -> Bool {
        guard has(key) else { read.insert(key); return fallback }
        switch scalar(key)?.lowercased() {
        case "true": return true
        case "false": return false
        default: throw error(key, "must be true or false")
        }
    }

    func ints(_ key: String, _ fallback: [Int], _ range: ClosedRange<Int>) throws -> [Int] {
        guard has(key) else { read.insert(key); return fallback }
        guard let items = node(key)?.sequence, items.count <= 4096 else { throw error(key, "must be a list of at most 4096 whole numbers") }
        return try items.map { item in
            guard let scalar = item.scalar, scalar.style == .plain, let value = Int(scalar.string), range.contains(value) else {
                throw error(key, "holds \(item.scalar?.string ?? "a non-number"); each must be a whole number from \(range.lowerBound) to \(range.upperBound)")
            }
            return value
        }
    }

    func strings(_ key: String) throws -> [String] {
        guard let items = node(key)?.sequence else { throw error(key, "must be a list of stem names") }
        return try items.map { item in
            guard let text = item.scalar?.string, !text.isEmpty, !text.contains("/"), text.utf8.count <= 64 else {
                throw error(key, "holds \(item.scalar?.string.debugDescription ?? "a non-name"); each must be a stem name (no '/', at most 64 bytes)")
            }
            return text
        }
    }

    /// A stem name, or nil when the key is absent or YAML's null (`~`, `null`, empty).
    func optionalString(_ key: String) throws -> String? {
        guard has(key) else { read.insert(key); return nil }
        guard let scalar = node(key)?.scalar else { throw error(key, "must be a stem name") }
        if scalar.style == .plain || scalar.style == .any, ["", "~", "null", "Null", "NULL"].contains(scalar.string) {
            return nil
        }
        guard !scalar.string.isEmpty else { throw error(key, "must be a stem name") }
        return scalar.string
    }

    func forbid(_ key: String, _ why: String) throws {
        if has(key) { throw error(key, "is given; \(why)") }
        read.insert(key)
    }

    func refuseUnknown() throws {
        if let key = fields.keys.filter({ !read.contains($0) }).sorted().first {
            throw error(key, "is not an option of the reference's \(name ?? "config") (a misspelling, or an option this engine does not know)")
        }
    }
}
