/*
 * disk.c: one simulated disk per node.
 *
 * Two images of the same rr_memstorage format:
 *   cache    what the node has written: the core reads it as its Storage. Writes land
 *            here at once, as in a page cache.
 *   durable  what survives a crash. A write reaches it when its fsync completes; only
 *            then are its responses (the core's MsgStorageAppendResp, and the append and
 *            vote acknowledgements to peers) delivered.
 * fsyncs complete in submission order. A crash drops every write not yet durable and may
 * tear the oldest one (a prefix of its entries reaches the durable image, unacknowledged);
 * a restart rebuilds the cache from the durable image.
 *
 * The teeth (sim.h) break exactly these promises, for the checkers to catch.
 */
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rr_sim_msgq_push(rr_sim_msgq *q, rr_message *m)
{
    if (q->head + q->n == q->cap) {
        if (q->head > 0) {
            memmove(q->v, q->v + q->head, q->n * sizeof(*q->v));
            q->head = 0;
        } else {
            q->cap = q->cap > 0 ? q->cap * 2 : 16;
            q->v = rr_sim_xrealloc(q->v, q->cap * sizeof(*q->v));
        }
    }
    q->v[q->head + q->n++] = *m;
    memset(m, 0, sizeof(*m));
}

bool rr_sim_msgq_pop(rr_sim_msgq *q, rr_message *m)
{
    if (q->n == 0)
        return false;
    *m = q->v[q->head++];
    q->n--;
    if (q->n == 0)
        q->head = 0;
    return true;
}

void rr_sim_msgq_free(rr_sim_msgq *q)
{
    for (size_t i = 0; i < q->n; i++)
        rr_message_free(&q->v[q->head + i]);
    free(q->v);
    memset(q, 0, sizeof(*q));
}

rr_term_t rr_sim_storage_term(rr_memstorage *ms, rr_index_t i)
{
    rr_storage st = rr_memstorage_storage(ms);
    rr_term_t t = 0;
    if (st.ops->term(st.ctx, i, &t) != 0)
        return 0;
    return t;
}

rr_index_t rr_sim_storage_last(rr_memstorage *ms)
{
    rr_storage st = rr_memstorage_storage(ms);
    return st.ops->last_index(st.ctx);
}

rr_index_t rr_sim_storage_snap_index(rr_memstorage *ms)
{
    rr_storage st = rr_memstorage_storage(ms);
    rr_snapshot snap;
    if (st.ops->snapshot(st.ctx, &snap) != 0)
        return 0;
    rr_index_t i = snap.meta.index;
    rr_snapshot_clear(&snap);
    return i;
}

static bool hard_state_empty(const rr_message *op)
{
    return op->term == 0 && op->vote == 0 && op->commit == 0;
}

/* Applies a write (hard state, snapshot, entries; etcd's order) to one image. */
static int apply_op(rr_memstorage *ms, const rr_message *op)
{
    if (!hard_state_empty(op)) {
        rr_hard_state hs = {.term = op->term, .vote = op->vote, .commit = op->commit};
        rr_memstorage_set_hard_state(ms, &hs);
    }
    if (op->snapshot != NULL) {
        int rc = rr_memstorage_apply_snapshot(ms, op->snapshot);
        if (rc != 0)
            return rc;
    }
    return rr_memstorage_append(ms, op->entries, op->n_entries);
}

static void make_durable(rr_sim *s, rr_sim_node *n, const rr_message *op)
{
    rr_sim_check_truncate(s, n, op);
    int rc = apply_op(n->durable, op);
    if (rc != 0)
        rr_sim_fail(s, "sim", "node %u: durable write failed (%d)", (unsigned)n->id, rc);
}

static rr_storage cache_of(void *ctx)
{
    rr_sim_node *n = ctx;
    return rr_memstorage_storage(n->cache);
}

static int st_initial_state(void *ctx, rr_hard_state *hs, rr_conf_state *cs)
{
    rr_storage c = cache_of(ctx);
    return c.ops->initial_state(c.ctx, hs, cs);
}

static int st_entries(void *ctx, rr_index_t lo, rr_index_t hi, uint64_t max_bytes,
                      rr_entry_vec *out)
{
    rr_storage c = cache_of(ctx);
    return c.ops->entries(c.ctx, lo, hi, max_bytes, out);
}

static int st_term(void *ctx, rr_index_t i, rr_term_t *term)
{
    rr_storage c = cache_of(ctx);
    return c.ops->term(c.ctx, i, term);
}

static rr_index_t st_first_index(void *ctx)
{
    rr_storage c = cache_of(ctx);
    return c.ops->first_index(c.ctx);
}

static rr_index_t st_last_index(void *ctx)
{
    rr_storage c = cache_of(ctx);
    return c.ops->last_index(c.ctx);
}

static int st_snapshot(void *ctx, rr_snapshot *out)
{
    rr_sim_snapshot_take(ctx);
    rr_storage c = cache_of(ctx);
    return c.ops->snapshot(c.ctx, out);
}

static const rr_storage_ops sim_storage_ops = {
    .initial_state = st_initial_state,
    .entries = st_entries,
    .term = st_term,
    .first_index = st_first_index,
    .last_index = st_last_index,
    .snapshot = st_snapshot,
};

rr_storage rr_sim_disk_storage(rr_sim_node *n)
{
    return (rr_storage){.ops = &sim_storage_ops, .ctx = n};
}

void rr_sim_disk_init(rr_sim_node *n, const rr_snapshot *boot)
{
    n->cache = rr_memstorage_new();
    n->durable = rr_memstorage_new();
    if (n->cache == NULL || n->durable == NULL) {
        fprintf(stderr, "rr-sim: out of memory\n");
        abort();
    }
    (void)rr_memstorage_apply_snapshot(n->cache, boot);
    (void)rr_memstorage_apply_snapshot(n->durable, boot);
}

void rr_sim_disk_write(rr_sim *s, rr_sim_node *n, rr_message *op, bool sync)
{
    rr_sim_check_append(s, n, op->entries, op->n_entries);
    if (op->snapshot != NULL)
        rr_sim_check_snapshot(s, op->snapshot);
    int rc = apply_op(n->cache, op);
    if (rc != 0) {
        rr_sim_fail(s, "sim", "node %u: write failed (%d)", (unsigned)n->id, rc);
        rr_message_free(op);
        return;
    }
    if (sync && !s->opt.teeth.ack_early) {
        make_durable(s, n, op);
        rr_message_free(op);
        return;
    }
    /* Teeth: acknowledge now, become durable at some later fsync. */
    if (s->opt.teeth.ack_early)
        rr_sim_deliver_responses(s, n, op);
    rr_sim_msgq_push(&n->disk_queue, op);
    /* Group commit: a write queued behind an fsync in flight completes with the next one,
     * in order, without adding its own full latency. */
    uint64_t at = s->now_us + 20 + rr_sim_below(s, 400);
    if (rr_sim_chance(s, 0.05))
        at += rr_sim_below(s, 3000); /* a slow fsync */
    if (at <= n->fsync_last_us)
        at = n->fsync_last_us;
    n->fsync_last_us = at;
    rr_sim_push_event(s, at, EV_FSYNC, (uint32_t)n->id, NULL);
}

void rr_sim_disk_fsync_done(rr_sim *s, rr_sim_node *n)
{
    rr_message op;
    if (!rr_sim_msgq_pop(&n->disk_queue, &op))
        return;
    make_durable(s, n, &op);
    rr_sim_deliver_responses(s, n, &op);
    rr_message_free(&op);
}

/* A torn write: some prefix of the oldest pending write's entries reached the platter. */
static void tear(rr_sim *s, rr_sim_node *n)
{
    if (n->disk_queue.n == 0 || !rr_sim_chance(s, 0.5))
        return;
    const rr_message *op = &n->disk_queue.v[n->disk_queue.head];
    if (op->snapshot != NULL || op->n_entries < 2)
        return;
    rr_message part;
    memset(&part, 0, sizeof(part));
    part.entries = op->entries;
    part.n_entries = (uint32_t)(1 + rr_sim_below(s, op->n_entries - 1));
    make_durable(s, n, &part);
}

/* Rebuilds src's content (snapshot, entries after it, hard state) in a new storage,
 * keeping only entries up to `last`. */
static rr_memstorage *clone_upto(rr_memstorage *src, rr_index_t last)
{
    rr_storage st = rr_memstorage_storage(src);
    rr_memstorage *dst = rr_memstorage_new();
    if (dst == NULL)
        return NULL;
    rr_snapshot snap;
    rr_hard_state hs;
    rr_conf_state cs;
    (void)st.ops->snapshot(st.ctx, &snap);
    (void)st.ops->initial_state(st.ctx, &hs, &cs);
    (void)rr_memstorage_apply_snapshot(dst, &snap);
    rr_index_t lo = snap.meta.index + 1;
    rr_snapshot_clear(&snap);
    if (last > st.ops->last_index(st.ctx))
        last = st.ops->last_index(st.ctx);
    if (last >= lo) {
        rr_entry_vec ents = {0};
        if (st.ops->entries(st.ctx, lo, last + 1, UINT64_MAX, &ents) == 0)
            (void)rr_memstorage_append(dst, ents.v, ents.n);
        rr_entry_vec_free(&ents);
    }
    rr_index_t kept = last >= lo ? last : lo - 1;
    if (hs.commit > kept)
        hs.commit = kept; /* only when entries were lost on purpose (teeth) */
    rr_memstorage_set_hard_state(dst, &hs);
    return dst;
}

/* Teeth: the crash also loses the last acknowledged entries. */
static void lose_acked(rr_sim *s, rr_sim_node *n)
{
    rr_index_t last = rr_sim_storage_last(n->durable);
    rr_index_t snap = rr_sim_storage_snap_index(n->durable);
    if (last <= snap)
        return;
    rr_index_t lost = 1 + rr_sim_below(s, 3);
    if (lost > last - snap)
        lost = last - snap;
    rr_memstorage *ms = clone_upto(n->durable, last - lost);
    if (ms == NULL)
        return;
    rr_memstorage_free(n->durable);
    n->durable = ms;
}

void rr_sim_disk_crash(rr_sim *s, rr_sim_node *n)
{
    tear(s, n);
    rr_sim_msgq_free(&n->disk_queue);
    if (s->opt.teeth.lose_acked)
        lose_acked(s, n);
    rr_memstorage_free(n->cache);
    n->cache = NULL;
}

int rr_sim_disk_recover(rr_sim *s, rr_sim_node *n)
{
    if (s->opt.teeth.forget_vote) {
        rr_storage st = rr_memstorage_storage(n->durable);
        rr_hard_state hs;
        rr_conf_state cs;
        (void)st.ops->initial_state(st.ctx, &hs, &cs);
        hs.vote = 0;
        rr_memstorage_set_hard_state(n->durable, &hs);
    }
    rr_sim_check_promises(s, n);
    n->cache = clone_upto(n->durable, UINT64_MAX);
    return n->cache != NULL ? 0 : -1;
}

void rr_sim_disk_free(rr_sim_node *n)
{
    rr_sim_msgq_free(&n->disk_queue);
    if (n->cache != NULL)
        rr_memstorage_free(n->cache);
    if (n->durable != NULL)
        rr_memstorage_free(n->durable);
    n->cache = NULL;
    n->durable = NULL;
}
