#if canImport(Glibc)
    import Glibc
#endif

/// What the runtime and the tool measure time and memory with: one monotonic clock, the median and
/// minimum a benchmark reports, and the peak resident set.
public enum Timing {
    /// Seconds on CLOCK_MONOTONIC (never steps back; its zero is arbitrary).
    @inline(__always)
    public static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// The median (the mean of the middle two for an even count) and the minimum; nil for no samples.
    public static func summary(_ samples: [Double]) -> (median: Double, min: Double)? {
        guard !samples.isEmpty else { return nil }
        let t = samples.sorted()
        let median = t.count % 2 == 1 ? t[t.count / 2] : (t[t.count / 2 - 1] + t[t.count / 2]) / 2
        return (median, t[0])
    }

    /// This process's peak resident set (VmHWM in /proc/self/status), in bytes; nil where there is no
    /// /proc. Unlike ru_maxrss it is not inflated by the memory of a parent that forked us.
    public static func peakResidentBytes() -> Int? {
        guard let f = fopen("/proc/self/status", "r") else { return nil }
        defer { fclose(f) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, Int32(line.count), f) != nil {
            let s = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if s.hasPrefix("VmHWM:") {
                let kb = s.dropFirst(6).split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first.flatMap {
                    Int($0)
                }
                return kb.map { $0 * 1024 }
            }
        }
        return nil
    }

    /// Seconds with three decimals ("12.345"), as the tool prints durations.
    public static func seconds(_ d: Double) -> String {
        let ms = Int((d * 1000).rounded())
        let frac = String(ms % 1000)
        return "\(ms / 1000)." + String(repeating: "0", count: 3 - frac.count) + frac
    }
}
