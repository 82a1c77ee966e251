/* Shared by the libFuzzer harnesses of tests/fuzz (docs/testing.md).
 *
 * A harness reports a finding by crashing: the sanitizers do it for memory
 * and undefined behaviour, FZ_CHECK for a broken property (an accepted input
 * whose result contradicts the contract, an error without a message). */
#ifndef QS_FUZZ_UTIL_H
#define QS_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "qs_alloc.h"
#include "qs_status.h"

#define FZ_CHECK(cond, ...)                                                       \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "\n%s:%d: property broken: %s\n  ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                         \
            fputc('\n', stderr);                                                  \
            abort();                                                              \
        }                                                                         \
    } while (0)

/* QS_FUZZ_VERBOSE=1 in the environment: print why each input was refused
 * (to see what a corpus exercises, or replay one file). */
static inline int fz_verbose(void)
{
    static int v = -1;
    if (v < 0) v = getenv("QS_FUZZ_VERBOSE") != NULL;
    return v;
}

/* A failed call must say why: a non-empty, terminated message. */
static inline void fz_check_error(qs_status st, const qs_error *e)
{
    if (fz_verbose()) fprintf(stderr, "refused (%d): %.512s\n", (int)st, e->msg);
    FZ_CHECK(st != QS_OK, "status OK treated as failure");
    FZ_CHECK(memchr(e->msg, '\0', sizeof e->msg) != NULL && e->msg[0] != '\0', "status %d without a message",
             (int)st);
}

/* The fuzz input as text parts: part 0 is everything up to the first NUL
 * byte (a whole file), each following NUL-separated part one more string
 * (the --set overrides). All parts live in one malloc'd block, *n_parts of
 * them, at most max_parts; qs_free(parts[0]) releases them. */
static inline char **fz_split(const uint8_t *data, size_t size, int max_parts, int *n_parts)
{
    char *text = qs_malloc(size + 1);
    char **parts = qs_malloc(sizeof(char *) * (size_t)max_parts);
    if (!text || !parts) abort();
    memcpy(text, data, size);
    text[size] = '\0';
    int n = 0;
    char *p = text;
    parts[n++] = p;
    while (n < max_parts) {
        char *z = memchr(p, '\0', (size_t)(text + size - p));
        if (!z || z == text + size) break;
        p = z + 1;
        parts[n++] = p;
    }
    *n_parts = n;
    return parts;
}

/* Structure-aware harnesses take their choices from the input, byte by
 * byte; an exhausted input reads as zeros (the smallest choice). */
typedef struct {
    const uint8_t *p;
    size_t n;
} fz_bytes;

static inline uint32_t fz_u8(fz_bytes *b)
{
    if (!b->n) return 0;
    b->n--;
    return *b->p++;
}

static inline uint32_t fz_u32(fz_bytes *b)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= fz_u8(b) << (8 * i);
    return v;
}

static inline uint64_t fz_u64(fz_bytes *b) { return (uint64_t)fz_u32(b) | (uint64_t)fz_u32(b) << 32; }

/* integer in [lo, hi] (hi - lo < 2^32) */
static inline int64_t fz_range(fz_bytes *b, int64_t lo, int64_t hi)
{
    if (hi <= lo) return lo;
    uint64_t span = (uint64_t)(hi - lo) + 1;
    uint64_t v = span <= 256 ? fz_u8(b) : fz_u32(b);
    return lo + (int64_t)(v % span);
}

/* The bytes behind a pipe, for a loader's stream path: a pipe is not a
 * regular file, so qsim reads it (bounded by what its header declares)
 * instead of mapping it, as for `--input -` or a FIFO. Returns the read end
 * (the caller closes it), with its name in /proc/self/fd in path; -1 when the
 * bytes do not fit the pipe's buffer (64 KiB: written whole before reading,
 * so no second thread is needed). */
static inline int fz_pipe_of(const uint8_t *data, size_t size, char *path, size_t path_size)
{
    if (size > 65536) return -1;
    int p[2];
    if (pipe(p) != 0) abort();
    size_t done = 0;
    while (done < size) {
        ssize_t w = write(p[1], data + done, size - done);
        if (w <= 0) abort();
        done += (size_t)w;
    }
    close(p[1]);
    snprintf(path, path_size, "/proc/self/fd/%d", p[0]);
    return p[0];
}

/* A loader's answer from a pipe (ss, es) against the parser's from memory
 * (st, e): both accept or both refuse, and a refusal has a message. */
static inline void fz_same_answer(qs_status ss, const qs_error *es, qs_status st, const qs_error *e)
{
    if (ss != QS_OK) fz_check_error(ss, es);
    FZ_CHECK((ss == QS_OK) == (st == QS_OK), "from a pipe %s (%s), from memory %s (%s)",
             ss == QS_OK ? "accepted" : "refused", ss == QS_OK ? "" : es->msg, st == QS_OK ? "accepted" : "refused",
             st == QS_OK ? "" : e->msg);
}

#endif
