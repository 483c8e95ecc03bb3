/*
 * media_part_t: immutable, reference-counted bytes made of one or more pieces.
 *
 * Why pieces: a part's payload lives in the slabs the frames were copied into (the only
 * copy), its moof header is written at close into the part's own allocation, and a whole
 * segment is the gather list of its parts. The edge writes the pieces with one h2o_send, so
 * no byte is copied again per segment or per viewer.
 */
#include <string.h>

#include "aethex/common/alloc.h"
#include "aethex/common/error.h"
#include "hls_internal.h"

static size_t align_up(size_t n)
{
    return (n + sizeof(void *) - 1) & ~(sizeof(void *) - 1);
}

int media_hls__part_new(size_t niov, size_t nown, size_t inline_len, media_part_t **out)
{
    size_t head = align_up(sizeof(media_part_t));
    size_t iov_bytes = align_up(niov * sizeof(ax_slice_t));
    size_t own_bytes = align_up(nown * sizeof(void *));
    media_part_t *p = ax_malloc(head + iov_bytes + own_bytes + inline_len);
    *out = NULL;
    if (p == NULL)
        return AX_ENOMEM;
    memset(p, 0, sizeof(*p));
    p->refs = 1;
    p->niov = niov;
    p->iov = (ax_slice_t *)((char *)p + head);
    p->nown = nown;
    p->own = (void **)((char *)p + head + iov_bytes);
    p->inl = (uint8_t *)p + head + iov_bytes + own_bytes;
    memset(p->iov, 0, niov * sizeof(ax_slice_t));
    memset(p->own, 0, nown * sizeof(void *));
    *out = p;
    return 0;
}

void media_hls__part_seal(media_part_t *p)
{
    p->size = 0;
    for (size_t i = 0; i < p->niov; i++)
        p->size += p->iov[i].len;
}

int media_hls__part_new_composite(media_part_t *const *children, size_t n, media_part_t **out)
{
    size_t niov = 0;
    for (size_t i = 0; i < n; i++)
        niov += children[i]->niov;
    size_t head = align_up(sizeof(media_part_t));
    size_t iov_bytes = align_up(niov * sizeof(ax_slice_t));
    media_part_t *p = ax_malloc(head + iov_bytes + n * sizeof(media_part_t *));
    *out = NULL;
    if (p == NULL)
        return AX_ENOMEM;
    memset(p, 0, sizeof(*p));
    p->refs = 1;
    p->niov = niov;
    p->iov = (ax_slice_t *)((char *)p + head);
    p->nchild = n;
    p->child = (media_part_t **)((char *)p + head + iov_bytes);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        p->child[i] = media_part_ref(children[i]);
        for (size_t j = 0; j < children[i]->niov; j++)
            p->iov[k++] = children[i]->iov[j];
        p->size += children[i]->size;
    }
    *out = p;
    return 0;
}

media_part_t *media_part_ref(media_part_t *p)
{
    AX_PRE(p != NULL);
    __atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
    return p;
}

void media_part_unref(media_part_t *p)
{
    if (p == NULL)
        return;
    int left = __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL);
    AX_ASSERT(left >= 0);
    if (left > 0)
        return;
    for (size_t i = 0; i < p->nown; i++)
        ax_free(p->own[i]);
    for (size_t i = 0; i < p->nchild; i++)
        media_part_unref(p->child[i]);
    ax_free(p);
}

size_t media_part_size(const media_part_t *p)
{
    return p->size;
}

size_t media_part_iov_count(const media_part_t *p)
{
    return p->niov;
}

ax_slice_t media_part_iov(const media_part_t *p, size_t i)
{
    AX_PRE(i < p->niov);
    return p->iov[i];
}

void media_part_copy_out(const media_part_t *p, uint8_t *dst)
{
    for (size_t i = 0; i < p->niov; i++) {
        if (p->iov[i].len > 0)
            memcpy(dst, p->iov[i].base, p->iov[i].len);
        dst += p->iov[i].len;
    }
}
