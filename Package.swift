// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "demucsd",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "demucsctl", targets: ["demucsctl"]),
        .executable(name: "demucsd", targets: ["demucsd"]),
        .executable(name: "demucsd-decode", targets: ["demucsd-decode"]),
        .library(name: "DemucsEngine", targets: ["DemucsEngine"]),
        .library(name: "AudioIO", targets: ["AudioIO"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.20"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        // Thin C shims: module maps over system libraries, nothing else.
        .systemLibrary(name: "CSndFile", pkgConfig: "sndfile", providers: [.apt(["libsndfile1-dev"])]),
        .systemLibrary(name: "CLame", pkgConfig: "lame", providers: [.apt(["libmp3lame-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),

        // julius's windowed-sinc resampling, shared by input conversion and the waveform model.
        .target(name: "Julius"),
        // Kernels that need CPU instructions Swift cannot emit (AVX512_BF16), chosen at run time.
        .target(name: "CDemucsKernels", cSettings: [.unsafeFlags(["-O3"])]),
        // System calls Swift's Glibc module does not declare (renameat2).
        .target(name: "CSystemShims"),

        .target(
            name: "DemucsEngine",
            dependencies: ["COpenBLAS", "CDemucsKernels", "Julius", .product(name: "Yams", package: "Yams")],
            // Optimised in debug builds too (the tests run real separations), with checked
            // arithmetic, not -Ounchecked: this target parses model files, and the checks cost
            // nothing measurable (docs/PERFORMANCE.md, "Checked arithmetic in the engine").
            swiftSettings: [.unsafeFlags(["-O"])]
        ),
        .target(name: "AudioIO", dependencies: ["CSndFile", "CLame", "Julius"]),
        .target(name: "SeparationPipeline", dependencies: ["DemucsEngine", "AudioIO"]),
        .target(
            name: "ModelStore",
            dependencies: ["DemucsEngine", "CheckpointImport", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .target(
            name: "CheckpointImport",
            dependencies: [
                "DemucsEngine",
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(name: "JobStore", dependencies: [.product(name: "GRDB", package: "GRDB.swift")]),
        // The job queue in PostgreSQL for several hosts: leases, rescue, fenced writes.
        .target(
            name: "PostgresJobStore",
            dependencies: [
                "JobStore", .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "Watcher", dependencies: ["CSystemShims"]),
        .target(
            name: "DemucsDaemon",
            dependencies: [
                "DemucsEngine", "AudioIO", "SeparationPipeline", "ModelStore", "CheckpointImport", "JobStore", "PostgresJobStore", "Watcher", "CSystemShims",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "demucsd",
            dependencies: ["DemucsDaemon", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .target(
            name: "DemucsCLI",
            dependencies: [
                "DemucsEngine", "AudioIO", "SeparationPipeline", "ModelStore", "JobStore", "PostgresJobStore", "CheckpointImport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(name: "demucsctl", dependencies: ["DemucsCLI"]),
        // The parsers of untrusted input as fuzz targets, and their driver (tools/fuzz.sh).
        .target(name: "Fuzzing", dependencies: ["AudioIO", "CheckpointImport", "DemucsDaemon", "DemucsEngine"]),
        .executableTarget(name: "demucsd-fuzz", dependencies: ["Fuzzing"]),
        // The daemon's decoder in a process of its own (AudioIO/IsolatedDecoder.swift).
        .executableTarget(name: "demucsd-decode", dependencies: ["AudioIO", "CSystemShims"]),

        .testTarget(name: "DemucsEngineTests", dependencies: ["DemucsEngine", "CDemucsKernels"]),
        .testTarget(name: "AudioIOTests", dependencies: ["AudioIO"], exclude: ["Fixtures"]),
        .testTarget(name: "SeparationPipelineTests", dependencies: ["SeparationPipeline", "DemucsEngine", "AudioIO"]),
        .testTarget(name: "ModelStoreTests", dependencies: ["ModelStore", "DemucsEngine", "CheckpointImport"]),
        .testTarget(name: "JobStoreTests", dependencies: ["JobStore"]),
        // A real PostgreSQL server for the tests (not a product; test targets only depend on it).
        .target(name: "PostgresTestSupport", dependencies: ["PostgresJobStore"], path: "Tests/PostgresTestSupport"),
        .testTarget(name: "PostgresJobStoreTests", dependencies: ["PostgresJobStore", "JobStore", "PostgresTestSupport"]),
        .testTarget(name: "CheckpointImportTests", dependencies: ["CheckpointImport", "DemucsEngine", "AudioIO"]),
        .testTarget(name: "WatcherTests", dependencies: ["Watcher"]),
        .testTarget(
            name: "DemucsDaemonTests",
            dependencies: [
                "DemucsDaemon", "JobStore", "AudioIO", "CSystemShims", "demucsd", "demucsctl", "demucsd-decode", "Fuzzing", "PostgresTestSupport", "PostgresJobStore",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(
            name: "DemucsCLITests",
            dependencies: ["DemucsCLI", "DemucsEngine", "AudioIO", "demucsctl",
                           .product(name: "ZIPFoundation", package: "ZIPFoundation")]
        ),
    ]
)
