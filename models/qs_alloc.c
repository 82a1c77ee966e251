/* Allocation through one replaceable function (models/qs_alloc.h).
 *
 * Every block carries a header just before the pointer handed out: the
 * allocator function and ud that made it, the byte count it was given, and
 * where the header sits from the allocator's pointer (aligned blocks start
 * later in theirs). So qs_free needs no size from its caller, yet the
 * allocation function is always told the exact osize, as lua_Alloc's
 * contract promises, and a block goes back to the allocator that made it. */
#include "qs_alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef union {
    struct {
        qs_alloc_fn fn;
        void *ud;
        size_t total;  /* bytes the allocator gave (header included) */
        size_t offset; /* from the allocator's pointer to the handed-out one */
    } h;
    max_align_t align; /* the handed-out pointer keeps malloc's alignment */
} block_header;

#define HEADER sizeof(block_header)

static void *default_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    (void)osize;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, nsize);
}

static qs_alloc_fn g_fn = default_alloc;
static void *g_ud;

void qs_set_allocator(qs_alloc_fn fn, void *ud)
{
    g_fn = fn ? fn : default_alloc;
    g_ud = fn ? ud : NULL;
}

void qs_get_allocator(qs_alloc_fn *fn, void **ud)
{
    if (fn) *fn = g_fn;
    if (ud) *ud = g_ud;
}

static block_header *header_of(void *p) { return (block_header *)((char *)p - HEADER); }

void *qs_malloc(size_t n)
{
    if (n > SIZE_MAX - HEADER) return NULL;
    qs_alloc_fn fn = g_fn;
    void *ud = g_ud;
    block_header *b = fn(ud, NULL, 0, HEADER + n);
    if (!b) return NULL;
    b->h.fn = fn;
    b->h.ud = ud;
    b->h.total = HEADER + n;
    b->h.offset = 0;
    return b + 1;
}

void *qs_calloc(size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size) return NULL;
    void *p = qs_malloc(count * size);
    if (p) memset(p, 0, count * size);
    return p;
}

void qs_free(void *p)
{
    if (!p) return;
    block_header *b = header_of(p);
    char *raw = (char *)b - b->h.offset;
    (void)b->h.fn(b->h.ud, raw, b->h.total, 0);
}

void *qs_realloc(void *p, size_t n)
{
    if (!p) return qs_malloc(n);
    if (n > SIZE_MAX - HEADER) return NULL;
    block_header *b = header_of(p);
    if (b->h.offset != 0) { /* an aligned block: move it to a plain one */
        size_t had = b->h.total - b->h.offset - HEADER;
        void *q = qs_malloc(n);
        if (!q) return NULL;
        memcpy(q, p, had < n ? had : n);
        qs_free(p);
        return q;
    }
    block_header *nb = b->h.fn(b->h.ud, b, b->h.total, HEADER + n);
    if (!nb) return NULL;
    nb->h.total = HEADER + n;
    return nb + 1;
}

char *qs_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = qs_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

void *qs_alloc_aligned(size_t alignment, size_t n)
{
    if (alignment <= _Alignof(max_align_t)) return qs_malloc(n);
    if (alignment & (alignment - 1)) return NULL;
    if (n > SIZE_MAX - HEADER - alignment) return NULL;
    const size_t total = HEADER + alignment + n;
    qs_alloc_fn fn = g_fn;
    void *ud = g_ud;
    char *raw = fn(ud, NULL, 0, total);
    if (!raw) return NULL;
    uintptr_t user = ((uintptr_t)raw + HEADER + alignment - 1) & ~(uintptr_t)(alignment - 1);
    block_header *b = header_of((void *)user);
    b->h.fn = fn;
    b->h.ud = ud;
    b->h.total = total;
    b->h.offset = (size_t)((char *)b - raw);
    return (void *)user;
}
