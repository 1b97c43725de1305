/*
 * bench_wal_recovery.c: experiment. How long does rr_wal_open take on a 1 GiB log? Issue
 * 6's target: under 2 seconds. Opening reads every segment, verifies every record's
 * CRC-32C, rebuilds the in-memory index and starts the io thread.
 *
 * The log: about 1 GiB of 1 KiB entries (1,011,712 records in 17 segments of 64 MiB),
 * written once per process with the default configuration, in batches of 4096.
 * wal_recovery_1gib/cache:warm  the segments are in the page cache (just written)
 * wal_recovery_1gib/cache:cold  posix_fadvise(DONTNEED) drops each segment's pages before
 *                               each open (they are clean: written and fdatasynced), so the
 *                               open reads the disk
 * Closing is untimed. Reports wall time per open, entries/s and bytes/s recovered.
 */
#define _GNU_SOURCE
#include "rr_bench.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ringraft/assert.h"
#include "ringraft/wal.h"

#define LOG_BYTES    (1ull << 30)
#define ENTRY_BYTES  1024u
#define BATCH        4096u
#define RECORD_BYTES (16u + 24u + ENTRY_BYTES)

static char log_dir[256];
static uint64_t log_entries;
static _Alignas(64) uint8_t payload[ENTRY_BYTES];
static rr_entry ents[BATCH];

static void static_release(rr_buf *b)
{
    (void)b;
}

static rr_buf payload_buf = {.refs = 1, .release = static_release};

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void log_remove(void)
{
    nftw(log_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Writes the log once per process; removed at exit. */
static int log_create(void)
{
    if (log_entries > 0)
        return 0;
    const char *base = getenv("RR_BENCH_DIR");
    snprintf(log_dir, sizeof log_dir, "%s/rr-bench-recovery-XXXXXX", base != NULL ? base : ".");
    if (mkdtemp(log_dir) == NULL)
        return -1;
    atexit(log_remove);
    rr_wal_config cfg;
    rr_wal_config_init(&cfg, log_dir);
    rr_wal *w;
    if (rr_wal_open(&cfg, &w, NULL) != 0)
        return -1;
    for (uint64_t n = 0; n * RECORD_BYTES < LOG_BYTES; n += BATCH) {
        for (uint32_t k = 0; k < BATCH; k++)
            ents[k] = (rr_entry){.term = 1,
                                 .index = n + k + 1,
                                 .data = payload,
                                 .buf = &payload_buf,
                                 .data_len = ENTRY_BYTES};
        if (rr_wal_append(w, ents, BATCH) != 0 || rr_wal_wait(w, rr_wal_last_seq(w), NULL) != 0)
            return -1;
        log_entries = n + BATCH;
    }
    rr_wal_close(w);
    return 0;
}

static void drop_cache(void)
{
    DIR *d = opendir(log_dir);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        int fd = openat(dirfd(d), de->d_name, O_RDONLY);
        if (fd < 0)
            continue;
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
    closedir(d);
}

static void bench_recovery(rr_bench_state *st, void *arg)
{
    (void)arg;
    bool cold = rr_bench_arg(st, 0) != 0;
    if (log_create() != 0) {
        rr_bench_skip_with_error(st, "writing the 1 GiB log failed");
        return;
    }
    rr_wal_config cfg;
    rr_wal_config_init(&cfg, log_dir);
    bool ok = true;
    while (rr_bench_keep_running(st)) {
        rr_bench_pause_timing(st);
        if (cold)
            drop_cache();
        rr_bench_resume_timing(st);
        rr_wal *w = NULL;
        ok = ok && rr_wal_open(&cfg, &w, NULL) == 0;
        rr_bench_pause_timing(st);
        if (w != NULL) {
            rr_storage s = rr_wal_storage(w);
            ok = ok && s.ops->last_index(s.ctx) == log_entries;
        }
        rr_wal_close(w);
        rr_bench_resume_timing(st);
    }
    if (!ok) {
        rr_bench_skip_with_error(st, "recovery failed or lost entries");
        return;
    }
    rr_bench_set_items_processed(st, rr_bench_iterations(st) * (int64_t)log_entries);
    rr_bench_set_bytes_processed(st,
                                 rr_bench_iterations(st) * (int64_t)(log_entries * RECORD_BYTES));
}

static const int64_t recovery_args[] = {0, 1};
static const char *const recovery_arg_names[] = {"cache_cold"};

static const struct rr_bench_def wal_recovery_1gib = {
    .name = "wal_recovery_1gib",
    .fn = bench_recovery,
    .args = recovery_args,
    .args_per_set = 1,
    .arg_sets_count = 2,
    .arg_names = recovery_arg_names,
    .options = RR_BENCH_REAL_TIME,
    .iterations = 3,
};
RR_BENCH_REGISTER(wal_recovery_1gib);
