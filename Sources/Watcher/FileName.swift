/// A folder entry name as the kernel gives it: raw bytes, no NUL, no `/`.
///
/// Linux names are arbitrary bytes, and Swift `String` equality is Unicode-canonical, so the
/// watcher keys its bookkeeping by bytes. Otherwise two files whose names differ only in
/// normalisation (NFC vs NFD) would share one settle timer, and a non-UTF-8 name would be
/// mangled by lossy decoding into a name that does not exist on disk.
struct FileName: Hashable, Sendable {
    var bytes: [UInt8]

    init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    init(_ string: String) {
        self.bytes = Array(string.utf8)
    }

    /// The name as a `String` when it is valid UTF-8, i.e. when it round-trips exactly.
    var string: String? {
        String(validating: bytes, as: UTF8.self)
    }

    /// A rendering for messages: invalid sequences become U+FFFD.
    var displayString: String {
        String(decoding: bytes, as: UTF8.self)
    }

    /// Whether the daemon may consider this name at all (see `FolderWatcher.isCandidate`).
    /// Judged on the lossy rendering: the rules only look at ASCII, which decoding preserves.
    var isCandidate: Bool {
        FolderWatcher.isCandidate(displayString)
    }

    /// Orders names bytewise: stable and independent of locale and Unicode normalisation.
    static func precedes(_ a: FileName, _ b: FileName) -> Bool {
        a.bytes.lexicographicallyPrecedes(b.bytes)
    }
}
