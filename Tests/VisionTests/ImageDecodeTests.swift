import Foundation
import Testing
import Vision

/// Decoding against `PIL.Image.open(f).convert("RGB")` (Pillow 9.4), and hostile input.
@Suite struct ImageDecodeTests {
    @Test func fixtureSetIsComplete() {
        #expect(ImageFixtures.expected.pillowVersion == "9.4.0")
        #expect(ImageFixtures.imageNames.count == 34)
        // Every mode the decoder promises is in the set.
        let modes = Set(ImageFixtures.expected.images.map(\.pilMode))
        #expect(modes == ["RGB", "L", "CMYK", "LA", "RGBA", "P", "1", "I"])
    }

    @Test(arguments: ImageFixtures.imageNames)
    func decodesLikePillow(_ name: String) throws {
        let expected = ImageFixtures.image(name)
        let image = try ImageDecoder.decode(path: ImageFixtures.path(name))
        let comparison = StageComparison(image, expected.decoded)
        print("decode \(name) (Pillow mode \(expected.pilMode)): \(comparison)")
        #expect(comparison.exact, "\(name) [\(expected.what)]: \(comparison)")
    }

    @Test func bytesAndPathAgree() throws {
        let path = ImageFixtures.path("png_palette_trns.png")
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let same = try ImageDecoder.decode(bytes: bytes) == ImageDecoder.decode(path: path)
        #expect(same)
    }

    /// Truncations and flipped bytes of fixture files, with what Pillow made of each. Where Pillow
    /// refuses the data the decoder must throw. Where Pillow decodes it, a JPEG must decode to the same
    /// bytes (same libjpeg, same settings, warnings passed over alike); a PNG may instead be refused,
    /// because libpng checks what Pillow does not (IDAT CRCs, the zlib checksum, chunk lengths).
    @Test(arguments: ImageFixtures.expected.corruptions.map(\.file))
    func corruptFilesAsPillow(_ name: String) throws {
        let set = ImageFixtures.expected.corruptions.first { $0.file == name }!
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: ImageFixtures.path(name))))
        #expect(original.count == set.size)
        let isPNG = name.hasSuffix(".png")
        var stricter = 0
        for c in set.cases {
            var bytes = original
            let label: String
            if c.kind == "truncate" {
                bytes = Array(original[..<c.length!])
                label = "\(name) cut to \(c.length!) bytes"
            } else {
                bytes[c.offset!] ^= UInt8(c.xor!)
                label = "\(name) byte \(c.offset!) ^ \(c.xor!)"
            }
            let result = Result { try ImageDecoder.decode(bytes: bytes, name: label) }
            switch (c.pillow, result) {
            case ("error", .success):
                Issue.record("\(label): Pillow refuses it (\(c.error ?? "")), the decoder returned an image")
            case ("error", .failure(let error)):
                let e = try #require(error as? ImageError, "\(label): \(error)")
                #expect(e.path == label)
                if c.kind == "truncate" && c.length! >= (isPNG ? 8 : 3) {
                    guard case .truncated = e.kind else {
                        Issue.record("\(label): expected .truncated, got \(e)")
                        continue
                    }
                }
            case (_, .success(let image)):
                #expect(
                    [image.width, image.height] == c.size && imageSHA256(image.pixels) == c.sha256,
                    "\(label): decoded differently from Pillow")
            case (_, .failure(let error)):
                #expect(error is ImageError, "\(label): \(error)")
                if isPNG {
                    stricter += 1
                } else {
                    Issue.record("\(label): Pillow decodes it, the decoder threw \(error)")
                }
            }
        }
        print("corruptions \(name): \(set.cases.count) cases, \(stricter) refused that Pillow decodes")
    }

    /// Random cuts and random byte flips of every fixture: a typed error or an image, never a crash.
    @Test func randomDamageNeverCrashes() throws {
        var rng = ImageTestRandom(seed: 20_240_601)
        var thrown = 0, decoded = 0
        for name in ImageFixtures.imageNames {
            let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: ImageFixtures.path(name))))
            for trial in 0..<24 {
                var bytes = original
                if trial % 3 == 0 {
                    bytes = Array(original[..<Int.random(in: 0..<original.count, using: &rng)])
                } else {
                    for _ in 0..<(1 + trial % 4) {
                        bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                    }
                }
                do {
                    let image = try ImageDecoder.decode(bytes: bytes, name: name)
                    #expect(image.pixels.count == image.width * image.height * 3)
                    decoded += 1
                } catch let error as ImageError {
                    #expect(error.path == name)
                    thrown += 1
                }
            }
        }
        print("random damage: \(thrown) typed errors, \(decoded) images")
        #expect(thrown > 0 && decoded > 0)
    }

    @Test func inputErrorsAreTyped() throws {
        let missing = ImageFixtures.path("no-such-file.jpg")
        #expect(throws: ImageError.self) { try ImageDecoder.decode(path: missing) }
        do {
            _ = try ImageDecoder.decode(path: missing)
        } catch let e as ImageError {
            guard case .io(let reason) = e.kind else {
                Issue.record("\(e)")
                return
            }
            #expect(e.path == missing && reason.contains("No such file"), "\(e)")
            #expect(e.description.hasPrefix(missing + ": cannot read: cannot open"), "\(e)")
        }
        do {
            _ = try ImageDecoder.decode(path: ImageFixtures.directory.path)
            Issue.record("a directory decoded")
        } catch let e as ImageError {
            #expect(e.kind == .io("not a regular file"))
        }
        for bytes: [UInt8] in [[], [0xFF], [0xFF, 0xD8], Array("GIF89a".utf8), [0x89, 0x50, 0x4E, 0x47]] {
            #expect(throws: ImageError(.unknownFormat, path: "x")) { try ImageDecoder.decode(bytes: bytes, name: "x") }
        }
    }

    /// JPEGs Pillow cannot handle either, made from the gray fixture by editing its SOF0 segment
    /// (FF C0, length, precision, height, width, component count, then id, sampling, table per
    /// component): 12-bit precision, SOF3 (lossless), two components.
    @Test(arguments: ["12-bit", "lossless", "2 components"])
    func unsupportedJPEGs(_ variant: String) throws {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: ImageFixtures.path("jpeg_gray.jpg"))))
        let sof = try #require(bytes.indices.first { bytes[$0] == 0xFF && bytes[$0 + 1] == 0xC0 })
        #expect(bytes[sof + 3] == 11 && bytes[sof + 4] == 8 && bytes[sof + 9] == 1)
        switch variant {
        case "12-bit": bytes[sof + 4] = 12
        case "lossless": bytes[sof + 1] = 0xC3
        default:
            // A second component with the first one's sampling and table, under id + 1.
            let component = Array(bytes[(sof + 10)..<(sof + 13)])
            var segment: [UInt8] = [0, 14]
            segment += bytes[(sof + 4)..<(sof + 9)]
            segment += [2] + component + [component[0] + 1, component[1], component[2]]
            bytes.replaceSubrange((sof + 2)..<(sof + 13), with: segment)
        }
        do {
            _ = try ImageDecoder.decode(bytes: bytes, name: variant)
            Issue.record("\(variant): decoded")
        } catch let e as ImageError {
            guard case .unsupported(.jpeg, let detail) = e.kind else {
                Issue.record("\(variant): \(e)")
                return
            }
            print("unsupported JPEG, \(variant): \(detail)")
        }
    }

    /// A PNG header claiming more pixels than Pillow's decompression-bomb limit is refused before any
    /// allocation.
    @Test func hugePNGIsRefused() throws {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: ImageFixtures.path("png_gray1.png"))))
        // IHDR width and height at 16..<24, its CRC at 29..<33.
        let size: [UInt8] = [0, 0, 0x40, 0, 0, 0, 0x40, 0]  // 16384 × 16384
        bytes.replaceSubrange(16..<24, with: size)
        let crc = crc32(Array(bytes[12..<29]))
        bytes.replaceSubrange(
            29..<33, with: [UInt8(crc >> 24), UInt8(crc >> 16 & 255), UInt8(crc >> 8 & 255), UInt8(crc & 255)])
        #expect(throws: ImageError(.tooLarge(width: 16384, height: 16384), path: "huge.png")) {
            try ImageDecoder.decode(bytes: bytes, name: "huge.png")
        }
    }

    private func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0xEDB8_8320 : c >> 1 }
        }
        return ~c
    }
}
