// swift-tools-version: 6.0
//
// A package that uses pth2swt the way any other package would: by URL and version. It builds the
// README's two Swift examples: "In Swift" (Sources/Example/main.swift) and "Fine-tuning in Swift"
// (Sources/FineTune/main.swift), each the same text as the README's block.
// scripts/consumer.sh clones this repository, tags the clone with the version, points PTH2SWT_URL at
// it (file://…) and runs the example on Tests/Consumer/Fixtures.
import PackageDescription

let url = Context.environment["PTH2SWT_URL"] ?? "file:///tmp/pth2swt-consumer/pth2swt"

let package = Package(
    name: "Consumer",
    dependencies: [
        .package(url: url, from: "0.3.0")
    ],
    targets: [
        .executableTarget(
            name: "Example",
            dependencies: [
                .product(name: "Checkpoint", package: "pth2swt"),
                .product(name: "Tensors", package: "pth2swt"),
                .product(name: "Vision", package: "pth2swt"),
            ],
            path: "Sources/Example"
        ),
        .executableTarget(
            name: "FineTune",
            dependencies: [
                .product(name: "Checkpoint", package: "pth2swt"),
                .product(name: "Training", package: "pth2swt"),
            ],
            path: "Sources/FineTune"
        ),
    ]
)
