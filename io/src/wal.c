/*
 * wal.c: the raft-thread side of the WAL — open and recovery, the in-memory index and tail
 * cache, queuing records for the io thread (wal_io.c), durability reports, the rr_storage
 * the core reads, snapshots and compaction. The format is in wal_record.c, the threads'
 * contract in ringraft/wal.h, the queue's in wal_internal.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ringraft/assert.h"
#include "ringraft/errors.h"
#include "wal_internal.h"

#define SEGMENT_RECORD_BYTES (WAL_RECORD_HEADER_BYTES + WAL_SEGMENT_PAYLOAD_BYTES)
/* Largest span read with one pread when serving old entries. */
#define READ_SPAN_BYTES_MAX (16u << 20)

void rr_wal_config_init(rr_wal_config *cfg, const char *dir)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->dir = dir;
    cfg->segment_size_bytes = RR_WAL_SEGMENT_BYTES_DEFAULT;
    cfg->queue_records_max = RR_WAL_QUEUE_RECORDS_DEFAULT;
    /* Measured fastest here (BENCHMARKS.md, WAL section): O_DIRECT writes of whole blocks
     * into zero-filled segments with RWF_DSYNC — one device write and flush, no journal
     * commit — beat buffered pwritev + fdatasync at small batches (1.07-1.33x) and are not
     * slower at large ones; io_uring loses to both on ext4 (it punts to io-wq workers). */
    cfg->sync_mode = RR_WAL_SYNC_DIRECT;
    cfg->prealloc_mode = RR_WAL_PREALLOC_ZERO;
}

void wal_set_error(rr_wal_error *err, const char *path, uint64_t offset_bytes, const char *msg)
{
    if (err == NULL)
        return;
    snprintf(err->path, sizeof err->path, "%s", path);
    err->offset_bytes = offset_bytes;
    snprintf(err->msg, sizeof err->msg, "%s", msg);
}

/* ---- the index ---- */

static rr_index_t log_last(const rr_wal *w)
{
    return w->dummy_index + w->idx_n;
}

static wal_idx *idx_at(const rr_wal *w, rr_index_t i)
{
    RR_ASSERT(i > w->dummy_index);
    RR_ASSERT(i <= log_last(w));
    return &w->idx[w->idx_start + (size_t)(i - w->dummy_index - 1)];
}

static rr_term_t term_at(const rr_wal *w, rr_index_t i)
{
    if (i == w->dummy_index)
        return w->dummy_term;
    return idx_at(w, i)->term;
}

/* Room for `total` entries from idx_start. Compacting moves the start forward; the array
 * is slid back before it grows. */
static int idx_reserve(rr_wal *w, size_t total)
{
    if (w->idx_start + total <= w->idx_cap)
        return 0;
    if (w->idx_start > 0) {
        memmove(w->idx, w->idx + w->idx_start, w->idx_n * sizeof(wal_idx));
        w->idx_start = 0;
        if (total <= w->idx_cap)
            return 0;
    }
    size_t cap = w->idx_cap < 1024 ? 1024 : w->idx_cap;
    while (cap < total)
        cap *= 2;
    wal_idx *p = realloc(w->idx, cap * sizeof(wal_idx));
    if (p == NULL)
        return -ENOMEM;
    w->idx = p;
    w->idx_cap = cap;
    return 0;
}

static void log_reset(rr_wal *w, rr_index_t index, rr_term_t term)
{
    w->dummy_index = index;
    w->dummy_term = term;
    w->idx_start = 0;
    w->idx_n = 0;
}

static wal_seg *seg_last(rr_wal *w)
{
    RR_ASSERT(w->segs_n > 0);
    return &w->segs[w->segs_n - 1];
}

static wal_seg *seg_find(rr_wal *w, uint64_t seq)
{
    RR_ASSERT(w->segs_n > 0);
    RR_ASSERT(seq >= w->segs[0].seq);
    size_t pos = (size_t)(seq - w->segs[0].seq);
    RR_ASSERT(pos < w->segs_n);
    return &w->segs[pos];
}

static int segs_push(rr_wal *w, uint64_t seq)
{
    if (w->segs_n == w->segs_cap) {
        size_t cap = w->segs_cap == 0 ? 16 : w->segs_cap * 2;
        wal_seg *p = realloc(w->segs, cap * sizeof(wal_seg));
        if (p == NULL)
            return -ENOMEM;
        w->segs = p;
        w->segs_cap = cap;
    }
    w->segs[w->segs_n++] = (wal_seg){.seq = seq, .read_fd = -1, .max_index = 0};
    return 0;
}

/* ---- the tail cache ---- */

/* References dropped in runs: consecutive entries of one buffer (a received frame's, or a
 * caller's shared batch buffer) cost one atomic operation, not one each. */
typedef struct unref_run {
    rr_buf *buf;
    uint32_t n;
} unref_run;

static void run_flush(unref_run *r)
{
    if (r->n > 0)
        rr_buf_unref_n(r->buf, r->n);
    r->n = 0;
}

/* Takes over e's reference (dropped at run_flush at the latest) and clears e. */
static void run_clear(unref_run *r, rr_entry *e)
{
    if (e->buf != r->buf || r->n == UINT32_MAX) {
        run_flush(r);
        r->buf = e->buf;
    }
    r->n++;
    memset(e, 0, sizeof(*e));
}

static rr_entry *cache_slot(const rr_wal *w, rr_index_t i)
{
    return &w->cache[i & (w->cache_cap - 1)];
}

static void cache_drop_below(rr_wal *w, rr_index_t lo)
{
    unref_run run = {0};
    while (w->cache_lo < lo && w->cache_lo <= log_last(w)) {
        run_clear(&run, cache_slot(w, w->cache_lo));
        w->cache_lo++;
    }
    run_flush(&run);
    if (w->cache_lo < lo)
        w->cache_lo = lo;
}

static void cache_drop_from(rr_wal *w, rr_index_t j)
{
    unref_run run = {0};
    for (rr_index_t i = j > w->cache_lo ? j : w->cache_lo; i <= log_last(w); i++)
        run_clear(&run, cache_slot(w, i));
    run_flush(&run);
    if (w->cache_lo > j)
        w->cache_lo = j;
}

/* Appends e as entry last + 1 to the cache (with a reference the caller took for it),
 * evicting the oldest (durable) one into run if full. */
static void cache_push(rr_wal *w, const rr_entry *e, unref_run *run)
{
    RR_ASSERT(e->index == log_last(w) + 1);
    if (e->index - w->cache_lo == w->cache_cap) {
        RR_ASSERT(w->cache_lo <= w->durable_index);
        run_clear(run, cache_slot(w, w->cache_lo));
        w->cache_lo++;
    }
    *cache_slot(w, e->index) = *e;
}

/* ---- queuing records ---- */

static uint64_t ring_free(const rr_wal *w)
{
    return w->ring_mask + 1 - (w->tail - w->polled);
}

static wal_op *op_next(rr_wal *w, uint64_t *pos)
{
    wal_op *op = &w->ring[*pos & w->ring_mask];
    w->superseded[*pos & w->ring_mask] = 0;
    (*pos)++;
    return op;
}

static bool needs_new_segment(const rr_wal *w, uint64_t rec_bytes)
{
    if (w->need_segment)
        return true;
    return w->write_offset_bytes + rec_bytes > w->cfg.segment_size_bytes &&
           w->write_offset_bytes > SEGMENT_RECORD_BYTES;
}

/* Queues the SEGMENT record that starts the next segment. */
static int segment_start(rr_wal *w, uint64_t *pos)
{
    uint64_t seq = w->segs_n > 0 ? seg_last(w)->seq + 1 : 1;
    int rc = segs_push(w, seq);
    if (rc != 0)
        return rc;
    wal_segment_header sh = {.seq = seq,
                             .prev_index = log_last(w),
                             .prev_term = term_at(w, log_last(w)),
                             .prev_end_bytes = w->segs_n > 1 ? w->write_offset_bytes : 0};
    wal_op *op = op_next(w, pos);
    op->type = WAL_REC_SEGMENT;
    op->seg_seq = seq;
    op->offset_bytes = 0;
    op->ent = (rr_entry){0};
    op->inline_bytes = WAL_SEGMENT_PAYLOAD_BYTES;
    wal_record_header_init(op->hdr, WAL_REC_SEGMENT, seq, WAL_SEGMENT_PAYLOAD_BYTES);
    wal_segment_payload_encode(op->hdr + WAL_RECORD_HEADER_BYTES, &sh);
    w->write_offset_bytes = SEGMENT_RECORD_BYTES;
    w->need_segment = false;
    return 0;
}

/* Chooses where a record of rec_bytes goes, starting a segment if needed; returns the op
 * slot with seg_seq and offset filled. */
static wal_op *op_place(rr_wal *w, uint64_t rec_bytes, uint64_t *pos)
{
    if (needs_new_segment(w, rec_bytes))
        RR_ASSERT(segment_start(w, pos) == 0); /* segs reserved by the caller */
    wal_op *op = op_next(w, pos);
    op->seg_seq = seg_last(w)->seq;
    op->offset_bytes = w->write_offset_bytes;
    w->write_offset_bytes += rec_bytes;
    return op;
}

static uint64_t entry_record_bytes(const rr_entry *e)
{
    return WAL_RECORD_HEADER_BYTES + rr_entry_encoded_bytes(e);
}

/* Ops queuing these entries needs (records plus segment starts), without queuing. */
static uint64_t ops_needed(const rr_wal *w, const rr_entry *ents, size_t n)
{
    uint64_t off = w->write_offset_bytes, ops = 0;
    bool need = w->need_segment;
    for (size_t k = 0; k < n; k++) {
        uint64_t rec = entry_record_bytes(&ents[k]);
        if (need || (off + rec > w->cfg.segment_size_bytes && off > SEGMENT_RECORD_BYTES)) {
            ops++;
            off = SEGMENT_RECORD_BYTES;
            need = false;
        }
        ops++;
        off += rec;
    }
    return ops;
}

/* Room for up to `ops` new segments in segs, so queuing never fails half-way. */
static int segs_reserve(rr_wal *w, uint64_t ops)
{
    while (w->segs_n + ops > w->segs_cap) {
        size_t cap = w->segs_cap == 0 ? 16 : w->segs_cap * 2;
        wal_seg *p = realloc(w->segs, cap * sizeof(wal_seg));
        if (p == NULL)
            return -ENOMEM;
        w->segs = p;
        w->segs_cap = cap;
    }
    return 0;
}

/* Makes records [tail, pos) of bytes record bytes visible to the io thread, and wakes it
 * unless a plug holds the wake-up back. */
static void publish(rr_wal *w, uint64_t pos, uint64_t bytes)
{
    /* release: the slots written above are visible to the io thread before the new tail. */
    __atomic_store_n(&w->tail, pos, __ATOMIC_RELEASE);
    if (w->plugged) {
        w->wake_owed = true;
        w->plugged_bytes += bytes;
        return;
    }
    wal_io_wake(w);
}

/* What a plug queued is written, or the io thread was told: nothing is owed. */
static void owed_settle(rr_wal *w)
{
    w->wake_owed = false;
    w->plugged_bytes = 0;
}

/* Pays a wake-up a plug held back. */
static void wake_if_owed(rr_wal *w)
{
    if (w->wake_owed)
        wal_io_wake(w);
    owed_settle(w);
}

/* -EAGAIN: the queue is full, and the io thread must be emptying it while the caller
 * waits or polls, plug or no plug. */
static int queue_full(rr_wal *w)
{
    wake_if_owed(w);
    return -EAGAIN;
}

static int check_alive(rr_wal *w)
{
    if (w->fatal_err == 0)
        w->fatal_err = __atomic_load_n(&w->io_err, __ATOMIC_ACQUIRE);
    return w->fatal_err;
}

/* Removes entries >= j from the log: index, cache, queued records not yet durable (so
 * their completion is never reported: the ABA guard), and the durable mark. */
static void truncate_from(rr_wal *w, rr_index_t j)
{
    RR_ASSERT(j > w->dummy_index);
    cache_drop_from(w, j);
    w->idx_n = (size_t)(j - w->dummy_index - 1);
    for (uint64_t s = w->polled; s < w->tail; s++) {
        const wal_op *op = &w->ring[s & w->ring_mask];
        if (op->type == WAL_REC_ENTRY && op->ent.index >= j)
            w->superseded[s & w->ring_mask] = 1;
    }
    if (w->durable_index >= j) {
        w->durable_index = j - 1;
        w->durable_term = term_at(w, j - 1);
    }
}

static int append_check(const rr_wal *w, const rr_entry *ents, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        if (ents[k].index != ents[0].index + k || ents[k].data_len > RR_ENTRY_BYTES_MAX)
            return -EINVAL;
        if (ents[k].data == NULL && ents[k].data_len != 0)
            return -EINVAL;
    }
    if (n > w->cache_cap)
        return -EINVAL;
    return ents[0].index > log_last(w) + 1 ? RR_ERR_UNAVAILABLE : 0;
}

/* Whether the cache can take entries [j, j + n) without evicting one not yet durable. */
static bool cache_has_room(const rr_wal *w, rr_index_t j, size_t n)
{
    rr_index_t durable = w->durable_index < j ? w->durable_index : j - 1;
    rr_index_t lo = w->cache_lo < j ? w->cache_lo : j; /* as after truncate_from(j) */
    rr_index_t new_last = j + n - 1;
    if (new_last - lo + 1 <= w->cache_cap)
        return true;
    return new_last - w->cache_cap <= durable; /* evicted: [cache_lo, new_last - cap] */
}

/* Queues e, which holds two references the caller took: the queued record's (until durable
 * and polled) and the cache's. Returns the record's bytes. */
static uint64_t append_one(rr_wal *w, const rr_entry *e, uint64_t *pos, unref_run *run)
{
    uint64_t rec = entry_record_bytes(e);
    wal_op *op = op_place(w, rec, pos);
    op->type = WAL_REC_ENTRY;
    op->ent = *e;
    op->inline_bytes = RR_ENTRY_HEADER_BYTES;
    wal_record_header_init(op->hdr, WAL_REC_ENTRY, op->seg_seq,
                           (uint32_t)(rec - WAL_RECORD_HEADER_BYTES));
    rr_entry_encode_header(e, op->hdr + WAL_RECORD_HEADER_BYTES);
    cache_push(w, e, run);
    wal_seg *seg = seg_last(w);
    if (e->index > seg->max_index)
        seg->max_index = e->index;
    w->idx[w->idx_start + w->idx_n++] = (wal_idx){.term = e->term,
                                                  .seg_seq = (uint32_t)op->seg_seq,
                                                  .offset_bytes = (uint32_t)op->offset_bytes,
                                                  .data_len = e->data_len,
                                                  .type = e->type,
                                                  .nil = e->data == NULL};
    return rec;
}

int rr_wal_append(rr_wal *w, const rr_entry *ents, size_t n)
{
    if (w->mem != NULL)
        return wal_mem_append(w, ents, n);
    if (check_alive(w) != 0)
        return RR_ERR_STOPPED;
    while (n > 0 && ents[0].index <= w->dummy_index) { /* compacted: as MemoryStorage */
        ents++;
        n--;
    }
    if (n == 0)
        return 0;
    int rc = append_check(w, ents, n);
    if (rc != 0)
        return rc;
    rr_index_t j = ents[0].index;
    uint64_t ops = ops_needed(w, ents, n);
    if (ops > ring_free(w) || !cache_has_room(w, j, n))
        return queue_full(w);
    rc = idx_reserve(w, (size_t)(j - w->dummy_index - 1) + n);
    if (rc == 0)
        rc = segs_reserve(w, ops);
    if (rc != 0)
        return rc;
    if (j <= log_last(w))
        truncate_from(w, j);
    rr_entries_ref(ents, n); /* the queued records' references ... */
    rr_entries_ref(ents, n); /* ... and the cache's: a run of one buffer at a time */
    uint64_t pos = w->tail, bytes = 0;
    unref_run evicted = {0};
    for (size_t k = 0; k < n; k++)
        bytes += append_one(w, &ents[k], &pos, &evicted);
    run_flush(&evicted);
    publish(w, pos, bytes);
    return 0;
}

/* Queues a record whose payload is inline (hard state, snapshot marker). */
static int queue_inline(rr_wal *w, uint8_t type, const uint8_t *payload, uint32_t len)
{
    uint64_t rec = WAL_RECORD_HEADER_BYTES + len;
    if (ring_free(w) < 2)
        return queue_full(w);
    int rc = segs_reserve(w, 1);
    if (rc != 0)
        return rc;
    uint64_t pos = w->tail;
    wal_op *op = op_place(w, rec, &pos);
    op->type = type;
    op->ent = (rr_entry){0};
    op->inline_bytes = len;
    wal_record_header_init(op->hdr, type, op->seg_seq, len);
    memcpy(op->hdr + WAL_RECORD_HEADER_BYTES, payload, len);
    publish(w, pos, rec);
    return 0;
}

int rr_wal_set_hard_state(rr_wal *w, const rr_hard_state *hs)
{
    if (w->mem != NULL)
        return wal_mem_set_hard_state(w, hs);
    if (check_alive(w) != 0)
        return RR_ERR_STOPPED;
    uint8_t p[WAL_HARD_STATE_PAYLOAD_BYTES];
    wal_hard_state_encode(p, hs);
    int rc = queue_inline(w, WAL_REC_HARD_STATE, p, sizeof p);
    if (rc == 0) {
        w->hs = *hs;
        w->hs_set = true;
    }
    return rc;
}

uint64_t rr_wal_last_seq(const rr_wal *w)
{
    if (w->mem != NULL)
        return wal_mem_last_seq(w);
    return w->tail;
}

int rr_wal_fd(const rr_wal *w)
{
    return w->mem != NULL ? -1 : w->done_efd;
}

uint32_t rr_wal_segment_count(const rr_wal *w)
{
    return (uint32_t)w->segs_n;
}

uint8_t rr_wal_sync_mode_used(const rr_wal *w)
{
    if (w->mem != NULL)
        return w->cfg.sync_mode;
    /* relaxed: a statistic; the io thread's fallback is its own business. */
    return __atomic_load_n(&w->sync_mode_used, __ATOMIC_RELAXED);
}

/* ---- completions ---- */

/* Renames a deleted segment to recycle-<seq>.tmp for the io thread's next spare (at most
 * WAL_RECYCLE_FILES_MAX of them), or unlinks it. */
static void segment_retire(rr_wal *w, uint64_t seq)
{
    char name[48], spare[48];
    snprintf(name, sizeof name, "%016" PRIx64 ".wal", seq);
    /* acquire: pairs with the io thread's release when it takes one. */
    if (__atomic_load_n(&w->recycle_n, __ATOMIC_ACQUIRE) < WAL_RECYCLE_FILES_MAX) {
        snprintf(spare, sizeof spare, WAL_RECYCLE_PREFIX "%016" PRIx64 ".tmp", seq);
        if (renameat(w->dir_fd, name, w->dir_fd, spare) == 0) {
            /* release: the file is in place before the io thread may look for it. */
            __atomic_fetch_add(&w->recycle_n, 1, __ATOMIC_RELEASE);
            return;
        }
    }
    unlinkat(w->dir_fd, name, 0);
}

/* Deletes the oldest segments compaction made useless: strictly older than the segment
 * that was being written at rr_wal_compact (which received the fresh hard state), and
 * holding no entry above the compaction index. */
static void remove_segments(rr_wal *w)
{
    size_t k = 0;
    while (k + 1 < w->segs_n && w->segs[k].seq < w->remove_below_seg &&
           w->segs[k].max_index <= w->remove_upto_index) {
        if (w->segs[k].read_fd >= 0)
            close(w->segs[k].read_fd);
        segment_retire(w, w->segs[k].seq);
        k++;
    }
    if (k == 0)
        return;
    memmove(w->segs, w->segs + k, (w->segs_n - k) * sizeof(wal_seg));
    w->segs_n -= k;
    fsync(w->dir_fd); /* the deletions are durable (they only free space: best effort) */
}

int rr_wal_poll(rr_wal *w, rr_wal_durable *out)
{
    if (w->mem != NULL)
        return wal_mem_poll(w, out);
    /* acquire: pairs with the io thread's release of done; the batch's writes completed. */
    uint64_t done = __atomic_load_n(&w->done, __ATOMIC_ACQUIRE);
    unref_run run = {0};
    for (uint64_t s = w->polled; s < done; s++) {
        wal_op *op = &w->ring[s & w->ring_mask];
        /* Only forward: compaction or a snapshot may have covered it already. */
        if (op->type == WAL_REC_ENTRY && !w->superseded[s & w->ring_mask] &&
            op->ent.index > w->durable_index) {
            w->durable_index = op->ent.index;
            w->durable_term = op->ent.term;
        }
        run_clear(&run, &op->ent);
    }
    run_flush(&run);
    w->polled = done;
    RR_ASSERT(w->durable_index <= log_last(w));
    if (w->remove_pending && w->polled >= w->remove_seq_durable) {
        w->remove_pending = false;
        remove_segments(w);
    }
    check_alive(w);
    if (out != NULL) {
        out->index = w->durable_index;
        out->term = w->durable_term;
        out->seq = w->polled;
        out->batches = __atomic_load_n(&w->batches_done, __ATOMIC_RELAXED);
    }
    return w->fatal_err;
}

/* A short bounded spin before sleeping (DESIGN.md: consumers sleep after a bounded spin):
 * a completion arriving within it skips a sleep and a wake-up. Returns whether done
 * reached seq. */
static bool spin_for_done(rr_wal *w, uint64_t seq)
{
    uint64_t t0 = wal_mono_ns();
    for (;;) {
        for (int k = 0; k < 64; k++) {
            /* acquire: as in rr_wal_poll, which the caller runs next. */
            if (__atomic_load_n(&w->done, __ATOMIC_ACQUIRE) >= seq)
                return true;
            __builtin_ia32_pause();
        }
        if (wal_mono_ns() - t0 > WAL_WAIT_SPIN_NS)
            return false;
    }
}

int rr_wal_wait(rr_wal *w, uint64_t seq, rr_wal_durable *out)
{
    if (w->mem == NULL && seq > w->tail)
        seq = w->tail; /* nothing beyond what is queued can become durable */
    for (;;) {
        int rc = rr_wal_poll(w, out);
        if (rc != 0 || w->mem != NULL || w->polled >= seq)
            return rc;
        /* This thread would only sleep: write the batch here if the io thread is idle. */
        if (wal_io_write_here(w) == 1) {
            owed_settle(w);
            continue;
        }
        wake_if_owed(w);
        if (spin_for_done(w, seq))
            continue;
        uint64_t v;
        ssize_t n = read(w->done_efd, &v, sizeof v); /* blocks until a batch completes */
        if (n < 0 && errno != EINTR && errno != EAGAIN)
            return -errno;
    }
}

void rr_wal_plug(rr_wal *w)
{
    if (w->mem == NULL)
        w->plugged = true;
}

int rr_wal_unplug(rr_wal *w, uint64_t inline_bytes_max)
{
    if (w->mem != NULL)
        return 0;
    w->plugged = false;
    if (!w->wake_owed)
        return 0; /* nothing queued under the plug, or already written or handed over */
    int rc = 0;
    if (w->plugged_bytes <= inline_bytes_max && wal_io_write_here(w) == 1) {
        rc = rr_wal_poll(w, NULL);
        if (rc == 0)
            rc = 1;
        owed_settle(w);
    }
    wake_if_owed(w);
    return rc;
}

/* ---- reads (rr_storage) ---- */

typedef struct read_buf {
    rr_buf b;
    uint8_t bytes[];
} read_buf;

static void read_buf_release(rr_buf *b)
{
    free(b);
}

static int seg_read_fd(rr_wal *w, uint64_t seq)
{
    wal_seg *seg = seg_find(w, seq);
    if (seg->read_fd < 0) {
        char path[RR_WAL_PATH_BYTES_MAX + 32];
        wal_segment_path(w, seq, path, sizeof path);
        seg->read_fd = open(path, O_RDONLY | O_CLOEXEC);
        if (seg->read_fd < 0)
            return -errno;
    }
    return seg->read_fd;
}

static int pread_full(int fd, uint8_t *p, size_t len, uint64_t off)
{
    while (len > 0) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return RR_ERR_TRUNCATED;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

static uint64_t idx_record_end(const wal_idx *x)
{
    return (uint64_t)x->offset_bytes + WAL_RECORD_HEADER_BYTES + RR_ENTRY_HEADER_BYTES +
           x->data_len;
}

/* Reads entries [lo, hi) (durable, not cached, all in one segment) with one pread into one
 * buffer they share, verifying each record again. */
static int read_span(rr_wal *w, rr_index_t lo, rr_index_t hi, rr_entry_vec *out)
{
    const wal_idx *first = idx_at(w, lo);
    uint64_t start = first->offset_bytes, end = idx_record_end(idx_at(w, hi - 1));
    int fd = seg_read_fd(w, first->seg_seq);
    if (fd < 0)
        return fd;
    read_buf *rb = malloc(sizeof(read_buf) + (size_t)(end - start));
    if (rb == NULL)
        return -ENOMEM;
    rb->b = (rr_buf){.refs = 1, .release = read_buf_release};
    int rc = pread_full(fd, rb->bytes, (size_t)(end - start), start);
    for (rr_index_t i = lo; rc == 0 && i < hi; i++) {
        const wal_idx *x = idx_at(w, i);
        wal_record rec;
        size_t off = x->offset_bytes - start;
        rc = wal_record_check(rb->bytes + off, (size_t)(end - start) - off, x->seg_seq,
                              x->offset_bytes, &rec);
        if (rc == 0 && rec.type != WAL_REC_ENTRY)
            rc = RR_ERR_CORRUPT;
        rr_entry e;
        size_t used;
        if (rc == 0)
            rc = rr_entry_decode(rec.payload, rec.payload_bytes, &e, &used) == 0 ? 0
                                                                                 : RR_ERR_CORRUPT;
        if (rc == 0 && (e.index != i || e.term != x->term))
            rc = RR_ERR_CORRUPT;
        if (rc == 0) {
            e.buf = &rb->b;
            rc = rr_entry_vec_push(out, &e);
        }
    }
    rr_buf_unref(&rb->b);
    return rc;
}

/* Serves [lo, hi): runs of uncached entries in one segment are read with read_span. */
static int read_entries(rr_wal *w, rr_index_t lo, rr_index_t hi, rr_entry_vec *out)
{
    rr_index_t i = lo;
    while (i < hi) {
        if (i >= w->cache_lo) {
            int rc = rr_entry_vec_push(out, cache_slot(w, i));
            if (rc != 0)
                return rc;
            i++;
            continue;
        }
        const wal_idx *x = idx_at(w, i);
        rr_index_t r = i + 1;
        while (r < hi && r < w->cache_lo && idx_at(w, r)->seg_seq == x->seg_seq &&
               idx_record_end(idx_at(w, r)) - x->offset_bytes <= READ_SPAN_BYTES_MAX)
            r++;
        int rc = read_span(w, i, r, out);
        if (rc != 0)
            return rc;
        i = r;
    }
    return 0;
}

static int st_initial_state(void *ctx, rr_hard_state *hs, rr_conf_state *cs)
{
    const rr_wal *w = ctx;
    *hs = w->hs;
    *cs = w->snap.meta.conf_state;
    return 0;
}

static int st_entries(void *ctx, rr_index_t lo, rr_index_t hi, uint64_t max_bytes,
                      rr_entry_vec *out)
{
    rr_wal *w = ctx;
    if (lo <= w->dummy_index)
        return RR_ERR_COMPACTED;
    if (hi > log_last(w) + 1)
        return RR_ERR_UNAVAILABLE;
    /* How many fit in max_bytes (at least one), counted as the core counts them. */
    uint64_t size = 0;
    rr_index_t end = lo;
    while (end < hi) {
        const wal_idx *x = idx_at(w, end);
        rr_entry probe = {.term = x->term, .index = end, .data_len = x->data_len, .type = x->type};
        probe.data = x->nil ? NULL : (const uint8_t *)"";
        uint64_t b = rr_entry_size_bytes(&probe);
        if (end > lo && (size > max_bytes || b > max_bytes - size))
            break;
        size += b;
        end++;
    }
    return read_entries(w, lo, end, out);
}

static int st_term(void *ctx, rr_index_t i, rr_term_t *term)
{
    const rr_wal *w = ctx;
    if (i < w->dummy_index)
        return RR_ERR_COMPACTED;
    if (i > log_last(w))
        return RR_ERR_UNAVAILABLE;
    *term = term_at(w, i);
    return 0;
}

static rr_index_t st_first_index(void *ctx)
{
    const rr_wal *w = ctx;
    return w->dummy_index + 1;
}

static rr_index_t st_last_index(void *ctx)
{
    return log_last(ctx);
}

static int st_snapshot(void *ctx, rr_snapshot *out)
{
    const rr_wal *w = ctx;
    *out = w->snap;
    rr_buf_ref(out->buf);
    return 0;
}

static const rr_storage_ops wal_storage_ops = {
    .initial_state = st_initial_state,
    .entries = st_entries,
    .term = st_term,
    .first_index = st_first_index,
    .last_index = st_last_index,
    .snapshot = st_snapshot,
};

rr_storage rr_wal_storage(rr_wal *w)
{
    if (w->mem != NULL)
        return wal_mem_storage(w);
    return (rr_storage){.ops = &wal_storage_ops, .ctx = w};
}

/* ---- snapshots and compaction ---- */

static void snap_install(rr_wal *w, const rr_snapshot *snap)
{
    rr_buf_ref(snap->buf); /* first: snap may share the old one's buffer */
    rr_snapshot_clear(&w->snap);
    w->snap = *snap;
}

int rr_wal_save_snapshot(rr_wal *w, const rr_snapshot *snap)
{
    if (w->mem != NULL)
        return wal_mem_save_snapshot(w, snap, false);
    rr_index_t i = snap->meta.index;
    if (w->snap.meta.index != 0 && i <= w->snap.meta.index)
        return RR_ERR_SNAP_OUT_OF_DATE;
    if (i > log_last(w))
        return RR_ERR_UNAVAILABLE;
    if (i < w->dummy_index)
        return RR_ERR_COMPACTED;
    if (term_at(w, i) != snap->meta.term)
        return -EINVAL;
    int rc = wal_snap_write(w, snap);
    if (rc == 0)
        snap_install(w, snap);
    return rc;
}

int rr_wal_apply_snapshot(rr_wal *w, const rr_snapshot *snap)
{
    if (w->mem != NULL)
        return wal_mem_save_snapshot(w, snap, true);
    if (check_alive(w) != 0)
        return RR_ERR_STOPPED;
    if (w->snap.meta.index != 0 && snap->meta.index <= w->snap.meta.index)
        return RR_ERR_SNAP_OUT_OF_DATE;
    if (ring_free(w) < 2)
        return queue_full(w);
    int rc = wal_snap_write(w, snap);
    if (rc != 0)
        return rc;
    snap_install(w, snap);
    /* Reset the log to the snapshot; in-flight entries are superseded. */
    truncate_from(w, w->dummy_index + 1);
    cache_drop_below(w, snap->meta.index + 1);
    w->cache_lo = snap->meta.index + 1;
    log_reset(w, snap->meta.index, snap->meta.term);
    w->durable_index = snap->meta.index; /* covered by the durable snapshot file */
    w->durable_term = snap->meta.term;
    uint8_t p[WAL_SNAPSHOT_PAYLOAD_BYTES];
    wal_snapshot_marker_encode(p, snap->meta.index, snap->meta.term);
    return queue_inline(w, WAL_REC_SNAPSHOT, p, sizeof p);
}

int rr_wal_compact(rr_wal *w, rr_index_t i)
{
    if (w->mem != NULL)
        return wal_mem_compact(w, i);
    if (check_alive(w) != 0)
        return RR_ERR_STOPPED;
    if (i <= w->dummy_index)
        return RR_ERR_COMPACTED;
    if (i > log_last(w) || i > w->snap.meta.index)
        return RR_ERR_UNAVAILABLE;
    if (ring_free(w) < 2)
        return queue_full(w);
    rr_term_t t = term_at(w, i);
    w->idx_start += (size_t)(i - w->dummy_index);
    w->idx_n -= (size_t)(i - w->dummy_index);
    w->dummy_index = i;
    w->dummy_term = t;
    cache_drop_below(w, i + 1);
    if (w->durable_index < i) {
        w->durable_index = i; /* covered by the snapshot */
        w->durable_term = t;
    }
    /* The latest hard state may live in a segment about to go: write it again first. */
    w->remove_below_seg = w->segs_n > 0 ? seg_last(w)->seq : 0;
    w->remove_upto_index = i;
    if (w->hs_set) {
        int rc = rr_wal_set_hard_state(w, &w->hs);
        if (rc != 0)
            return rc;
    }
    w->remove_seq_durable = w->tail;
    w->remove_pending = true;
    return 0;
}

/* ---- recovery ---- */

typedef struct replay {
    rr_wal *w;
    wal_seg *seg;
    bool first_seg;
} replay;

static int replay_entry(rr_wal *w, wal_seg *seg, const wal_record *rec)
{
    rr_entry e;
    size_t used;
    RR_ASSERT(rr_entry_decode(rec->payload, rec->payload_bytes, &e, &used) == 0);
    if (e.index <= w->dummy_index)
        return 0; /* before the start of the log (older segments were deleted) */
    if (e.index > log_last(w) + 1)
        return RR_ERR_CORRUPT;                         /* a gap: some record is missing */
    w->idx_n = (size_t)(e.index - w->dummy_index - 1); /* replaces a suffix, if any */
    int rc = idx_reserve(w, w->idx_n + 1);
    if (rc != 0)
        return rc;
    w->idx[w->idx_start + w->idx_n++] = (wal_idx){.term = e.term,
                                                  .seg_seq = (uint32_t)seg->seq,
                                                  .offset_bytes = (uint32_t)rec->offset_bytes,
                                                  .data_len = e.data_len,
                                                  .type = e.type,
                                                  .nil = e.data == NULL};
    if (e.index > seg->max_index)
        seg->max_index = e.index;
    return 0;
}

static int replay_record(void *ctx, const wal_record *rec)
{
    replay *r = ctx;
    rr_wal *w = r->w;
    switch (rec->type) {
    case WAL_REC_SEGMENT:
        if (r->first_seg) { /* the log starts after the oldest segment's predecessor */
            wal_segment_header sh;
            wal_segment_payload_decode(rec->payload, &sh);
            log_reset(w, sh.prev_index, sh.prev_term);
        }
        return 0;
    case WAL_REC_ENTRY:
        return replay_entry(w, r->seg, rec);
    case WAL_REC_HARD_STATE:
        wal_hard_state_decode(rec->payload, &w->hs);
        w->hs_set = true;
        return 0;
    case WAL_REC_SNAPSHOT: {
        rr_index_t index;
        rr_term_t term;
        wal_snapshot_marker_decode(rec->payload, &index, &term);
        log_reset(w, index, term);
        return 0;
    }
    default:
        return RR_ERR_CORRUPT;
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Collects segment numbers (sorted) and removes leftover temporary files. */
static int list_segments(rr_wal *w, uint64_t **seqs_out, size_t *n_out)
{
    DIR *d = fdopendir(dup(w->dir_fd));
    if (d == NULL)
        return -errno;
    rewinddir(d); /* the dup shares dir_fd's position, which an earlier listing moved */
    uint64_t *seqs = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, "snap.tmp") == 0) { /* a snapshot never published */
            unlinkat(w->dir_fd, de->d_name, 0);
            continue;
        }
        if (strcmp(de->d_name, "spare.tmp") == 0) { /* preallocated: keep it for reuse */
            if (renameat(w->dir_fd, de->d_name, w->dir_fd, WAL_RECYCLE_PREFIX "spare.tmp") == 0)
                w->recycle_n++;
            continue;
        }
        if (strncmp(de->d_name, WAL_RECYCLE_PREFIX, strlen(WAL_RECYCLE_PREFIX)) == 0) {
            w->recycle_n++;
            continue;
        }
        char *end;
        uint64_t seq = strtoull(de->d_name, &end, 16);
        if (strlen(de->d_name) != 20 || end != de->d_name + 16 || strcmp(end, ".wal") != 0)
            continue;
        if (n == cap) {
            cap = cap == 0 ? 64 : cap * 2;
            uint64_t *p = realloc(seqs, cap * sizeof(uint64_t));
            if (p == NULL) {
                rc = -ENOMEM;
                break;
            }
            seqs = p;
        }
        seqs[n++] = seq;
    }
    closedir(d);
    if (rc != 0) {
        free(seqs);
        return rc;
    }
    if (n > 1)
        qsort(seqs, n, sizeof(uint64_t), cmp_u64);
    *seqs_out = seqs;
    *n_out = n;
    return 0;
}

typedef struct seg_image {
    uint8_t *p;
    size_t len, cap;
} seg_image;

static int image_load(rr_wal *w, uint64_t seq, seg_image *img)
{
    char path[RR_WAL_PATH_BYTES_MAX + 32];
    wal_segment_path(w, seq, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    int rc = fstat(fd, &st) == 0 ? 0 : -errno;
    size_t len = rc == 0 ? (size_t)st.st_size : 0;
    if (rc == 0 && len > img->cap) {
        free(img->p);
        img->p = malloc(len);
        img->cap = img->p == NULL ? 0 : len;
        rc = img->p == NULL ? -ENOMEM : 0;
    }
    if (rc == 0)
        rc = pread_full(fd, img->p, len, 0);
    close(fd);
    img->len = len;
    return rc;
}

/* Reads segment seq's header record: *out says whether it holds data (a valid SEGMENT
 * record of its own number at offset 0). */
static int peek_header(rr_wal *w, uint64_t seq, bool *out, wal_segment_header *sh)
{
    char path[RR_WAL_PATH_BYTES_MAX + 32];
    wal_segment_path(w, seq, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    uint8_t buf[WAL_RECORD_HEADER_BYTES + WAL_SEGMENT_PAYLOAD_BYTES] = {0};
    ssize_t n = pread(fd, buf, sizeof buf, 0);
    close(fd);
    if (n < 0)
        return -errno;
    wal_record rec;
    *out = wal_record_check(buf, (size_t)n, seq, 0, &rec) == 0;
    if (*out)
        wal_segment_payload_decode(rec.payload, sh);
    return 0;
}

/* Starts reading a segment into the page cache in the background. */
static void readahead_segment(rr_wal *w, uint64_t seq)
{
    char path[RR_WAL_PATH_BYTES_MAX + 32];
    wal_segment_path(w, seq, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return; /* reported by the read that follows */
    posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
    close(fd);
}

static int corrupt(rr_wal *w, rr_wal_error *err, uint64_t seq, uint64_t off, const char *msg)
{
    char path[RR_WAL_PATH_BYTES_MAX + 32];
    wal_segment_path(w, seq, path, sizeof path);
    wal_set_error(err, path, off, msg);
    return RR_ERR_CORRUPT;
}

/* Scans segment seq. end_bytes is where its successor says its data ends, or UINT64_MAX
 * for the last segment holding data, whose torn end may be cut. */
static int recover_segment(rr_wal *w, uint64_t seq, bool first, uint64_t end_bytes, seg_image *img,
                           rr_wal_error *err)
{
    int rc = image_load(w, seq, img);
    if (rc != 0) {
        char path[RR_WAL_PATH_BYTES_MAX + 32];
        wal_segment_path(w, seq, path, sizeof path);
        wal_set_error(err, path, 0, "cannot read segment");
        return rc;
    }
    bool tail = end_bytes == UINT64_MAX;
    if (!tail && end_bytes > img->len)
        return corrupt(w, err, seq, img->len, "segment shorter than its successor says");
    rc = segs_push(w, seq);
    if (rc != 0)
        return rc;
    replay r = {.w = w, .seg = seg_last(w), .first_seg = first};
    wal_scan_result res;
    rc =
        wal_segment_scan(img->p, tail ? img->len : (size_t)end_bytes, seq, replay_record, &r, &res);
    if (rc != 0)
        return rc == -ENOMEM ? rc : corrupt(w, err, seq, res.end_bytes, "index gap in the log");
    if (res.end_bytes == 0)
        return corrupt(w, err, seq, 0, "segment without a valid header");
    if (!tail && (res.stop_err != 0 || res.end_bytes != end_bytes))
        return corrupt(w, err, seq, res.end_bytes, "bad record before the end of the log");
    if (res.valid_after)
        return corrupt(w, err, seq, res.end_bytes, "bad record followed by valid records");
    /* A torn write of the last batch (res.stop_err != 0) is cut here: appends continue at
     * end_bytes; what lies beyond is never a valid record of this segment. */
    w->write_offset_bytes = res.end_bytes;
    return 0;
}

/* Removes segments after the last one holding data (created, never written: a crash
 * right after a rollover). They must hold nothing valid at all. */
static int drop_empty_tail(rr_wal *w, const uint64_t *seqs, size_t n, size_t data_n, seg_image *img,
                           rr_wal_error *err)
{
    for (size_t k = data_n; k < n; k++) {
        int rc = image_load(w, seqs[k], img);
        if (rc != 0)
            return rc;
        wal_scan_result res;
        wal_segment_scan(img->p, img->len, seqs[k], NULL, NULL, &res);
        if (res.valid_after)
            return corrupt(w, err, seqs[k], res.end_bytes, "valid records after a bad header");
        char path[RR_WAL_PATH_BYTES_MAX + 32];
        wal_segment_path(w, seqs[k], path, sizeof path);
        if (unlink(path) != 0)
            return -errno;
    }
    if (data_n < n && fsync(w->dir_fd) != 0)
        return -errno;
    return 0;
}

/* The log's start after replay must agree with the newest snapshot. */
static int apply_snapshot_base(rr_wal *w)
{
    rr_index_t si = w->snap.meta.index;
    if (si == 0)
        return 0;
    if (si > w->dummy_index && si <= log_last(w) && term_at(w, si) == w->snap.meta.term) {
        w->idx_start += (size_t)(si - w->dummy_index);
        w->idx_n -= (size_t)(si - w->dummy_index);
        w->dummy_index = si;
        w->dummy_term = w->snap.meta.term;
    } else if (si > w->dummy_index) {
        log_reset(w, si, w->snap.meta.term); /* a received snapshot whose marker was lost */
    }
    return 0;
}

static int recover(rr_wal *w, rr_wal_error *err)
{
    int rc = wal_snap_load(w, err);
    if (rc != 0)
        return rc;
    uint64_t *seqs = NULL;
    size_t n = 0;
    rc = list_segments(w, &seqs, &n);
    for (size_t k = 1; rc == 0 && k < n; k++)
        if (seqs[k] != seqs[k - 1] + 1)
            rc = corrupt(w, err, seqs[k - 1] + 1, 0, "segment missing");
    size_t data_n = n;
    wal_segment_header next = {0};
    while (rc == 0 && data_n > 0) {
        bool data = false;
        rc = peek_header(w, seqs[data_n - 1], &data, &next);
        if (data)
            break;
        data_n--;
    }
    seg_image img = {0};
    if (rc == 0)
        rc = drop_empty_tail(w, seqs, n, data_n, &img, err);
    for (size_t k = 0; rc == 0 && k < data_n; k++) {
        uint64_t end = UINT64_MAX;
        if (k + 1 < data_n) {
            bool data = false;
            rc = peek_header(w, seqs[k + 1], &data, &next);
            if (rc == 0 && !data)
                rc = corrupt(w, err, seqs[k + 1], 0, "bad segment header");
            end = next.prev_end_bytes;
        }
        if (k + 1 < data_n)
            readahead_segment(w, seqs[k + 1]); /* read k + 1 while k is verified */
        if (rc == 0)
            rc = recover_segment(w, seqs[k], k == 0, end, &img, err);
    }
    free(img.p);
    free(seqs);
    if (rc != 0)
        return rc;
    w->need_segment = w->segs_n == 0;
    return apply_snapshot_base(w);
}

/* ---- open and close ---- */

static int config_check(const rr_wal_config *cfg)
{
    uint32_t q = cfg->queue_records_max;
    if (cfg->segment_size_bytes < RR_WAL_SEGMENT_BYTES_MIN ||
        cfg->segment_size_bytes > RR_WAL_SEGMENT_BYTES_MAX)
        return -EINVAL;
    if (q < 16 || q > RR_WAL_QUEUE_RECORDS_MAX || (q & (q - 1)) != 0)
        return -EINVAL;
    if (cfg->sync_mode > RR_WAL_SYNC_DIRECT || cfg->prealloc_mode > RR_WAL_PREALLOC_FALLOCATE)
        return -EINVAL;
    if (cfg->dir != NULL && strlen(cfg->dir) >= RR_WAL_PATH_BYTES_MAX)
        return -ENAMETOOLONG;
    return 0;
}

static int open_alloc(rr_wal *w)
{
    size_t q = w->cfg.queue_records_max;
    w->ring = calloc(q, sizeof(wal_op));
    w->superseded = calloc(q, 1);
    w->cache = calloc(q, sizeof(rr_entry));
    if (w->ring == NULL || w->superseded == NULL || w->cache == NULL)
        return -ENOMEM;
    w->ring_mask = q - 1;
    w->cache_cap = q;
    w->wake_efd = eventfd(0, EFD_CLOEXEC);
    w->done_efd = eventfd(0, EFD_CLOEXEC);
    if (w->wake_efd < 0 || w->done_efd < 0)
        return -errno;
    return 0;
}

static int open_files(rr_wal *w, rr_wal_error *err)
{
    if (mkdir(w->dir, 0755) != 0 && errno != EEXIST)
        return -errno;
    w->dir_fd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (w->dir_fd < 0)
        return -errno;
    int rc = recover(w, err);
    if (rc != 0)
        return rc;
    w->cache_lo = log_last(w) + 1;
    w->durable_index = log_last(w);
    w->durable_term = term_at(w, log_last(w));
    return wal_io_start(w);
}

int rr_wal_open(const rr_wal_config *cfg, rr_wal **out, rr_wal_error *err)
{
    int rc = config_check(cfg);
    if (rc != 0)
        return rc;
    rr_wal *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return -ENOMEM;
    w->cfg = *cfg;
    w->dir_fd = w->wake_efd = w->done_efd = w->write_fd = w->spare_fd = -1;
    if (cfg->dir == NULL) {
        rc = wal_mem_open(w);
    } else {
        snprintf(w->dir, sizeof w->dir, "%s", cfg->dir);
        w->cfg.dir = w->dir;
        rc = open_alloc(w);
        if (rc == 0)
            rc = open_files(w, err);
    }
    if (rc != 0) {
        rr_wal_close(w);
        return rc;
    }
    *out = w;
    return 0;
}

void rr_wal_close(rr_wal *w)
{
    if (w == NULL)
        return;
    if (w->mem != NULL) {
        wal_mem_close(w);
        free(w);
        return;
    }
    wal_io_stop(w);
    rr_wal_poll(w, NULL);
    for (uint64_t s = w->polled; s < w->tail; s++) /* not written: the io thread failed */
        rr_entry_clear(&w->ring[s & w->ring_mask].ent);
    if (w->cache != NULL)
        cache_drop_below(w, log_last(w) + 1);
    for (size_t k = 0; k < w->segs_n; k++)
        if (w->segs[k].read_fd >= 0)
            close(w->segs[k].read_fd);
    rr_snapshot_clear(&w->snap);
    if (w->wake_efd >= 0)
        close(w->wake_efd);
    if (w->done_efd >= 0)
        close(w->done_efd);
    if (w->dir_fd >= 0)
        close(w->dir_fd);
    free(w->segs);
    free(w->idx);
    free(w->ring);
    free(w->superseded);
    free(w->cache);
    free(w);
}
