import Lifetime

#if canImport(Glibc)
    import Glibc
#endif

/// Checks made before any work on the files a command will write: an output never replaces one of the
/// command's inputs, and its directory can be written, so that a long run does not fail at its end.
public enum OutputGuard {
    /// A file a command reads or writes, with the flag or argument that named it (for messages).
    public struct Named: Sendable {
        public var role: String
        public var path: String
        public init(_ role: String, _ path: String) {
            self.role = role
            self.path = path
        }
    }

    /// Thrown (`CheckpointError.Kind.io`, naming the output) when `output` is the same file as one of
    /// `inputs`: the same path, a path through a symbolic link to it, or a hard link to it (same device
    /// and inode). Writing it would replace that input. Also thrown when `output` is a directory.
    public static func refuseOverwrite(_ output: Named, inputs: [Named]) throws {
        var target = stat()
        guard stat(output.path, &target) == 0 else { return }  // nothing there yet: nothing to lose
        if (target.st_mode & S_IFMT) == S_IFDIR {
            throw CheckpointError(.io("\(output.role) \(output.path) is a directory; give a file name"))
        }
        for input in inputs {
            var source = stat()
            guard stat(input.path, &source) == 0, source.st_dev == target.st_dev, source.st_ino == target.st_ino else {
                continue
            }
            let how: String
            if input.path == output.path {
                how = "the same path"
            } else if realPath(input.path) == realPath(output.path) {
                how = "the same file by another path or a symbolic link"
            } else {
                how = "a hard link to the same file"
            }
            throw CheckpointError(
                .io(
                    "refusing to write \(output.role) \(output.path): it is \(input.role) \(input.path) (\(how)), "
                        + "which writing would replace; choose another output"))
        }
    }

    /// Thrown (`.io`) when a file cannot be created in `path`'s directory (it does not exist, is not a
    /// directory, or is not writable): found by creating and removing a probe file there.
    public static func checkWritable(_ output: Named) throws {
        let (probe, dir) = OutputFile.hiddenSibling(of: output.path, suffix: ".probe-\(getpid())")
        // A signal between open and unlink removes the probe too.
        let registration = TemporaryFileRegistration(path: probe)
        defer { registration.end() }
        let fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            throw CheckpointError(
                .io("cannot write \(output.role) \(output.path): \(dir.isEmpty ? "." : dir): \(reason)"))
        }
        close(fd)
        unlink(probe)
    }

    private static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }
}
