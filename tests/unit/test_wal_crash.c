/* test_wal_crash.c: crash consistency of the WAL's recovery. A known workload (appends,
 * a truncation, hard states, rollovers) is written and synced; then, for every byte offset
 * of the last record, the log is cut there (zeroed from the cut, or the file truncated at
 * it) and reopened: every record acknowledged before the cut must come back, exactly. Then
 * bits are flipped all over the segments: the open either fails naming a segment file, or
 * returns only correct entries and loses at most the last record (a flip there looks like
 * a torn write); a flip in any record before the last must fail the open. Both run over a
 * log written (and reopened) in the default sync mode, then in RR_WAL_SYNC_DIRECT. */
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

#define LAST_INDEX 60
#define SEGS_MAX   16
#define FLIP_STEP  6 /* every sixth byte, one bit each: seconds, also under ASan */

typedef struct crash {
    char dir[64];
    rr_wal_config cfg;
    uint64_t nseg;
    uint8_t *img[SEGS_MAX + 1]; /* by segment number, 1-based */
    size_t img_len[SEGS_MAX + 1];
    uint64_t data_end[SEGS_MAX + 1];
    uint64_t last_rec_start, last_rec_end;
} crash;

/* Sync mode the workload is written and reopened in: the default, then DIRECT (main). */
static uint8_t crash_sync_mode = RR_WAL_SYNC_SYSCALL;

static rr_term_t expected_term(rr_index_t i)
{
    return i < 20 ? 1 : 2;
}

static void seg_path(const crash *c, uint64_t seq, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%016llx.wal", c->dir, (unsigned long long)seq);
}

static void must(int rc)
{
    if (rc != 0)
        fail_msg("%s", rr_strerror(rc));
}

static void write_workload(crash *c)
{
    rr_wal *w;
    must(rr_wal_open(&c->cfg, &w, NULL));
    must(test_append(w, 1, 30, 1));
    rr_hard_state hs = {.term = 1, .vote = 1, .commit = 10};
    must(rr_wal_set_hard_state(w, &hs));
    must(rr_wal_wait(w, rr_wal_last_seq(w), NULL));
    must(test_append(w, 20, 45, 2)); /* truncates 20..30 of term 1 */
    hs = (rr_hard_state){.term = 2, .vote = 3, .commit = 40};
    must(rr_wal_set_hard_state(w, &hs));
    must(rr_wal_wait(w, rr_wal_last_seq(w), NULL));
    must(test_append(w, 46, LAST_INDEX, 2));
    rr_wal_durable d;
    must(rr_wal_wait(w, rr_wal_last_seq(w), &d));
    assert_int_equal(d.index, LAST_INDEX);
    c->nseg = rr_wal_segment_count(w);
    rr_wal_close(w);
    assert_true(c->nseg >= 3);
    assert_true(c->nseg <= SEGS_MAX);
}

static int note_record(void *ctx, const wal_record *rec)
{
    crash *c = ctx;
    c->last_rec_start = rec->offset_bytes;
    c->last_rec_end = rec->offset_bytes + WAL_RECORD_HEADER_BYTES + rec->payload_bytes;
    return 0;
}

static void load_images(crash *c)
{
    for (uint64_t s = 1; s <= c->nseg; s++) {
        char path[128];
        seg_path(c, s, path, sizeof path);
        int fd = open(path, O_RDONLY);
        assert_true(fd >= 0);
        struct stat st;
        fstat(fd, &st);
        c->img_len[s] = (size_t)st.st_size;
        c->img[s] = malloc(c->img_len[s]);
        assert_int_equal(pread(fd, c->img[s], c->img_len[s], 0), (ssize_t)c->img_len[s]);
        close(fd);
        wal_scan_result res;
        wal_segment_scan(c->img[s], c->img_len[s], s, note_record, c, &res);
        assert_int_equal(res.stop_err, 0);
        c->data_end[s] = res.end_bytes;
    }
}

static void restore(const crash *c)
{
    for (uint64_t s = 1; s <= c->nseg; s++) {
        char path[128];
        seg_path(c, s, path, sizeof path);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        assert_int_equal(pwrite(fd, c->img[s], c->img_len[s], 0), (ssize_t)c->img_len[s]);
        close(fd);
    }
}

/* Opens; on success checks every entry and returns the last index, else returns -1 after
 * checking the error names a segment file. */
static long open_and_check(const crash *c)
{
    rr_wal *w = NULL;
    rr_wal_error err = {0};
    int rc = rr_wal_open(&c->cfg, &w, &err);
    if (rc != 0) {
        assert_true(rc == RR_ERR_CORRUPT || rc == RR_ERR_BAD_VERSION);
        assert_non_null(strstr(err.path, ".wal"));
        return -1;
    }
    rr_storage st = rr_wal_storage(w);
    rr_index_t last = st.ops->last_index(st.ctx);
    assert_int_equal(st.ops->first_index(st.ctx), 1);
    rr_entry_vec v = {0};
    if (last > 0)
        must(st.ops->entries(st.ctx, 1, last + 1, RR_NO_LIMIT, &v));
    for (size_t k = 0; k < v.n; k++)
        if (!test_entry_ok(&v.v[k], k + 1, expected_term(k + 1)))
            fail_msg("entry %zu is wrong after recovery", k + 1);
    rr_entry_vec_free(&v);
    rr_hard_state hs;
    rr_conf_state cs;
    st.ops->initial_state(st.ctx, &hs, &cs);
    assert_int_equal(hs.commit, 40);
    rr_wal_close(w);
    return (long)last;
}

static int setup(void **state)
{
    crash *c = calloc(1, sizeof(*c));
    test_mkdtemp(c->dir, sizeof c->dir);
    rr_wal_config_init(&c->cfg, c->dir);
    c->cfg.segment_size_bytes = 4096;
    c->cfg.queue_records_max = 128;
    c->cfg.prealloc_mode = RR_WAL_PREALLOC_FALLOCATE;
    c->cfg.sync_mode = crash_sync_mode;
    write_workload(c);
    load_images(c);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    crash *c = *state;
    for (uint64_t s = 1; s <= c->nseg; s++)
        free(c->img[s]);
    test_rmdir(c->dir);
    free(c);
    assert_int_equal(test_bufs_live, 0);
    return 0;
}

static void test_cut_every_offset_of_last_record(void **state)
{
    crash *c = *state;
    char path[128];
    seg_path(c, c->nseg, path, sizeof path);
    for (uint64_t cut = c->last_rec_start; cut <= c->last_rec_end; cut++) {
        for (int mode = 0; mode < 2; mode++) {
            restore(c);
            int fd = open(path, O_RDWR);
            if (mode == 0) { /* the rest of the record never reached the disk */
                static const uint8_t zeros[4096];
                pwrite(fd, zeros, (size_t)(c->last_rec_end - cut), (off_t)cut);
            } else { /* the file itself ends there */
                assert_int_equal(ftruncate(fd, (off_t)cut), 0);
            }
            close(fd);
            long last = open_and_check(c);
            assert_int_equal(last, cut == c->last_rec_end ? LAST_INDEX : LAST_INDEX - 1);
        }
    }
    restore(c);
    assert_int_equal(open_and_check(c), LAST_INDEX);
}

static void test_flip_bits_anywhere(void **state)
{
    crash *c = *state;
    unsigned opened = 0, refused = 0;
    for (uint64_t s = 1; s <= c->nseg; s++) {
        uint64_t end = c->data_end[s] + 64 < c->img_len[s] ? c->data_end[s] + 64 : c->img_len[s];
        for (uint64_t off = 0; off < end; off += FLIP_STEP) {
            restore(c);
            char path[128];
            seg_path(c, s, path, sizeof path);
            int fd = open(path, O_RDWR);
            uint8_t b = (uint8_t)(c->img[s][off] ^ (1u << (off % 8)));
            pwrite(fd, &b, 1, (off_t)off);
            close(fd);
            long last = open_and_check(c);
            /* In a segment followed by another, only its data counts (the successor's
             * header says where it ends); in the last, everything before the last record. */
            bool before_last = s < c->nseg ? off < c->data_end[s] : off < c->last_rec_start;
            if (before_last && last >= 0)
                fail_msg("flip at %s:%llu was not detected", path, (unsigned long long)off);
            if (last >= 0)
                assert_true(last >= LAST_INDEX - 1);
            last >= 0 ? opened++ : refused++;
        }
    }
    print_message("flips: %u refused, %u recovered (in the last record or after it)\n", refused,
                  opened);
    assert_true(refused > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cut_every_offset_of_last_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flip_bits_anywhere, setup, teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    crash_sync_mode = RR_WAL_SYNC_DIRECT;
    return failed + cmocka_run_group_tests_name("direct", tests, NULL, NULL);
}
