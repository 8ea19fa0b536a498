/* A system-call-heavy loop for the seccomp supervision benchmark.
 *
 * Usage: loop CALLS ROUNDS
 * Makes CALLS getppid system calls per round, ROUNDS times, and prints the median cost of one
 * call in nanoseconds. getppid does almost nothing in the kernel, so the filter's share of each
 * call is as large as it gets. The result of the last call is printed too, so that a filter that
 * denies getppid is visible. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: loop CALLS ROUNDS\n");
        return 2;
    }
    long calls = atol(argv[1]);
    int rounds = atoi(argv[2]);
    if (calls <= 0 || rounds <= 0 || rounds > 1000) {
        fprintf(stderr, "loop: CALLS and ROUNDS must be positive, ROUNDS at most 1000\n");
        return 2;
    }

    double per_call[1000];
    long result = 0;
    int error = 0;
    for (int round = 0; round < rounds; round++) {
        double start = now_ns();
        for (long i = 0; i < calls; i++) {
            result = syscall(SYS_getppid);
        }
        per_call[round] = (now_ns() - start) / (double)calls;
        error = result < 0 ? errno : 0;
    }
    qsort(per_call, (size_t)rounds, sizeof per_call[0], compare);
    printf("median_ns_per_call %.1f\n", per_call[rounds / 2]);
    printf("last_result %s\n", error ? strerror(error) : "ok");
    return 0;
}
