/*
 * The allocator every library module (media/, proto/, the dqlite client) goes through.
 *
 * Library code calls ax_malloc()/ax_calloc()/ax_realloc()/ax_free() and returns AX_ENOMEM
 * when they fail. The edge and coordinator binaries may call ax_xmalloc(), which logs and
 * aborts: that is the only place we abort on allocation failure.
 *
 * Tests swap the allocator with ax_replace_allocator() (as uv_replace_allocator does), for
 * example to route through cmocka's test_malloc or to fail the n-th allocation.
 */
#ifndef AETHEX_COMMON_ALLOC_H
#define AETHEX_COMMON_ALLOC_H

#include <stddef.h>

typedef void *(*ax_malloc_func)(size_t size);
typedef void *(*ax_realloc_func)(void *ptr, size_t size);
typedef void *(*ax_calloc_func)(size_t count, size_t size);
typedef void (*ax_free_func)(void *ptr);

/* Replaces the allocator process-wide. Call before any allocation, from one thread.
 * Returns 0, or AX_EINVAL if any function is NULL. */
int ax_replace_allocator(ax_malloc_func m, ax_realloc_func r, ax_calloc_func c, ax_free_func f);

/* Restores libc's allocator. */
void ax_reset_allocator(void);

void *ax_malloc(size_t size);
void *ax_calloc(size_t count, size_t size);
void *ax_realloc(void *ptr, size_t size);
void ax_free(void *ptr);

/* Copies `len` bytes of `s` into a new NUL-terminated string, or NULL on failure. */
char *ax_strndup(const char *s, size_t len);

/* As ax_malloc/ax_calloc/ax_realloc but logs and aborts on failure. Binaries only. */
void *ax_xmalloc(size_t size);
void *ax_xcalloc(size_t count, size_t size);
void *ax_xrealloc(void *ptr, size_t size);

/*
 * Fault injection for out-of-memory sweeps in tests: after `n` more successful
 * allocations, every allocation fails until ax_fail_after(-1). Counts calls through
 * ax_malloc/ax_calloc/ax_realloc only. Not thread-safe; tests only.
 */
void ax_fail_after(long n);

#endif /* AETHEX_COMMON_ALLOC_H */
