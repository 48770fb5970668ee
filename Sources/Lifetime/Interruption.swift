import CLifetime

#if canImport(Glibc)
    import Glibc
#endif

/// Thrown by `Interruption.check()` once SIGINT or SIGTERM has arrived (or `request` was called): the
/// work unwinds like any error, removing its temporary files and joining its threads on the way.
public struct Interrupted: Error, Equatable, Sendable, CustomStringConvertible {
    public let signal: Int32
    public init(signal: Int32) { self.signal = signal }

    /// The shell's convention for a process ended by a signal: 128 + its number (130 for SIGINT,
    /// 143 for SIGTERM).
    public var exitCode: Int32 { 128 + signal }

    public var name: String {
        switch signal {
        case SIGINT: "SIGINT"
        case SIGTERM: "SIGTERM"
        default: "signal \(signal)"
        }
    }

    public var description: String { "interrupted by \(name)" }
}

/// Cooperative cancellation for long work: one process-wide flag, set by the signal handlers that
/// `installHandlers()` puts in place, or by `request(_:)`.
///
/// Long loops call `check()` at safe points (per tensor written, per batch trained). While such a loop
/// runs inside `cooperating(_:)`, the first Ctrl-C only sets the flag; the loop throws `Interrupted`,
/// every scope on the way out cleans up, and the program exits with `Interrupted.exitCode`. Outside
/// those regions, and on a second Ctrl-C, the handler removes every registered temporary file
/// (`TemporaryFileRegistration`) and ends the process at once: nothing is left half-written either way.
///
/// A program that never installs the handlers keeps the default signal behaviour; `check()` is then
/// only a relaxed atomic load that answers "go on" until `request(_:)` is called.
public enum Interruption {
    public static func installHandlers() { pth2swt_interrupt_install() }

    /// The first signal recorded and not cleared, if any.
    public static var pending: Interrupted? {
        let s = pth2swt_interrupt_pending()
        return s == 0 ? nil : Interrupted(signal: s)
    }

    /// Throws `Interrupted` when a signal (or a request) is pending.
    public static func check() throws(Interrupted) {
        if let p = pending { throw p }
    }

    /// Records `signal` as if it had arrived: the next `check()` throws.
    public static func request(_ signal: Int32 = SIGINT) { pth2swt_interrupt_request(signal) }

    public static func clear() { pth2swt_interrupt_clear() }

    /// Runs `body` as if `signal` had arrived, for the calling thread only: its `check()` calls throw,
    /// other threads' do not (tests of a cancellation path, inside a process doing other work).
    static func requested<T, E: Error>(_ signal: Int32 = SIGINT, _ body: () throws(E) -> T) throws(E) -> T {
        pth2swt_interrupt_request_here(signal)
        defer { pth2swt_interrupt_request_here(0) }
        return try body()
    }

    /// Runs `body`, which promises to call `check()` often, with the first signal deferred to it.
    public static func cooperating<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pth2swt_cooperate_begin()
        defer { pth2swt_cooperate_end() }
        return try body()
    }
}

/// The process's standard output.
public enum StandardOutput {
    /// Line-buffered from now on, even into a file or pipe (C's default there is a 4 KiB block), so a
    /// log shows each progress or epoch line when it is printed, and a killed run leaves its lines.
    public static func lineBuffered() { pth2swt_stdout_line_buffered() }
}

/// A temporary file the signal handler removes if the process is ended before the owner commits or
/// removes it. Deregistered by `end()` or when released.
public final class TemporaryFileRegistration: @unchecked Sendable {
    private var slot: Int32

    public init(path: String) {
        slot = pth2swt_temporary_add(path)
    }

    /// Forgets the file (it was renamed into place or removed).
    public func end() {
        pth2swt_temporary_remove(slot)
        slot = -1
    }

    deinit { end() }

    /// Whether `path` is registered now.
    public static func isRegistered(_ path: String) -> Bool { pth2swt_temporary_contains(path) == 1 }
}
