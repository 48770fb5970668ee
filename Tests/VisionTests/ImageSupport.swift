import Checksums
import Foundation
import TestSupport
import Vision

/// Tests/Fixtures/images and images.expected.json, written by Tests/Reference/make_preprocess.py
/// (Pillow 9.4, torchvision 0.14); the JSON's fields are described there.
enum ImageFixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Tests/Fixtures/images")

    static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// The expected values; a decoding failure here is a broken fixture, so it stops the tests.
    static let expected: ImageExpected = {
        do {
            let data = try Data(contentsOf: directory.appendingPathComponent("images.expected.json"))
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            return try decoder.decode(ImageExpected.self, from: data)
        } catch {
            fatalError("Tests/Fixtures/images/images.expected.json: \(error)")
        }
    }()

    static var imageNames: [String] { expected.images.map(\.file) }
    static func image(_ name: String) -> ImageExpected.Image { expected.images.first { $0.file == name }! }

    /// torch's ToTensor + Normalize of every byte value, channel-major (3 × 256).
    static var normalizeTable: [Float] {
        let bytes = [UInt8](Data(base64Encoded: expected.normalizeTable)!)
        return bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }
}

struct ImageExpected: Decodable {
    struct Stage: Decodable {
        var size: [Int]
        var sha256: String
        var stride: Int
        var samples: String
        var sampleBytes: [UInt8] { [UInt8](Data(base64Encoded: samples)!) }
    }
    struct Tensor: Decodable {
        var shape: [Int]
        var sha256: String
        var min: Float
        var max: Float
    }
    struct Image: Decodable {
        var file: String
        var what: String
        var pilMode: String
        var decoded: Stage
        var resized: Stage
        var cropped: Stage
        var tensor: Tensor
    }
    struct Pixels: Decodable {
        var size: [Int]
        var pixels: String
        var image: RGBImage { RGBImage(width: size[0], height: size[1], pixels: [UInt8](Data(base64Encoded: pixels)!)) }
    }
    struct ResizeSet: Decodable {
        var source: Pixels
        var cases: [Pixels]
    }
    struct SizeCase: Decodable {
        var `in`: [Int]
        var size: Int
        var maxSize: Int?
        var out: [Int]
    }
    struct CropCase: Decodable {
        var `in`: [Int]
        var crop: [Int]
        var source: String
        var pixels: String
    }
    struct Corruption: Decodable {
        var kind: String
        var length: Int?
        var offset: Int?
        var xor: Int?
        var pillow: String
        var error: String?
        var size: [Int]?
        var sha256: String?
    }
    struct CorruptionSet: Decodable {
        var file: String
        var size: Int
        var cases: [Corruption]
    }

    var pillowVersion: String
    var torchvisionVersion: String
    var mean: [Double]
    var std: [Double]
    var normalizeTable: String
    var images: [Image]
    var resize: ResizeSet
    var resizeBicubic: ResizeSet
    var resizedSize: [SizeCase]
    var centerCrop: [CropCase]
    var corruptions: [CorruptionSet]
}

func imageSHA256(_ bytes: [UInt8]) -> String { bytes.withUnsafeBytes { Checksums.sha256Hex($0) } }
func imageSHA256(_ floats: [Float]) -> String { floats.withUnsafeBytes { Checksums.sha256Hex($0) } }

/// How an 8-bit image compares with a stage of images.expected.json.
struct StageComparison: CustomStringConvertible {
    var sizeMatches: Bool
    var shaMatches: Bool
    /// Largest |difference| over the sampled grid (0 when the sizes differ: then nothing compares).
    var maxDifference: Int
    var differingSamples: Int

    init(_ image: RGBImage, _ stage: ImageExpected.Stage) {
        sizeMatches = [image.width, image.height] == stage.size
        shaMatches = sizeMatches && imageSHA256(image.pixels) == stage.sha256
        maxDifference = 0
        differingSamples = 0
        guard sizeMatches else { return }
        let expected = stage.sampleBytes
        var i = 0
        for y in stride(from: 0, to: image.height, by: stage.stride) {
            for x in stride(from: 0, to: image.width, by: stage.stride) {
                for c in 0..<3 {
                    let d = abs(Int(image.pixels[(y * image.width + x) * 3 + c]) - Int(expected[i]))
                    maxDifference = max(maxDifference, d)
                    differingSamples += d == 0 ? 0 : 1
                    i += 1
                }
            }
        }
    }

    var exact: Bool { shaMatches }

    var description: String {
        if !sizeMatches { return "size differs" }
        return shaMatches
            ? "max|Δ| 0"
            : "max|Δ| \(maxDifference) on the sample grid (\(differingSamples) samples differ, sha differs)"
    }
}

/// The deterministic generator for the random tests.
typealias ImageTestRandom = TestRandom
