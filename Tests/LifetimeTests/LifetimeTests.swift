import Foundation
import Testing

@testable import Lifetime

/// Background jobs end with their scope on every path; interruption is cooperative; temporary files
/// are registered for the signal handler only while they exist.
@Suite(.serialized) struct LifetimeTests {
    struct Boom: Error {}

    @Test func scopeJoinsOnSuccess() throws {
        let before = BackgroundScope.liveStartedHere
        let v = try BackgroundScope.with { scope in
            let a = try scope.start { _ in (0..<1000).reduce(0, +) }
            let b = try scope.start { _ -> Int in
                usleep(20_000)
                return 7
            }
            return try a.value() + b.value()
        }
        #expect(v == 499_500 + 7)
        #expect(BackgroundScope.liveStartedHere == before)
    }

    /// The body throws while a job is still working: the job is asked to stop and joined before the
    /// error leaves `with`, so nothing it does can outlive the scope.
    @Test func scopeCancelsAndJoinsOnError() throws {
        let before = BackgroundScope.liveStartedHere
        let sawCancel = Flag()
        let started = Date()
        #expect(throws: Boom.self) {
            try BackgroundScope.with { scope in
                _ = try scope.start { cancellation -> Int in
                    // Would run 10 s if never cancelled.
                    for _ in 0..<1000 {
                        if cancellation.isCancelled {
                            sawCancel.set()
                            return 0
                        }
                        usleep(10_000)
                    }
                    return 1
                }
                usleep(30_000)
                throw Boom()
            }
        }
        #expect(BackgroundScope.liveStartedHere == before, "a job outlived its scope")
        #expect(sawCancel.value, "the job was not cancelled")
        #expect(Date().timeIntervalSince(started) < 5)
    }

    @Test func jobErrorsReachTheOwner() throws {
        #expect(throws: Boom.self) {
            try BackgroundScope.with { scope in
                let j = try scope.start { _ -> Int in throw Boom() }
                _ = try j.value()
            }
        }
    }

    /// A request on this thread makes `check()` throw here only (the process-wide flag, which the
    /// signal handler sets, would stop every other test's loops too, so tests never set it).
    @Test func checkThrowsOnlyWhileRequested() async throws {
        try Interruption.check()
        Interruption.requested(SIGTERM) {
            #expect(throws: Interrupted(signal: SIGTERM)) { try Interruption.check() }
            // Another thread is not interrupted.
            let other = Thread { #expect(Interruption.pending == nil) }
            other.start()
            while !other.isFinished { usleep(1_000) }
        }
        try Interruption.check()
        #expect(Interrupted(signal: SIGTERM).exitCode == 143)
        #expect(Interrupted(signal: SIGINT).exitCode == 130)
    }

    @Test func temporaryFilesAreRegisteredWhileTheyLive() {
        let a = "/tmp/lifetime-test-\(getpid())-a.partial", b = "/tmp/lifetime-test-\(getpid())-b.partial"
        do {
            let ra = TemporaryFileRegistration(path: a)
            let rb = TemporaryFileRegistration(path: b)
            #expect(TemporaryFileRegistration.isRegistered(a) && TemporaryFileRegistration.isRegistered(b))
            ra.end()
            ra.end()  // idempotent
            #expect(!TemporaryFileRegistration.isRegistered(a) && TemporaryFileRegistration.isRegistered(b))
            _ = rb
        }
        #expect(!TemporaryFileRegistration.isRegistered(b))
    }

    final class Flag: @unchecked Sendable {
        private let lock = NSLock()
        private var v = false
        func set() {
            lock.lock()
            v = true
            lock.unlock()
        }
        var value: Bool {
            lock.lock()
            defer { lock.unlock() }
            return v
        }
    }
}
