#include "aethex/common/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aethex/common/error.h"

static ax_malloc_func cur_malloc = malloc;
static ax_realloc_func cur_realloc = realloc;
static ax_calloc_func cur_calloc = calloc;
static ax_free_func cur_free = free;
static long fail_countdown = -1;

int ax_replace_allocator(ax_malloc_func m, ax_realloc_func r, ax_calloc_func c, ax_free_func f)
{
    if (m == NULL || r == NULL || c == NULL || f == NULL)
        return AX_EINVAL;
    cur_malloc = m;
    cur_realloc = r;
    cur_calloc = c;
    cur_free = f;
    return 0;
}

void ax_reset_allocator(void)
{
    cur_malloc = malloc;
    cur_realloc = realloc;
    cur_calloc = calloc;
    cur_free = free;
}

void ax_fail_after(long n)
{
    fail_countdown = n;
}

/* Returns nonzero when the injected fault says this allocation must fail. */
static int injected_failure(void)
{
    if (fail_countdown < 0)
        return 0;
    if (fail_countdown == 0)
        return 1;
    fail_countdown--;
    return 0;
}

void *ax_malloc(size_t size)
{
    if (injected_failure())
        return NULL;
    return cur_malloc(size == 0 ? 1 : size);
}

void *ax_calloc(size_t count, size_t size)
{
    if (injected_failure())
        return NULL;
    if (count == 0 || size == 0)
        count = size = 1;
    return cur_calloc(count, size);
}

void *ax_realloc(void *ptr, size_t size)
{
    if (injected_failure())
        return NULL;
    return cur_realloc(ptr, size == 0 ? 1 : size);
}

void ax_free(void *ptr)
{
    if (ptr != NULL)
        cur_free(ptr);
}

char *ax_strndup(const char *s, size_t len)
{
    char *d = ax_malloc(len + 1);
    if (d == NULL)
        return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

static void out_of_memory(size_t size)
{
    fprintf(stderr, "fatal: out of memory allocating %zu bytes\n", size);
    abort();
}

void *ax_xmalloc(size_t size)
{
    void *p = ax_malloc(size);
    if (p == NULL)
        out_of_memory(size);
    return p;
}

void *ax_xcalloc(size_t count, size_t size)
{
    void *p = ax_calloc(count, size);
    if (p == NULL)
        out_of_memory(count * size);
    return p;
}

void *ax_xrealloc(void *ptr, size_t size)
{
    void *p = ax_realloc(ptr, size);
    if (p == NULL)
        out_of_memory(size);
    return p;
}
