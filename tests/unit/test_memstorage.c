/* test_memstorage.c: the in-memory Storage (engine/core/src/memstorage.c), after etcd's
 * storage_test.go, plus buffer reference balance. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "ringraft/core.h"

/* ---- a buffer that counts its releases ---- */

typedef struct tbuf {
    rr_buf b;
    int released;
    uint8_t bytes[64];
} tbuf;

static void tbuf_release(rr_buf *b)
{
    ((tbuf *)b)->released++;
}

static tbuf payload; /* every test entry's data lives here */

static void payload_init(void)
{
    memset(&payload, 0, sizeof(payload));
    payload.b.refs = 1;
    payload.b.release = tbuf_release;
    memcpy(payload.bytes, "payload", 7);
}

static void assert_payload_balanced(void)
{
    assert_int_equal(payload.b.refs, 1);
    assert_int_equal(payload.released, 0);
}

static int setup(void **state)
{
    (void)state;
    payload_init();
    return 0;
}

/* (index, term) pairs with a payload; the caller's array borrows, storage takes refs. */
typedef struct it {
    rr_index_t index;
    rr_term_t term;
} it;

static void make(rr_entry *out, const it *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (rr_entry){.index = src[i].index,
                            .term = src[i].term,
                            .data = payload.bytes,
                            .data_len = 7,
                            .buf = &payload.b};
}

/* A storage holding ents[0] as its snapshot (dummy) and ents[1..n) as entries, like
 * etcd's tests that set ms.ents directly. */
static rr_memstorage *storage_with(const it *src, size_t n)
{
    rr_memstorage *ms = rr_memstorage_new();
    assert_non_null(ms);
    rr_snapshot snap = {.meta = {.index = src[0].index, .term = src[0].term}};
    assert_int_equal(rr_memstorage_apply_snapshot(ms, &snap), 0);
    rr_entry ents[16];
    make(ents, src + 1, n - 1);
    assert_int_equal(rr_memstorage_append(ms, ents, n - 1), 0);
    return ms;
}

/* The storage's log from first - 1 (the dummy) to last, as (index, term). */
static void assert_log(rr_memstorage *ms, const it *want, size_t n)
{
    rr_storage st = rr_memstorage_storage(ms);
    assert_int_equal(st.ops->first_index(st.ctx), want[0].index + 1);
    assert_int_equal(st.ops->last_index(st.ctx), want[0].index + n - 1);
    for (size_t i = 0; i < n; i++) {
        rr_term_t t = 99;
        assert_int_equal(st.ops->term(st.ctx, want[i].index, &t), 0);
        assert_int_equal(t, want[i].term);
    }
    if (n > 1) {
        rr_entry_vec got = {0};
        assert_int_equal(
            st.ops->entries(st.ctx, want[0].index + 1, want[0].index + n, RR_NO_LIMIT, &got), 0);
        assert_int_equal(got.n, n - 1);
        for (size_t i = 0; i < got.n; i++) {
            assert_int_equal(got.v[i].index, want[i + 1].index);
            assert_int_equal(got.v[i].term, want[i + 1].term);
            assert_memory_equal(got.v[i].data, "payload", 7);
        }
        rr_entry_vec_free(&got);
    }
}

static const it base[] = {{3, 3}, {4, 4}, {5, 5}};
#define N(a) (sizeof(a) / sizeof((a)[0]))

static void test_term(void **state)
{
    (void)state;
    rr_memstorage *ms = storage_with(base, 3);
    rr_storage st = rr_memstorage_storage(ms);
    const struct {
        rr_index_t i;
        int rc;
        rr_term_t term;
    } tests[] = {
        {2, RR_ERR_COMPACTED, 0}, {3, 0, 3}, {4, 0, 4}, {5, 0, 5}, {6, RR_ERR_UNAVAILABLE, 0},
    };
    for (size_t k = 0; k < N(tests); k++) {
        rr_term_t t = 99;
        assert_int_equal(st.ops->term(st.ctx, tests[k].i, &t), tests[k].rc);
        assert_int_equal(t, tests[k].term);
    }
    rr_memstorage_free(ms);
    assert_payload_balanced();
}

static void test_entries(void **state)
{
    (void)state;
    const it four[] = {{3, 3}, {4, 4}, {5, 5}, {6, 6}};
    rr_entry e[4];
    make(e, four, 4);
    uint64_t s1 = rr_entry_size_bytes(&e[1]), s2 = rr_entry_size_bytes(&e[2]),
             s3 = rr_entry_size_bytes(&e[3]);
    const struct {
        rr_index_t lo, hi;
        uint64_t max;
        int rc;
        size_t n; /* entries from index 4 */
    } tests[] = {
        {2, 6, RR_NO_LIMIT, RR_ERR_COMPACTED, 0},
        {3, 4, RR_NO_LIMIT, RR_ERR_COMPACTED, 0},
        {4, 5, RR_NO_LIMIT, 0, 1},
        {4, 6, RR_NO_LIMIT, 0, 2},
        {4, 7, RR_NO_LIMIT, 0, 3},
        /* even if max is zero, the first entry is returned */
        {4, 7, 0, 0, 1},
        /* limit to 2 */
        {4, 7, s1 + s2, 0, 2},
        {4, 7, s1 + s2 + s3 / 2, 0, 2},
        {4, 7, s1 + s2 + s3 - 1, 0, 2},
        /* all */
        {4, 7, s1 + s2 + s3, 0, 3},
        /* beyond the last index (etcd panics) */
        {4, 8, RR_NO_LIMIT, RR_ERR_UNAVAILABLE, 0},
    };
    rr_memstorage *ms = storage_with(four, 4);
    rr_storage st = rr_memstorage_storage(ms);
    for (size_t k = 0; k < N(tests); k++) {
        rr_entry_vec got = {0};
        assert_int_equal(st.ops->entries(st.ctx, tests[k].lo, tests[k].hi, tests[k].max, &got),
                         tests[k].rc);
        assert_int_equal(got.n, tests[k].n);
        for (size_t i = 0; i < got.n; i++)
            assert_int_equal(got.v[i].index, 4 + i);
        assert_int_equal(payload.b.refs, 1 + 3 + got.n); /* storage's 3 + what we hold */
        rr_entry_vec_free(&got);
    }
    /* Appends to a non-empty out; the limit counts only this call's entries. */
    rr_entry_vec got = {0};
    assert_int_equal(st.ops->entries(st.ctx, 4, 6, RR_NO_LIMIT, &got), 0);
    assert_int_equal(st.ops->entries(st.ctx, 5, 7, s2, &got), 0);
    assert_int_equal(got.n, 3);
    assert_int_equal(got.v[2].index, 5);
    rr_entry_vec_free(&got);
    rr_memstorage_free(ms);
    assert_payload_balanced();

    /* Only the dummy: nothing is available, even an empty range (as etcd). */
    ms = rr_memstorage_new();
    st = rr_memstorage_storage(ms);
    assert_int_equal(st.ops->entries(st.ctx, 1, 1, RR_NO_LIMIT, &got), RR_ERR_UNAVAILABLE);
    assert_int_equal(st.ops->entries(st.ctx, 0, 1, RR_NO_LIMIT, &got), RR_ERR_COMPACTED);
    rr_memstorage_free(ms);
}

static void test_first_last_index(void **state)
{
    (void)state;
    rr_memstorage *ms = storage_with(base, 3);
    rr_storage st = rr_memstorage_storage(ms);
    assert_int_equal(st.ops->first_index(st.ctx), 4);
    assert_int_equal(st.ops->last_index(st.ctx), 5);
    rr_entry e;
    make(&e, &(it){6, 5}, 1);
    assert_int_equal(rr_memstorage_append(ms, &e, 1), 0);
    assert_int_equal(st.ops->last_index(st.ctx), 6);
    assert_int_equal(rr_memstorage_compact(ms, 4), 0);
    assert_int_equal(st.ops->first_index(st.ctx), 5);
    rr_memstorage_free(ms);
    assert_payload_balanced();

    /* A new storage: the dummy at 0, first 1, last 0. */
    ms = rr_memstorage_new();
    st = rr_memstorage_storage(ms);
    assert_int_equal(st.ops->first_index(st.ctx), 1);
    assert_int_equal(st.ops->last_index(st.ctx), 0);
    rr_term_t t = 99;
    assert_int_equal(st.ops->term(st.ctx, 0, &t), 0);
    assert_int_equal(t, 0);
    rr_memstorage_free(ms);
}

static void test_compact(void **state)
{
    (void)state;
    const struct {
        rr_index_t i;
        int rc;
        rr_index_t windex;
        rr_term_t wterm;
        size_t wlen; /* including the dummy */
    } tests[] = {
        {2, RR_ERR_COMPACTED, 3, 3, 3},
        {3, RR_ERR_COMPACTED, 3, 3, 3},
        {4, 0, 4, 4, 2},
        {5, 0, 5, 5, 1},
        {6, RR_ERR_UNAVAILABLE, 3, 3, 3}, /* beyond the last index (etcd panics) */
    };
    for (size_t k = 0; k < N(tests); k++) {
        rr_memstorage *ms = storage_with(base, 3);
        rr_storage st = rr_memstorage_storage(ms);
        assert_int_equal(rr_memstorage_compact(ms, tests[k].i), tests[k].rc);
        rr_term_t t = 0;
        assert_int_equal(st.ops->first_index(st.ctx), tests[k].windex + 1);
        assert_int_equal(st.ops->term(st.ctx, tests[k].windex, &t), 0);
        assert_int_equal(t, tests[k].wterm);
        assert_int_equal(st.ops->last_index(st.ctx) - tests[k].windex + 1, tests[k].wlen);
        /* The dummy keeps no data: the compacted entries' references are gone. */
        assert_int_equal(payload.b.refs, 1 + tests[k].wlen - 1);
        rr_memstorage_free(ms);
        assert_payload_balanced();
    }
}

static void test_create_snapshot(void **state)
{
    (void)state;
    rr_conf_state cs = {0};
    rr_id_set_insert(&cs.voters, 1);
    rr_id_set_insert(&cs.voters, 2);
    rr_id_set_insert(&cs.voters, 3);
    tbuf data = {.b = {.refs = 1, .release = tbuf_release}};
    memcpy(data.bytes, "data", 4);

    const struct {
        rr_index_t i;
        int rc;
        rr_index_t windex;
        rr_term_t wterm;
    } tests[] = {
        {4, 0, 4, 4},
        {5, 0, 5, 5},
        {3, RR_ERR_SNAP_OUT_OF_DATE, 3, 3},
        {6, RR_ERR_UNAVAILABLE, 3, 3},
    };
    for (size_t k = 0; k < N(tests); k++) {
        rr_memstorage *ms = storage_with(base, 3);
        rr_storage st = rr_memstorage_storage(ms);
        int rc = rr_memstorage_create_snapshot(ms, tests[k].i, &cs, data.bytes, 4, &data.b);
        assert_int_equal(rc, tests[k].rc);
        rr_snapshot snap;
        assert_int_equal(st.ops->snapshot(st.ctx, &snap), 0);
        assert_int_equal(snap.meta.index, tests[k].windex);
        assert_int_equal(snap.meta.term, tests[k].wterm);
        if (rc == 0) {
            assert_true(rr_conf_state_equal(&snap.meta.conf_state, &cs));
            assert_int_equal(snap.data_len, 4);
            assert_memory_equal(snap.data, "data", 4);
            assert_ptr_equal(snap.buf, &data.b);
            assert_int_equal(data.b.refs, 3); /* ours, storage's, snap's */
            /* The log itself is untouched by a snapshot. */
            assert_int_equal(st.ops->first_index(st.ctx), 4);
        }
        rr_snapshot_clear(&snap);
        rr_memstorage_free(ms);
        assert_int_equal(data.b.refs, 1);
    }

    /* Replacing the data releases the old buffer; the same buffer again is safe. */
    rr_memstorage *ms = storage_with(base, 3);
    assert_int_equal(rr_memstorage_create_snapshot(ms, 4, &cs, data.bytes, 4, &data.b), 0);
    assert_int_equal(rr_memstorage_create_snapshot(ms, 5, NULL, data.bytes, 2, &data.b), 0);
    assert_int_equal(data.b.refs, 2);
    rr_snapshot snap;
    rr_storage st = rr_memstorage_storage(ms);
    assert_int_equal(st.ops->snapshot(st.ctx, &snap), 0);
    assert_true(rr_conf_state_equal(&snap.meta.conf_state, &cs)); /* NULL cs keeps it */
    assert_int_equal(snap.data_len, 2);
    rr_snapshot_clear(&snap);
    assert_int_equal(rr_memstorage_create_snapshot(ms, 5, NULL, NULL, 0, NULL),
                     RR_ERR_SNAP_OUT_OF_DATE);
    rr_memstorage_free(ms);
    assert_int_equal(data.b.refs, 1);
    assert_int_equal(data.released, 0);
    assert_payload_balanced();
}

static void test_append(void **state)
{
    (void)state;
    const struct {
        it in[4];
        size_t n_in;
        int rc;
        it want[5];
        size_t n_want;
    } tests[] = {
        {{{3, 3}, {4, 4}, {5, 5}}, 3, 0, {{3, 3}, {4, 4}, {5, 5}}, 3},
        {{{3, 3}, {4, 6}, {5, 6}}, 3, 0, {{3, 3}, {4, 6}, {5, 6}}, 3},
        {{{3, 3}, {4, 4}, {5, 5}, {6, 5}}, 4, 0, {{3, 3}, {4, 4}, {5, 5}, {6, 5}}, 4},
        /* entries older than the first index are ignored; conflicting suffix truncated */
        {{{2, 3}, {3, 3}, {4, 5}}, 3, 0, {{3, 3}, {4, 5}}, 2},
        /* truncate the existing entries and append */
        {{{4, 5}}, 1, 0, {{3, 3}, {4, 5}}, 2},
        /* direct append */
        {{{6, 5}}, 1, 0, {{3, 3}, {4, 4}, {5, 5}, {6, 5}}, 4},
        /* all compacted away: nothing to do */
        {{{1, 1}, {2, 2}}, 2, 0, {{3, 3}, {4, 4}, {5, 5}}, 3},
        /* a gap (etcd panics) leaves the log unchanged */
        {{{7, 5}}, 1, RR_ERR_UNAVAILABLE, {{3, 3}, {4, 4}, {5, 5}}, 3},
    };
    for (size_t k = 0; k < N(tests); k++) {
        rr_memstorage *ms = storage_with(base, 3);
        rr_entry in[4];
        make(in, tests[k].in, tests[k].n_in);
        assert_int_equal(rr_memstorage_append(ms, in, tests[k].n_in), tests[k].rc);
        assert_log(ms, tests[k].want, tests[k].n_want);
        /* Truncated entries released their references. */
        assert_int_equal(payload.b.refs, 1 + tests[k].n_want - 1);
        rr_memstorage_free(ms);
        assert_payload_balanced();
    }
    rr_memstorage *ms = rr_memstorage_new();
    assert_int_equal(rr_memstorage_append(ms, NULL, 0), 0);
    rr_memstorage_free(ms);
}

static void test_apply_snapshot(void **state)
{
    (void)state;
    rr_conf_state cs = {0};
    rr_id_set_insert(&cs.voters, 1);
    tbuf data = {.b = {.refs = 1, .release = tbuf_release}};
    rr_snapshot s4 = {.meta = {.conf_state = cs, .index = 4, .term = 4},
                      .data = data.bytes,
                      .data_len = 1,
                      .buf = &data.b};
    rr_snapshot s3 = {.meta = {.conf_state = cs, .index = 3, .term = 3}};

    rr_memstorage *ms = rr_memstorage_new();
    rr_storage st = rr_memstorage_storage(ms);
    rr_entry e[2];
    make(e, (it[]){{1, 1}, {2, 1}}, 2);
    assert_int_equal(rr_memstorage_append(ms, e, 2), 0);
    assert_int_equal(payload.b.refs, 3);

    assert_int_equal(rr_memstorage_apply_snapshot(ms, &s4), 0);
    assert_int_equal(data.b.refs, 2);
    assert_int_equal(payload.b.refs, 1); /* the log was replaced */
    assert_log(ms, (it[]){{4, 4}}, 1);
    rr_hard_state hs;
    rr_conf_state got;
    assert_int_equal(st.ops->initial_state(st.ctx, &hs, &got), 0);
    assert_true(rr_conf_state_equal(&got, &cs));

    assert_int_equal(rr_memstorage_apply_snapshot(ms, &s3), RR_ERR_SNAP_OUT_OF_DATE);
    assert_int_equal(rr_memstorage_apply_snapshot(ms, &s4), RR_ERR_SNAP_OUT_OF_DATE);
    assert_log(ms, (it[]){{4, 4}}, 1);

    /* Applying a snapshot handed out by the storage itself (shared buffer). */
    rr_snapshot own;
    assert_int_equal(st.ops->snapshot(st.ctx, &own), 0);
    own.meta.index = 10;
    own.meta.term = 5;
    assert_int_equal(rr_memstorage_apply_snapshot(ms, &own), 0);
    rr_snapshot_clear(&own);
    assert_int_equal(data.b.refs, 2);
    rr_memstorage_free(ms);
    assert_int_equal(data.b.refs, 1);
    assert_int_equal(data.released, 0);
    assert_payload_balanced();
}

static void test_hard_state(void **state)
{
    (void)state;
    rr_memstorage *ms = rr_memstorage_new();
    rr_storage st = rr_memstorage_storage(ms);
    rr_hard_state hs = {.term = 1, .vote = 3, .commit = 2}, got = {0};
    rr_conf_state cs;
    assert_int_equal(st.ops->initial_state(st.ctx, &got, &cs), 0);
    assert_int_equal(got.term, 0);
    assert_int_equal(cs.voters.n, 0);
    rr_memstorage_set_hard_state(ms, &hs);
    assert_int_equal(st.ops->initial_state(st.ctx, &got, &cs), 0);
    assert_int_equal(got.term, 1);
    assert_int_equal(got.vote, 3);
    assert_int_equal(got.commit, 2);
    rr_memstorage_free(ms);
    rr_memstorage_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_term, setup),
        cmocka_unit_test_setup(test_entries, setup),
        cmocka_unit_test_setup(test_first_last_index, setup),
        cmocka_unit_test_setup(test_compact, setup),
        cmocka_unit_test_setup(test_create_snapshot, setup),
        cmocka_unit_test_setup(test_append, setup),
        cmocka_unit_test_setup(test_apply_snapshot, setup),
        cmocka_unit_test_setup(test_hard_state, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
