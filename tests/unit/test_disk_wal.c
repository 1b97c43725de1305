/*
 * test_disk_wal.c: engine/node's disk ops over the WAL (rr_node_disk_wal). A hard state
 * that moves only the commit index is not written on its own (nothing waits for it); it
 * rides with the next entries, and is made durable before a snapshot is saved and at close.
 * A change of term or vote is always written at once. Appends wait for the node's
 * end-of-turn flush, which writes a small batch on the calling thread.
 */
#define _GNU_SOURCE /* nftw in test_wal_util.h */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ringraft/node.h"
#include "test_wal_util.h"

typedef struct fixture {
    char dir[256];
    const rr_node_disk_ops *ops;
    void *ctx;
    rr_wal *w;
} fixture;

static void open_disk(fixture *f)
{
    rr_wal_config cfg;
    rr_wal_config_init(&cfg, f->dir);
    rr_wal_error err;
    assert_int_equal(rr_wal_open(&cfg, &f->w, &err), 0);
    assert_int_equal(rr_node_disk_wal(f->w, &f->ops, &f->ctx), 0);
}

static rr_hard_state stored_hard_state(fixture *f)
{
    rr_storage s = f->ops->storage(f->ctx);
    rr_hard_state hs;
    rr_conf_state cs;
    assert_int_equal(s.ops->initial_state(s.ctx, &hs, &cs), 0);
    return hs;
}

/* Appends entries [lo, hi] of term with hs (may be NULL); returns the sequence to wait for. */
static int64_t append(fixture *f, rr_index_t lo, rr_index_t hi, rr_term_t term,
                      const rr_hard_state *hs)
{
    rr_entry ents[16];
    memset(ents, 0, sizeof ents);
    size_t n = 0;
    for (rr_index_t i = lo; i <= hi; i++)
        ents[n++] = test_entry(i, term);
    int64_t seq = f->ops->append(f->ctx, ents, n, hs, NULL);
    for (size_t k = 0; k < n; k++)
        rr_entry_clear(&ents[k]);
    assert_true(seq > 0);
    return seq;
}

/* As the node does: flush at the end of the turn, then wait. */
static void wait_durable(fixture *f, int64_t seq)
{
    assert_true(f->ops->flush(f->ctx) >= 0);
    for (int t = 0; t < 5000 && f->ops->durable(f->ctx) < seq; t++)
        usleep(1000);
    assert_true(f->ops->durable(f->ctx) >= seq);
}

static void test_commit_only_hard_state_rides_with_the_next_write(void **state)
{
    (void)state;
    fixture f;
    test_mkdtemp(f.dir, sizeof f.dir);
    open_disk(&f);
    rr_hard_state hs = {.term = 2, .vote = 1, .commit = 0};
    int64_t s1 = append(&f, 1, 3, 2, &hs);
    wait_durable(&f, s1);

    /* Commit moves: nothing new to wait for, nothing queued. */
    hs.commit = 3;
    int64_t s2 = f.ops->append(f.ctx, NULL, 0, &hs, NULL);
    assert_int_equal(s2, s1);
    assert_int_equal(rr_wal_last_seq(f.w), (uint64_t)s1);

    /* The next entries carry it (no hard state of their own in this append). */
    int64_t s3 = append(&f, 4, 5, 2, NULL);
    assert_true(s3 > s1 + 2); /* two entries and the hard state */
    wait_durable(&f, s3);
    assert_true(f.ops->syncs(f.ctx) >= 2); /* what the node reports as disk_syncs */
    f.ops->close(f.ctx);
    open_disk(&f);
    rr_hard_state got = stored_hard_state(&f);
    assert_int_equal(got.term, 2);
    assert_int_equal(got.commit, 3);

    /* A vote or term change is written at once, even without entries. */
    rr_hard_state v = {.term = 3, .vote = 2, .commit = 3};
    uint64_t before = rr_wal_last_seq(f.w);
    int64_t s4 = f.ops->append(f.ctx, NULL, 0, &v, NULL);
    assert_true((uint64_t)s4 > before);
    wait_durable(&f, s4);

    /* A kept commit index is made durable at close. */
    v.commit = 5;
    assert_int_equal(f.ops->append(f.ctx, NULL, 0, &v, NULL), s4);
    f.ops->close(f.ctx);
    open_disk(&f);
    got = stored_hard_state(&f);
    assert_int_equal(got.term, 3);
    assert_int_equal(got.vote, 2);
    assert_int_equal(got.commit, 5);
    f.ops->close(f.ctx);
    test_rmdir(f.dir);
}

/* A snapshot is saved only after the commit index covering it is durable: a restart
 * resumes application at min(snapshot index, durable commit). */
static void test_snapshot_waits_for_the_kept_commit_index(void **state)
{
    (void)state;
    fixture f;
    test_mkdtemp(f.dir, sizeof f.dir);
    open_disk(&f);
    rr_hard_state hs = {.term = 1, .vote = 1, .commit = 0};
    wait_durable(&f, append(&f, 1, 8, 1, &hs));
    hs.commit = 8;
    (void)f.ops->append(f.ctx, NULL, 0, &hs, NULL);

    rr_snapshot snap;
    memset(&snap, 0, sizeof(snap));
    snap.meta.index = 6;
    snap.meta.term = 1;
    rr_id_set_insert(&snap.meta.conf_state.voters, 1);
    assert_int_equal(f.ops->save_snapshot(f.ctx, &snap, 0), 0);
    /* Queued (and waited for) before the snapshot was saved, not only at close. */
    assert_int_equal(stored_hard_state(&f).commit, 8);
    assert_int_equal(f.ops->durable(f.ctx), (int64_t)rr_wal_last_seq(f.w));
    f.ops->close(f.ctx);
    open_disk(&f);
    assert_int_equal(stored_hard_state(&f).commit, 8);
    f.ops->close(f.ctx);
    test_rmdir(f.dir);
}

/* The end-of-turn flush writes a small turn itself (durable on return, as the node's next
 * turn relies on), and hands a large one to the WAL's io thread. */
static void test_flush_writes_small_turns_itself(void **state)
{
    (void)state;
    fixture f;
    test_mkdtemp(f.dir, sizeof f.dir);
    open_disk(&f);
    rr_hard_state hs = {.term = 1, .vote = 1, .commit = 0};
    int64_t s1 = append(&f, 1, 2, 1, &hs);
    assert_int_equal(f.ops->flush(f.ctx), 1);
    assert_true(f.ops->durable(f.ctx) >= s1);
    assert_int_equal(f.ops->flush(f.ctx), 0); /* nothing new */

    static uint8_t big[4096];
    rr_entry ents[16];
    for (size_t k = 0; k < 16; k++)
        ents[k] = (rr_entry){.term = 1, .index = 3 + k, .data = big, .data_len = sizeof big};
    int64_t s2 = f.ops->append(f.ctx, ents, 16, NULL, NULL); /* 64 KiB: over the limit */
    assert_true(s2 > s1);
    assert_int_equal(f.ops->flush(f.ctx), 0);
    wait_durable(&f, s2);
    f.ops->close(f.ctx);
    open_disk(&f);
    rr_storage s = f.ops->storage(f.ctx);
    assert_int_equal(s.ops->last_index(s.ctx), 18);
    f.ops->close(f.ctx);
    test_rmdir(f.dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commit_only_hard_state_rides_with_the_next_write),
        cmocka_unit_test(test_snapshot_waits_for_the_kept_commit_index),
        cmocka_unit_test(test_flush_writes_small_turns_itself),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
