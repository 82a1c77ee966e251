/* The one way qsim's libraries take and give back heap memory.
 *
 * Every allocation of models/, compiler/, sim/, traces/ (qsim's own code),
 * api/ and the report writer goes through one allocation function, in the
 * style of Lua's lua_Alloc, so an embedding application can account for,
 * limit or fail allocations (tests/test_oom.c fails the Nth one), and so a
 * test can do so under any compiler, sanitizer or linker:
 *
 *     void *fn(void *ud, void *ptr, size_t osize, size_t nsize);
 *
 *   ptr == NULL, nsize > 0:  allocate nsize bytes (osize is 0);
 *   ptr != NULL, nsize == 0: free ptr, a block of osize bytes; return NULL;
 *   ptr != NULL, nsize > 0:  resize ptr from osize to nsize bytes, keeping
 *                            the contents as realloc does.
 * It returns NULL when it cannot allocate (and then leaves ptr as it was);
 * a block must be aligned for any object (malloc's alignment). osize is
 * always the exact nsize the block was last given, and qsim never asks for
 * 0 bytes. Each block records the function and ud that allocated it, and is
 * given back to that same pair, so changing the allocator while blocks are
 * alive is safe.
 *
 * The allocator is process-wide: qs_set_allocator (qsim_set_allocator in the
 * public API) must not run while another thread is inside qsim. */
#ifndef QS_ALLOC_H
#define QS_ALLOC_H

#include <stddef.h>

typedef void *(*qs_alloc_fn)(void *ud, void *ptr, size_t osize, size_t nsize);

/* fn NULL: back to the default (the C library's realloc and free). */
void qs_set_allocator(qs_alloc_fn fn, void *ud);
void qs_get_allocator(qs_alloc_fn *fn, void **ud);

/* malloc, calloc (count * size overflow-checked), realloc, free, strdup of
 * the current allocator. A block from these must be freed with qs_free. */
void *qs_malloc(size_t n);
void *qs_calloc(size_t count, size_t size);
void *qs_realloc(void *p, size_t n);
void qs_free(void *p);
char *qs_strdup(const char *s);

/* n bytes at a multiple of alignment (a power of two), freed with qs_free
 * (the allocator is asked for n plus the alignment and keeps the rest). */
void *qs_alloc_aligned(size_t alignment, size_t n);

#endif
