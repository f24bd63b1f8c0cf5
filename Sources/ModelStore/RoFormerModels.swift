import Foundation

/// The published RoFormer checkpoints `models fetch NAME` knows: where audio-separator (and UVR)
/// download them from, a `.ckpt` and its MSST `.yaml` config. A fetched model is installed as
/// `NAME.ckpt` + `NAME.yaml` (NAME is the checkpoint's file name without `.ckpt`), which
/// `ModelRepository` reads as a RoFormer. The list is in docs/ROFORMER.md.
public enum RoFormerModels {
    public struct Entry: Sendable, Equatable {
        /// The checkpoint's published file name.
        public var checkpoint: String
        /// The published config's file name.
        public var config: String
        public var description: String

        public init(checkpoint: String, config: String, description: String) {
            self.checkpoint = checkpoint
            self.config = config
            self.description = description
        }
    }

    /// Name → files, from audio-separator 0.47.1's model list (`models.json` and its default model).
    public static let known: [String: Entry] = {
        let list = [
            Entry(checkpoint: "model_bs_roformer_ep_317_sdr_12.9755.ckpt", config: "model_bs_roformer_ep_317_sdr_12.9755.yaml",
                  description: "BS-RoFormer vocals / instrumental by viperx (audio-separator's default)"),
            Entry(checkpoint: "model_bs_roformer_ep_368_sdr_12.9628.ckpt", config: "model_bs_roformer_ep_368_sdr_12.9628.yaml",
                  description: "BS-RoFormer vocals / instrumental by viperx"),
            Entry(checkpoint: "model_mel_band_roformer_ep_3005_sdr_11.4360.ckpt", config: "model_mel_band_roformer_ep_3005_sdr_11.4360.yaml",
                  description: "Mel-Band RoFormer vocals / instrumental by viperx"),
            Entry(checkpoint: "vocals_mel_band_roformer.ckpt", config: "vocals_mel_band_roformer.yaml",
                  description: "Mel-Band RoFormer vocals by Kimberley Jensen"),
            Entry(checkpoint: "mel_band_roformer_kim_ft_unwa.ckpt", config: "config_mel_band_roformer_kim_ft_unwa.yaml",
                  description: "Mel-Band RoFormer vocals, Kim's fine-tuned by unwa"),
            Entry(checkpoint: "mel_band_roformer_karaoke_aufr33_viperx_sdr_10.1956.ckpt",
                  config: "mel_band_roformer_karaoke_aufr33_viperx_sdr_10.1956_config.yaml",
                  description: "Mel-Band RoFormer karaoke (lead vocals) by aufr33 and viperx"),
        ]
        return Dictionary(uniqueKeysWithValues: list.map { (String($0.checkpoint.dropLast(5)), $0) })
    }()

    /// Where the checkpoints are published (audio-separator's `public_model_repo_url_prefix`).
    public static let defaultBaseURL = URL(string: "https://github.com/TRvlvr/model_repo/releases/download/all_public_uvr_models/")!

    /// Overrides the address (a mirror, or a test server).
    public static let baseURLVariable = "DEMUCSD_ROFORMER_URL"

    /// The entry of `model` if it is a known RoFormer (default namespace only) in `table`.
    public static func entry(of model: HubModelName, in table: [String: Entry] = known) -> Entry? {
        model.isDefaultNamespace ? table[model.model] : nil
    }

    /// `$DEMUCSD_ROFORMER_URL` if set to a usable URL, else the published address.
    public static func baseURL(environment: [String: String]) -> URL {
        if let text = environment[baseURLVariable], !text.isEmpty, let url = URL(string: text), url.scheme != nil, url.host != nil {
            return url
        }
        return defaultBaseURL
    }

    /// The checkpoint's address under `base`.
    public static func checkpointURL(_ entry: Entry, base: URL) -> URL {
        URL(string: HubClient.trimmingSlashes(base.absoluteString) + "/" + entry.checkpoint)!
    }

    /// The config's address under `base`, where audio-separator looks for MDXC configs.
    public static func configURL(_ entry: Entry, base: URL) -> URL {
        URL(string: HubClient.trimmingSlashes(base.absoluteString) + "/mdx_model_data/mdx_c_configs/" + entry.config)!
    }
}
