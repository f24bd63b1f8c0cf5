import Foundation

/// The pretrained models of demucs 2.0.3 (`demucs/pretrained.py`): not on the hub, but single
/// `.th` files at `https://dl.fbaipublicfiles.com/demucs/v3.0/<name>-<sig>.th`, where `<sig>`
/// is the start of the file's sha256 (torch.hub checks it, and so does the download here).
///
/// A fetched file is converted (see `CheckpointImport.V2Checkpoint`) into `<name>.safetensors`
/// with a one-model `<name>.yaml`, so `-n demucs` loads it like any other cached model.
public enum V2Models {
    /// Name → signature, as `PRETRAINED_MODELS` lists them.
    public static let signatures: [String: String] = [
        "demucs": "e07c671f",
        "demucs48_hq": "28a1282c",
        "demucs_extra": "3646af93",
        "demucs_quantized": "07afea75",
        "tasnet": "beb46fac",
        "tasnet_extra": "df3777b2",
        "demucs_unittest": "09ebc15f",
    ]

    /// Where v2 kept them.
    public static let defaultBaseURL = URL(string: "https://dl.fbaipublicfiles.com/demucs/v3.0/")!

    /// Overrides the address (a mirror, or a test server).
    public static let baseURLVariable = "DEMUCSD_V2_URL"

    /// The signature of `model` if it is one of v2's (default namespace only) in `table`.
    public static func signature(of model: HubModelName, in table: [String: String] = signatures) -> String? {
        model.isDefaultNamespace ? table[model.model] : nil
    }

    /// The file name v2 published, `<name>-<sig>.th`.
    public static func fileName(_ name: String, signature: String) -> String { "\(name)-\(signature).th" }

    /// `$DEMUCSD_V2_URL` if set to a usable URL, else the address v2 used.
    public static func baseURL(environment: [String: String]) -> URL {
        if let text = environment[baseURLVariable], !text.isEmpty, let url = URL(string: text), url.scheme != nil, url.host != nil {
            return url
        }
        return defaultBaseURL
    }

    /// The download address of `file` under `base`.
    public static func url(of file: String, base: URL) -> URL {
        URL(string: HubClient.trimmingSlashes(base.absoluteString) + "/" + file)!
    }
}
