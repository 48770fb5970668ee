import CKernels

#if canImport(Glibc)
    import Glibc
#endif

/// The instruction-set tier the kernels run in: AVX-512, AVX2+FMA or portable on x86-64 (best first),
/// as registered in CKernels' isa.c.
///
/// The process's tier is picked once, from CPUID and the OS's XSAVE state, or from `PTH2SWT_ISA`
/// (`avx512`, `avx2`, `portable` or `auto`) when that names a tier this machine runs. `ISA.force(_:)`
/// changes it for the process; `ISA.with(_:_:)` runs a closure with the calling thread (and the kernel
/// threads it starts) in a tier, which is how tests compare every tier in one process.
public struct ISA: Hashable, Sendable, CustomStringConvertible {
    /// The tier's index in the registry (0 is the best).
    public let index: Int
    public var name: String { String(cString: pth2swt_isa_name(Int32(index))) }
    public var description: String { name }
    /// Whether this CPU has the tier's instructions and the OS saves their registers.
    public var isSupported: Bool { pth2swt_isa_supported(Int32(index)) == 1 }

    /// Every registered tier, best first.
    public static var all: [ISA] { (0..<Int(pth2swt_isa_count())).map { ISA(index: $0) } }
    /// "avx512, avx2, portable": the registered names, best first, for help texts and errors.
    public static var names: String { all.map(\.name).joined(separator: ", ") }
    /// The tiers this machine runs, best first; the portable one is always among them.
    public static var supported: [ISA] { all.filter(\.isSupported) }
    /// The best tier this machine runs.
    public static var best: ISA { supported[0] }
    /// The portable tier (no target attribute; runs everywhere).
    public static var portable: ISA { all[all.count - 1] }

    /// The tier named `name` (case-insensitive), or nil.
    public init?(named name: String) {
        let i = pth2swt_isa_lookup(name)
        guard i >= 0 else { return nil }
        index = Int(i)
    }
    init(index: Int) { self.index = index }

    /// The tier the calling thread's kernel calls run in.
    public static var current: ISA { ISA(index: Int(pth2swt_isa_current())) }
    /// The process's tier.
    public static var process: ISA { ISA(index: Int(pth2swt_isa_process_tier())) }

    /// What became of `PTH2SWT_ISA`.
    public enum EnvironmentStatus: Sendable, Equatable {
        /// Unset, empty or `auto`: the best supported tier.
        case unset
        /// It named a supported tier, which runs.
        case honoured
        /// It named no registered tier; the best supported tier runs.
        case unknown(String)
        /// It named a tier this machine cannot run; the best supported tier runs.
        case unsupported(String)
    }
    public static var environment: EnvironmentStatus {
        let value = getenv("PTH2SWT_ISA").map { String(cString: $0) } ?? ""
        switch pth2swt_isa_environment_status() {
        case Int32(PTH2SWT_ISA_ENV_HONOURED): return .honoured
        case Int32(PTH2SWT_ISA_ENV_UNKNOWN): return .unknown(value)
        case Int32(PTH2SWT_ISA_ENV_UNSUPPORTED): return .unsupported(value)
        default: return .unset
        }
    }

    public struct Unsupported: Error, CustomStringConvertible {
        public let tier: String
        public init(tier: String) { self.tier = tier }
        public var description: String {
            "this CPU cannot run the \(tier) tier (supported: \(ISA.supported.map(\.name).joined(separator: ", ")))"
        }
    }

    /// Makes `tier` the process's tier. Throws `Unsupported` when this machine cannot run it.
    public static func force(_ tier: ISA) throws {
        guard pth2swt_isa_set_process_tier(Int32(tier.index)) == 0 else { throw Unsupported(tier: tier.name) }
    }

    /// Runs `body` with the calling thread, and the kernel threads its regions use, in `tier`; the thread's
    /// previous tier is restored after. Throws `Unsupported` when this machine cannot run it.
    public static func with<T>(_ tier: ISA, _ body: () throws -> T) throws -> T {
        let previous = pth2swt_isa_thread_override(Int32(tier.index))
        guard previous != -2 else { throw Unsupported(tier: tier.name) }
        defer { _ = pth2swt_isa_thread_override(previous) }
        return try body()
    }
}

extension ISA {
    /// The CPU's model name as Linux reports it (/proc/cpuinfo "model name", which lscpu shows), or nil.
    public static var cpuModel: String? {
        guard let f = fopen("/proc/cpuinfo", "r") else { return nil }
        defer { fclose(f) }
        var line: UnsafeMutablePointer<CChar>? = nil
        var capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, f) > 0 {
            let text = String(cString: line!)
            guard text.hasPrefix("model name"), let colon = text.firstIndex(of: ":") else { continue }
            return text[text.index(after: colon)...].trimmingCharacters(in: " \t\n")
        }
        return nil
    }

    /// A warning for a `PTH2SWT_ISA` that could not be honoured, or nil.
    public static var environmentWarning: String? {
        switch environment {
        case .unset, .honoured: nil
        case .unknown(let v):
            "PTH2SWT_ISA=\(v) names no tier (\(names) or auto); running \(process)"
        case .unsupported(let v): "PTH2SWT_ISA=\(v): this CPU cannot run it; running \(process)"
        }
    }
}

extension StringProtocol {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let c = s.first, set.contains(c) { s.removeFirst() }
        while let c = s.last, set.contains(c) { s.removeLast() }
        return String(s)
    }
}
