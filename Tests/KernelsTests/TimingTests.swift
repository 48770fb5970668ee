import Testing

@testable import Kernels

/// The clock, the benchmark summary and the memory figure every timing in the project goes through.
@Suite struct TimingTests {
    @Test func summaryIsMedianAndMinimum() {
        #expect(Timing.summary([]) == nil)
        #expect(Timing.summary([3, 1, 2])! == (2, 1))
        #expect(Timing.summary([4, 1, 3, 2])! == (2.5, 1))
        #expect(Timing.summary([7])! == (7, 7))
    }

    @Test func secondsHaveThreeDecimals() {
        #expect(Timing.seconds(0) == "0.000")
        #expect(Timing.seconds(1.2346) == "1.235")
        #expect(Timing.seconds(12.0504) == "12.050")
        #expect(Timing.seconds(0.007) == "0.007")
    }

    @Test func clockAndMemory() {
        let a = Timing.now(), b = Timing.now()
        #expect(b >= a)
        let peak = Timing.peakResidentBytes()
        #expect(peak != nil && peak! > 1 << 20, "VmHWM of a running test process: \(String(describing: peak))")
    }
}
