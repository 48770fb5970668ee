import Foundation
import Testing

@testable import Vision

/// Resize(256), CenterCrop(224), ToTensor + Normalize against torchvision 0.14 on Pillow 9.4, stage by
/// stage, and the resampler against its reference twin.
@Suite struct ImagePipelineTests {
    /// Every stage for every fixture image, each compared with what torchvision made of it. Prints
    /// the largest difference per stage (the target is 0 everywhere).
    @Test(arguments: ImageFixtures.imageNames)
    func stagesMatchTorchvision(_ name: String) throws {
        let expected = ImageFixtures.image(name)
        let decoded = try ImageDecoder.decode(path: ImageFixtures.path(name))
        let resized = Transforms.resize(decoded, shorterSide: 256)
        let cropped = Transforms.centerCrop(resized, width: 224, height: 224)
        let eval = ImageNetEval()
        let tensor = try eval.tensor(from: ImageFixtures.path(name))

        let d = StageComparison(decoded, expected.decoded)
        let r = StageComparison(resized, expected.resized)
        let c = StageComparison(cropped, expected.cropped)
        let windowed = StageComparison(eval.resizedCrop(decoded), expected.cropped)
        let t = tensorDifference(tensor, expected)
        print("pipeline \(name): decoded \(d), resized \(r), cropped \(c), windowed crop \(windowed), tensor \(t)")
        #expect(d.exact, "\(name) decoded: \(d)")
        #expect(r.exact, "\(name) Resize(256): \(r)")
        #expect(c.exact, "\(name) CenterCrop(224): \(c)")
        #expect(windowed.exact, "\(name) resize of the crop window only: \(windowed)")
        #expect(eval.shape == expected.tensor.shape && tensor.count == 3 * 224 * 224)
        #expect(imageSHA256(tensor) == expected.tensor.sha256, "\(name) tensor: \(t)")
        #expect(tensor.min() == expected.tensor.min && tensor.max() == expected.tensor.max)
        let normalized = Transforms.normalize(cropped, mean: ImageNetEval.mean, std: ImageNetEval.std)
        #expect(normalized == tensor, "\(name): Transforms.normalize of the crop differs from ImageNetEval's tensor")
    }

    /// Largest |difference| of the tensor on the cropped stage's sample grid, against torch's values
    /// there (the table lookup of torchvision's cropped bytes; make_preprocess.py checks that identity).
    private func tensorDifference(_ tensor: [Float], _ expected: ImageExpected.Image) -> String {
        let table = ImageFixtures.normalizeTable
        let samples = expected.cropped.sampleBytes
        let s = expected.cropped.stride
        var worst: Float = 0, i = 0
        for y in stride(from: 0, to: 224, by: s) {
            for x in stride(from: 0, to: 224, by: s) {
                for c in 0..<3 {
                    worst = max(worst, abs(tensor[c * 224 * 224 + y * 224 + x] - table[c * 256 + Int(samples[i])]))
                    i += 1
                }
            }
        }
        return "max|Δ| \(worst) on the sample grid"
    }

    /// ToTensor + Normalize for every byte in every channel, bit for bit against torch (float32
    /// `div(255)`, `sub_(mean)`, `div_(std)`).
    @Test func normalizeTableIsTorchs() {
        let ours = Transforms.normalizeTable(mean: ImageNetEval.mean, std: ImageNetEval.std)
        let torch = ImageFixtures.normalizeTable
        #expect(ImageFixtures.expected.mean == ImageNetEval.mean && ImageFixtures.expected.std == ImageNetEval.std)
        let differing = (0..<768).filter { ours[$0].bitPattern != torch[$0].bitPattern }
        #expect(differing.isEmpty, "entries differing from torch: \(differing.prefix(10))")
    }

    /// Pillow's `resize((w, h), BILINEAR)` and `BICUBIC` of a 37×23 image to sizes in both directions, per
    /// axis and both, down to 1×1 (make_preprocess.py, Pillow 9.4).
    @Test(arguments: Resample.Interpolation.allCases) func resampleMatchesPillow(_ filter: Resample.Interpolation) {
        let set = filter == .bilinear ? ImageFixtures.expected.resize : ImageFixtures.expected.resizeBicubic
        let source = set.source.image
        #expect(set.cases.count >= 10)
        for c in set.cases {
            let expected = c.image
            let ours = Resample.resize(source, width: expected.width, height: expected.height, interpolation: filter)
            let worst = zip(ours.pixels, expected.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 0
            let same = ours == expected
            #expect(same, "\(filter) 37×23 → \(expected.width)×\(expected.height): max|Δ| \(worst)")
        }
    }

    /// The fast resampler against the reference twin, on random sizes and content, and the windowed
    /// resize against cropping the full one.
    @Test(arguments: Resample.Interpolation.allCases) func resampleMatchesReferenceTwin(
        _ filter: Resample.Interpolation
    ) {
        var rng = ImageTestRandom(seed: 7)
        for trial in 0..<60 {
            let w = Int.random(in: 1...40, using: &rng), h = Int.random(in: 1...40, using: &rng)
            let ow = trial % 5 == 0 ? w : Int.random(in: 1...90, using: &rng)
            let oh = trial % 7 == 0 ? h : Int.random(in: 1...90, using: &rng)
            let pixels = (0..<(w * h * 3)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let image = RGBImage(width: w, height: h, pixels: pixels)
            let fast = Resample.resize(image, width: ow, height: oh, interpolation: filter)
            let reference = Resample.referenceResize(image, width: ow, height: oh, interpolation: filter)
            let worst = zip(fast.pixels, reference.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 0
            let same = fast == reference
            #expect(same, "\(filter) \(w)×\(h) → \(ow)×\(oh): max|Δ| \(worst)")

            let x0 = Int.random(in: 0..<ow, using: &rng), y0 = Int.random(in: 0..<oh, using: &rng)
            let x1 = Int.random(in: (x0 + 1)...ow, using: &rng), y1 = Int.random(in: (y0 + 1)...oh, using: &rng)
            let window = Resample.resize(
                image, width: ow, height: oh, columns: x0..<x1, rows: y0..<y1, interpolation: filter)
            var cropped: [UInt8] = []
            for y in y0..<y1 { cropped += fast.pixels[((y * ow + x0) * 3)..<((y * ow + x1) * 3)] }
            let windowMatches = window == RGBImage(width: x1 - x0, height: y1 - y0, pixels: cropped)
            #expect(windowMatches, "\(w)×\(h) → \(ow)×\(oh), window \(x0)..<\(x1) × \(y0)..<\(y1)")
        }
    }

    /// torchvision's `_compute_resized_output_size`, with and without `max_size`.
    @Test func resizedSizeMatchesTorchvision() {
        let cases = ImageFixtures.expected.resizedSize
        #expect(cases.count > 200)
        for c in cases {
            let s = Transforms.resizedSize(width: c.in[0], height: c.in[1], shorterSide: c.size, maxSize: c.maxSize)
            #expect([s.width, s.height] == c.out, "\(c.in) size \(c.size) max_size \(String(describing: c.maxSize))")
        }
    }

    /// torchvision's `center_crop` on small PIL images: zero padding on a short side, and crop offsets
    /// rounded half to even.
    @Test func centerCropMatchesTorchvision() {
        for c in ImageFixtures.expected.centerCrop {
            let source = RGBImage(width: c.in[0], height: c.in[1], pixels: [UInt8](Data(base64Encoded: c.source)!))
            let expected = RGBImage(
                width: c.crop[0], height: c.crop[1], pixels: [UInt8](Data(base64Encoded: c.pixels)!))
            let same = Transforms.centerCrop(source, width: c.crop[0], height: c.crop[1]) == expected
            #expect(same, "\(c.in) → \(c.crop)")
        }
        // Margins 1, 3, 5, 33: Python's round(0.5) = 0, round(1.5) = 2, round(2.5) = 2, round(16.5) = 16.
        let xs = [5, 7, 9, 257].map {
            Transforms.centerCropOrigin(width: $0, height: 4, cropWidth: $0 == 257 ? 224 : 4, cropHeight: 4).x
        }
        #expect(xs == [0, 2, 2, 16])
    }

    /// A pipeline whose crop is larger than the resized image pads with zeros, as CenterCrop does.
    @Test func cropLargerThanResizePads() throws {
        let image = try ImageDecoder.decode(path: ImageFixtures.path("geom_50x40.jpg"))
        let eval = ImageNetEval(resizeSize: 20, cropSize: 30)
        let full = Transforms.centerCrop(Transforms.resize(image, shorterSide: 20), width: 30, height: 30)
        let cropMatches = eval.resizedCrop(image) == full
        let tensorMatches =
            eval.tensor(from: image) == Transforms.normalize(full, mean: ImageNetEval.mean, std: ImageNetEval.std)
        #expect(cropMatches && tensorMatches)
    }

    @Test func pipelineErrorsNameThePath() {
        let path = ImageFixtures.path("missing.png")
        #expect(throws: ImageError.self) { try ImageNetEval().tensor(from: path) }
        #expect(throws: ImageError(.unknownFormat, path: "junk")) {
            try ImageNetEval().tensor(bytes: [1, 2, 3], name: "junk")
        }
    }
}
