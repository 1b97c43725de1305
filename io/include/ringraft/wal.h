/*
 * wal.h: durable storage of a replica — the write-ahead log of the io/ module (issue 6).
 *
 * A log of numbered, preallocated segment files written through io_uring with group
 * commit, plus snapshot files. It serves the core's rr_storage interface and reports
 * durability to engine/node. An in-memory backend (cfg.dir == NULL) has the same API.
 *
 * Records (entries, hard state, snapshot markers) carry length, type and CRC-32C over
 * header and payload; the entry payload is net/'s wire encoding (ringraft/entry_codec.h).
 * The on-disk format is documented at the top of io/src/wal_record.c (records, segments)
 * and io/src/wal_snap.c (snapshot files).
 *
 * Threads. Every rr_wal_* function is called from one thread, the "raft thread" (the
 * thread that drives the rawnode), and so are the rr_storage callbacks. rr_wal_open starts
 * one io thread per file-backed WAL; it owns the io_uring, takes whatever records are
 * queued as one batch (one vectored write from the callers' buffers, linked with one
 * fdatasync), and while that batch is in flight the next one gathers. It never calls back
 * into the caller: it publishes completions and makes rr_wal_fd() readable; the raft thread
 * then calls rr_wal_poll(). The io thread sleeps in io_uring_wait_cqe when idle.
 *
 * Sequence numbers. Every queued record (entries, hard states, markers) gets the next
 * sequence number; rr_wal_last_seq() is the latest. rr_wal_poll() reports durable_seq:
 * every record with seq <= durable_seq is on stable storage. Use it to release what must
 * follow persistence (vote grants, append acks): note rr_wal_last_seq() after queuing a
 * Ready's hard state and entries, release when durable_seq reaches it.
 *
 * Durable (term, index). rr_wal_poll() also reports the highest entry that is durable *in
 * the current log*. A conflicting append truncates the suffix: entries of the old suffix
 * still in flight are never reported (no ABA: the WAL remembers which queued records a
 * truncation superseded), and the reported index drops to the truncation point until the
 * new entries are durable. On disk, truncation is the new record itself (etcd's WAL does
 * the same): recovery replays records in order and an entry at index <= last replaces the
 * suffix, so "truncated" and "new entries durable" become true in the same fdatasync.
 *
 * Buffers. rr_wal_append takes its own reference on each entry's buffer and holds it
 * until the entry is durable and polled (the write reads the bytes in place: no copy,
 * except in RR_WAL_SYNC_DIRECT mode, which copies into an aligned staging buffer), and
 * for as long as the entry stays in the tail cache. Entries returned through rr_storage
 * carry their own references (cache hits share the caller's buffer, older entries come in
 * a buffer read from the segment). Snapshots: the WAL keeps a reference on snap->buf.
 *
 * Writing on the caller's thread. In the synchronous modes (RR_WAL_SYNC_SYSCALL, DIRECT)
 * a batch is written and synced by one system call sequence, so the raft thread may run it
 * itself when the io thread is idle: rr_wal_wait does (it would only sleep otherwise), and
 * so does rr_wal_unplug for a small batch. A small batch then costs its write, not two
 * thread hand-offs on top. Large batches still go to the io thread, which writes them
 * while the raft thread goes on with its next turn.
 *
 * Waiting. rr_wal_wait spins for up to 20 us on the completion counter, then sleeps on
 * rr_wal_fd(); nothing in the WAL busy-polls for longer.
 *
 * Failure. Errors are 0 or -errno (or RR_ERR_*, ringraft/errors.h). A failed write or
 * fdatasync is fatal: the WAL stops (no retry, as PostgreSQL learned in 2018: after a
 * failed fsync the page cache may have dropped the dirty pages), rr_wal_poll returns the
 * error from then on, and appends return RR_ERR_STOPPED. The replica must stop.
 */
#ifndef RINGRAFT_WAL_H
#define RINGRAFT_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringraft/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Limits (STYLE.md habit 10): the WAL's own, tied to the core's in wal_record.h. */
#define RR_WAL_SEGMENT_BYTES_DEFAULT (64u << 20)
#define RR_WAL_SEGMENT_BYTES_MIN     (4u << 10)
#define RR_WAL_SEGMENT_BYTES_MAX     (1u << 30)
#define RR_WAL_QUEUE_RECORDS_DEFAULT (1u << 14)
#define RR_WAL_QUEUE_RECORDS_MAX     (1u << 20)
#define RR_WAL_PATH_BYTES_MAX        256u

_Static_assert(RR_WAL_SEGMENT_BYTES_MIN <= RR_WAL_SEGMENT_BYTES_DEFAULT, "default in range");
_Static_assert(RR_WAL_SEGMENT_BYTES_DEFAULT <= RR_WAL_SEGMENT_BYTES_MAX, "default in range");
/* Offsets inside a segment are 32-bit in the in-memory index: a full segment plus one
 * oversized entry must fit. */
_Static_assert((uint64_t)RR_WAL_SEGMENT_BYTES_MAX + 2u * RR_ENTRY_BYTES_MAX < UINT32_MAX,
               "segment offsets fit in 32 bits");
_Static_assert((RR_WAL_QUEUE_RECORDS_DEFAULT & (RR_WAL_QUEUE_RECORDS_DEFAULT - 1)) == 0,
               "queue capacity is a power of two");

/* How a batch is made durable. */
typedef enum rr_wal_sync_mode {
    RR_WAL_SYNC_FDATASYNC = 0, /* writev SQEs linked with IORING_OP_FSYNC(DATASYNC) */
    RR_WAL_SYNC_DSYNC = 1,     /* segments opened O_DSYNC: each writev is durable alone */
    /* pwritev + fdatasync system calls made by the io thread (no io_uring for the data);
     * still group commit, the raft thread never blocks. Faster than the io_uring modes on
     * ext4, where io_uring punts buffered writes and fsyncs to worker threads. */
    RR_WAL_SYNC_SYSCALL = 2,
    /* Segments opened O_DIRECT (preallocated as in every mode); the io thread copies each
     * batch into a 4 KiB-aligned staging buffer (4 MiB) and writes it from the start of
     * the block holding the tail, re-writing that partial block, so every write is block-
     * aligned and whole blocks long; bytes after the tail in the last block are zeros.
     * A batch that fits in the buffer is one pwritev2(RWF_DSYNC) (as O_DSYNC: one FUA
     * write, or write + cache flush without FUA; no journal commit with zero-filled
     * segments, whose extents are written already) and no fdatasync; a larger one is several writes then one
     * fdatasync, all before it is reported durable. Renamed-in segments still get their
     * directory fsync. Costs one copy of every payload (the other modes write from the
     * callers' buffers). If the file system refuses O_DIRECT (EINVAL: tmpfs and others),
     * the WAL falls back to RR_WAL_SYNC_SYSCALL and rr_wal_sync_mode_used() says so.
     * Records are byte-identical to the other modes'. The default: measured fastest
     * (BENCHMARKS.md, WAL section). */
    RR_WAL_SYNC_DIRECT = 3,
} rr_wal_sync_mode;

/* How a new segment is preallocated (ahead of need, by the io thread) when no segment
 * deleted by compaction is waiting to be recycled. Zeros cost a write of the whole file
 * once; fallocate() costs a journal commit in many later fdatasyncs (unwritten extents
 * being converted), which measured slower at small batches (BENCHMARKS.md). */
typedef enum rr_wal_prealloc_mode {
    RR_WAL_PREALLOC_ZERO = 0,      /* written with zeros and fsynced: default */
    RR_WAL_PREALLOC_FALLOCATE = 1, /* fallocate(): extents stay "unwritten" until written */
} rr_wal_prealloc_mode;

typedef struct rr_wal_config {
    /* Directory of segments and snapshots (created if missing); NULL selects the in-memory
     * backend (tests, simulator): everything is durable as soon as it is queued. */
    const char *dir;
    uint64_t segment_size_bytes; /* RR_WAL_SEGMENT_BYTES_MIN..MAX */
    uint32_t queue_records_max;  /* records queued or in flight; a power of two */
    uint8_t sync_mode;           /* rr_wal_sync_mode */
    uint8_t prealloc_mode;       /* rr_wal_prealloc_mode */
    /* Fault seam for tests (STYLE.md habit 12): when nonzero, the io thread reports the
     * Nth sync (fdatasync, or write in DSYNC and DIRECT modes) as failed with -EIO. */
    uint32_t fault_sync_fail_at;
} rr_wal_config;

/* Where and why rr_wal_open failed (file and byte offset for corruption). */
typedef struct rr_wal_error {
    char path[RR_WAL_PATH_BYTES_MAX + 32];
    uint64_t offset_bytes;
    char msg[128];
} rr_wal_error;

/* What rr_wal_poll reports. */
typedef struct rr_wal_durable {
    rr_term_t term;   /* of the entry at index (0 when index is 0) */
    rr_index_t index; /* highest durable entry of the current log (or snapshot index) */
    uint64_t seq;     /* every record with seq <= this is durable */
    uint64_t batches; /* batches completed so far (statistics) */
} rr_wal_durable;

typedef struct rr_wal rr_wal;

/* Defaults: dir, 64 MiB segments, 16384 queued records, O_DIRECT block writes with RWF_DSYNC
 * (RR_WAL_SYNC_DIRECT), zero-filled segments. */
void rr_wal_config_init(rr_wal_config *cfg, const char *dir);

/*
 * Opens (creating if empty) the WAL in cfg->dir: loads the newest snapshot, scans every
 * segment, verifies every record and rebuilds the index, cuts a torn tail of the last
 * segment (durably), then starts the io thread. Returns 0 and *out, or -EINVAL (bad
 * config), -ENOMEM, -errno from the file system, RR_ERR_BAD_VERSION, or RR_ERR_CORRUPT for
 * a bad record anywhere but the torn tail, a missing segment or an index gap (never a
 * silent skip); err (may be NULL) then names the file and offset.
 */
int rr_wal_open(const rr_wal_config *cfg, rr_wal **out, rr_wal_error *err);

/* Writes out everything queued (waiting for it), stops the io thread, releases every
 * reference and frees w. NULL is a no-op. */
void rr_wal_close(rr_wal *w);

/*
 * Queues entries ents[0..n), contiguous and increasing. ents[0].index may be <= last (the
 * conflicting suffix is truncated first), or last + 1. Entries at or below the compaction
 * point are ignored (as etcd's MemoryStorage). They are readable through rr_wal_storage at
 * once and durable when rr_wal_poll says so. All or nothing: returns 0, -EINVAL (not
 * contiguous, an entry over RR_ENTRY_BYTES_MAX, or n over queue_records_max),
 * RR_ERR_UNAVAILABLE (a gap after last),
 * -EAGAIN (the queue is full: poll, then retry) or the fatal error / RR_ERR_STOPPED.
 */
int rr_wal_append(rr_wal *w, const rr_entry *ents, size_t n);

/* Queues a hard state record. Returns 0, -EAGAIN or the fatal error. */
int rr_wal_set_hard_state(rr_wal *w, const rr_hard_state *hs);

/* Sequence number of the last queued record (0 before any). */
uint64_t rr_wal_last_seq(const rr_wal *w);

/* Collects completions without blocking: fills *out, releases buffers of durable entries,
 * and finishes compaction whose hard-state record became durable. Returns 0 or the fatal
 * error (-EIO, -ENOSPC ... from the io thread): the replica must stop. */
int rr_wal_poll(rr_wal *w, rr_wal_durable *out);

/* Blocks until every record with sequence number <= seq is durable (or the WAL failed),
 * then polls into *out (may be NULL). Returns as rr_wal_poll. */
int rr_wal_wait(rr_wal *w, uint64_t seq, rr_wal_durable *out);

/*
 * Plugging (the block layer's habit): between rr_wal_plug and rr_wal_unplug, queued records
 * do not wake the io thread; a turn that queues several appends wakes it once. Unplug then
 * writes the records on this thread if they total at most inline_bytes_max record bytes and
 * the io thread is idle (SYSCALL and DIRECT modes), else wakes the io thread. Returns 1 when
 * they were written here (durable: rr_wal_poll reports them), 0 when they were handed to
 * the io thread (or nothing was queued), or the fatal error. rr_wal_wait, rr_wal_close and
 * -EAGAIN retries need no unplug first. No-ops for the in-memory backend.
 */
void rr_wal_plug(rr_wal *w);
int rr_wal_unplug(rr_wal *w, uint64_t inline_bytes_max);

/* An eventfd that becomes readable when a batch completes (read it to reset, then
 * rr_wal_poll), for the raft thread's event loop. -1 for the in-memory backend. */
int rr_wal_fd(const rr_wal *w);

/* The core's view (initial state, entries, term, first/last index, snapshot). Valid until
 * rr_wal_close; called on the raft thread only. */
rr_storage rr_wal_storage(rr_wal *w);

/*
 * Persists a snapshot made locally at snap->meta.index (<= last, whose term must be
 * snap->meta.term): data and metadata go to a temporary file, fsynced, renamed, directory
 * fsynced; the log is kept (compact separately). Synchronous: returns when the snapshot is
 * durable. Returns 0, RR_ERR_SNAP_OUT_OF_DATE, RR_ERR_UNAVAILABLE (index above last),
 * RR_ERR_COMPACTED, -EINVAL (term mismatch) or -errno.
 */
int rr_wal_save_snapshot(rr_wal *w, const rr_snapshot *snap);

/* Persists a snapshot received from the leader (a Ready's snapshot) as above, then resets
 * the log to it (etcd's MemoryStorage.ApplySnapshot) and queues a snapshot marker record
 * so recovery replays the reset. Returns 0, RR_ERR_SNAP_OUT_OF_DATE, -EAGAIN (queue full),
 * RR_ERR_STOPPED or -errno. */
int rr_wal_apply_snapshot(rr_wal *w, const rr_snapshot *snap);

/*
 * Discards entries up to and including index i (entry i stays as the log's start, as
 * rr_memstorage_compact), i <= the snapshot index. Segments whose entries are all <= i
 * are deleted — up to four kept as recycle-*.tmp, to become the next segments without
 * preallocation — once a fresh hard-state record is durable (so the latest hard state
 * never lives only in a deleted file). Returns 0, RR_ERR_COMPACTED, RR_ERR_UNAVAILABLE (i
 * above the snapshot index or the last index), -EAGAIN (queue full) or RR_ERR_STOPPED.
 */
int rr_wal_compact(rr_wal *w, rr_index_t i);

/* Segment files currently making up the log (statistics and tests). */
uint32_t rr_wal_segment_count(const rr_wal *w);

/* The sync mode the io thread actually uses: cfg.sync_mode, except RR_WAL_SYNC_SYSCALL
 * after RR_WAL_SYNC_DIRECT fell back (the file system refused O_DIRECT). Known once a
 * segment was opened for writing: at rr_wal_open for an existing log, else after the first
 * batch completed (before that it reports cfg.sync_mode). The in-memory backend reports
 * cfg.sync_mode. Any thread. */
uint8_t rr_wal_sync_mode_used(const rr_wal *w);

#ifdef __cplusplus
}
#endif
#endif
