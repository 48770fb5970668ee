// swift-tools-version: 6.0
//
// A package that uses pth2swt the way any other package would: by URL and version. It builds the
// README's "In Swift" example (Sources/Example/main.swift, the same text as the README's block).
// scripts/consumer.sh clones this repository, tags the clone with the version, points PTH2SWT_URL at
// it (file://…) and runs the example on Tests/Consumer/Fixtures.
import PackageDescription

let url = Context.environment["PTH2SWT_URL"] ?? "file:///tmp/pth2swt-consumer/pth2swt"

let package = Package(
    name: "Consumer",
    dependencies: [
        .package(url: url, from: "0.2.0"),
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
    ]
)
