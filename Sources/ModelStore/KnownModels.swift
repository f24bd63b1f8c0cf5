/// The signatures of demucs's published pretrained models.
///
/// A model's yaml lists its signatures, so normally nothing here is needed. It exists for the one
/// case where the yaml itself could not be downloaded: the error message can then still tell the
/// user every file to fetch by hand, instead of "the yaml and whatever it lists".
public enum KnownModels {
    /// Model name → signatures, in the order the published yaml lists them.
    public static let signatures: [String: [String]] = [
        "htdemucs": ["955717e8"],
        "htdemucs_ft": ["f7e0c4bc", "d12395a8", "92cfc3b6", "04573f0d"],
        "htdemucs_6s": ["5c90dfd2"],
        "hdemucs_mmi": ["75fc33f5"],
        "mdx": ["0d19c1c6", "7ecf8ec1", "c511e2ab", "7d865c68"],
        "mdx_extra": ["e51eebcc", "a1d90b5c", "5d2d6c55", "cfa93e08"],
        "mdx_q": ["6b9c2ca1", "b72baf4e", "42e558d4", "305bc58f"],
        "mdx_extra_q": ["83fc094f", "464b36d7", "14fc6a69", "7fd6ef75"],
    ]

    /// The signatures of `model` if it is one of the published models under the default namespace.
    public static func signatures(of model: HubModelName) -> [String]? {
        guard model.isDefaultNamespace else { return nil }
        return signatures[model.model]
    }
}
