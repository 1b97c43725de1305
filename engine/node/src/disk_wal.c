/*
 * disk_wal.c: rr_node_disk_ops over io/'s write-ahead log (rr_wal_*).
 *
 * A MsgStorageAppend becomes, in order: the snapshot (rr_wal_apply_snapshot: durable on
 * return, then the log resets to it), the entries (rr_wal_append, from the entries' own
 * buffers: no copy), the hard state (rr_wal_set_hard_state). Its completion is the WAL's
 * sequence number of the last record queued: the WAL's group commit makes everything up
 * to it durable together.
 *
 * A hard state that differs from the last one queued only in its commit index is not
 * written on its own (etcd's MustSync rule: term and vote must be durable before a message
 * that depends on them leaves; the commit index need not be, since a restarted node learns
 * it again from the leader). It is kept and queued with the next entries or hard state, or
 * before a snapshot is saved and at close. Without this, a leader at window 1 paid a second
 * durable write per entry — the commit index — on the critical path of the next proposal.
 *
 * Appends are plugged (rr_wal_plug) until the node's end-of-turn flush: a turn's appends
 * reach the io thread as one batch, and a batch of at most DISK_WAL_INLINE_BYTES_MAX is
 * written on the raft thread itself when the io thread is idle (rr_wal_unplug). At window
 * 1 that removes two thread hand-offs per write from the commit path (leader and
 * followers); under load batches are larger and the io thread writes them while the raft
 * thread goes on.
 */
#include "ringraft/node.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include "ringraft/wal.h"

/* Consumes a pending wake-up of an eventfd before draining what it announced. The fd may
 * be blocking (its owner's own waits rely on that): read only when poll says it is set. */
static void reset_fd(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (fd >= 0 && poll(&p, 1, 0) == 1) {
        uint64_t v;
        (void)!read(fd, &v, sizeof v);
    }
}

/* Entries per rr_wal_append call: well under the WAL's queue and cache capacity
 * (RR_WAL_QUEUE_RECORDS_DEFAULT). */
#define DISK_WAL_CHUNK_ENTRIES 4096u
_Static_assert(DISK_WAL_CHUNK_ENTRIES * 2 <= RR_WAL_QUEUE_RECORDS_DEFAULT,
               "a chunk fits the WAL's queue with room for what is in flight");

/* Largest batch (record bytes) the raft thread writes itself. Chosen, not tuned: a window-1
 * turn queues one entry and a hard state (well under 1 KiB), while a loaded leader's turns
 * queue hundreds of KiB (BENCHMARKS.md), and its raft thread has better things to do than
 * wait for those writes. */
#define DISK_WAL_INLINE_BYTES_MAX (32u << 10)

typedef struct disk_wal {
    rr_wal *wal;
    int err;               /* first fatal error, reported by durable() */
    rr_hard_state written; /* the last hard state queued to the WAL */
    bool have_written;
    rr_hard_state pending; /* a newer commit index not queued yet */
    bool have_pending;
    uint64_t syncs; /* atomic: the WAL's completed batches, as last polled */
} disk_wal;

/* A full queue means the io thread is behind: wait for it rather than fail. */
static int with_room(disk_wal *d, int rc_first, int (*retry)(disk_wal *, const void *),
                     const void *arg)
{
    int rc = rc_first;
    while (rc == -EAGAIN) {
        rr_wal_durable dur;
        rc = rr_wal_wait(d->wal, rr_wal_last_seq(d->wal), &dur);
        if (rc == 0)
            rc = retry(d, arg);
    }
    return rc;
}

typedef struct append_args {
    const rr_entry *ents;
    size_t n;
} append_args;

static int retry_append(disk_wal *d, const void *arg)
{
    const append_args *a = arg;
    return rr_wal_append(d->wal, a->ents, a->n);
}

static int retry_hard_state(disk_wal *d, const void *arg)
{
    return rr_wal_set_hard_state(d->wal, arg);
}

static int queue_hard_state(disk_wal *d, const rr_hard_state *hs)
{
    int rc = with_room(d, rr_wal_set_hard_state(d->wal, hs), retry_hard_state, hs);
    if (rc == 0) {
        d->written = *hs;
        d->have_written = true;
        d->have_pending = false;
    }
    return rc;
}

static int64_t dw_append(void *ctx, const rr_entry *ents, size_t n, const rr_hard_state *hs,
                         const rr_snapshot *snap)
{
    disk_wal *d = ctx;
    rr_wal_plug(d->wal); /* until dw_flush, at the end of the raft thread's turn */
    uint64_t last = rr_wal_last_seq(d->wal);
    if (hs != NULL && n == 0 && snap == NULL && d->have_written && last > 0 &&
        hs->term == d->written.term && hs->vote == d->written.vote) {
        d->pending = *hs; /* only the commit index moved: nothing to wait for */
        d->have_pending = true;
        return (int64_t)last;
    }
    int rc = 0;
    if (snap != NULL)
        rc = rr_wal_apply_snapshot(d->wal, snap);
    if (rc == RR_ERR_SNAP_OUT_OF_DATE)
        rc = 0; /* already have a newer one: nothing to restore */
    /* In chunks: the WAL takes at most its queue's worth of entries per call, and a
     * follower catching up may get more in one Ready. */
    while (rc == 0 && n > 0) {
        size_t k = n < DISK_WAL_CHUNK_ENTRIES ? n : DISK_WAL_CHUNK_ENTRIES;
        append_args a = {.ents = ents, .n = k};
        rc = with_room(d, rr_wal_append(d->wal, ents, k), retry_append, &a);
        ents += k;
        n -= k;
    }
    if (rc == 0 && hs == NULL && d->have_pending)
        hs = &d->pending; /* rides with these entries */
    if (rc == 0 && hs != NULL) {
        rr_hard_state h = *hs; /* may point at d->pending */
        rc = queue_hard_state(d, &h);
    }
    if (rc != 0) {
        d->err = rc < 0 ? rc : -EIO;
        return d->err;
    }
    return (int64_t)rr_wal_last_seq(d->wal);
}

/* Queues a kept commit index and waits until everything queued is durable. */
static int flush_pending(disk_wal *d)
{
    if (!d->have_pending)
        return 0;
    rr_hard_state h = d->pending;
    int rc = queue_hard_state(d, &h);
    if (rc == 0)
        rc = rr_wal_wait(d->wal, rr_wal_last_seq(d->wal), NULL);
    return rc;
}

static int64_t dw_durable(void *ctx)
{
    disk_wal *d = ctx;
    if (d->err != 0)
        return d->err;
    reset_fd(rr_wal_fd(d->wal));
    rr_wal_durable dur;
    int rc = rr_wal_poll(d->wal, &dur);
    if (rc != 0) {
        d->err = rc;
        return rc;
    }
    __atomic_store_n(&d->syncs, dur.batches, __ATOMIC_RELAXED);
    return (int64_t)dur.seq;
}

static int dw_flush(void *ctx)
{
    disk_wal *d = ctx;
    if (d->err != 0)
        return d->err;
    int rc = rr_wal_unplug(d->wal, DISK_WAL_INLINE_BYTES_MAX);
    if (rc < 0)
        d->err = rc;
    return rc;
}

static int dw_fd(void *ctx)
{
    return rr_wal_fd(((disk_wal *)ctx)->wal);
}

static rr_storage dw_storage(void *ctx)
{
    return rr_wal_storage(((disk_wal *)ctx)->wal);
}

static int dw_save_snapshot(void *ctx, const rr_snapshot *snap, rr_index_t compact_index)
{
    disk_wal *d = ctx;
    /* A restart resumes application at min(snapshot index, durable commit index): the
     * commit index covering the snapshot is made durable first. */
    int rc = flush_pending(d);
    if (rc != 0)
        return rc;
    rc = rr_wal_save_snapshot(d->wal, snap);
    if (rc == RR_ERR_SNAP_OUT_OF_DATE)
        return 0; /* a newer one (from the leader) is already there */
    if (rc == 0 && compact_index > 0)
        rc = rr_wal_compact(d->wal, compact_index);
    if (rc == RR_ERR_COMPACTED)
        rc = 0;
    return rc;
}

static void dw_close(void *ctx)
{
    disk_wal *d = ctx;
    if (d->err == 0)
        (void)flush_pending(d); /* best effort: a lost commit index is learnt again */
    rr_wal_close(d->wal);
    free(d);
}

static uint64_t dw_syncs(void *ctx)
{
    return __atomic_load_n(&((disk_wal *)ctx)->syncs, __ATOMIC_RELAXED);
}

static const rr_node_disk_ops disk_wal_ops = {
    .append = dw_append,
    .durable = dw_durable,
    .wait_fd = dw_fd,
    .storage = dw_storage,
    .save_snapshot = dw_save_snapshot,
    .close = dw_close,
    .syncs = dw_syncs,
    .flush = dw_flush,
};

int rr_node_disk_wal(rr_wal *wal, const rr_node_disk_ops **ops, void **ctx)
{
    disk_wal *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return -ENOMEM;
    d->wal = wal;
    *ops = &disk_wal_ops;
    *ctx = d;
    return 0;
}
