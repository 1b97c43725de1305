/* memstorage.c: the in-memory Storage (etcd's MemoryStorage). See ringraft/core.h.
 *
 * Where etcd panics on a caller's out-of-range request (Entries beyond the last index,
 * Compact or CreateSnapshot past the last index, Append leaving a gap), this storage
 * returns RR_ERR_UNAVAILABLE as core.h documents, and leaves the decision to the caller. */
#include "ringraft/core.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "entry_internal.h"
#include "ringraft/assert.h"

struct rr_memstorage {
    rr_hard_state hard_state;
    /* The latest snapshot; owns one reference on snapshot.buf. Index 0 until one is
     * applied or created (a bootstrap snapshot may carry only a ConfState). */
    rr_snapshot snapshot;
    /* The log. ents.v[0] is a dummy holding the (index, term) of the entry the log starts
     * after — the snapshot's — and no data; ents.v[i].index == ents.v[0].index + i.
     * Invariant: ents.n >= 1, so first = v[0].index + 1 and last = v[0].index + n - 1. */
    rr_entry_vec ents;
};

static rr_index_t offset_of(const rr_memstorage *ms)
{
    return ms->ents.v[0].index;
}

static rr_index_t last_of(const rr_memstorage *ms)
{
    return offset_of(ms) + ms->ents.n - 1;
}

/* Replaces the whole log by a dummy at (index, term). Needs no allocation: n >= 1. */
static void reset_to_dummy(rr_memstorage *ms, rr_index_t index, rr_term_t term)
{
    rr_entry_vec_truncate(&ms->ents, 0);
    ms->ents.v[0] = (rr_entry){.index = index, .term = term};
    ms->ents.n = 1;
}

rr_memstorage *rr_memstorage_new(void)
{
    rr_memstorage *ms = calloc(1, sizeof(*ms));
    if (ms == NULL)
        return NULL;
    const rr_entry dummy = {0}; /* starting from scratch: a dummy at index 0, term 0 */
    if (rr_entry_vec_push(&ms->ents, &dummy) != 0) {
        free(ms);
        return NULL;
    }
    return ms;
}

void rr_memstorage_free(rr_memstorage *ms)
{
    if (ms == NULL)
        return;
    rr_entry_vec_free(&ms->ents);
    rr_snapshot_clear(&ms->snapshot);
    free(ms);
}

void rr_memstorage_set_hard_state(rr_memstorage *ms, const rr_hard_state *hs)
{
    ms->hard_state = *hs;
}

/* ---- the rr_storage_ops ---- */

static int ms_initial_state(void *ctx, rr_hard_state *hs, rr_conf_state *cs)
{
    const rr_memstorage *ms = ctx;
    *hs = ms->hard_state;
    *cs = ms->snapshot.meta.conf_state;
    return 0;
}

static int ms_entries(void *ctx, rr_index_t lo, rr_index_t hi, uint64_t max_bytes,
                      rr_entry_vec *out)
{
    const rr_memstorage *ms = ctx;
    rr_index_t offset = offset_of(ms);
    RR_ASSERT(lo <= hi);
    if (lo <= offset)
        return RR_ERR_COMPACTED;
    if (hi > last_of(ms) + 1)
        return RR_ERR_UNAVAILABLE;
    if (ms->ents.n == 1)
        return RR_ERR_UNAVAILABLE; /* only the dummy: nothing is available */

    /* The longest prefix within max_bytes, but at least one entry (etcd's limitSize). */
    const rr_entry *from = &ms->ents.v[lo - offset];
    uint64_t size_bytes = 0;
    size_t take = rr_entries_within(from, (size_t)(hi - lo), 0, &size_bytes, max_bytes);
    return rr_entry_vec_push_n(out, from, take);
}

static int ms_term(void *ctx, rr_index_t i, rr_term_t *term)
{
    const rr_memstorage *ms = ctx;
    rr_index_t offset = offset_of(ms);
    *term = 0;
    if (i < offset)
        return RR_ERR_COMPACTED;
    if (i - offset >= ms->ents.n)
        return RR_ERR_UNAVAILABLE;
    *term = ms->ents.v[i - offset].term;
    return 0;
}

static rr_index_t ms_first_index(void *ctx)
{
    return offset_of(ctx) + 1;
}

static rr_index_t ms_last_index(void *ctx)
{
    return last_of(ctx);
}

static int ms_snapshot(void *ctx, rr_snapshot *out)
{
    const rr_memstorage *ms = ctx;
    rr_snapshot_copy(out, &ms->snapshot);
    return 0;
}

static const rr_storage_ops memstorage_ops = {
    .initial_state = ms_initial_state,
    .entries = ms_entries,
    .term = ms_term,
    .first_index = ms_first_index,
    .last_index = ms_last_index,
    .snapshot = ms_snapshot,
};

rr_storage rr_memstorage_storage(rr_memstorage *ms)
{
    return (rr_storage){.ops = &memstorage_ops, .ctx = ms};
}

/* ---- writes ---- */

int rr_memstorage_apply_snapshot(rr_memstorage *ms, const rr_snapshot *snap)
{
    /* An index-0 snapshot is a bootstrap ConfState: any snapshot may replace it. */
    rr_index_t cur = ms->snapshot.meta.index;
    if (cur != 0 && cur >= snap->meta.index)
        return RR_ERR_SNAP_OUT_OF_DATE;

    rr_snapshot copy;
    rr_snapshot_copy(&copy, snap); /* reference first: snap may share our buffer */
    rr_snapshot_clear(&ms->snapshot);
    ms->snapshot = copy;
    reset_to_dummy(ms, snap->meta.index, snap->meta.term);
    return 0;
}

int rr_memstorage_create_snapshot(rr_memstorage *ms, rr_index_t i, const rr_conf_state *cs,
                                  const uint8_t *data, uint64_t len, rr_buf *buf)
{
    if (i <= ms->snapshot.meta.index)
        return RR_ERR_SNAP_OUT_OF_DATE;
    if (i > last_of(ms))
        return RR_ERR_UNAVAILABLE;

    rr_snapshot *s = &ms->snapshot;
    s->meta.index = i;
    s->meta.term = ms->ents.v[i - offset_of(ms)].term;
    if (cs != NULL) /* etcd: no ConfState keeps the previous one */
        s->meta.conf_state = *cs;
    rr_buf_ref(buf); /* before dropping the old one: they may be the same buffer */
    rr_buf_unref(s->buf);
    s->buf = buf;
    s->data = data;
    s->data_len = len;
    return 0;
}

int rr_memstorage_compact(rr_memstorage *ms, rr_index_t i)
{
    rr_index_t offset = offset_of(ms);
    if (i <= offset)
        return RR_ERR_COMPACTED;
    if (i > last_of(ms))
        return RR_ERR_UNAVAILABLE;

    /* Entry i becomes the dummy: it keeps its (index, term) for matching, not its data. */
    rr_entry_vec_drop_front(&ms->ents, (size_t)(i - offset));
    rr_entry *dummy = &ms->ents.v[0];
    rr_index_t index = dummy->index;
    rr_term_t term = dummy->term;
    rr_entry_clear(dummy);
    dummy->index = index;
    dummy->term = term;
    return 0;
}

int rr_memstorage_append(rr_memstorage *ms, const rr_entry *ents, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t k = 1; k < n; k++)
        RR_DEBUG_ASSERT(ents[k].index == ents[0].index + k);

    rr_index_t first = offset_of(ms) + 1;
    rr_index_t last_new = ents[0].index + n - 1;
    if (last_new < first)
        return 0; /* everything is already compacted away */
    if (ents[0].index < first) {
        size_t skip = (size_t)(first - ents[0].index);
        ents += skip;
        n -= skip;
    }

    /* Position of ents[0] in ms->ents: it overwrites from there (truncating a conflicting
     * suffix) or extends the log right after the last entry; beyond that is a gap. */
    size_t pos = (size_t)(ents[0].index - offset_of(ms));
    if (pos > ms->ents.n)
        return RR_ERR_UNAVAILABLE;
    /* Reserve before truncating, so that -ENOMEM leaves the log unchanged. */
    int rc = rr_entry_vec_reserve(&ms->ents, pos + n);
    if (rc != 0)
        return rc;
    rr_entry_vec_truncate(&ms->ents, pos);
    rc = rr_entry_vec_push_n(&ms->ents, ents, n);
    RR_ASSERT(rc == 0); /* capacity reserved above */
    return 0;
}
