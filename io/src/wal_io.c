/*
 * wal_io.c: the io thread — group commit on io_uring, segment files, preallocation.
 *
 * Loop (Redis's ae.c habit: one sync per turn before anyone is told): when no batch is in
 * flight, take every record queued so far as one batch and submit it as a chain of linked
 * SQEs — writev of up to 1024 vectors straight from the queued headers and the callers'
 * payload buffers (no copy), ..., one fdatasync — then sleep in io_uring_wait_cqe until a
 * completion arrives. An eventfd read stays armed in the same ring, so new records wake
 * the thread too; while one batch is in flight the next gathers in the queue. When the
 * chain completes the thread publishes done (release) and signals done_efd.
 *
 * A batch that reaches a SEGMENT record ends the chain on the old file with its own
 * fdatasync before the new file is written (wal_record.c: recovery relies on it), and
 * switches files: the preallocated spare.tmp is renamed to the segment's name and the
 * directory fsynced. A missing spare is made ahead of the next rollover: a recycled
 * segment (recycle-*.tmp, left by compaction) when there is one, else a new file
 * preallocated per cfg.prealloc_mode by a background thread (zero-filling 64 MiB takes the
 * disk ~0.5 s, which the io thread must not spend away from its batches).
 *
 * The ring is set up with SINGLE_ISSUER | DEFER_TASKRUN; measured variants are in
 * bench/micro/bench_wal.c (O_DSYNC instead of fdatasync, fallocate instead of zeros).
 *
 * RR_WAL_SYNC_SYSCALL and RR_WAL_SYNC_DIRECT make their writes (and fdatasync) as system
 * calls of this thread, so a batch completes inside batch_submit and io_uring only waits
 * for wake-ups. DIRECT copies the batch's records into the staging buffer behind the
 * partial block at the tail (kept from the previous write) and writes whole blocks to a
 * segment opened O_DIRECT. A batch that fits in the stage is one pwritev2(RWF_DSYNC), the
 * same as a write to an O_DSYNC file: one FUA write, or write + cache flush on a device
 * without FUA (virtio here), and no fdatasync. A larger batch writes full stages without
 * RWF_DSYNC and ends with one fdatasync, so it pays one cache flush, not one per stage (a
 * FUA write would not make the earlier writes durable, hence fdatasync, not RWF_DSYNC, on
 * the last). A batch that rolls over makes the old segment's blocks durable before the new
 * file is renamed in: recovery gets the same order (old complete before any byte of the
 * new) as from the fdatasync in the other modes.
 * Re-writing the partial block re-writes acknowledged records with the same bytes: a write
 * torn by a crash leaves each sector old or new, and both hold them (page writeback in the
 * buffered modes re-writes the same 4 KiB page the same way).
 *
 * Any failed or short write or sync is fatal (no retry): io_err is published and the
 * thread submits nothing more.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ringraft/assert.h"
#include "ringraft/errors.h"
#include "wal_internal.h"

enum { KIND_WAKE = 1, KIND_WRITE = 2, KIND_SYNC = 3 };

#define SPARE_NAME       "spare.tmp"
#define ZERO_CHUNK_BYTES (1u << 20)
/* The background fill's pace (pace_wait): at least this fast. Its writes stay 1 MiB:
 * 256 KiB synchronous direct writes filled too slowly to keep up with a WAL writing 4 KiB
 * entries at disk speed, and rollovers waited for the spare (BENCHMARKS.md). */
#define FILL_MIN_BYTES_PER_S (32ull << 20)
#define FILL_PACE_SLEEP_NS   2000000

int wal_segment_path(const rr_wal *w, uint64_t seq, char *out, size_t cap)
{
    return snprintf(out, cap, "%s/%016" PRIx64 ".wal", w->dir, seq);
}

/* Pacing of a background fill. Every byte of zeros the fill writes sits in the device's
 * volatile cache until the next flush, and the WAL's next sync is that flush: a fill at
 * full speed made a lightly loaded WAL's syncs pay for megabytes of zeros (window-1 commit
 * latency). So the fill keeps just ahead of need: done by the time the WAL has written half
 * a segment more than when it began, and at least FILL_MIN_BYTES_PER_S; at full speed once
 * a rollover (or the close) waits for it (prealloc_hurry). */
typedef struct fill_pace {
    rr_wal *w;
    uint64_t t0_ns, wal0_bytes;
} fill_pace;

static void pace_wait(const fill_pace *pc, uint64_t filled, uint64_t total)
{
    if (pc == NULL)
        return;
    for (;;) {
        /* relaxed: hints; a chunk early or late is harmless */
        if (__atomic_load_n(&pc->w->prealloc_hurry, __ATOMIC_RELAXED))
            return;
        uint64_t wal = __atomic_load_n(&pc->w->bytes_done, __ATOMIC_RELAXED) - pc->wal0_bytes;
        double elapsed_s = (double)(wal_mono_ns() - pc->t0_ns) * 1e-9;
        double need = (double)wal / ((double)total / 2);
        double floor = elapsed_s * (double)FILL_MIN_BYTES_PER_S / (double)total;
        if ((double)filled / (double)total <= (need > floor ? need : floor))
            return;
        struct timespec ts = {0, FILL_PACE_SLEEP_NS};
        nanosleep(&ts, NULL);
    }
}

/* Writes zeros to [off, end) of fd, paced by pc (NULL: at full speed). */
static int zero_write(int fd, uint64_t off, uint64_t end, const fill_pace *pc)
{
    /* aligned: a source buffer for O_DIRECT writes */
    static _Alignas(WAL_DIRECT_BLOCK_BYTES) const uint8_t zeros[ZERO_CHUNK_BYTES];
    while (off < end) {
        pace_wait(pc, off, end);
        size_t k = end - off < sizeof zeros ? (size_t)(end - off) : sizeof zeros;
        ssize_t n = pwrite(fd, zeros, k, (off_t)off);
        if (n < 0 && errno != EINTR)
            return -errno;
        off += n > 0 ? (uint64_t)n : 0;
    }
    return 0;
}

/* Zero-fills [0, size), the whole blocks with O_DIRECT where the file system has it: the
 * zeros go to the device without passing through the page cache. Buffered, copying 64 MiB
 * of zeros per segment into the cache cost ~5 % of a loaded rrbench run's CPU
 * (copy_folio_from_iter_atomic under prealloc_main) and pushed useful pages out. */
static int zero_fill(int fd, uint64_t size_bytes, const fill_pace *pc)
{
    int fl = fcntl(fd, F_GETFL);
    bool direct = fl >= 0 && fcntl(fd, F_SETFL, fl | O_DIRECT) == 0;
    uint64_t whole = direct ? size_bytes & ~(uint64_t)(WAL_DIRECT_BLOCK_BYTES - 1) : 0;
    int rc = zero_write(fd, 0, whole, pc);
    if (direct && fcntl(fd, F_SETFL, fl) != 0 && rc == 0)
        rc = -errno;
    if (rc == -EINVAL && direct) { /* refused after all: everything buffered */
        whole = 0;
        rc = 0;
    }
    return rc != 0 ? rc : zero_write(fd, whole, size_bytes, pc);
}

/* Preallocates and syncs a new segment file, so that later fdatasyncs have no size or
 * allocation to commit (zero-filled) or only the unwritten-extent conversion (fallocate).
 * pc paces a background fill (NULL: full speed). */
static int prealloc_paced(int fd, uint64_t size_bytes, uint8_t mode, const fill_pace *pc)
{
    int rc;
    if (mode == RR_WAL_PREALLOC_FALLOCATE)
        rc = fallocate(fd, 0, 0, (off_t)size_bytes) == 0 ? 0 : -errno;
    else
        rc = zero_fill(fd, size_bytes, pc);
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    return rc;
}

int wal_prealloc(int fd, uint64_t size_bytes, uint8_t mode)
{
    return prealloc_paced(fd, size_bytes, mode, NULL);
}

/* Takes a recycle-*.tmp file as the spare, if there is one of the right size. */
static int spare_recycle(rr_wal *w)
{
    if (__atomic_load_n(&w->recycle_n, __ATOMIC_ACQUIRE) == 0)
        return -ENOENT;
    DIR *d = opendir(w->dir);
    if (d == NULL)
        return -errno;
    struct dirent *de;
    int fd = -ENOENT;
    while (fd < 0 && (de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, WAL_RECYCLE_PREFIX, strlen(WAL_RECYCLE_PREFIX)) != 0)
            continue;
        if (renameat(w->dir_fd, de->d_name, w->dir_fd, SPARE_NAME) != 0)
            continue;
        __atomic_fetch_sub(&w->recycle_n, 1, __ATOMIC_ACQ_REL);
        fd = openat(w->dir_fd, SPARE_NAME, O_RDWR | O_CLOEXEC);
        struct stat st;
        if (fd >= 0 && (fstat(fd, &st) != 0 || (uint64_t)st.st_size < w->cfg.segment_size_bytes)) {
            close(fd); /* from a smaller configuration: not worth keeping */
            unlinkat(w->dir_fd, SPARE_NAME, 0);
            fd = -ENOENT;
        }
    }
    closedir(d);
    if (fd < 0)
        return fd;
    w->spare_fd = fd;
    return 0;
}

static int spare_create(rr_wal *w)
{
    if (spare_recycle(w) == 0)
        return 0;
    int fd = openat(w->dir_fd, SPARE_NAME, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int rc = wal_prealloc(fd, w->cfg.segment_size_bytes, w->cfg.prealloc_mode);
    if (rc != 0) {
        close(fd);
        return rc;
    }
    w->spare_fd = fd;
    return 0;
}

#define WAL_PREALLOC_PENDING INT32_MIN

static void *prealloc_main(void *arg)
{
    rr_wal *w = arg;
    (void)pthread_setname_np(pthread_self(), "rr-wal-fill");
    fill_pace pc = {.w = w,
                    .t0_ns = wal_mono_ns(),
                    .wal0_bytes = __atomic_load_n(&w->bytes_done, __ATOMIC_RELAXED)};
    int fd = openat(w->dir_fd, SPARE_NAME, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int result = fd < 0 ? -errno : fd;
    if (fd >= 0) {
        int rc = prealloc_paced(fd, w->cfg.segment_size_bytes, w->cfg.prealloc_mode, &pc);
        if (rc != 0) {
            close(fd);
            result = rc;
        }
    }
    /* release: the file's state is complete before the io thread may use it */
    __atomic_store_n(&w->prealloc_result, result, __ATOMIC_RELEASE);
    return NULL;
}

/* Takes the background spare once it is ready (or, with wait, once it is done). */
static void spare_collect(rr_wal *w, bool wait)
{
    if (!w->prealloc_running)
        return;
    if (!wait && __atomic_load_n(&w->prealloc_result, __ATOMIC_ACQUIRE) == WAL_PREALLOC_PENDING)
        return;
    __atomic_store_n(&w->prealloc_hurry, 1, __ATOMIC_RELAXED); /* waited for: no more pacing */
    pthread_join(w->prealloc_thread, NULL);
    w->prealloc_running = false;
    int result = __atomic_load_n(&w->prealloc_result, __ATOMIC_ACQUIRE);
    if (result >= 0)
        w->spare_fd = result;
}

/* Ensures a spare is on its way: a recycled segment at once (a rename), else a new file
 * zero-filled in the background. Failure here is not fatal: the rollover retries inline. */
static void spare_start(rr_wal *w)
{
    spare_collect(w, false);
    if (w->spare_fd >= 0 || w->prealloc_running)
        return;
    if (spare_recycle(w) == 0)
        return;
    __atomic_store_n(&w->prealloc_result, WAL_PREALLOC_PENDING, __ATOMIC_RELAXED);
    __atomic_store_n(&w->prealloc_hurry, 0, __ATOMIC_RELAXED);
    if (pthread_create(&w->prealloc_thread, NULL, prealloc_main, w) == 0)
        w->prealloc_running = true;
}

static int open_flags(uint8_t mode)
{
    int flags = O_WRONLY | O_CLOEXEC;
    if (mode == RR_WAL_SYNC_DSYNC)
        flags |= O_DSYNC;
    if (mode == RR_WAL_SYNC_DIRECT)
        flags |= O_DIRECT; /* O_DSYNC per write: RWF_DSYNC (stage_write) */
    return flags;
}

/* Opens a segment for writing in the mode in use. A file system without O_DIRECT (EINVAL:
 * tmpfs, some FUSE) turns DIRECT into SYSCALL for good; nothing is staged at that point
 * (the first open, or a rollover after the old segment's blocks were written). */
static int open_for_write(rr_wal *w, uint64_t seq)
{
    char path[RR_WAL_PATH_BYTES_MAX + 32];
    wal_segment_path(w, seq, path, sizeof path);
    int fd = open(path, open_flags(w->sync_mode_used));
    if (fd < 0 && errno == EINVAL && w->sync_mode_used == RR_WAL_SYNC_DIRECT) {
        RR_ASSERT(!w->stage_dirty);
        RR_ASSERT(!w->stage_unsynced);
        /* relaxed: a statistic for rr_wal_sync_mode_used; only this thread acts on it. */
        __atomic_store_n(&w->sync_mode_used, (uint8_t)RR_WAL_SYNC_SYSCALL, __ATOMIC_RELAXED);
        fd = open(path, open_flags(RR_WAL_SYNC_SYSCALL));
    }
    return fd < 0 ? -errno : fd;
}

/* Makes segment seq the one written: spare renamed into place, directory synced. The old
 * file is closed when the batch using it completes. */
static int segment_activate(rr_wal *w, uint64_t seq)
{
    if (w->spare_fd < 0)
        spare_collect(w, true); /* the rollover outran the background fill: wait for it */
    if (w->spare_fd < 0) {
        int rc = spare_create(w);
        if (rc != 0)
            return rc;
    }
    char name[32];
    snprintf(name, sizeof name, "%016" PRIx64 ".wal", seq);
    if (renameat(w->dir_fd, SPARE_NAME, w->dir_fd, name) != 0)
        return -errno;
    if (fsync(w->dir_fd) != 0)
        return -errno;
    close(w->spare_fd);
    w->spare_fd = -1;
    int fd = open_for_write(w, seq);
    if (fd < 0)
        return fd;
    if (w->write_fd >= 0)
        w->retire_fds[w->retire_n++] = w->write_fd;
    w->write_fd = fd;
    w->write_seq = seq;
    w->stage_off = 0;
    w->stage_bytes = 0;
    return 0;
}

/* ---- building a batch ---- */

typedef struct batch {
    uint32_t iov_n;       /* vectors used */
    uint32_t chunk_start; /* first vector of the writev being built */
    uint64_t chunk_off;   /* its file offset */
    uint64_t chunk_bytes;
    bool unsynced; /* writes to write_fd since its last sync SQE */
    uint32_t segments;
    struct io_uring_sqe *last;
} batch;

static struct io_uring_sqe *sqe_get(rr_wal *w, batch *b)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&w->uring);
    RR_ASSERT(sqe != NULL); /* WAL_BATCH_* limits keep a batch within the queue */
    io_uring_sqe_set_flags(sqe, IOSQE_IO_LINK);
    b->last = sqe;
    w->inflight_sqes++;
    return sqe;
}

static void sync_result(rr_wal *w, int res);

/* ---- RR_WAL_SYNC_DIRECT: staging ---- */

static uint32_t block_round_up(uint32_t n)
{
    return (n + WAL_DIRECT_BLOCK_BYTES - 1) & ~(WAL_DIRECT_BLOCK_BYTES - 1);
}

/* Writes the staged bytes as whole blocks from stage_off (zeros after the tail, so
 * recovery stops there as in a preallocated file), then keeps only the partial last block
 * staged: the next write starts by re-writing it. With last, the batch's bytes on this
 * segment are durable on return: by RWF_DSYNC if this is their only write, else by an
 * fdatasync after it; that step counts as the sync (and the fault seam's). */
static void stage_write(rr_wal *w, bool last)
{
    bool dsync = last && !w->stage_unsynced, wrote = w->stage_dirty;
    int rc = 0;
    if (wrote) {
        uint32_t len = block_round_up(w->stage_bytes);
        memset(w->stage + w->stage_bytes, 0, len - w->stage_bytes);
        for (uint32_t done = 0; done < len && w->batch_err == 0 && rc == 0;) {
            struct iovec iov = {w->stage + done, len - done};
            ssize_t k =
                pwritev2(w->write_fd, &iov, 1, (off_t)(w->stage_off + done), dsync ? RWF_DSYNC : 0);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0 || k % WAL_DIRECT_BLOCK_BYTES != 0) /* a preallocated file: failing */
                rc = k < 0 ? -errno : -EIO;
            done += k > 0 ? (uint32_t)k : 0;
        }
        w->stage_dirty = false;
        w->stage_unsynced = !dsync;
        uint32_t whole = w->stage_bytes & ~(WAL_DIRECT_BLOCK_BYTES - 1);
        memmove(w->stage, w->stage + whole, w->stage_bytes - whole);
        w->stage_off += whole;
        w->stage_bytes -= whole;
    }
    if (rc != 0 && w->batch_err == 0)
        w->batch_err = rc;
    if (!last || w->batch_err != 0)
        return;
    if (w->stage_unsynced)
        sync_result(w, fdatasync(w->write_fd) == 0 ? 0 : -errno);
    else if (wrote)
        sync_result(w, 0); /* the RWF_DSYNC write */
    w->stage_unsynced = false;
}

/* Appends n bytes to the stage, writing it out whenever it is full. */
static void stage_copy(rr_wal *w, const uint8_t *p, size_t n)
{
    while (n > 0) {
        if (w->stage_bytes == WAL_DIRECT_STAGE_BYTES)
            stage_write(w, false); /* whole blocks only: leaves the stage empty */
        size_t room = WAL_DIRECT_STAGE_BYTES - w->stage_bytes;
        size_t k = n < room ? n : room;
        memcpy(w->stage + w->stage_bytes, p, k);
        w->stage_bytes += (uint32_t)k;
        w->stage_dirty = true;
        p += k;
        n -= k;
    }
}

/* Loads the partial block at the tail of an existing segment (recovery read it already:
 * a page-cache hit), so that the first write re-writes it unchanged. */
static int stage_load(rr_wal *w, uint64_t seq, uint64_t tail_bytes)
{
    w->stage_off = tail_bytes & ~(uint64_t)(WAL_DIRECT_BLOCK_BYTES - 1);
    w->stage_bytes = (uint32_t)(tail_bytes - w->stage_off);
    if (w->stage_bytes == 0)
        return 0;
    char path[RR_WAL_PATH_BYTES_MAX + 32];
    wal_segment_path(w, seq, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = pread(fd, w->stage, w->stage_bytes, (off_t)w->stage_off);
    int rc = n < 0 ? -errno : 0;
    close(fd);
    if (rc == 0 && n != (ssize_t)w->stage_bytes)
        rc = -EIO; /* recovery read these bytes a moment ago */
    return rc;
}

/* RR_WAL_SYNC_SYSCALL: pwritev from the io thread itself; a short write continues. */
static void chunk_write_syscall(rr_wal *w, batch *b, uint32_t n)
{
    struct iovec *iov = w->iovs + b->chunk_start;
    uint64_t off = b->chunk_off;
    while (n > 0 && w->batch_err == 0) {
        ssize_t k = pwritev(w->write_fd, iov, (int)(n < IOV_MAX ? n : IOV_MAX), (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            w->batch_err = k < 0 ? -errno : -EIO;
            break;
        }
        off += (uint64_t)k;
        while (n > 0 && (size_t)k >= iov->iov_len) {
            k -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) { /* the vectors are scratch: trimming one is safe */
            iov->iov_base = (uint8_t *)iov->iov_base + k;
            iov->iov_len -= (size_t)k;
        }
    }
}

static void chunk_flush(rr_wal *w, batch *b)
{
    if (w->sync_mode_used == RR_WAL_SYNC_DIRECT) {
        stage_write(w, true);
        return;
    }
    uint32_t n = b->iov_n - b->chunk_start;
    if (n == 0)
        return;
    if (w->sync_mode_used == RR_WAL_SYNC_SYSCALL) {
        chunk_write_syscall(w, b, n);
        b->chunk_start = b->iov_n;
        b->chunk_bytes = 0;
        b->unsynced = true;
        return;
    }
    uint32_t slot = w->inflight_sqes;
    struct io_uring_sqe *sqe = sqe_get(w, b);
    io_uring_prep_writev(sqe, w->write_fd, w->iovs + b->chunk_start, n, b->chunk_off);
    io_uring_sqe_set_data64(sqe, (uint64_t)KIND_WRITE << 32 | slot);
    w->expect_bytes[slot] = (uint32_t)b->chunk_bytes;
    b->chunk_start = b->iov_n;
    b->chunk_bytes = 0;
    b->unsynced = true;
}

static void sync_add(rr_wal *w, batch *b)
{
    if (!b->unsynced || w->sync_mode_used == RR_WAL_SYNC_DSYNC)
        return;
    if (w->sync_mode_used == RR_WAL_SYNC_SYSCALL) {
        if (w->batch_err == 0)
            sync_result(w, fdatasync(w->write_fd) == 0 ? 0 : -errno);
        b->unsynced = false;
        return;
    }
    struct io_uring_sqe *sqe = sqe_get(w, b);
    io_uring_prep_fsync(sqe, w->write_fd, IORING_FSYNC_DATASYNC);
    io_uring_sqe_set_data64(sqe, (uint64_t)KIND_SYNC << 32);
    b->unsynced = false;
}

/* DIRECT: copies one record behind the previous one in the stage. */
static void record_stage(rr_wal *w, batch *b, const wal_op *op, size_t ext)
{
    RR_ASSERT(op->offset_bytes == w->stage_off + w->stage_bytes);
    stage_copy(w, op->hdr, WAL_RECORD_HEADER_BYTES + op->inline_bytes);
    if (ext > 0)
        stage_copy(w, op->ent.data, ext);
    b->iov_n += 2; /* counted as in the other modes: bounds the batch the same way */
    b->chunk_start = b->iov_n;
}

/* Adds one record's vectors (sealing its CRC here, off the raft thread). */
static void record_add(rr_wal *w, batch *b, wal_op *op)
{
    w->batch_bytes += WAL_RECORD_HEADER_BYTES + op->inline_bytes +
                      (op->type == WAL_REC_ENTRY ? op->ent.data_len : 0);
    if (w->sync_mode_used == RR_WAL_SYNC_DIRECT) {
        size_t ext = op->type == WAL_REC_ENTRY ? op->ent.data_len : 0;
        wal_record_seal(op->hdr, op->hdr + WAL_RECORD_HEADER_BYTES, op->inline_bytes, op->ent.data,
                        ext);
        record_stage(w, b, op, ext);
        return;
    }
    bool contiguous = op->offset_bytes == b->chunk_off + b->chunk_bytes;
    if (b->iov_n - b->chunk_start + 2 > WAL_WRITEV_IOVS_MAX || !contiguous)
        chunk_flush(w, b);
    if (b->iov_n == b->chunk_start)
        b->chunk_off = op->offset_bytes;
    size_t ext = op->type == WAL_REC_ENTRY ? op->ent.data_len : 0;
    wal_record_seal(op->hdr, op->hdr + WAL_RECORD_HEADER_BYTES, op->inline_bytes, op->ent.data,
                    ext);
    w->iovs[b->iov_n++] = (struct iovec){op->hdr, WAL_RECORD_HEADER_BYTES + op->inline_bytes};
    if (ext > 0)
        w->iovs[b->iov_n++] = (struct iovec){(void *)op->ent.data, ext};
    b->chunk_bytes += WAL_RECORD_HEADER_BYTES + op->inline_bytes + ext;
}

/* Takes queued records [taken, tail) as one batch (bounded by the limits) and submits it. */
static void batch_submit(rr_wal *w)
{
    /* acquire: pairs with the raft thread's release of tail; the slots are written. */
    uint64_t tail = __atomic_load_n(&w->tail, __ATOMIC_ACQUIRE);
    batch b = {0};
    uint64_t s = w->taken;
    for (; s < tail; s++) {
        wal_op *op = &w->ring[s & w->ring_mask];
        if (b.iov_n + 2 > WAL_BATCH_IOVS_MAX)
            break;
        if (op->type == WAL_REC_SEGMENT) {
            if (b.segments == WAL_BATCH_SEGMENTS_MAX)
                break;
            chunk_flush(w, &b);
            sync_add(w, &b);
            int rc = segment_activate(w, op->seg_seq);
            if (rc != 0) {
                w->batch_err = rc;
                break;
            }
            b.segments++;
            b.chunk_start = b.iov_n;
            b.chunk_bytes = 0;
        }
        RR_ASSERT(op->seg_seq == w->write_seq);
        record_add(w, &b, op);
    }
    chunk_flush(w, &b);
    sync_add(w, &b);
    w->inflight_end = s;
    if (w->inflight_sqes == 0) { /* done already (SYSCALL mode), nothing, or a failure */
        w->inflight = w->batch_err != 0 || s != w->taken;
        return;
    }
    b.last->flags &= (uint8_t)~IOSQE_IO_LINK; /* the chain ends with this batch */
    w->inflight = true;
    int rc = io_uring_submit(&w->uring);
    RR_ASSERT(rc >= 0);
}

/* ---- completions ---- */

static void wake_arm(rr_wal *w)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&w->uring);
    RR_ASSERT(sqe != NULL);
    io_uring_prep_read(sqe, w->wake_efd, &w->efd_buf, sizeof w->efd_buf, 0);
    io_uring_sqe_set_data64(sqe, (uint64_t)KIND_WAKE << 32);
}

static void signal_done(rr_wal *w)
{
    uint64_t one = 1;
    ssize_t n = write(w->done_efd, &one, sizeof one);
    RR_ASSERT(n == (ssize_t)sizeof one);
}

/* The whole chain completed: publish durability, or the fatal error. signal: wake a
 * sleeper on done_efd (the raft thread writing a batch itself knows without one). */
static void batch_done(rr_wal *w, bool signal)
{
    for (uint32_t k = 0; k < w->retire_n; k++)
        close(w->retire_fds[k]);
    w->retire_n = 0;
    w->inflight = false;
    if (w->batch_err != 0) {
        /* release: a poller that sees io_err sees everything before it. */
        __atomic_store_n(&w->io_err, w->batch_err, __ATOMIC_RELEASE);
        signal_done(w);
        return;
    }
    w->taken = w->inflight_end;
    __atomic_fetch_add(&w->batches_done, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&w->bytes_done, w->batch_bytes, __ATOMIC_RELAXED);
    w->batch_bytes = 0;
    /* release: the records' writes and sync completed before the poller sees done. */
    __atomic_store_n(&w->done, w->taken, __ATOMIC_RELEASE);
    if (signal)
        signal_done(w);
}

static void sync_result(rr_wal *w, int res)
{
    w->syncs++;
    if (w->cfg.fault_sync_fail_at != 0 && w->syncs == w->cfg.fault_sync_fail_at)
        res = -EIO; /* the fault seam */
    if (res < 0 && w->batch_err == 0)
        w->batch_err = res;
}

static void cqe_handle(rr_wal *w, const struct io_uring_cqe *cqe)
{
    uint64_t data = io_uring_cqe_get_data64(cqe);
    uint32_t kind = (uint32_t)(data >> 32), slot = (uint32_t)data;
    if (kind == KIND_WAKE) {
        wake_arm(w);
        return;
    }
    if (kind == KIND_WRITE) {
        int res = cqe->res;
        if (res >= 0 && (uint32_t)res != w->expect_bytes[slot])
            res = -EIO; /* a short write to a preallocated file: the device is failing */
        if (w->sync_mode_used == RR_WAL_SYNC_DSYNC)
            sync_result(w, res);
        else if (res < 0 && w->batch_err == 0)
            w->batch_err = res;
    } else {
        sync_result(w, cqe->res);
    }
    RR_ASSERT(w->inflight_sqes > 0);
    if (--w->inflight_sqes == 0)
        batch_done(w, true);
}

static bool io_should_exit(rr_wal *w)
{
    if (w->inflight || !__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE))
        return false;
    if (w->batch_err != 0)
        return true;
    return w->taken == __atomic_load_n(&w->tail, __ATOMIC_ACQUIRE);
}

/* ---- who writes ---- */

/* Whether queued records are not durable yet (either thread; acquire: as rr_wal_poll). */
static bool wal_pending(const rr_wal *w)
{
    return __atomic_load_n(&w->done, __ATOMIC_ACQUIRE) !=
           __atomic_load_n(&w->tail, __ATOMIC_ACQUIRE);
}

/* SYSCALL and DIRECT write and sync a batch within one call: either thread may run it. */
static bool writes_sync(const rr_wal *w)
{
    return w->cfg.sync_mode == RR_WAL_SYNC_SYSCALL || w->cfg.sync_mode == RR_WAL_SYNC_DIRECT;
}

static bool writer_take(rr_wal *w, uint32_t who)
{
    uint32_t none = WAL_WRITER_NONE;
    /* acquire: what the previous writer did to the writer's fields is visible. */
    return __atomic_compare_exchange_n(&w->writer, &none, who, false, __ATOMIC_ACQUIRE,
                                       __ATOMIC_RELAXED);
}

static void writer_put(rr_wal *w)
{
    /* release: pairs with writer_take. */
    __atomic_store_n(&w->writer, WAL_WRITER_NONE, __ATOMIC_RELEASE);
}

/* One synchronous batch: what is queued, written and synced in this call (the writer
 * holds `writer`). Returns whether it took anything. */
static bool batch_run_sync(rr_wal *w, bool signal)
{
    if (w->batch_err != 0)
        return false;
    batch_submit(w);
    if (!w->inflight)
        return false;
    RR_ASSERT(w->inflight_sqes == 0);
    batch_done(w, signal);
    if (w->batch_err == 0)
        spare_start(w); /* a rollover used the spare: the next one is prepared meanwhile */
    return true;
}

void wal_io_wake(rr_wal *w)
{
    uint64_t one = 1;
    ssize_t n = write(w->wake_efd, &one, sizeof one);
    RR_ASSERT(n == (ssize_t)sizeof one);
}

/*
 * The raft thread writes what is queued itself, when the io thread is idle: a small batch
 * then costs the write and nothing else, instead of two thread hand-offs (wake the io
 * thread, wake the raft thread back: ~190 us per batch on this 2-core machine, more than
 * the write). Returns 1 when every record queued is durable (or failed: poll says), 0 when
 * the io thread has the writer or the mode keeps batches in flight (the caller wakes it).
 */
int wal_io_write_here(rr_wal *w)
{
    if (!writes_sync(w) || !writer_take(w, WAL_WRITER_CALLER))
        return 0;
    bool more = true;
    while (more && w->taken < w->tail)
        more = batch_run_sync(w, false);
    writer_put(w);
    return 1;
}

/* The ring is created by the thread that uses it: IORING_SETUP_SINGLE_ISSUER with
 * DEFER_TASKRUN runs completion work only when this thread waits for it, instead of
 * interrupting it (fewer wake-ups on a shared core). Older kernels: plain setup. */
static int uring_setup(rr_wal *w)
{
    unsigned flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    int rc = io_uring_queue_init(WAL_URING_ENTRIES, &w->uring, flags);
    if (rc == -EINVAL)
        rc = io_uring_queue_init(WAL_URING_ENTRIES, &w->uring, 0);
    return rc;
}

static void *io_main(void *arg)
{
    rr_wal *w = arg;
    (void)pthread_setname_np(pthread_self(), "rr-wal-io"); /* perf report --sort comm */
    int rc0 = uring_setup(w);
    if (rc0 == 0)
        spare_start(w); /* ahead of need (retried at the rollover), before anyone writes */
    pthread_mutex_lock(&w->start_lock);
    w->start_rc = rc0;
    w->start_done = true;
    pthread_cond_signal(&w->start_cond);
    pthread_mutex_unlock(&w->start_lock);
    if (rc0 < 0)
        return NULL;
    wake_arm(w);
    io_uring_submit(&w->uring);
    bool sync = writes_sync(w);
    /* The first turn follows no wake-up: every record queued since the open either woke
     * us (the eventfd counts) or is owed to a plug whose caller writes it or wakes us. */
    bool woken = false;
    for (;;) {
        bool exit = false;
        if (sync) {
            /* The writer only when records wait (done < tail), after a wake-up: a spare
             * turn must not hold it while the raft thread wants to write (just after the
             * open, its first plugged batch would go to us by a race). If the raft thread
             * holds it, it takes all that is queued: nothing to do until the next one. */
            bool work = woken && wal_pending(w);
            if (work && writer_take(w, WAL_WRITER_IO)) {
                batch_run_sync(w, true);
                writer_put(w);
            }
            /* At stop the raft thread writes nothing more: all written, or failed. */
            exit = __atomic_load_n(&w->stop, __ATOMIC_ACQUIRE) &&
                   (!wal_pending(w) || __atomic_load_n(&w->io_err, __ATOMIC_ACQUIRE) != 0);
        } else {
            if (!w->inflight && w->batch_err == 0) {
                batch_submit(w);
                if (w->batch_err == 0)
                    spare_start(w); /* in the background, while the batch is in flight */
            }
            if (w->inflight_sqes == 0 && w->inflight)
                batch_done(w, true); /* nothing was submitted, or a failure */
            exit = io_should_exit(w);
        }
        if (exit)
            break;
        struct io_uring_cqe *cqe;
        int rc = io_uring_submit_and_wait(&w->uring, 1);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
            RR_ASSERT(rc >= 0);
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&w->uring, head, cqe)
        {
            cqe_handle(w, cqe);
            seen++;
        }
        io_uring_cq_advance(&w->uring, seen);
        woken = true;
    }
    return NULL;
}

int wal_io_start(rr_wal *w)
{
    w->iovs = calloc(WAL_BATCH_IOVS_MAX, sizeof(struct iovec));
    w->expect_bytes = calloc(WAL_URING_ENTRIES, sizeof(uint32_t));
    if (w->iovs == NULL || w->expect_bytes == NULL)
        return -ENOMEM;
    w->sync_mode_used = w->cfg.sync_mode;
    if (w->sync_mode_used == RR_WAL_SYNC_DIRECT) {
        w->stage = aligned_alloc(WAL_DIRECT_BLOCK_BYTES, WAL_DIRECT_STAGE_BYTES);
        if (w->stage == NULL)
            return -ENOMEM;
    }
    if (w->segs_n > 0) {
        uint64_t seq = w->segs[w->segs_n - 1].seq;
        int fd = open_for_write(w, seq);
        if (fd < 0)
            return fd;
        w->write_fd = fd;
        w->write_seq = seq;
        /* write_offset_bytes: where recovery found the end; the io thread is not running. */
        if (w->sync_mode_used == RR_WAL_SYNC_DIRECT) {
            int rc = stage_load(w, seq, w->write_offset_bytes);
            if (rc != 0)
                return rc;
        }
    }
    pthread_mutex_init(&w->start_lock, NULL);
    pthread_cond_init(&w->start_cond, NULL);
    int rc = -pthread_create(&w->thread, NULL, io_main, w);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&w->start_lock);
    while (!w->start_done)
        pthread_cond_wait(&w->start_cond, &w->start_lock);
    rc = w->start_rc;
    pthread_mutex_unlock(&w->start_lock);
    if (rc < 0) {
        pthread_join(w->thread, NULL);
        return rc;
    }
    w->uring_ready = true;
    w->thread_started = true;
    return 0;
}

void wal_io_stop(rr_wal *w)
{
    if (w->thread_started) {
        /* release: pairs with io_should_exit's acquire. */
        __atomic_store_n(&w->stop, 1, __ATOMIC_RELEASE);
        wal_io_wake(w);
        pthread_join(w->thread, NULL);
        w->thread_started = false;
    }
    if (w->uring_ready)
        io_uring_queue_exit(&w->uring);
    w->uring_ready = false;
    for (uint32_t k = 0; k < w->retire_n; k++)
        close(w->retire_fds[k]);
    w->retire_n = 0;
    if (w->write_fd >= 0)
        close(w->write_fd);
    spare_collect(w, true); /* a background fill still running: wait, then close it */
    if (w->spare_fd >= 0)
        close(w->spare_fd);
    w->write_fd = w->spare_fd = -1;
    free(w->iovs);
    free(w->expect_bytes);
    free(w->stage);
    w->iovs = NULL;
    w->expect_bytes = NULL;
    w->stage = NULL;
}
