import CChecksum
import CZip
import Checksums
import TestSupport
import Testing

@testable import Checkpoint

/// The fast CRC-32 (carry-less multiply on x86-64) against its bit-at-a-time twin and against zlib,
/// over every alignment and every length that crosses the kernel's 16- and 64-byte boundaries.
@Suite struct CRC32Tests {
    /// Deterministic bytes, so a failure reproduces.
    static func bytes(_ n: Int, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) -> [UInt8] {
        var g = TestRandom(seed: seed)
        return g.bytes(n)
    }

    @Test func checkValue() {
        // The CRC-32 check value from the catalogue of parametrised CRCs: "123456789" -> 0xCBF43926.
        let s = Array("123456789".utf8)
        #expect(pth2swt_crc32(0, s, s.count) == 0xCBF4_3926)
        #expect(pth2swt_crc32_reference(0, s, s.count) == 0xCBF4_3926)
    }

    @Test func everyAlignmentAndLength() {
        let data = Self.bytes(1024 + 16)
        var mismatches: [String] = []
        data.withUnsafeBytes { raw in
            for offset in 0..<16 {
                for length in 0...700 {
                    let p = raw.baseAddress! + offset
                    let fast = pth2swt_crc32(0, p, length)
                    let slow = pth2swt_crc32_reference(0, p, length)
                    let zlib = UInt32(CZip.crc32(0, p.assumingMemoryBound(to: Bytef.self), uInt(length)))
                    if fast != slow || slow != zlib {
                        mismatches.append(
                            "offset \(offset) length \(length): fast \(fast) reference \(slow) zlib \(zlib)")
                    }
                }
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(5))")
    }

    @Test func incrementalEqualsWhole() {
        let data = Self.bytes(1 << 20, seed: 42)
        data.withUnsafeBytes { raw in
            let whole = pth2swt_crc32(0, raw.baseAddress!, raw.count)
            #expect(whole == pth2swt_crc32_reference(0, raw.baseAddress!, raw.count))
            for cut in [1, 63, 64, 65, 1000, 4096, 1 << 19] {
                let a = pth2swt_crc32(0, raw.baseAddress!, cut)
                #expect(pth2swt_crc32(a, raw.baseAddress! + cut, raw.count - cut) == whole, "cut at \(cut)")
            }
            #expect(Checksums.crc32(UnsafeRawBufferPointer(raw)) == whole)
        }
    }

    @Test func kernelIsInUseOnThisMachine() throws {
        // On x86-64 the fast path must be the folding kernel, or the comparisons above test zlib twice.
        #if arch(x86_64)
            #expect(pth2swt_crc32_accelerated() == 1, "x86-64 without PCLMULQDQ: the kernel went untested")
        #endif
    }
}
