/*
 * wal_internal.h: the rr_wal struct shared by wal.c (raft thread: index, cache, recovery,
 * storage), wal_io.c (io thread: batches on io_uring, segment files), wal_snap.c (snapshot
 * files) and wal_mem.c (the in-memory backend).
 *
 * The queue between the two threads is a single-producer single-consumer ring of queued
 * records (wal_op), indexed by sequence number (seq = position + 1):
 *
 *   polled <= done <= taken <= tail
 *   [polled, done)  durable, waiting for the raft thread's poll to release their buffers
 *   [done, taken)   in flight on the io thread (one batch)
 *   [taken, tail)   queued, gathering the next batch
 *
 * The raft thread writes slots at tail and publishes tail (release); the io thread reads
 * slots up to tail (acquire), writes only their CRC field, and publishes done (release)
 * after the batch's fdatasync completed. A slot is reused only after the raft thread polled
 * it, so neither thread ever reads a slot the other is writing.
 */
#ifndef RR_IO_WAL_INTERNAL_H
#define RR_IO_WAL_INTERNAL_H

#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
#include <time.h>

#include "ringraft/wal.h"
#include "wal_record.h"

/* io_uring submission queue depth; a batch stops before it could need more SQEs. */
#define WAL_URING_ENTRIES 256u
/* Segment switches within one batch (each costs a rename and a directory fsync). */
#define WAL_BATCH_SEGMENTS_MAX 8u
/* Vectors of one writev (IOV_MAX on Linux). */
#define WAL_WRITEV_IOVS_MAX 1024u
/* Vectors of one batch: writev SQEs + fdatasyncs + the eventfd read stay under the SQ. */
#define WAL_BATCH_IOVS_MAX (WAL_WRITEV_IOVS_MAX * (WAL_URING_ENTRIES / 2u))
_Static_assert(WAL_BATCH_IOVS_MAX / WAL_WRITEV_IOVS_MAX + 2u * WAL_BATCH_SEGMENTS_MAX + 4u <=
                   WAL_URING_ENTRIES,
               "a full batch fits in the submission queue");

/* RR_WAL_SYNC_DIRECT: writes are whole, aligned blocks of WAL_DIRECT_BLOCK_BYTES (the
 * largest logical block size O_DIRECT asks for on the devices we run on), staged in a
 * buffer of WAL_DIRECT_STAGE_BYTES; a batch larger than that goes out in several writes.
 * 4 MiB, not 1: a 1.1 MiB batch (256 x 4 KiB) measured 0.87x SYSCALL as two writes and
 * 0.94x as one (BENCHMARKS.md, WAL section). Allocated once, at rr_wal_open. */
#define WAL_DIRECT_BLOCK_BYTES 4096u
#define WAL_DIRECT_STAGE_BYTES (4u << 20)
_Static_assert(WAL_DIRECT_STAGE_BYTES % WAL_DIRECT_BLOCK_BYTES == 0, "stage is whole blocks");
_Static_assert(WAL_DIRECT_STAGE_BYTES >= 2u * WAL_DIRECT_BLOCK_BYTES,
               "a partial block plus new bytes fit");

/* Who runs batches (wal_io.c). In the synchronous modes (SYSCALL, DIRECT) a batch is
 * written and synced within one call, so the raft thread can run it itself when the io
 * thread is idle (rr_wal_unplug, rr_wal_wait): whoever holds `writer` owns the fields of
 * the "writer" section below. The io_uring modes keep batches in flight across waits:
 * there only the io thread ever writes. */
enum { WAL_WRITER_NONE = 0, WAL_WRITER_IO = 1, WAL_WRITER_CALLER = 2 };

/* How long rr_wal_wait spins on done before sleeping on done_efd. */
#define WAL_WAIT_SPIN_NS 20000

/* Segment files kept for reuse after compaction instead of being deleted. */
#define WAL_RECYCLE_FILES_MAX 4u
#define WAL_RECYCLE_PREFIX    "recycle-"

/* One queued record. */
typedef struct wal_op {
    uint64_t seg_seq;      /* segment it goes to */
    uint64_t offset_bytes; /* where in that segment */
    rr_entry ent;          /* ENTRY: the entry, holding a reference; payload written from it */
    uint32_t inline_bytes; /* payload bytes in hdr after the record header */
    uint8_t type;          /* enum wal_record_type */
    uint8_t hdr[WAL_RECORD_HEADER_BYTES + WAL_INLINE_PAYLOAD_BYTES_MAX];
} wal_op;

/* Where an entry lives: the in-memory index, one per entry in [first, last]. */
typedef struct wal_idx {
    rr_term_t term;
    uint32_t seg_seq;
    uint32_t offset_bytes; /* of the record header */
    uint32_t data_len;
    uint8_t type;
    uint8_t nil;
} wal_idx;

typedef struct wal_seg {
    uint64_t seq;
    int read_fd;          /* opened on first read, -1 before */
    rr_index_t max_index; /* highest entry index ever written into it (0: none) */
} wal_seg;

struct wal_mem;

struct rr_wal {
    rr_wal_config cfg;
    char dir[RR_WAL_PATH_BYTES_MAX];
    struct wal_mem *mem; /* in-memory backend, or NULL */
    int dir_fd;

    /* ---- raft thread ---- */
    /* The log: entries (dummy_index, dummy_index + idx_n]; idx[idx_start + k] describes
     * entry dummy_index + 1 + k. */
    wal_idx *idx;
    size_t idx_start, idx_n, idx_cap;
    rr_index_t dummy_index;
    rr_term_t dummy_term;
    /* Tail cache: entries [cache_lo, last] with references, in a ring of cache_cap. Every
     * entry not yet durable is cached (cache_cap == queue capacity). */
    rr_entry *cache;
    size_t cache_cap;
    rr_index_t cache_lo;
    /* Segments, oldest first, consecutive seqs; the last is the one being written. */
    wal_seg *segs;
    size_t segs_n, segs_cap;
    uint64_t write_offset_bytes; /* next record's offset in the last segment */
    bool need_segment;           /* the next record starts a new segment */
    rr_hard_state hs;
    bool hs_set;
    rr_snapshot snap;
    uint8_t *superseded; /* per ring slot: an entry record a truncation replaced */
    uint64_t polled;
    rr_index_t durable_index;
    rr_term_t durable_term;
    uint64_t batches_seen;
    bool remove_pending;
    rr_index_t remove_upto_index; /* segments whose entries are all <= this ... */
    uint64_t remove_below_seg;    /* ... and older than this segment go ... */
    uint64_t remove_seq_durable;  /* ... once this record (a fresh hard state) is durable */
    int fatal_err;                /* raft thread's copy once seen */
    bool plugged;                 /* rr_wal_plug: publish does not wake the io thread ... */
    bool wake_owed;               /* ... and remembers that it owes a wake-up */
    uint64_t plugged_bytes;       /* record bytes queued under the plug */

    /* ---- shared ---- */
    wal_op *ring;
    uint64_t ring_mask;
    _Alignas(64) uint64_t tail;   /* producer: raft thread (release) */
    _Alignas(64) uint64_t done;   /* consumer: io thread (release) */
    uint64_t batches_done;        /* io thread (relaxed; statistics) */
    uint64_t bytes_done;          /* record bytes made durable (relaxed; paces the fill) */
    int prealloc_hurry;           /* the spare is needed now: fill at full speed (relaxed) */
    int io_err;                   /* io thread's fatal error (release, before done_efd) */
    int stop;                     /* raft thread asks the io thread to exit (release) */
    _Alignas(64) uint32_t writer; /* WAL_WRITER_*: taken by CAS (acquire), put back (release) */
    uint32_t recycle_n; /* recycle-*.tmp files: raft thread adds, io thread takes (acq_rel) */
    _Alignas(64) int wake_efd; /* raft -> io: records queued, or stop */
    int done_efd;              /* io -> raft: a batch completed */

    /* ---- io thread ---- */
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t start_lock; /* the io thread reports its ring setup */
    pthread_cond_t start_cond;
    bool start_done;
    int start_rc;
    struct io_uring uring;
    bool uring_ready;

    /* ---- the writer: the io thread, or the raft thread while it holds `writer` ---- */
    uint64_t taken;
    bool inflight;
    uint32_t inflight_sqes; /* SQEs of the batch not completed yet */
    uint64_t inflight_end;  /* the batch is [taken, inflight_end) */
    int batch_err;
    uint64_t write_seq; /* segment open for writing (0: none) */
    int write_fd;
    int retire_fds[WAL_BATCH_SEGMENTS_MAX + 1]; /* closed when the batch completes */
    uint32_t retire_n;
    int spare_fd; /* preallocated next segment (spare.tmp), or -1 */
    /* Zero-filling a 64 MiB spare takes the disk ~0.5 s: a background thread does it so the
     * io thread keeps completing batches (it did it inline, and every rollover stalled
     * commits for that long). prealloc_result is the new spare's fd, or -errno, or
     * WAL_PREALLOC_PENDING while the thread runs (release/acquire on it). */
    pthread_t prealloc_thread;
    bool prealloc_running;
    int prealloc_result;
    struct iovec *iovs;
    uint32_t *expect_bytes; /* per writev SQE */
    uint64_t efd_buf;
    uint32_t syncs;
    uint64_t batch_bytes; /* record bytes of the batch being written */
    /* RR_WAL_SYNC_DIRECT: stage[0, stage_bytes) is the file's content from stage_off (a
     * block boundary) up to the io thread's tail: the partial last block, re-written with
     * the next batch, then what this batch staged. Zeros from stage_bytes to the next
     * block boundary when written. */
    uint8_t *stage;
    uint64_t stage_off;
    uint32_t stage_bytes;
    bool stage_dirty;    /* staged bytes not written yet */
    bool stage_unsynced; /* written without RWF_DSYNC: an fdatasync ends the batch */
    /* The mode in use: cfg.sync_mode, or SYSCALL after DIRECT fell back. Written by the
     * writer (or before the io thread starts), read by any thread (relaxed: a statistic). */
    uint8_t sync_mode_used;
};

/* CLOCK_MONOTONIC in nanoseconds (the bounded spin, the fill's pace). */
static inline uint64_t wal_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* wal_io.c */
int wal_io_start(rr_wal *w);
void wal_io_stop(rr_wal *w);
void wal_io_wake(rr_wal *w);
int wal_io_write_here(rr_wal *w);
int wal_segment_path(const rr_wal *w, uint64_t seq, char *out, size_t cap);
int wal_prealloc(int fd, uint64_t size_bytes, uint8_t mode);

/* wal_snap.c */
int wal_snap_write(rr_wal *w, const rr_snapshot *snap);
int wal_snap_load(rr_wal *w, rr_wal_error *err);

/* wal_mem.c: the in-memory backend behind the same public functions. */
int wal_mem_open(rr_wal *w);
void wal_mem_close(rr_wal *w);
int wal_mem_append(rr_wal *w, const rr_entry *ents, size_t n);
int wal_mem_set_hard_state(rr_wal *w, const rr_hard_state *hs);
uint64_t wal_mem_last_seq(const rr_wal *w);
int wal_mem_poll(rr_wal *w, rr_wal_durable *out);
rr_storage wal_mem_storage(rr_wal *w);
int wal_mem_save_snapshot(rr_wal *w, const rr_snapshot *snap, bool reset);
int wal_mem_compact(rr_wal *w, rr_index_t i);

/* wal.c helpers used by wal_snap.c */
void wal_set_error(rr_wal_error *err, const char *path, uint64_t offset_bytes, const char *msg);

#endif
