// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "demucsd",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "demucsctl", targets: ["demucsctl"]),
        .library(name: "DemucsEngine", targets: ["DemucsEngine"]),
        .library(name: "AudioIO", targets: ["AudioIO"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        // Thin C shims: module maps over system libraries, nothing else.
        .systemLibrary(name: "CSndFile", pkgConfig: "sndfile", providers: [.apt(["libsndfile1-dev"])]),
        .systemLibrary(name: "CLame", pkgConfig: "lame", providers: [.apt(["libmp3lame-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),

        .target(
            name: "DemucsEngine",
            dependencies: ["COpenBLAS", .product(name: "Yams", package: "Yams")],
            swiftSettings: [.unsafeFlags(["-Ounchecked"])]
        ),
        .target(name: "AudioIO", dependencies: ["CSndFile", "CLame"]),
        .target(
            name: "ModelStore",
            dependencies: ["DemucsEngine", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .target(
            name: "DemucsCLI",
            dependencies: [
                "DemucsEngine", "AudioIO", "ModelStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "demucsctl", dependencies: ["DemucsCLI"]),

        .testTarget(name: "DemucsEngineTests", dependencies: ["DemucsEngine"]),
        .testTarget(name: "AudioIOTests", dependencies: ["AudioIO"], exclude: ["Fixtures"]),
        .testTarget(name: "ModelStoreTests", dependencies: ["ModelStore", "DemucsEngine"]),
        .testTarget(
            name: "DemucsCLITests",
            dependencies: ["DemucsCLI", "DemucsEngine", "AudioIO", "demucsctl"]
        ),
    ]
)
