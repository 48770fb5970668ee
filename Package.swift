// swift-tools-version: 6.0
//
// pth2swt: read PyTorch checkpoints (tar, legacy, zip) without Python.
//
// Data flows one way and so do the imports:
//   bytes → archive (tar | legacy | zip) → pickle VM → typed StateDict → model → runtime → writers
//   Tensors  ←  Checkpoint (+ CZip)  ←  pth2swt (Converter/)
import PackageDescription

let package = Package(
    name: "pth2swt",
    products: [
        .library(name: "Lifetime", targets: ["Lifetime"]),
        .library(name: "Tensors", targets: ["Tensors"]),
        .library(name: "Checkpoint", targets: ["Checkpoint"]),
        .library(name: "Hub", targets: ["Hub"]),
        .library(name: "Kernels", targets: ["Kernels"]),
        .library(name: "NN", targets: ["NN"]),
        .library(name: "Vision", targets: ["Vision"]),
        .library(name: "Training", targets: ["Training"]),
        .executable(name: "pth2swt", targets: ["pth2swt"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
    ],
    targets: [
        // libzip through pkg-config (Debian: libzip-dev).
        .systemLibrary(
            name: "CZip",
            path: "Sources/CZip",
            pkgConfig: "libzip",
            providers: [.apt(["libzip-dev"])]
        ),
        // CRC-32 with a carry-less-multiply kernel (zlib for the rest) and its bit-at-a-time twin; SHA-256,
        // self-contained (SHA-NI or portable C; no library, so no global teardown at exit).
        .target(
            name: "CChecksum",
            path: "Sources/CChecksum",
            linkerSettings: [.linkedLibrary("z")]
        ),
        // Lifetimes: background threads owned by a scope and joined on every path, cooperative
        // cancellation on SIGINT/SIGTERM, and temporary files a signal removes. Imports nothing of ours
        // but its C half (the async-signal-safe handlers).
        .target(name: "CLifetime", path: "Sources/CLifetime"),
        .target(name: "Lifetime", dependencies: ["CLifetime"], path: "Sources/Lifetime"),
        // CRC-32, SHA-256 (of buffers and files) and hex, in Swift.
        .target(name: "Checksums", dependencies: ["CChecksum"], path: "Sources/Checksums"),
        // DType, Storage, Tensor, Value, StateDict. Imports nothing of ours.
        .target(name: "Tensors", path: "Sources/Tensors"),
        // Byte reader, tar/legacy/zip archives, the pickle machine and torch's rebuild rules.
        .target(
            name: "Checkpoint", dependencies: ["Tensors", "CZip", "Checksums", "Lifetime"], path: "Sources/Checkpoint"),
        // OpenBLAS's cblas (Debian libopenblas-dev), for BLASComparison alone.
        .systemLibrary(
            name: "COpenBLAS",
            path: "Sources/COpenBLAS",
            providers: [.apt(["libopenblas-dev"])]
        ),
        // The NCHW convolution on OpenBLAS's sgemm: the comparison column of `pth2swt bench conv`. No
        // library product depends on it; inference and training run on CKernels.
        .target(name: "BLASComparison", dependencies: ["Kernels", "COpenBLAS"], path: "Sources/BLASComparison"),
        // libjpeg-turbo and libpng (Debian libjpeg62-turbo-dev, libpng-dev).
        .systemLibrary(
            name: "CImageCodecs",
            path: "Sources/CImageCodecs",
            providers: [.apt(["libjpeg62-turbo-dev", "libpng-dev"])]
        ),
        // libjpeg's error handling needs setjmp/longjmp, which Swift cannot do: a little C.
        .target(name: "CImageSupport", dependencies: ["CImageCodecs"], path: "Sources/CImageSupport"),
        // Compute kernels on Float32 buffers: conv2d, batch norm, pooling, linear, softmax; each fast
        // kernel beside its naive reference twin. Imports Tensors.
        // The kernels in C, built once per ISA tier (AVX-512, AVX2+FMA, portable) and dispatched at run
        // time from CPUID and XCR0 (isa.c), with the naive GEMM twin.
        .target(name: "CKernels", path: "Sources/CKernels"),
        .target(name: "Kernels", dependencies: ["Tensors", "CKernels"], path: "Sources/Kernels"),
        // Modules under torchvision's dotted names, load(stateDict, strict:) with a report.
        .target(name: "NN", dependencies: ["Tensors", "Kernels"], path: "Sources/NN"),
        // ResNet configurations, torchvision-exact preprocessing, ImageNet labels.
        .target(
            name: "Vision", dependencies: ["Tensors", "Kernels", "NN", "CImageCodecs", "CImageSupport"],
            path: "Sources/Vision"),
        // Fine-tuning: cross-entropy, the linear head's backward pass, torch-exact SGD with parameter
        // groups, L2-SP, LR schedules, ImageFolder and IDX data, augmentation, a prefetching loader and
        // the frozen-backbone trainer. Nothing of ours imports it but the tool. zlib (through CZip's
        // shim) reads the .gz IDX files.
        .target(
            name: "Training",
            dependencies: ["Tensors", "Checksums", "Kernels", "CKernels", "NN", "Vision", "CZip", "Lifetime"],
            path: "Sources/Training"),
        // Open MPI's C API through pkg-config (Debian: libopenmpi-dev, openmpi-bin), with a header shim for the
        // handle macros. Only Distributed and the tool use it: no library product links MPI.
        .systemLibrary(
            name: "CMPI",
            path: "Sources/CMPI",
            pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]
        ),
        // Running as one rank of an MPI job (mpirun, srun, the MPI Operator): ranks, collectives, a
        // launcher check. Imports Lifetime and CMPI; the libraries do not import it.
        .target(name: "Distributed", dependencies: ["CMPI", "Lifetime"], path: "Sources/Distributed"),
        // torchvision's weight URLs, resumable downloads (http, https, file) and torch.hub's hash check.
        .target(name: "Hub", dependencies: ["Checksums"], path: "Sources/Hub"),
        // The command-line tool.
        .executableTarget(
            name: "pth2swt",
            dependencies: [
                "Lifetime", "Tensors", "Checkpoint", "Hub", "Kernels", "NN", "Vision", "Training", "BLASComparison",
                "Distributed", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Converter"
        ),
        // What the test targets share (a seeded generator, float comparisons); no product includes it.
        .target(name: "TestSupport", dependencies: ["NN"], path: "Tests/TestSupport"),
        .testTarget(
            name: "HubTests", dependencies: ["Hub", "Checksums", "CChecksum", "TestSupport"], path: "Tests/HubTests"),
        .testTarget(
            name: "KernelsTests", dependencies: ["Kernels", "BLASComparison", "Tensors", "CKernels", "TestSupport"],
            path: "Tests/KernelsTests"),
        .testTarget(
            name: "VisionTests",
            dependencies: ["Vision", "NN", "Kernels", "Tensors", "Checkpoint", "Checksums", "TestSupport"],
            path: "Tests/VisionTests"
        ),
        .testTarget(
            name: "TrainingTests",
            dependencies: ["Training", "Vision", "NN", "Kernels", "Tensors", "Checkpoint", "Lifetime"],
            path: "Tests/TrainingTests"
        ),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors"], path: "Tests/TensorsTests"),
        .testTarget(name: "LifetimeTests", dependencies: ["Lifetime"], path: "Tests/LifetimeTests"),
        // Runs the built pth2swt as a user does: exit paths, signals, pipes.
        .testTarget(
            name: "ToolTests", dependencies: ["Checkpoint", "Checksums", "Tensors", "Lifetime", "Vision"],
            path: "Tests/ToolTests"
        ),
        .testTarget(
            name: "CheckpointTests",
            dependencies: ["Checkpoint", "Tensors", "Checksums", "CChecksum", "Lifetime", "TestSupport"],
            path: "Tests/CheckpointTests"
        ),
    ]
)

// libFuzzer harnesses for every reader (Tests/Fuzz/), built only when PTH2SWT_FUZZ=1, by scripts/fuzz.sh
// with Swift's `-sanitize=fuzzer,address`. A plain `swift build` / `swift test` never sees them.
if Context.environment["PTH2SWT_FUZZ"] == "1" {
    package.targets.append(
        .target(name: "FuzzSupport", dependencies: ["Checkpoint", "Tensors"], path: "Tests/Fuzz/Support"))
    for harness in ["tar", "legacy", "zip", "pickle", "swt", "zip-stub", "pickle-stub"] {
        package.targets.append(
            .executableTarget(
                name: "fuzz-\(harness)",
                dependencies: ["FuzzSupport", "Checkpoint"],
                path: "Tests/Fuzz/\(harness)",
                // No main: libFuzzer's main calls LLVMFuzzerTestOneInput.
                swiftSettings: [.unsafeFlags(["-parse-as-library"])]
            ))
    }
}
