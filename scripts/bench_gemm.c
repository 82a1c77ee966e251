/* Reference point for scripts/bench: a plain int8 x int8 -> int32 GEMM.
 *
 * Reads GEMM shapes "M N K groups" (one per line, '#' comments allowed) from a
 * file or stdin and, for each shape and group, times
 *     C[m][n] = sum_k A[m][k] * B[n][k]
 * as a straightforward triple loop with the k loop innermost over contiguous
 * int8 rows (B stored transposed), which the compiler vectorizes. No im2col,
 * no tiling, no threads: this is what "just doing the arithmetic" costs on
 * one core. Each shape runs `reps` times; the fastest repetition counts.
 *
 *   bench_gemm [SHAPES|-] [reps] [cpu]
 * prints one line: "gemm_seconds S macs N gmacs_per_s G checksum X". With "cpu" the
 * times are the process's CPU time (CLOCK_PROCESS_CPUTIME_ID) instead of wall time: the
 * fair figure on a machine shared with other jobs, set against qsim's user + sys.
 *
 * Build: cc -std=c11 -O2 -D_POSIX_C_SOURCE=200809L scripts/bench_gemm.c -o bench_gemm */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static clockid_t clock_used = CLOCK_MONOTONIC;

static double now(void)
{
    struct timespec ts;
    clock_gettime(clock_used, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint32_t rng = 12345u;
static int8_t rand8(void)
{
    rng = rng * 1664525u + 1013904223u;
    return (int8_t)(rng >> 24);
}

/* The GEMM being timed. noinline so that the loop is compiled once, for
 * unknown sizes, like the simulator's. */
__attribute__((noinline)) static void gemm_i8(const int8_t *A, const int8_t *B, int32_t *C, int M, int N, int K)
{
    for (int m = 0; m < M; m++) {
        const int8_t *a = A + (size_t)m * K;
        for (int n = 0; n < N; n++) {
            const int8_t *b = B + (size_t)n * K;
            int32_t s = 0;
            for (int k = 0; k < K; k++) s += (int32_t)a[k] * (int32_t)b[k];
            C[(size_t)m * N + n] = s;
        }
    }
}

int main(int argc, char **argv)
{
    FILE *f = stdin;
    if (argc > 1 && strcmp(argv[1], "-") != 0) {
        f = fopen(argv[1], "r");
        if (!f) {
            perror(argv[1]);
            return 1;
        }
    }
    int reps = argc > 2 ? atoi(argv[2]) : 3;
    if (reps < 1) reps = 1;
    if (argc > 3 && strcmp(argv[3], "cpu") == 0) clock_used = CLOCK_PROCESS_CPUTIME_ID;
    double total = 0;
    long long macs = 0;
    int64_t checksum = 0;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        long long M, N, K, G;
        if (line[0] == '#' || sscanf(line, "%lld %lld %lld %lld", &M, &N, &K, &G) != 4) continue;
        if (M <= 0 || N <= 0 || K <= 0 || G <= 0) continue;
        int8_t *A = malloc((size_t)(M * K));
        int8_t *B = malloc((size_t)(N * K));
        int32_t *C = malloc(sizeof(int32_t) * (size_t)(M * N));
        if (!A || !B || !C) {
            fprintf(stderr, "bench_gemm: out of memory for %lld x %lld x %lld\n", M, N, K);
            return 1;
        }
        for (long long i = 0; i < M * K; i++) A[i] = rand8();
        for (long long i = 0; i < N * K; i++) B[i] = rand8();
        for (long long g = 0; g < G; g++) {
            double best = 1e30;
            for (int r = 0; r < reps; r++) {
                double t0 = now();
                gemm_i8(A, B, C, (int)M, (int)N, (int)K);
                double t = now() - t0;
                if (t < best) best = t;
            }
            total += best;
            macs += M * N * K;
            for (long long i = 0; i < M * N; i += 7) checksum += C[i];
        }
        free(A);
        free(B);
        free(C);
    }
    if (f != stdin) fclose(f);
    printf("gemm_seconds %.6f macs %lld gmacs_per_s %.3f checksum %lld\n", total, macs,
           total > 0 ? (double)macs / total * 1e-9 : 0.0, (long long)checksum);
    return 0;
}
