import DemucsEngine

/// The `[separation]` section: how the model is run over each song (demucs's `apply_model`
/// arguments), with the same meaning and defaults as the CLI's flags.
public struct SeparationConfig: Sendable, Equatable {
    /// Random time shifts averaged per song (0 = one deterministic pass); each one costs a full pass.
    public var shifts: Int
    /// Overlap between consecutive segments, as a fraction of the segment (0 ≤ overlap < 1).
    public var overlap: Double
    /// Segment length in seconds; nil uses the model's own (the `0` of the file).
    public var segment: Double?
    /// Keep only this stem and its complement (`vocals` → `vocals` + `no_vocals`); nil keeps all.
    /// Checked against the model's stems only once the model is loaded.
    public var twoStems: String?
    /// The matrix multiplies' arithmetic: `float32` (as PyTorch) or `bf16` (faster, needs AVX512_BF16).
    public var precision: EnginePrecision

    public init(shifts: Int = 1, overlap: Double = 0.25, segment: Double? = nil, twoStems: String? = nil,
                precision: EnginePrecision = .float32) {
        self.precision = precision
        self.shifts = shifts
        self.overlap = overlap
        self.segment = segment
        self.twoStems = twoStems
    }

    /// The engine's options for these settings, using `threads` threads (0 = all cores).
    public func engineOptions(threads: Int) -> SeparationOptions {
        SeparationOptions(shifts: shifts, overlap: overlap, segment: segment.map { Fraction(decimal: $0) },
                          threads: threads, precision: precision)
    }

    init(reading reader: inout ConfigTableReader) throws {
        let defaults = SeparationConfig()
        shifts = try reader.int("shifts", default: defaults.shifts, range: 0...20, what: "number of shifts",
                               note: "0 = one deterministic pass")
        overlap = try reader.double("overlap", default: defaults.overlap, range: 0..<1, rangeText: "0 to below 1",
                                    what: "segment overlap")
        let segment = try reader.double("segment", default: 0, range: 0..<86_400, rangeText: "0 = the model's, or seconds > 0",
                                        what: "segment length")
        self.segment = segment == 0 ? nil : segment
        let twoStems = try reader.string("two_stems", default: "")
        if !twoStems.isEmpty, !twoStems.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) {
            throw reader.error("two_stems", "is not a stem name (\"\" for all stems, or one stem such as \"vocals\")")
        }
        self.twoStems = twoStems.isEmpty ? nil : twoStems
        let precisionName = try reader.string("precision", default: defaults.precision.rawValue)
        guard let precision = EnginePrecision(rawValue: precisionName) else {
            throw reader.error("precision", "must be \"float32\" or \"bf16\"")
        }
        if let reason = precision.unavailableReason { throw reader.error("precision", "cannot be used here: \(reason)") }
        self.precision = precision
        try reader.rejectUnknownKeys()
    }
}
