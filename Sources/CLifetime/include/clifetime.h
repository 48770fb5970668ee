// The async-signal-safe half of Lifetime: SIGINT/SIGTERM handlers and the table of temporary files
// they remove. Everything a handler touches is a lock-free atomic or a fixed static buffer.
#ifndef PTH2SWT_CLIFETIME_H
#define PTH2SWT_CLIFETIME_H

#ifdef __cplusplus
extern "C" {
#endif

/// Installs the handlers for SIGINT and SIGTERM (SA_RESTART) and unblocks both on the calling thread.
/// Call it before starting threads. Idempotent.
///
/// A signal that arrives while some code is `cooperating` (it calls pth2swt_interrupt_pending often)
/// is recorded and nothing else happens: that code unwinds, removes its temporaries, joins its
/// threads and exits. A signal that arrives while nothing cooperates, or a second signal, removes
/// every registered temporary file and ends the process at once with _exit(128 + signal).
void pth2swt_interrupt_install(void);
/// The first signal recorded since the last clear (SIGINT, SIGTERM), or 0; else one requested on the
/// calling thread only (pth2swt_interrupt_request_here), or 0.
int pth2swt_interrupt_pending(void);
/// Records `signal` for the calling thread alone (0 clears it): tests interrupt their own work while
/// other work in the process goes on.
void pth2swt_interrupt_request_here(int signal);
/// Records `signal` as if it had arrived (a test, or an embedding program cancelling the work).
void pth2swt_interrupt_request(int signal);
void pth2swt_interrupt_clear(void);
/// Brackets code that checks for interruption: while the count is above zero the first signal is only
/// recorded.
void pth2swt_cooperate_begin(void);
void pth2swt_cooperate_end(void);

/// Makes stdout line-buffered (setvbuf _IOLBF): each line reaches a file or pipe when it is printed.
void pth2swt_stdout_line_buffered(void);

/// Registers a temporary file for removal if the process is ended by a signal. Returns a slot for
/// pth2swt_temporary_remove, or -1 when the path is too long or every slot is taken.
int pth2swt_temporary_add(const char *path);
/// 1 when `path` is registered now.
int pth2swt_temporary_contains(const char *path);
void pth2swt_temporary_remove(int slot);

#ifdef __cplusplus
}
#endif
#endif
