/* test_wal_util.h: helpers shared by the WAL tests (test_wal*.c): temporary directories,
 * deterministic entries in refcounted buffers, and log comparison. Header-only: each
 * test program is one translation unit. */
#ifndef RR_TESTS_WAL_TEST_UTIL_H
#define RR_TESTS_WAL_TEST_UTIL_H

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ringraft/core.h"
#include "ringraft/wal.h"

typedef struct test_buf {
    rr_buf b;
    uint8_t bytes[];
} test_buf;

static int test_bufs_live;

static void test_buf_release(rr_buf *b)
{
    test_bufs_live--;
    free(b);
}

/* Payload of entry (index, term): deterministic, so any reader can check it. */
static inline uint32_t test_len(rr_index_t index)
{
    return (uint32_t)((index * 37u) % 300u);
}

static inline uint8_t test_byte(rr_index_t index, rr_term_t term, uint32_t k)
{
    return (uint8_t)(index * 131u + term * 17u + k);
}

/* An entry with its own buffer (one reference, owned by the returned entry). */
static inline rr_entry test_entry(rr_index_t index, rr_term_t term)
{
    uint32_t len = test_len(index);
    test_buf *tb = malloc(sizeof(test_buf) + len + 1);
    tb->b = (rr_buf){.refs = 1, .release = test_buf_release};
    test_bufs_live++;
    for (uint32_t k = 0; k < len; k++)
        tb->bytes[k] = test_byte(index, term, k);
    rr_entry e = {.term = term,
                  .index = index,
                  .data = tb->bytes,
                  .buf = &tb->b,
                  .data_len = len,
                  .type = RR_ENTRY_NORMAL};
    if (index % 11 == 0) { /* some nil entries: the nil flag must survive */
        e.data = NULL;
        e.data_len = 0;
    }
    return e;
}

/* Appends entries [lo, hi] at term through the WAL, dropping our references after. */
static inline int test_append(rr_wal *w, rr_index_t lo, rr_index_t hi, rr_term_t term)
{
    size_t n = (size_t)(hi - lo + 1);
    rr_entry *ents = calloc(n, sizeof(rr_entry));
    for (size_t k = 0; k < n; k++)
        ents[k] = test_entry(lo + k, term);
    int rc = rr_wal_append(w, ents, n);
    for (size_t k = 0; k < n; k++)
        rr_entry_clear(&ents[k]);
    free(ents);
    return rc;
}

/* Whether e is the test entry (index, term). */
static inline int test_entry_ok(const rr_entry *e, rr_index_t index, rr_term_t term)
{
    if (e->index != index || e->term != term)
        return 0;
    if (index % 11 == 0)
        return e->data == NULL && e->data_len == 0;
    if (e->data == NULL || e->data_len != test_len(index))
        return 0;
    for (uint32_t k = 0; k < e->data_len; k++)
        if (e->data[k] != test_byte(index, term, k))
            return 0;
    return 1;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline void test_rmdir(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static inline void test_mkdtemp(char *out, size_t cap)
{
    snprintf(out, cap, "/tmp/rr-wal-test-XXXXXX");
    if (mkdtemp(out) == NULL)
        abort();
}

#endif
