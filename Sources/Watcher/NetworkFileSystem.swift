import CSystemShims

/// Whether a folder is on a network filesystem, from the magic number `statfs(2)` reports.
///
/// It matters twice: inotify sees only the changes made through this host's kernel, so a
/// folder that other hosts write into (NFS, SMB) must be watched by polling; and SQLite's WAL
/// needs shared memory between the processes of one host, which a network filesystem does not
/// give, so the job database must not live there.
public enum NetworkFileSystem {
    /// `f_type` values of network and cluster filesystems (linux/magic.h and the filesystems' own headers).
    public static let magics: [UInt32: String] = [
        0x6969: "NFS",
        0x517B: "SMB",
        0xFF53_4D42: "CIFS",
        0xFE53_4D42: "SMB2",
        0x00C3_6400: "Ceph",
        0x5346_414F: "AFS",
        0x7375_7245: "Coda",
        0x0102_1997: "9P",
        0x0BD0_0BD0: "Lustre",
        0x0116_1970: "GFS2",
        0x7461_636F: "OCFS2",
    ]

    /// The network filesystem's name for a `statfs` magic number, or nil for a local one.
    public static func name(magic: Int) -> String? {
        magics[UInt32(truncatingIfNeeded: magic)]
    }

    /// The network filesystem `path` is on, nil when it is local or cannot be examined.
    public static func name(of path: String) -> String? {
        var magic = 0
        guard demucsd_filesystem_magic(path, &magic) == 0 else { return nil }
        return name(magic: magic)
    }
}
