import CChecksum
import Checksums
import Testing

/// The self-contained SHA-256: both block functions (SHA-NI where this CPU has it, and the portable
/// reference twin) against FIPS 180-4's published examples, against each other on every length that
/// crosses the 64-byte block and the padding boundary, and split into arbitrary update pieces.
/// Serialized: the portable switch is process-wide.
@Suite(.serialized) struct SHA256Tests {
    /// Each tier this host runs: the portable one always, SHA-NI when the CPU has it.
    static var tiers: [(name: String, portable: Int32)] {
        pth2swt_sha256_force_portable(0)
        let accelerated = pth2swt_sha256_accelerated() == 1
        return (accelerated ? [("sha-ni", 0)] : []) + [("portable", 1)]
    }

    static func digest(_ bytes: [UInt8], pieces: [Int] = []) -> String {
        let h = pth2swt_sha256_create()!
        var at = 0
        bytes.withUnsafeBytes { raw in
            for p in pieces where at + p <= raw.count {
                pth2swt_sha256_update(h, raw.baseAddress.map { $0 + at }, p)
                at += p
            }
            pth2swt_sha256_update(h, raw.baseAddress.map { $0 + at }, raw.count - at)
        }
        var out = [UInt8](repeating: 0, count: 32)
        pth2swt_sha256_finish(h, &out)
        return Checksums.hex(out)
    }

    @Test func fipsExamples() {
        // FIPS 180-4's examples (NIST's "Examples with intermediate values", SHA-256).
        let cases: [([UInt8], String)] = [
            (Array("abc".utf8), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            ([], "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            (
                Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8),
                "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
            ),
            (
                [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000),
                "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
            ),
        ]
        defer { pth2swt_sha256_force_portable(0) }
        for tier in Self.tiers {
            pth2swt_sha256_force_portable(tier.portable)
            for (message, expected) in cases {
                #expect(Self.digest(message) == expected, "\(tier.name), \(message.count) bytes")
                #expect(Self.digest(message, pieces: [1, 63, 64, 7]) == expected, "\(tier.name), pieces")
            }
        }
    }

    @Test func tiersAgreeOnEveryLength() {
        let data = CRC32Tests.bytes(4096 + 3)
        defer { pth2swt_sha256_force_portable(0) }
        var mismatches: [Int] = []
        let lengths = Array(0...300) + [511, 512, 513, 1000, 4095, 4096, 4099]
        for n in lengths {
            let slice = Array(data.prefix(n))
            pth2swt_sha256_force_portable(1)
            let reference = Self.digest(slice)
            for tier in Self.tiers {
                pth2swt_sha256_force_portable(tier.portable)
                if Self.digest(slice) != reference || Self.digest(slice, pieces: [n / 3, 1, 65]) != reference {
                    mismatches.append(n)
                }
            }
        }
        #expect(mismatches.isEmpty, "lengths where a tier or a split disagrees: \(mismatches)")
    }

    @Test func bufferAndFileAgree() throws {
        let data = CRC32Tests.bytes(5 << 20)  // more than the file reader's 4 MiB piece
        let path = "/tmp/pth2swt-sha256-\(getpid()).bin"
        defer { unlink(path) }
        let f = fopen(path, "wb")!
        data.withUnsafeBytes { _ = fwrite($0.baseAddress, 1, $0.count, f) }
        fclose(f)
        let fromFile = try Checksums.sha256Hex(file: path)
        #expect(fromFile == data.withUnsafeBytes { Checksums.sha256Hex($0) })
        pth2swt_sha256_force_portable(1)
        defer { pth2swt_sha256_force_portable(0) }
        #expect(fromFile == Self.digest(data))
    }
}

#if canImport(Glibc)
    import Glibc
#endif
