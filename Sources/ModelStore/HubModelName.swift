/// A model name as the user types it (`htdemucs`, `mdx_extra_q`, `someuser/mymodel`), resolved to
/// where demucs 4.1 finds it on the Hugging Face hub.
///
/// demucs 4.1 keeps each pretrained model in its own hub repository under the `adefossez`
/// namespace and names the repository with `hf_repo_name`; this type reproduces that mapping so the
/// same names download the same files:
/// - `htdemucs` → `HTDemucs`
/// - `htdemucs_<x>` → `HTDemucs-<x>` (`htdemucs_ft` → `HTDemucs-ft`, `htdemucs_6s` → `HTDemucs-6s`)
/// - anything else → `Demucs-<name>` (`mdx_extra_q` → `Demucs-mdx_extra_q`)
///
/// `someuser/NAME` uses the namespace `someuser` and the same repository mapping for `NAME`.
public struct HubModelName: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// The namespace used when the name has none.
    public static let defaultNamespace = "adefossez"

    /// The hub namespace (user or organisation), `adefossez` unless the name said otherwise.
    public let namespace: String
    /// The model's own name, without namespace: the files are `<model>.yaml` and its signatures.
    public let model: String

    /// Parses `NAME` or `NAMESPACE/NAME`.
    ///
    /// Both parts are restricted to letters, digits, `.`, `_` and `-`, and may not start with `.`,
    /// because they become file names in the cache and path segments in the download URL; anything
    /// else could escape the cache folder or produce a URL that means something different.
    public init(_ name: String) throws {
        let parts = name.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        switch parts.count {
        case 1:
            namespace = Self.defaultNamespace
            model = parts[0]
        case 2:
            namespace = parts[0]
            model = parts[1]
        default:
            throw ModelStoreError(.invalidName, "model name '\(name)' is not valid: use NAME or NAMESPACE/NAME (for example htdemucs or adefossez/htdemucs)")
        }
        guard Self.isSafeComponent(namespace), Self.isSafeComponent(model) else {
            throw ModelStoreError(.invalidName, "model name '\(name)' is not valid: names may only use letters, digits, '.', '_' and '-', and may not start with '.'")
        }
    }

    /// The hub repository name, as demucs 4.1's `hf_repo_name` computes it.
    public var repository: String {
        if model == "htdemucs" { return "HTDemucs" }
        if model.hasPrefix("htdemucs_") { return "HTDemucs-" + model.dropFirst("htdemucs_".count) }
        return "Demucs-" + model
    }

    /// Whether the model lives under the default namespace (it is then cached in the cache root).
    public var isDefaultNamespace: Bool { namespace == Self.defaultNamespace }

    /// The bag file that lists the model's signatures.
    public var yamlFile: String { model + ".yaml" }

    /// `namespace/model`, the fully qualified form.
    public var description: String { namespace + "/" + model }

    /// Whether `component` may be used as a file name and URL path segment as is.
    static func isSafeComponent(_ component: String) -> Bool {
        guard let first = component.unicodeScalars.first, first != "." else { return false }
        return component.unicodeScalars.allSatisfy { scalar in
            switch scalar {
            case "a"..."z", "A"..."Z", "0"..."9", ".", "_", "-": return true
            default: return false
            }
        }
    }
}
