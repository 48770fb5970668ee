import CKernels
import Foundation
import TestSupport
import Testing

@testable import Kernels

/// The tier registry and its selection: detection agrees with the kernel's own view of the CPU
/// (/proc/cpuinfo's flags, which Linux derives from CPUID and XCR0), overrides are per thread and reach
/// the kernel threads, and a tier the CPU lacks is refused rather than run.
@Suite struct ISATests {
    /// The flags line of /proc/cpuinfo, or nil off Linux.
    static var cpuFlags: Set<String>? {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") })
        else { return nil }
        return Set(line.split(separator: ":", maxSplits: 1).last!.split(separator: " ").map(String.init))
    }

    @Test func registryIsBestFirstAndEndsPortable() {
        #expect(ISA.all.last?.name == "portable")
        #expect(ISA.portable.isSupported)
        #expect(ISA.supported.first == ISA.best)
        #if arch(x86_64)
            #expect(ISA.all.map(\.name) == ["avx512", "avx2", "portable"])
        #endif
        for tier in ISA.all { #expect(ISA(named: tier.name.uppercased()) == tier) }
        #expect(ISA(named: "sse9") == nil)
    }

    @Test func detectionAgreesWithTheKernel() throws {
        #if arch(x86_64) && os(Linux)
            let flags = try #require(Self.cpuFlags)
            let avx2 = flags.isSuperset(of: ["avx2", "fma"])
            let avx512 = avx2 && flags.isSuperset(of: ["avx512f", "avx512bw", "avx512dq", "avx512vl"])
            #expect(ISA(named: "avx2")!.isSupported == avx2)
            #expect(ISA(named: "avx512")!.isSupported == avx512)
            print(
                "ISA tiers on this host: \(ISA.supported.map(\.name).joined(separator: ", ")); kernels run in \(ISA.process)"
            )
        #endif
    }

    @Test func environmentPicksTheProcessTier() {
        // `PTH2SWT_ISA` is read once, at first use; CI runs the suites again with it set. Here: whatever
        // it says, the process tier is the one it named when honoured, else the best.
        switch ISA.environment {
        case .honoured:
            #expect(ISA(named: ProcessInfo.processInfo.environment["PTH2SWT_ISA"]!) == ISA.process)
        case .unset, .unknown, .unsupported:
            #expect(ISA.process == ISA.best)
        }
    }

    @Test func overridesArePerThreadAndReachTheKernelThreads() throws {
        for tier in ISA.supported {
            try ISA.with(tier) {
                #expect(ISA.current == tier)
                // Every chunk of a region, on the caller and on the pool's threads, sees the caller's tier.
                var seen = [Int32](repeating: -1, count: 8)
                seen.withUnsafeMutableBufferPointer { out in
                    nonisolated(unsafe) let out = out
                    Parallel.run(8, 4) { i in out[i] = pth2swt_isa_current() }
                }
                #expect(seen.allSatisfy { $0 == Int32(tier.index) }, "\(tier): \(seen)")
            }
        }
        #expect(pth2swt_isa_thread_override_value() == -1, "ISA.with left an override behind")
    }

    @Test func unsupportedTiersAreRefused() {
        for tier in ISA.all where !tier.isSupported {
            #expect(throws: ISA.Unsupported.self) { try ISA.with(tier) {} }
            #expect(throws: ISA.Unsupported.self) { try ISA.force(tier) }
        }
        #expect(pth2swt_isa_thread_override(Int32(ISA.all.count)) == -2)
    }
}
