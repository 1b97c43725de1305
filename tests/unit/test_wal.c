/* test_wal.c: the WAL (io/): records of each type, rollover, truncation (with records in
 * flight), reads from segments, snapshots and compaction, reopen, torn tails, corruption,
 * a failing fsync, plugging (batches written on the caller's thread), and the in-memory
 * backend. The file-backed tests run once in the
 * default sync mode and once in RR_WAL_SYNC_DIRECT (which stages and rewrites blocks). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "ringraft/errors.h"
#include "ringraft/wal.h"
#include "test_wal_util.h"
#include "wal_record.h"

/* Sync mode of the fixture's WAL: the default, then RR_WAL_SYNC_DIRECT (main). */
static uint8_t fixture_sync_mode = RR_WAL_SYNC_SYSCALL;
static uint8_t fixture_prealloc_mode = RR_WAL_PREALLOC_FALLOCATE;

typedef struct fixture {
    char dir[64];
    rr_wal_config cfg;
    rr_wal *w;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    test_mkdtemp(f->dir, sizeof f->dir);
    rr_wal_config_init(&f->cfg, f->dir);
    f->cfg.segment_size_bytes = 4096; /* small: rollover happens every few entries */
    f->cfg.queue_records_max = 64;
    f->cfg.sync_mode = fixture_sync_mode;
    f->cfg.prealloc_mode = fixture_prealloc_mode;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    rr_wal_close(f->w);
    test_rmdir(f->dir);
    free(f);
    assert_int_equal(test_bufs_live, 0);
    return 0;
}

static void reopen(fixture *f)
{
    rr_wal_close(f->w);
    f->w = NULL;
    rr_wal_error err = {0};
    int rc = rr_wal_open(&f->cfg, &f->w, &err);
    if (rc != 0)
        fail_msg("open: %s at %s:%llu (%s)", rr_strerror(rc), err.path,
                 (unsigned long long)err.offset_bytes, err.msg);
}

static void sync_all(fixture *f, rr_wal_durable *d)
{
    assert_int_equal(rr_wal_wait(f->w, rr_wal_last_seq(f->w), d), 0);
}

/* Appends in chunks the queue accepts, waiting when it is full. */
static void append_range(fixture *f, rr_index_t lo, rr_index_t hi, rr_term_t term)
{
    for (rr_index_t i = lo; i <= hi; i += 8) {
        rr_index_t end = i + 7 < hi ? i + 7 : hi;
        int rc;
        while ((rc = test_append(f->w, i, end, term)) == -EAGAIN)
            rr_wal_wait(f->w, rr_wal_last_seq(f->w), NULL);
        assert_int_equal(rc, 0);
    }
}

/* Checks the log is [first, last] with terms from term_of. */
static void check_log(fixture *f, rr_index_t first, rr_index_t last,
                      rr_term_t (*term_of)(rr_index_t))
{
    rr_storage st = rr_wal_storage(f->w);
    assert_int_equal(st.ops->first_index(st.ctx), first);
    assert_int_equal(st.ops->last_index(st.ctx), last);
    rr_entry_vec v = {0};
    assert_int_equal(st.ops->entries(st.ctx, first, last + 1, RR_NO_LIMIT, &v), 0);
    assert_int_equal(v.n, last - first + 1);
    for (size_t k = 0; k < v.n; k++) {
        if (!test_entry_ok(&v.v[k], first + k, term_of(first + k)))
            fail_msg("entry %llu differs", (unsigned long long)(first + k));
        rr_term_t t;
        assert_int_equal(st.ops->term(st.ctx, first + k, &t), 0);
        assert_int_equal(t, term_of(first + k));
    }
    rr_entry_vec_free(&v);
}

static rr_term_t term_one(rr_index_t i)
{
    (void)i;
    return 1;
}

static rr_term_t term_trunc(rr_index_t i)
{
    return i < 20 ? 1 : 2;
}

/* ---- records ---- */

static void test_record_types(void **state)
{
    (void)state;
    uint8_t img[512] = {0};
    size_t off = 0;
    /* segment header */
    wal_segment_header sh = {.seq = 7, .prev_index = 5, .prev_term = 2};
    wal_record_header_init(img, WAL_REC_SEGMENT, 7, WAL_SEGMENT_PAYLOAD_BYTES);
    wal_segment_payload_encode(img + 16, &sh);
    wal_record_seal(img, img + 16, WAL_SEGMENT_PAYLOAD_BYTES, NULL, 0);
    off += 16 + WAL_SEGMENT_PAYLOAD_BYTES;
    /* entry, written as header + entry header inline + external payload */
    rr_entry e = {.term = 2, .index = 6, .data = (const uint8_t *)"hello", .data_len = 5};
    wal_record_header_init(img + off, WAL_REC_ENTRY, 7, RR_ENTRY_HEADER_BYTES + 5);
    rr_entry_encode_header(&e, img + off + 16);
    memcpy(img + off + 16 + RR_ENTRY_HEADER_BYTES, "hello", 5);
    wal_record_seal(img + off, img + off + 16, RR_ENTRY_HEADER_BYTES, e.data, 5);
    size_t entry_off = off;
    off += 16 + RR_ENTRY_HEADER_BYTES + 5;
    /* hard state */
    rr_hard_state hs = {.term = 2, .vote = 3, .commit = 6};
    wal_record_header_init(img + off, WAL_REC_HARD_STATE, 7, WAL_HARD_STATE_PAYLOAD_BYTES);
    wal_hard_state_encode(img + off + 16, &hs);
    wal_record_seal(img + off, img + off + 16, WAL_HARD_STATE_PAYLOAD_BYTES, NULL, 0);
    off += 16 + WAL_HARD_STATE_PAYLOAD_BYTES;
    /* snapshot marker */
    wal_record_header_init(img + off, WAL_REC_SNAPSHOT, 7, WAL_SNAPSHOT_PAYLOAD_BYTES);
    wal_snapshot_marker_encode(img + off + 16, 9, 3);
    wal_record_seal(img + off, img + off + 16, WAL_SNAPSHOT_PAYLOAD_BYTES, NULL, 0);
    off += 16 + WAL_SNAPSHOT_PAYLOAD_BYTES;

    wal_scan_result res;
    assert_int_equal(wal_segment_scan(img, sizeof img, 7, NULL, NULL, &res), 0);
    assert_int_equal(res.end_bytes, off);
    assert_int_equal(res.stop_err, 0);
    assert_false(res.valid_after);

    wal_record rec;
    assert_int_equal(wal_record_check(img + entry_off, sizeof img - entry_off, 7, entry_off, &rec),
                     0);
    assert_int_equal(rec.type, WAL_REC_ENTRY);
    rr_entry d;
    size_t used;
    assert_int_equal(rr_entry_decode(rec.payload, rec.payload_bytes, &d, &used), 0);
    assert_int_equal(d.index, 6);
    assert_memory_equal(d.data, "hello", 5);
    /* a whole record of another segment ends the data (a recycled file's old contents);
     * any flipped bit fails the record */
    assert_int_equal(wal_record_check(img + entry_off, sizeof img - entry_off, 8, entry_off, &rec),
                     1);
    img[entry_off + 20] ^= 4;
    assert_int_not_equal(
        wal_record_check(img + entry_off, sizeof img - entry_off, 7, entry_off, &rec), 0);
    assert_int_equal(wal_segment_scan(img, sizeof img, 7, NULL, NULL, &res), 0);
    assert_int_equal(res.end_bytes, entry_off);
    assert_true(res.valid_after); /* hard state and marker follow the damaged entry */
}

static void test_entries_and_hard_state_reopen(void **state)
{
    fixture *f = *state;
    reopen(f);
    append_range(f, 1, 40, 1);
    rr_hard_state hs = {.term = 1, .vote = 2, .commit = 30};
    assert_int_equal(rr_wal_set_hard_state(f->w, &hs), 0);
    rr_wal_durable d;
    sync_all(f, &d);
    assert_int_equal(d.index, 40);
    assert_int_equal(d.term, 1);
    assert_int_equal(d.seq, rr_wal_last_seq(f->w));
    check_log(f, 1, 40, term_one);
    reopen(f);
    check_log(f, 1, 40, term_one);
    rr_storage st = rr_wal_storage(f->w);
    rr_hard_state got;
    rr_conf_state cs;
    assert_int_equal(st.ops->initial_state(st.ctx, &got, &cs), 0);
    assert_int_equal(got.term, 1);
    assert_int_equal(got.vote, 2);
    assert_int_equal(got.commit, 30);
    assert_true(rr_wal_segment_count(f->w) >= 2); /* rolled over */
}

static void test_rollover_reads_from_segments(void **state)
{
    fixture *f = *state;
    reopen(f);
    append_range(f, 1, 300, 1); /* far more than the 64-entry cache */
    sync_all(f, NULL);
    check_log(f, 1, 300, term_one);
    /* max_bytes: at least one entry, and stops before exceeding the limit */
    rr_storage st = rr_wal_storage(f->w);
    rr_entry_vec v = {0};
    assert_int_equal(st.ops->entries(st.ctx, 5, 300, 1, &v), 0);
    assert_int_equal(v.n, 1);
    rr_entry_vec_free(&v);
    assert_int_equal(st.ops->entries(st.ctx, 0, 3, RR_NO_LIMIT, &v), RR_ERR_COMPACTED);
    assert_int_equal(st.ops->entries(st.ctx, 1, 302, RR_NO_LIMIT, &v), RR_ERR_UNAVAILABLE);
    reopen(f);
    check_log(f, 1, 300, term_one);
}

static void test_truncation_reopen(void **state)
{
    fixture *f = *state;
    reopen(f);
    append_range(f, 1, 50, 1);
    sync_all(f, NULL);
    append_range(f, 20, 35, 2); /* conflicts from 20: the suffix 20..50 goes */
    rr_wal_durable d;
    sync_all(f, &d);
    assert_int_equal(d.index, 35);
    assert_int_equal(d.term, 2);
    check_log(f, 1, 35, term_trunc);
    reopen(f);
    check_log(f, 1, 35, term_trunc);
    append_range(f, 36, 40, 2);
    sync_all(f, NULL);
    reopen(f);
    check_log(f, 1, 40, term_trunc);
}

/* A truncation while the truncated entries are still queued or in flight: their
 * completion must never be reported as durable (ABA on (index) alone). */
static void test_truncation_in_flight(void **state)
{
    fixture *f = *state;
    reopen(f);
    append_range(f, 1, 19, 1);
    sync_all(f, NULL);
    assert_int_equal(test_append(f->w, 20, 30, 1), 0); /* not waited for */
    assert_int_equal(test_append(f->w, 20, 22, 2), 0); /* replaces them */
    rr_wal_durable d;
    for (;;) {
        assert_int_equal(rr_wal_poll(f->w, &d), 0);
        /* never an index of the superseded suffix, never term 1 above 19 */
        assert_true(d.index <= 22);
        if (d.index > 19)
            assert_int_equal(d.term, 2);
        if (d.seq == rr_wal_last_seq(f->w))
            break;
        rr_wal_wait(f->w, d.seq + 1, NULL);
    }
    assert_int_equal(d.index, 22);
    reopen(f);
    check_log(f, 1, 22, term_trunc);
}

static void test_append_errors(void **state)
{
    fixture *f = *state;
    reopen(f);
    append_range(f, 1, 5, 1);
    assert_int_equal(test_append(f->w, 7, 8, 1), RR_ERR_UNAVAILABLE); /* gap */
    rr_entry e[2] = {test_entry(6, 1), test_entry(8, 1)};
    assert_int_equal(rr_wal_append(f->w, e, 2), -EINVAL); /* not contiguous */
    rr_entry_clear(&e[0]);
    rr_entry_clear(&e[1]);
    /* the queue is bounded: too much at once is -EAGAIN, never growth */
    int rc = 0;
    for (rr_index_t i = 6; rc == 0 && i < 6 + 1000; i += 8)
        rc = test_append(f->w, i, i + 7, 1);
    assert_true(rc == -EAGAIN || rc == 0);
    sync_all(f, NULL);
}

static rr_buf snap_data_buf;
static void snap_data_release(rr_buf *b)
{
    (void)b;
}

static void test_snapshot_compaction(void **state)
{
    fixture *f = *state;
    reopen(f);
    append_range(f, 1, 200, 1);
    rr_hard_state hs = {.term = 1, .vote = 1, .commit = 200};
    assert_int_equal(rr_wal_set_hard_state(f->w, &hs), 0);
    sync_all(f, NULL);
    uint32_t before = rr_wal_segment_count(f->w);
    snap_data_buf = (rr_buf){.refs = 1, .release = snap_data_release};
    rr_snapshot s = {.meta = {.index = 150, .term = 1},
                     .data = (const uint8_t *)"state!",
                     .data_len = 6,
                     .buf = &snap_data_buf};
    s.meta.conf_state.voters.n = 3;
    s.meta.conf_state.voters.ids[0] = 1;
    s.meta.conf_state.voters.ids[1] = 2;
    s.meta.conf_state.voters.ids[2] = 3;
    assert_int_equal(rr_wal_compact(f->w, 160), RR_ERR_UNAVAILABLE); /* past the snapshot */
    assert_int_equal(rr_wal_save_snapshot(f->w, &s), 0);
    assert_int_equal(rr_wal_save_snapshot(f->w, &s), RR_ERR_SNAP_OUT_OF_DATE);
    assert_int_equal(rr_wal_compact(f->w, 140), 0);
    sync_all(f, NULL);
    assert_true(rr_wal_segment_count(f->w) < before);
    check_log(f, 141, 200, term_one);
    reopen(f); /* restart: the log starts after the snapshot (as etcd's WAL) */
    check_log(f, 151, 200, term_one);
    rr_storage st = rr_wal_storage(f->w);
    rr_snapshot got;
    assert_int_equal(st.ops->snapshot(st.ctx, &got), 0);
    assert_int_equal(got.meta.index, 150);
    assert_int_equal(got.meta.conf_state.voters.n, 3);
    assert_int_equal(got.meta.conf_state.voters.ids[2], 3);
    assert_memory_equal(got.data, "state!", 6);
    rr_snapshot_clear(&got);
    rr_hard_state hs2;
    rr_conf_state cs;
    st.ops->initial_state(st.ctx, &hs2, &cs);
    assert_int_equal(hs2.commit, 200);       /* survived the deletion of old segments */
    assert_int_equal(snap_data_buf.refs, 1); /* the WAL let go of the caller's buffer */
    /* deleted segments were recycled: rollovers now reuse them, and recovery must stop at
     * their stale records */
    append_range(f, 201, 400, 1);
    sync_all(f, NULL);
    reopen(f);
    check_log(f, 151, 400, term_one);
}

static rr_term_t term_after_snap(rr_index_t i)
{
    (void)i;
    return 5;
}

static void test_apply_snapshot_resets(void **state)
{
    fixture *f = *state;
    reopen(f);
    append_range(f, 1, 30, 1);
    sync_all(f, NULL);
    snap_data_buf = (rr_buf){.refs = 1, .release = snap_data_release};
    rr_snapshot s = {.meta = {.index = 1000, .term = 4},
                     .data = (const uint8_t *)"x",
                     .data_len = 1,
                     .buf = &snap_data_buf};
    assert_int_equal(rr_wal_apply_snapshot(f->w, &s), 0);
    rr_storage st = rr_wal_storage(f->w);
    assert_int_equal(st.ops->first_index(st.ctx), 1001);
    assert_int_equal(st.ops->last_index(st.ctx), 1000);
    append_range(f, 1001, 1010, 5);
    sync_all(f, NULL);
    reopen(f);
    check_log(f, 1001, 1010, term_after_snap);
    rr_term_t t;
    st = rr_wal_storage(f->w);
    assert_int_equal(st.ops->term(st.ctx, 1000, &t), 0);
    assert_int_equal(t, 4);
}

static void corrupt_byte(const char *dir, uint64_t seq, uint64_t off)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%016llx.wal", dir, (unsigned long long)seq);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
    b ^= 0x10;
    assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
    close(fd);
}

static void test_corruption_named(void **state)
{
    fixture *f = *state;
    reopen(f);
    append_range(f, 1, 100, 1);
    sync_all(f, NULL);
    rr_wal_close(f->w);
    f->w = NULL;
    corrupt_byte(f->dir, 2, 100); /* inside a record of a segment that is not the last */
    rr_wal_error err = {0};
    assert_int_equal(rr_wal_open(&f->cfg, &f->w, &err), RR_ERR_CORRUPT);
    assert_non_null(strstr(err.path, "0000000000000002.wal"));
    assert_true(err.offset_bytes <= 100);
    assert_true(err.offset_bytes > 0);
}

static void test_torn_tail_cut(void **state)
{
    fixture *f = *state;
    reopen(f);
    append_range(f, 1, 10, 1);
    sync_all(f, NULL);
    uint32_t nseg = rr_wal_segment_count(f->w);
    rr_wal_close(f->w);
    f->w = NULL;
    /* garbage right after the last record, as a torn write leaves it */
    char path[128];
    snprintf(path, sizeof path, "%s/%016llx.wal", f->dir, (unsigned long long)nseg);
    int fd = open(path, O_RDWR);
    uint8_t img[4096];
    assert_int_equal(pread(fd, img, sizeof img, 0), (ssize_t)sizeof img);
    wal_scan_result res;
    wal_segment_scan(img, sizeof img, nseg, NULL, NULL, &res);
    uint8_t junk[40];
    memset(junk, 0xAB, sizeof junk);
    assert_int_equal(pwrite(fd, junk, sizeof junk, (off_t)res.end_bytes), (ssize_t)sizeof junk);
    close(fd);
    reopen(f);
    check_log(f, 1, 10, term_one);
    append_range(f, 11, 12, 1);
    sync_all(f, NULL);
    reopen(f);
    check_log(f, 1, 12, term_one);
}

static void test_fsync_failure_stops(void **state)
{
    fixture *f = *state;
    f->cfg.fault_sync_fail_at = 3;
    reopen(f);
    int rc = 0;
    rr_index_t i = 1;
    for (; i < 100 && rc == 0; i++) {
        rc = test_append(f->w, i, i, 1);
        if (rc == 0)
            rc = rr_wal_wait(f->w, rr_wal_last_seq(f->w), NULL);
    }
    assert_int_equal(rc, -EIO); /* the third sync failed and was reported */
    rr_wal_durable d;
    assert_int_equal(rr_wal_poll(f->w, &d), -EIO);
    assert_true(d.index < i);
    assert_int_equal(test_append(f->w, i, i, 1), RR_ERR_STOPPED); /* no retry, no more writes */
    assert_int_equal(rr_wal_poll(f->w, &d), -EIO);
    f->cfg.fault_sync_fail_at = 0;
    reopen(f); /* a restarted replica recovers what was durable */
    rr_storage st = rr_wal_storage(f->w);
    assert_true(st.ops->last_index(st.ctx) >= d.index);
}

/* A plugged batch is written by rr_wal_unplug itself when small enough (durable on return,
 * rollovers included: 4 KiB segments), else handed to the io thread; a full queue under the
 * plug still drains by polling alone; a failed sync made on the caller's thread is fatal as
 * one made by the io thread. */
static void test_plug(void **state)
{
    fixture *f = *state;
    reopen(f);
    rr_wal_durable d;
    rr_index_t next = 1;
    for (int round = 0; round < 20; round++, next += 3) {
        rr_wal_plug(f->w);
        assert_int_equal(test_append(f->w, next, next + 2, 1), 0);
        rr_hard_state hs = {.term = 1, .vote = 1, .commit = next};
        assert_int_equal(rr_wal_set_hard_state(f->w, &hs), 0);
        assert_int_equal(rr_wal_unplug(f->w, UINT64_MAX), 1);
        assert_int_equal(rr_wal_poll(f->w, &d), 0);
        assert_int_equal(d.index, next + 2);
        assert_int_equal(d.seq, rr_wal_last_seq(f->w));
    }
    assert_int_equal(rr_wal_unplug(f->w, UINT64_MAX), 0); /* nothing queued */

    rr_wal_plug(f->w);
    assert_int_equal(test_append(f->w, next, next + 2, 1), 0);
    assert_int_equal(rr_wal_unplug(f->w, 0), 0); /* over the limit: the io thread's */
    sync_all(f, &d);
    assert_int_equal(d.index, next + 2);
    next += 3;

    /* Plugged until the queue (64 records) is full: -EAGAIN wakes the io thread. */
    rr_wal_plug(f->w);
    int rc;
    while ((rc = test_append(f->w, next, next, 1)) == 0)
        next++;
    assert_int_equal(rc, -EAGAIN);
    for (int t = 0; t < 5000 && (rr_wal_poll(f->w, &d), d.index + 1 < next); t++)
        usleep(1000);
    assert_int_equal(d.index + 1, next);
    (void)rr_wal_unplug(f->w, UINT64_MAX);
    reopen(f);
    check_log(f, 1, next - 1, term_one);

    f->cfg.fault_sync_fail_at = 2;
    reopen(f);
    rr_wal_plug(f->w);
    rc = test_append(f->w, next, next, 1);
    if (rc == 0)
        rc = rr_wal_unplug(f->w, UINT64_MAX);
    assert_int_equal(rc, 1);
    rr_wal_plug(f->w);
    rc = test_append(f->w, next + 1, next + 1, 1);
    if (rc == 0)
        rc = rr_wal_unplug(f->w, UINT64_MAX);
    assert_int_equal(rc, -EIO);
    assert_int_equal(test_append(f->w, next + 2, next + 2, 1), RR_ERR_STOPPED);
    f->cfg.fault_sync_fail_at = 0;
}

/* Every sync mode writes the same log: rollover, truncation, reopen, and a failing sync. */
static void test_sync_modes(void **state)
{
    fixture *f = *state;
    const uint8_t modes[] = {RR_WAL_SYNC_FDATASYNC, RR_WAL_SYNC_DSYNC, RR_WAL_SYNC_SYSCALL,
                             RR_WAL_SYNC_DIRECT};
    for (size_t m = 0; m < sizeof modes; m++) {
        rr_wal_close(f->w);
        f->w = NULL;
        test_rmdir(f->dir);
        f->cfg.sync_mode = modes[m];
        f->cfg.fault_sync_fail_at = 0;
        reopen(f);
        append_range(f, 1, 50, 1);
        sync_all(f, NULL);
        append_range(f, 20, 35, 2);
        rr_wal_durable d;
        sync_all(f, &d);
        assert_int_equal(d.index, 35);
        reopen(f);
        check_log(f, 1, 35, term_trunc);
        f->cfg.fault_sync_fail_at = 2;
        reopen(f);
        int rc = 0;
        for (rr_index_t i = 36; i < 60 && rc == 0; i++) {
            rc = test_append(f->w, i, i, 2);
            if (rc == 0)
                rc = rr_wal_wait(f->w, rr_wal_last_seq(f->w), NULL);
        }
        assert_int_equal(rc, -EIO);
    }
}

/* Reads every segment file of dir (1..n) into one buffer, file after file. */
static size_t read_segments(const char *dir, uint32_t n, uint8_t **out)
{
    size_t len = 0;
    *out = NULL;
    for (uint32_t s = 1; s <= n; s++) {
        char path[128];
        snprintf(path, sizeof path, "%s/%016llx.wal", dir, (unsigned long long)s);
        int fd = open(path, O_RDONLY);
        assert_true(fd >= 0);
        struct stat st;
        assert_int_equal(fstat(fd, &st), 0);
        *out = realloc(*out, len + (size_t)st.st_size);
        assert_int_equal(pread(fd, *out + len, (size_t)st.st_size, 0), st.st_size);
        len += (size_t)st.st_size;
        close(fd);
    }
    return len;
}

/* DIRECT writes the same bytes as SYSCALL: records byte-identical, zeros after the tail
 * (the partial blocks it re-writes carry only zeros past the data), across a reopen in
 * the middle of a block. */
static void test_direct_same_bytes(void **state)
{
    fixture *f = *state;
    const uint8_t modes[] = {RR_WAL_SYNC_SYSCALL, RR_WAL_SYNC_DIRECT};
    uint8_t *img[2];
    size_t len[2];
    uint32_t nseg[2];
    for (size_t m = 0; m < 2; m++) {
        rr_wal_close(f->w);
        f->w = NULL;
        test_rmdir(f->dir);
        f->cfg.sync_mode = modes[m];
        reopen(f);
        append_range(f, 1, 50, 1);
        sync_all(f, NULL);
        reopen(f); /* the tail is inside a block: DIRECT reloads it */
        append_range(f, 20, 35, 2);
        rr_hard_state hs = {.term = 2, .vote = 1, .commit = 30};
        assert_int_equal(rr_wal_set_hard_state(f->w, &hs), 0);
        sync_all(f, NULL);
        assert_int_equal(rr_wal_sync_mode_used(f->w), modes[m]); /* ext4: no fallback */
        nseg[m] = rr_wal_segment_count(f->w);
        rr_wal_close(f->w);
        f->w = NULL;
        len[m] = read_segments(f->dir, nseg[m], &img[m]);
    }
    assert_int_equal(nseg[0], nseg[1]);
    assert_int_equal(len[0], len[1]);
    assert_memory_equal(img[0], img[1], len[0]);
    free(img[0]);
    free(img[1]);
    reopen(f);
    check_log(f, 1, 35, term_trunc);
}

static void big_release(rr_buf *b)
{
    test_bufs_live--;
    free(b);
}

/* A big entry whose bytes follow from (index, k). */
static rr_entry big_entry(rr_index_t index, uint32_t len)
{
    rr_buf *b = malloc(sizeof(rr_buf) + len);
    *b = (rr_buf){.refs = 1, .release = big_release};
    test_bufs_live++;
    uint8_t *p = (uint8_t *)(b + 1);
    for (uint32_t k = 0; k < len; k++)
        p[k] = (uint8_t)(index * 7u + k / 3u);
    return (rr_entry){
        .term = 1, .index = index, .data = p, .buf = b, .data_len = len, .type = RR_ENTRY_NORMAL};
}

/* DIRECT: one batch far larger than the staging buffer (several aligned writes before it
 * is durable), entries straddling the writes, then more at an unaligned tail. */
static void test_direct_large_batch(void **state)
{
    fixture *f = *state;
    enum { N = 50, LEN = 200003 }; /* 10 MB: three writes of the 4 MiB stage, ... */
    f->cfg.sync_mode = RR_WAL_SYNC_DIRECT;
    f->cfg.segment_size_bytes = 8u << 20; /* ... and a rollover in the middle of the batch */
    reopen(f);
    rr_entry ents[N];
    for (rr_index_t i = 1; i <= N; i++)
        ents[i - 1] = big_entry(i, LEN);
    assert_int_equal(rr_wal_append(f->w, ents, N), 0);
    for (size_t k = 0; k < N; k++)
        rr_entry_clear(&ents[k]);
    append_range(f, N + 1, N + 5, 1);
    rr_wal_durable d;
    sync_all(f, &d);
    assert_int_equal(d.index, N + 5);
    assert_true(rr_wal_segment_count(f->w) >= 2);
    for (int round = 0; round < 2; round++) {
        rr_storage st = rr_wal_storage(f->w);
        rr_entry_vec v = {0};
        assert_int_equal(st.ops->entries(st.ctx, 1, N + 1, RR_NO_LIMIT, &v), 0);
        assert_int_equal(v.n, N);
        for (size_t k = 0; k < N; k++) {
            rr_entry want = big_entry(k + 1, LEN);
            assert_int_equal(v.v[k].data_len, LEN);
            assert_memory_equal(v.v[k].data, want.data, LEN);
            rr_entry_clear(&want);
        }
        rr_entry_vec_free(&v);
        reopen(f);
    }
}

static void test_memory_backend(void **state)
{
    (void)state;
    rr_wal_config cfg;
    rr_wal_config_init(&cfg, NULL);
    rr_wal *w;
    assert_int_equal(rr_wal_open(&cfg, &w, NULL), 0);
    assert_int_equal(rr_wal_fd(w), -1);
    assert_int_equal(test_append(w, 1, 10, 1), 0);
    assert_int_equal(test_append(w, 5, 6, 2), 0);
    rr_wal_durable d;
    assert_int_equal(rr_wal_wait(w, rr_wal_last_seq(w), &d), 0);
    assert_int_equal(d.index, 6);
    assert_int_equal(d.term, 2);
    rr_storage st = rr_wal_storage(w);
    rr_entry_vec v = {0};
    assert_int_equal(st.ops->entries(st.ctx, 1, 7, RR_NO_LIMIT, &v), 0);
    assert_int_equal(v.n, 6);
    assert_true(test_entry_ok(&v.v[4], 5, 2));
    assert_true(test_entry_ok(&v.v[3], 4, 1));
    rr_entry_vec_free(&v);
    snap_data_buf = (rr_buf){.refs = 1, .release = snap_data_release};
    rr_snapshot s = {.meta = {.index = 4, .term = 1}, .buf = &snap_data_buf};
    assert_int_equal(rr_wal_save_snapshot(w, &s), 0);
    assert_int_equal(rr_wal_compact(w, 5), RR_ERR_UNAVAILABLE);
    assert_int_equal(rr_wal_compact(w, 4), 0);
    assert_int_equal(st.ops->first_index(st.ctx), 5);
    rr_wal_close(w);
    assert_int_equal(test_bufs_live, 0);
}

int main(void)
{
    const struct CMUnitTest direct_tests[] = {
        cmocka_unit_test_setup_teardown(test_entries_and_hard_state_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollover_reads_from_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncation_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncation_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_compaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_snapshot_resets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corruption_named, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fsync_failure_stops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plug, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_same_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_large_batch, setup, teardown),
    };
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_types),
        cmocka_unit_test_setup_teardown(test_entries_and_hard_state_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollover_reads_from_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncation_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncation_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_compaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_snapshot_resets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corruption_named, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fsync_failure_stops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plug, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_modes, setup, teardown),
        cmocka_unit_test(test_memory_backend),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    /* DIRECT over zero-filled segments: the configuration it is meant for. */
    fixture_sync_mode = RR_WAL_SYNC_DIRECT;
    fixture_prealloc_mode = RR_WAL_PREALLOC_ZERO;
    return failed + cmocka_run_group_tests_name("direct", direct_tests, NULL, NULL);
}
