/*
 * bench_wal.c: experiment. How close does the WAL's append + fdatasync come to the disk's
 * own ceiling — a plain pwritev + fdatasync loop writing the same bytes in the same batches
 * to a preallocated file — for 128 B, 1 KiB and 4 KiB entries in batches of 1, 16, 256 and
 * 4096? Issue 6's target: at least 90% of the plain loop at every point.
 *
 * wal_append           one batch (rr_wal_append of `batch` entries) then rr_wal_wait for
 *                      it: a closed loop with one batch outstanding, exactly like the plain
 *                      loop. Default config (fdatasync linked to the writev, zero-filled
 *                      segments of 64 MiB).
 * wal_append_pipelined the caller keeps two batches outstanding (waits for batch k-1 after
 *                      queuing k+1... k): while one fdatasync runs the next batch gathers,
 *                      which is what group commit is for.
 * wal_append_fallocate segments preallocated with fallocate() instead of zeros.
 * wal_append_dsync     segments opened O_DSYNC, no separate fdatasync.
 * plain_write_fdatasync the ceiling: pwritev of the same header + payload vectors, then
 *                      fdatasync, on a zero-filled preallocated 64 MiB file (wrapping).
 * wal_append_syscall   the WAL with RR_WAL_SYNC_SYSCALL: its io thread makes pwritev and
 *                      fdatasync system calls instead of using the ring.
 * wal_vs_plain, wal_syscall_vs_plain  WAL (default / SYSCALL) and plain loop alternating
 *                      batch by batch in one run (see bench_wal_vs_plain).
 * wal_append_direct    the WAL with RR_WAL_SYNC_DIRECT: O_DIRECT | O_DSYNC block writes
 *                      from a staging buffer, no fdatasync.
 * wal_direct_vs_plain  the same alternation with DIRECT.
 * wal_direct_vs_syscall plain loop, SYSCALL WAL and DIRECT WAL in turn, batch by batch, in
 *                      one run: the three see the same disk (bench_wal_three_way).
 * wal_inline_vs_plain  plain loop, DIRECT WAL unplugged (the append wakes the io thread;
 *                      rr_wal_wait writes the batch itself only if it gets there first),
 *                      DIRECT WAL plugged (rr_wal_plug before the append: the io thread is
 *                      not woken, rr_wal_wait writes the batch on the caller's thread), in
 *                      turn, batch by batch.
 *
 * The WAL runs as a replica would in steady state: warmed up untimed until segments have
 * been compacted and recycled, then compacting (snapshot + rr_wal_compact) every segment's
 * worth of appends inside the timed loop, so rollovers reuse recycled files as the plain
 * loop reuses its one file. The fsyncs counter is batches made durable per second.
 *
 * Entries reference one shared payload buffer (no copy anywhere: the WAL writes from it).
 * Files go to $RR_BENCH_DIR (default: the current directory, i.e. the build tree on the
 * project's disk). Reports entries/s (items_per_second) and payload bytes/s, wall clock.
 */
#define _GNU_SOURCE
#include "rr_bench.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "ringraft/assert.h"
#include "ringraft/entry_codec.h"
#include "ringraft/wal.h"

#define BATCH_MAX             4096
#define PAYLOAD_MAX           4096
#define PLAIN_FILE_BYTES      (64u << 20)
#define RECORD_OVERHEAD_BYTES (16 + RR_ENTRY_HEADER_BYTES)

static const int64_t wal_args[] = {
    128,  1, 128,  16, 128,  256, 128,  4096, /* */
    1024, 1, 1024, 16, 1024, 256, 1024, 4096, /* */
    4096, 1, 4096, 16, 4096, 256, 4096, 4096,
};
static const char *const wal_arg_names[] = {"entry_bytes", "batch"};

static void payload_release(rr_buf *b)
{
    (void)b; /* static: the references only count */
}

static rr_buf payload_buf = {.refs = 1, .release = payload_release};
static _Alignas(64) uint8_t payload[PAYLOAD_MAX];
static rr_entry batch_ents[BATCH_MAX];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void bench_dir(char *out, size_t cap)
{
    const char *base = getenv("RR_BENCH_DIR");
    snprintf(out, cap, "%s/rr-bench-wal-XXXXXX", base != NULL ? base : ".");
    RR_ASSERT(mkdtemp(out) != NULL);
}

static void fill_batch(rr_index_t first, size_t n, uint32_t bytes)
{
    for (size_t k = 0; k < n; k++)
        batch_ents[k] = (rr_entry){.term = 1,
                                   .index = first + k,
                                   .data = payload,
                                   .buf = &payload_buf,
                                   .data_len = bytes,
                                   .type = RR_ENTRY_NORMAL};
}

static void report(rr_bench_state *st, size_t batch, uint32_t bytes)
{
    int64_t entries = rr_bench_iterations(st) * (int64_t)batch;
    rr_bench_set_items_processed(st, entries);
    rr_bench_set_bytes_processed(st, entries * (int64_t)bytes);
}

static rr_buf snap_buf = {.refs = 1, .release = payload_release};

/* What a replica does in steady state: snapshot at the durable index and compact, so that
 * whole segments behind it are recycled as the next spares. Returns 0 or an error. */
static int compact(rr_wal *w)
{
    rr_wal_durable d;
    int rc = rr_wal_poll(w, &d);
    if (rc != 0 || d.index == 0)
        return rc;
    rr_snapshot s = {
        .meta = {.index = d.index, .term = 1}, .data = payload, .data_len = 1, .buf = &snap_buf};
    rc = rr_wal_save_snapshot(w, &s);
    return rc != 0 ? rc : rr_wal_compact(w, d.index);
}

/* Untimed: fills and compacts a few segments in large batches, so the timed loop starts
 * in steady state (recycled spares waiting) rather than with fresh, zero-filled files. */
static int warm_up(rr_wal *w, uint32_t bytes, rr_index_t *next)
{
    int rc = 0;
    while (rc == 0 && rr_wal_segment_count(w) < 4) {
        fill_batch(*next, BATCH_MAX, bytes);
        rc = rr_wal_append(w, batch_ents, BATCH_MAX);
        if (rc == 0)
            rc = rr_wal_wait(w, rr_wal_last_seq(w), NULL);
        *next += BATCH_MAX;
    }
    if (rc == 0)
        rc = compact(w);
    if (rc == 0)
        rc = rr_wal_wait(w, rr_wal_last_seq(w), NULL);
    usleep(100 * 1000); /* the io thread takes a recycled file as its next spare */
    return rc;
}

static void bench_wal(rr_bench_state *st, const rr_wal_config *base, int outstanding)
{
    uint32_t bytes = (uint32_t)rr_bench_arg(st, 0);
    size_t batch = (size_t)rr_bench_arg(st, 1);
    char dir[256];
    bench_dir(dir, sizeof dir);
    rr_wal_config cfg = *base;
    cfg.dir = dir;
    rr_wal *w;
    if (rr_wal_open(&cfg, &w, NULL) != 0) {
        rr_bench_skip_with_error(st, "rr_wal_open failed");
        return;
    }
    rr_index_t next = 1;
    if (warm_up(w, bytes, &next) != 0) {
        rr_bench_skip_with_error(st, "warm-up failed");
        rr_wal_close(w);
        return;
    }
    uint64_t seqs[2] = {0, 0};
    uint64_t batch_bytes = batch * (RECORD_OVERHEAD_BYTES + bytes), since_compact = 0;
    int64_t k = 0;
    int rc = 0;
    while (rr_bench_keep_running(st)) {
        if (rc != 0)
            continue;
        if (k >= outstanding)
            rc = rr_wal_wait(w, seqs[k % outstanding], NULL);
        fill_batch(next, batch, bytes);
        if (rc == 0)
            rc = rr_wal_append(w, batch_ents, batch);
        next += batch;
        seqs[k % outstanding] = rr_wal_last_seq(w);
        if (rc == 0 && outstanding == 1)
            rc = rr_wal_wait(w, seqs[0], NULL);
        since_compact += batch_bytes;
        if (rc == 0 && since_compact >= cfg.segment_size_bytes) {
            rc = compact(w);
            since_compact = 0;
        }
        k++;
    }
    rr_wal_durable d;
    if (rc == 0)
        rc = rr_wal_wait(w, rr_wal_last_seq(w), &d);
    rr_wal_close(w);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    if (rc != 0 || d.index + 1 != next) {
        rr_bench_skip_with_error(st, "WAL failed or lost entries");
        return;
    }
    report(st, batch, bytes);
    rr_bench_counter(st, "fsyncs", (double)d.batches, RR_BENCH_COUNTER_RATE);
}

/* One configuration of the closed-loop family: sync and preallocation modes over the
 * defaults (-1: keep the default), and the batches the caller keeps outstanding. */
typedef struct wal_variant {
    int sync_mode;
    int prealloc_mode;
    int outstanding;
} wal_variant;

static void bench_wal_variant(rr_bench_state *st, void *arg)
{
    const wal_variant *v = arg;
    rr_wal_config cfg;
    rr_wal_config_init(&cfg, NULL);
    if (v->sync_mode >= 0)
        cfg.sync_mode = (uint8_t)v->sync_mode;
    if (v->prealloc_mode >= 0)
        cfg.prealloc_mode = (uint8_t)v->prealloc_mode;
    bench_wal(st, &cfg, v->outstanding);
}

/* ---- the ceiling ---- */

static uint8_t plain_hdr[BATCH_MAX][RECORD_OVERHEAD_BYTES];
static struct iovec plain_iov[2 * BATCH_MAX];

/* Zero-filled and synced, as the WAL's segments (RR_WAL_PREALLOC_ZERO). */
static int prealloc_zero(int fd, uint64_t size_bytes)
{
    static const uint8_t zeros[1u << 20];
    for (uint64_t off = 0; off < size_bytes; off += sizeof zeros)
        if (pwrite(fd, zeros, sizeof zeros, (off_t)off) != (ssize_t)sizeof zeros)
            return -errno;
    return fsync(fd) == 0 ? 0 : -errno;
}

static int plain_batch(int fd, size_t batch, uint32_t bytes, uint64_t *off)
{
    uint64_t rec = RECORD_OVERHEAD_BYTES + bytes;
    if (*off + rec * batch > PLAIN_FILE_BYTES)
        *off = 0; /* wrap: the file stays preallocated, as WAL segments are */
    for (size_t k = 0; k < batch; k++) {
        plain_iov[2 * k] = (struct iovec){plain_hdr[k], RECORD_OVERHEAD_BYTES};
        plain_iov[2 * k + 1] = (struct iovec){payload, bytes};
    }
    for (size_t v = 0; v < 2 * batch; v += 1024) {
        int n = 2 * batch - v < 1024 ? (int)(2 * batch - v) : 1024;
        ssize_t w = pwritev(fd, plain_iov + v, n, (off_t)*off);
        if (w < 0)
            return -errno;
        *off += (uint64_t)w;
    }
    return fdatasync(fd) == 0 ? 0 : -errno;
}

static void bench_plain(rr_bench_state *st, void *arg)
{
    (void)arg;
    uint32_t bytes = (uint32_t)rr_bench_arg(st, 0);
    size_t batch = (size_t)rr_bench_arg(st, 1);
    char dir[256], path[300];
    bench_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/plain", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    RR_ASSERT(fd >= 0);
    RR_ASSERT(prealloc_zero(fd, PLAIN_FILE_BYTES) == 0);
    uint64_t off = 0;
    int rc = 0;
    while (rr_bench_keep_running(st))
        if (rc == 0)
            rc = plain_batch(fd, batch, bytes, &off);
    close(fd);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    if (rc != 0) {
        rr_bench_skip_with_error(st, "pwritev or fdatasync failed");
        return;
    }
    report(st, batch, bytes);
}

/* ---- both in one loop ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* wal_vs_plain: each iteration writes one batch through the plain loop, then one batch
 * through the WAL (closed loop, default config), timing each with the monotonic clock. The
 * disk of a shared machine drifts by tens of percent between runs seconds apart; batch by
 * batch alternation gives both the same disk. Counters: wal_entries_per_s,
 * plain_entries_per_s and wal_vs_plain (their ratio). */
static void bench_wal_vs_plain(rr_bench_state *st, void *arg)
{
    const uint8_t *sync_mode = arg;
    uint32_t bytes = (uint32_t)rr_bench_arg(st, 0);
    size_t batch = (size_t)rr_bench_arg(st, 1);
    char dir[256], path[300];
    bench_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/plain", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    RR_ASSERT(fd >= 0);
    RR_ASSERT(prealloc_zero(fd, PLAIN_FILE_BYTES) == 0);
    rr_wal_config cfg;
    rr_wal_config_init(&cfg, dir);
    cfg.sync_mode = *sync_mode;
    rr_wal *w;
    rr_index_t next = 1;
    int rc = rr_wal_open(&cfg, &w, NULL);
    if (rc == 0)
        rc = warm_up(w, bytes, &next);
    uint64_t off = 0, batch_bytes = batch * (RECORD_OVERHEAD_BYTES + bytes), since_compact = 0;
    double plain_s = 0, wal_s = 0;
    while (rr_bench_keep_running(st)) {
        if (rc != 0)
            continue;
        double t0 = now_s();
        rc = plain_batch(fd, batch, bytes, &off);
        double t1 = now_s();
        fill_batch(next, batch, bytes);
        if (rc == 0)
            rc = rr_wal_append(w, batch_ents, batch);
        if (rc == 0)
            rc = rr_wal_wait(w, rr_wal_last_seq(w), NULL);
        double t2 = now_s();
        next += batch;
        plain_s += t1 - t0;
        wal_s += t2 - t1;
        since_compact += batch_bytes;
        if (rc == 0 && since_compact >= cfg.segment_size_bytes) {
            rc = compact(w); /* untimed in wal_s: its own cost shows in wal_append */
            since_compact = 0;
        }
    }
    rr_wal_close(w);
    close(fd);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    if (rc != 0) {
        rr_bench_skip_with_error(st, "WAL or plain loop failed");
        return;
    }
    double entries = (double)rr_bench_iterations(st) * (double)batch;
    rr_bench_counter(st, "wal_entries_per_s", entries / wal_s, 0);
    rr_bench_counter(st, "plain_entries_per_s", entries / plain_s, 0);
    rr_bench_counter(st, "wal_MiB_per_s", entries * bytes / wal_s / (1 << 20), 0);
    rr_bench_counter(st, "plain_MiB_per_s", entries * bytes / plain_s / (1 << 20), 0);
    rr_bench_counter(st, "wal_vs_plain", plain_s / wal_s, 0);
}

/* Segments of the three-way run: 8 MiB instead of 64, so that warming two WALs up (four
 * segments each, then compaction) writes 64 MiB, not 512, on a shared machine. A rollover
 * (rename, directory fsync) then comes every 8 MiB, the same for both WALs. */
#define THREE_WAY_SEGMENT_BYTES (8u << 20)

/* One WAL of the three-way run: its own directory under dir, warmed up. */
typedef struct wal_side {
    rr_wal *w;
    bool plug; /* rr_wal_plug before each append: the waiting caller writes the batch */
    rr_index_t next;
    uint64_t since_compact;
    double s;
} wal_side;

static int side_open(wal_side *side, const char *dir, const char *sub, uint8_t mode, bool plug,
                     uint32_t bytes)
{
    char path[300];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    rr_wal_config cfg;
    rr_wal_config_init(&cfg, path);
    cfg.sync_mode = mode;
    cfg.segment_size_bytes = THREE_WAY_SEGMENT_BYTES;
    *side = (wal_side){.next = 1, .plug = plug};
    int rc = rr_wal_open(&cfg, &side->w, NULL);
    return rc == 0 ? warm_up(side->w, bytes, &side->next) : rc;
}

/* One timed batch through side, compacting (untimed) every segment's worth. */
static int side_batch(wal_side *side, size_t batch, uint32_t bytes)
{
    double t0 = now_s();
    fill_batch(side->next, batch, bytes);
    if (side->plug)
        rr_wal_plug(side->w);
    int rc = rr_wal_append(side->w, batch_ents, batch);
    if (rc == 0)
        rc = rr_wal_wait(side->w, rr_wal_last_seq(side->w), NULL);
    side->s += now_s() - t0;
    side->next += batch;
    side->since_compact += batch * (RECORD_OVERHEAD_BYTES + bytes);
    if (rc == 0 && side->since_compact >= THREE_WAY_SEGMENT_BYTES) {
        rc = compact(side->w);
        side->since_compact = 0;
    }
    return rc;
}

/* The two WALs of a three-way run, named in the counters. */
typedef struct three_way {
    const char *name[2];
    uint8_t mode[2];
    bool plug[2];
} three_way;

/* wal_direct_vs_syscall, wal_inline_vs_plain: per iteration one batch through the plain
 * loop, then one through each WAL (closed loop each). Counters: entries/s of each, and
 * <b>_vs_<a>, <b>_vs_plain (ratios of time: > 1 means WAL b is faster). */
static void bench_wal_three_way(rr_bench_state *st, void *arg)
{
    const three_way *tw = arg;
    uint32_t bytes = (uint32_t)rr_bench_arg(st, 0);
    size_t batch = (size_t)rr_bench_arg(st, 1);
    char dir[256], path[300];
    bench_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/plain", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    RR_ASSERT(fd >= 0);
    RR_ASSERT(prealloc_zero(fd, PLAIN_FILE_BYTES) == 0);
    wal_side side[2] = {0};
    int rc = 0;
    for (int k = 0; k < 2 && rc == 0; k++) {
        rc = side_open(&side[k], dir, tw->name[k], tw->mode[k], tw->plug[k], bytes);
        if (rc == 0 && rr_wal_sync_mode_used(side[k].w) != tw->mode[k])
            rc = -EINVAL; /* DIRECT fell back: no O_DIRECT on this file system */
    }
    uint64_t off = 0;
    double plain_s = 0;
    while (rr_bench_keep_running(st)) {
        if (rc != 0)
            continue;
        double t0 = now_s();
        rc = plain_batch(fd, batch, bytes, &off);
        plain_s += now_s() - t0;
        for (int k = 0; k < 2 && rc == 0; k++)
            rc = side_batch(&side[k], batch, bytes);
    }
    rr_wal_close(side[0].w);
    rr_wal_close(side[1].w);
    close(fd);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    if (rc != 0) {
        rr_bench_skip_with_error(st, "a WAL or the plain loop failed (or no O_DIRECT)");
        return;
    }
    double entries = (double)rr_bench_iterations(st) * (double)batch;
    char name[64];
    rr_bench_counter(st, "plain_entries_per_s", entries / plain_s, 0);
    for (int k = 0; k < 2; k++) {
        snprintf(name, sizeof name, "%s_entries_per_s", tw->name[k]);
        rr_bench_counter(st, name, entries / side[k].s, 0);
    }
    snprintf(name, sizeof name, "%s_vs_%s", tw->name[1], tw->name[0]);
    rr_bench_counter(st, name, side[0].s / side[1].s, 0);
    snprintf(name, sizeof name, "%s_vs_plain", tw->name[1]);
    rr_bench_counter(st, name, plain_s / side[1].s, 0);
}

#define WAL_DEF(var, nm, f) WAL_DEF_ARG(var, nm, f, NULL)
#define WAL_DEF_ARG(var, nm, f, a)                                                                 \
    static const struct rr_bench_def var = {                                                       \
        .name = nm,                                                                                \
        .fn = f,                                                                                   \
        .arg = a,                                                                                  \
        .args = wal_args,                                                                          \
        .args_per_set = 2,                                                                         \
        .arg_sets_count = sizeof wal_args / sizeof wal_args[0] / 2,                                \
        .arg_names = wal_arg_names,                                                                \
        .options = RR_BENCH_REAL_TIME,                                                             \
    };                                                                                             \
    RR_BENCH_REGISTER(var)

static uint8_t mode_fdatasync = RR_WAL_SYNC_FDATASYNC, mode_syscall = RR_WAL_SYNC_SYSCALL,
               mode_direct = RR_WAL_SYNC_DIRECT;
WAL_DEF_ARG(wal_vs_plain, "wal_vs_plain", bench_wal_vs_plain, &mode_fdatasync);
WAL_DEF_ARG(wal_syscall_vs_plain, "wal_syscall_vs_plain", bench_wal_vs_plain, &mode_syscall);
WAL_DEF_ARG(wal_direct_vs_plain, "wal_direct_vs_plain", bench_wal_vs_plain, &mode_direct);
static three_way direct_vs_syscall = {
    .name = {"syscall", "direct"},
    .mode = {RR_WAL_SYNC_SYSCALL, RR_WAL_SYNC_DIRECT},
};
static three_way plugged_vs_unplugged = {
    .name = {"unplugged", "plugged"},
    .mode = {RR_WAL_SYNC_DIRECT, RR_WAL_SYNC_DIRECT},
    .plug = {false, true},
};
WAL_DEF_ARG(wal_direct_vs_syscall, "wal_direct_vs_syscall", bench_wal_three_way,
            &direct_vs_syscall);
WAL_DEF_ARG(wal_inline_vs_plain, "wal_inline_vs_plain", bench_wal_three_way, &plugged_vs_unplugged);
static wal_variant v_default = {-1, -1, 1}, v_pipelined = {-1, -1, 2},
                   v_fallocate = {-1, RR_WAL_PREALLOC_FALLOCATE, 1},
                   v_syscall = {RR_WAL_SYNC_SYSCALL, -1, 1}, v_direct = {RR_WAL_SYNC_DIRECT, -1, 1},
                   v_dsync = {RR_WAL_SYNC_DSYNC, -1, 1};
WAL_DEF_ARG(wal_append_direct, "wal_append_direct", bench_wal_variant, &v_direct);
WAL_DEF(plain_write_fdatasync, "plain_write_fdatasync", bench_plain);
WAL_DEF_ARG(wal_append, "wal_append", bench_wal_variant, &v_default);
WAL_DEF_ARG(wal_append_pipelined, "wal_append_pipelined", bench_wal_variant, &v_pipelined);
WAL_DEF_ARG(wal_append_fallocate, "wal_append_fallocate", bench_wal_variant, &v_fallocate);
WAL_DEF_ARG(wal_append_dsync, "wal_append_dsync", bench_wal_variant, &v_dsync);
WAL_DEF_ARG(wal_append_syscall, "wal_append_syscall", bench_wal_variant, &v_syscall);
