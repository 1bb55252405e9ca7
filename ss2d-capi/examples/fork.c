/* Threads and fork() with the ss2d C API.
 *
 *     cc -std=c11 -I ss2d-capi/include ss2d-capi/examples/fork.c \
 *        target/release/libss2d_capi.a -lpthread -ldl -lm -o fork && ./fork
 *
 * 1. A selective scan on the library pool (n_threads = 2) and on the calling thread: the same
 *    bits.
 * 2. Thread bound: after calls with n_threads = 2 .. 32 (twice over), the process has at most
 *    1 + min(32, CPUs) threads (one library pool, never larger than the largest request).
 * 3. fork(): the child calls again with n_threads = 2 and 4 and must finish (it is killed by
 *    alarm() after 20 s otherwise) with the parent's bits; the parent's own calls still work
 *    after the fork.
 * Prints one line per check; exit status 0 when every check passes.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ss2d.h"

enum { B = 2, D = 48, L = 300, N = 16 };

static float u[B * D * L], delta[B * D * L], A[D * N], Bm[B * N * L], Cm[B * N * L];

static unsigned long long lcg = 12345;
static float uniform(float lo, float hi) {
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return lo + (hi - lo) * (float)(lcg >> 40) / (float)(1ULL << 24);
}

/* The scan with `threads` threads of the library pool (<= 1: the calling thread). */
static int scan(size_t threads, float *out) {
    ss2d_const_tensor tu = {u, 3, {B, D, L}, {D * L, L, 1}};
    ss2d_const_tensor td = {delta, 3, {B, D, L}, {D * L, L, 1}};
    ss2d_const_tensor ta = {A, 2, {D, N}, {N, 1}};
    ss2d_const_tensor tb = {Bm, 3, {B, N, L}, {N * L, L, 1}};
    ss2d_const_tensor tc = {Cm, 3, {B, N, L}, {N * L, L, 1}};
    ss2d_tensor to = {out, 3, {B, D, L}, {D * L, L, 1}};
    ss2d_scan_inputs in;
    memset(&in, 0, sizeof in);
    in.u = &tu;
    in.delta = &td;
    in.A = &ta;
    in.B = &tb;
    in.C = &tc;
    in.delta_softplus = 1;
    ss2d_exec ex;
    memset(&ex, 0, sizeof ex);
    ex.n_threads = threads;
    int s = ss2d_selective_scan(&in, &to, NULL, &ex);
    if (s != SS2D_OK)
        fprintf(stderr, "ss2d_selective_scan(n_threads=%zu): %s: %s\n", threads,
                ss2d_status_name(s), ss2d_last_error());
    return s;
}

/* Threads of this process (entries of /proc/self/task), or -1 where there is no /proc. */
static int count_threads(void) {
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static float want[B * D * L], got[B * D * L];

static int same(const float *a, const float *b) { return memcmp(a, b, sizeof want) == 0; }

int main(void) {
    for (size_t i = 0; i < B * D * L; i++) {
        u[i] = uniform(-1, 1);
        delta[i] = uniform(-3, 0.5f);
    }
    for (size_t i = 0; i < D * N; i++)
        A[i] = uniform(-3, -0.1f);
    for (size_t i = 0; i < B * N * L; i++) {
        Bm[i] = uniform(-1, 1);
        Cm[i] = uniform(-1, 1);
    }
    int failures = 0;

    /* 1. Pool and calling thread agree. */
    if (scan(1, want) != SS2D_OK || scan(2, got) != SS2D_OK || !same(want, got)) {
        printf("FAIL threads: n_threads=2 differs from the calling thread\n");
        failures++;
    } else {
        printf("ok   threads: n_threads=2 == sequential (bitwise)\n");
    }

    /* 2. Bounded threads. */
    int base = count_threads();
    if (base < 0) {
        printf("FAIL thread bound: /proc/self/task unreadable\n");
        failures++;
    } else {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        int cap = (int)(cpus > 0 && cpus < 32 ? cpus : 32);
        int worst = 0;
        for (int round = 0; round < 2; round++)
            for (size_t t = 2; t <= 32; t++) {
                if (scan(t, got) != SS2D_OK || !same(want, got)) {
                    printf("FAIL thread bound: n_threads=%zu gave other bits\n", t);
                    failures++;
                }
                int now = count_threads();
                if (now > worst)
                    worst = now;
            }
        /* A replaced pool's threads exit asynchronously once its calls returned. */
        int now = count_threads();
        for (int i = 0; i < 100 && now > base + cap; i++) {
            sleep_ms(50);
            now = count_threads();
        }
        printf("%s thread bound: %d threads before, %d after calls with n_threads=2..32 (x2), "
               "peak %d, limit %d + %d\n",
               now <= base + cap ? "ok  " : "FAIL", base, now, worst, base, cap);
        if (now > base + cap)
            failures++;
    }

    /* 3. fork(): the child's threaded calls finish with the same bits. */
    if (scan(2, got) != SS2D_OK)
        failures++;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        alarm(20); /* a hang is a failure, not a stuck test */
        int bad = 0;
        size_t counts[] = {2, 4, 2};
        for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
            memset(got, 0, sizeof got);
            if (scan(counts[i], got) != SS2D_OK || !same(want, got)) {
                printf("FAIL fork: the child's call with n_threads=%zu differs\n", counts[i]);
                bad = 1;
            }
        }
        fflush(stdout);
        _exit(bad);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) {
        perror("waitpid");
        return 1;
    }
    if (WIFSIGNALED(status)) {
        printf("FAIL fork: the child died of signal %d%s\n", WTERMSIG(status),
               WTERMSIG(status) == SIGALRM ? " (SIGALRM: it hung)" : "");
        failures++;
    } else if (WEXITSTATUS(status) != 0) {
        printf("FAIL fork: the child's results differ\n");
        failures++;
    } else {
        printf("ok   fork: the child's calls with n_threads=2, 4, 2 finished, same bits\n");
    }
    memset(got, 0, sizeof got);
    if (scan(2, got) != SS2D_OK || !same(want, got)) {
        printf("FAIL fork: the parent's call after the fork differs\n");
        failures++;
    } else {
        printf("ok   fork: the parent's call after the fork works\n");
    }
    printf("fork example: %d failures\n", failures);
    return failures ? 1 : 0;
}
