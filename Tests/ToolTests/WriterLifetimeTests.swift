import Checkpoint
import Foundation
import Tensors
import Testing

@testable import Lifetime

/// The writers' own exit paths, in process: whatever ends a write (a corrupt source, an interruption),
/// the hashing thread is joined, the temporary file is gone and unregistered, and no output appears.
@Suite(.serialized) struct WriterLifetimeTests {
    @Test func corruptSourceJoinsTheHashAndLeavesNothing() throws {
        let dir = try Scratch("writer-crc")
        let input = dir.file("bad.pth")
        try Synthetic.checkpoint(at: input, bigTensors: 4, megabytesEach: 8)
        try Synthetic.corruptEntry(0, of: input)
        let ckpt = try Checkpoint(path: input)
        let sd = try ckpt.stateDict()
        let threads = BackgroundScope.liveStartedHere
        let temporary = dir.file(".out.swt.partial-\(getpid())")
        for _ in 0..<5 {
            #expect(throws: CheckpointError.self) {
                try SWTWriter.write(
                    sd, to: dir.file("out.swt"),
                    source: SourceInfo(path: input, bytes: ckpt.fileSize, format: ckpt.format),
                    converter: "test")
            }
            // Checked at once, with no waiting: the call itself must have joined its thread.
            #expect(BackgroundScope.liveStartedHere == threads)
            #expect(!TemporaryFileRegistration.isRegistered(temporary))
            #expect(dir.contents == ["bad.pth"])
        }
    }

    @Test func interruptionStopsBothWritersCleanly() throws {
        let dir = try Scratch("writer-interrupt")
        let input = dir.file("in.pth")
        try Synthetic.checkpoint(at: input, bigTensors: 2, megabytesEach: 1)
        let ckpt = try Checkpoint(path: input)
        let sd = try ckpt.stateDict()
        Interruption.requested(SIGTERM) {
            #expect(throws: Interrupted(signal: SIGTERM)) {
                try SWTWriter.write(
                    sd, to: dir.file("out.swt"),
                    source: SourceInfo(path: input, bytes: ckpt.fileSize, format: ckpt.format), converter: "test")
            }
            #expect(throws: Interrupted(signal: SIGTERM)) { try PTHWriter.write(sd, to: dir.file("out.pth")) }
        }
        #expect(dir.contents == ["in.pth"])
        #expect(BackgroundScope.liveStartedHere == 0)
        try SWTWriter.write(sd, to: dir.file("out.swt"), converter: "test")
        #expect(dir.contents == ["in.pth", "out.swt"])
    }
}
