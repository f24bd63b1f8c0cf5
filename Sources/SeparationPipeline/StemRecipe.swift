/// One output of a separation and how it is made from the stems, as demucs's `separate.py`
/// makes them: a model source, the sum of every other source (`no_STEM` of `--two-stems`,
/// `--other-method add`), or the mix minus a source (`minus_STEM`, `--other-method minus`).
public struct StemRecipe: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case source(Int)
        case sumOfOthers(Int)
        case mixMinus(Int)
    }

    /// The output's name (`vocals`, `no_vocals`, `minus_vocals`).
    public let name: String
    public let kind: Kind

    public init(name: String, kind: Kind) {
        self.name = name
        self.kind = kind
    }

    /// Every source of the model under its own name, or with `twoStems` the stem and the rest.
    public static func outputs(sources: [String], twoStems: String?, minus: Bool = false) -> [StemRecipe] {
        guard let twoStems, let k = sources.firstIndex(of: twoStems) else {
            return sources.enumerated().map { StemRecipe(name: $0.element, kind: .source($0.offset)) }
        }
        return minus
            ? [StemRecipe(name: "minus_" + twoStems, kind: .mixMinus(k)), StemRecipe(name: twoStems, kind: .source(k))]
            : [StemRecipe(name: twoStems, kind: .source(k)), StemRecipe(name: "no_" + twoStems, kind: .sumOfOthers(k))]
    }
}
