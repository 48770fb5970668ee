#include "clifetime.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum { SLOTS = 64, PATH_BYTES = 4096 };
enum { FREE = 0, WRITING = 1, READY = 2 };

static atomic_int pending = 0;
static atomic_int cooperating = 0;
static atomic_int installed = 0;
static struct {
    atomic_int state;
    char path[PATH_BYTES];
} temporaries[SLOTS];

static void remove_temporaries(void) {
    for (int i = 0; i < SLOTS; i++) {
        if (atomic_load(&temporaries[i].state) == READY) unlink(temporaries[i].path);
    }
}

static void handler(int signal) {
    int expected = 0;
    if (atomic_load(&cooperating) > 0 && atomic_compare_exchange_strong(&pending, &expected, signal)) return;
    remove_temporaries();
    _exit(128 + signal);
}

void pth2swt_interrupt_install(void) {
    int expected = 0;
    if (!atomic_compare_exchange_strong(&installed, &expected, 1)) return;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = handler;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    sigaddset(&action.sa_mask, SIGINT);
    sigaddset(&action.sa_mask, SIGTERM);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    // A parent may have started us with these blocked (a blocked mask is inherited through exec; some
    // process launchers spawn that way): unblock them on this thread, which threads started later copy.
    sigset_t ours;
    sigemptyset(&ours);
    sigaddset(&ours, SIGINT);
    sigaddset(&ours, SIGTERM);
    pthread_sigmask(SIG_UNBLOCK, &ours, NULL);
}

static _Thread_local int pending_here = 0;

int pth2swt_interrupt_pending(void) {
    int p = atomic_load_explicit(&pending, memory_order_relaxed);
    return p != 0 ? p : pending_here;
}

void pth2swt_interrupt_request_here(int signal) { pending_here = signal; }

void pth2swt_interrupt_request(int signal) {
    int expected = 0;
    atomic_compare_exchange_strong(&pending, &expected, signal);
}

void pth2swt_interrupt_clear(void) { atomic_store(&pending, 0); }

void pth2swt_cooperate_begin(void) { atomic_fetch_add(&cooperating, 1); }

void pth2swt_cooperate_end(void) { atomic_fetch_sub(&cooperating, 1); }

int pth2swt_temporary_add(const char *path) {
    size_t n = strlen(path);
    if (n >= PATH_BYTES) return -1;
    for (int i = 0; i < SLOTS; i++) {
        int expected = FREE;
        if (atomic_compare_exchange_strong(&temporaries[i].state, &expected, WRITING)) {
            memcpy(temporaries[i].path, path, n + 1);
            atomic_store(&temporaries[i].state, READY);
            return i;
        }
    }
    return -1;
}

void pth2swt_temporary_remove(int slot) {
    if (slot >= 0 && slot < SLOTS) atomic_store(&temporaries[slot].state, FREE);
}

int pth2swt_temporary_contains(const char *path) {
    for (int i = 0; i < SLOTS; i++) {
        if (atomic_load(&temporaries[i].state) == READY && strcmp(temporaries[i].path, path) == 0) return 1;
    }
    return 0;
}

void pth2swt_stdout_line_buffered(void) { setvbuf(stdout, NULL, _IOLBF, 0); }
