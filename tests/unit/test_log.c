/* test_log.c: the raft log — storage + unstable tail, commit/apply bookkeeping
 * (engine/core/src/log.c). Cases follow etcd raft's log_test.go and log_unstable_test.go,
 * at the level of our API; every test also checks that buffer references balance. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "entry_internal.h"
#include "log.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- a payload buffer that counts references and releases ---- */

typedef struct tbuf {
    rr_buf b;
    int released;
    uint8_t bytes[16];
} tbuf;

static void tbuf_release(rr_buf *b)
{
    ((tbuf *)b)->released++;
}

static tbuf payload;

/* ---- entry builders: test arrays borrow the payload, the log takes references ---- */

typedef struct ents {
    rr_entry v[16];
    size_t n;
} ents;

/* Entries first, first+1, ... with the given terms. with_data attaches the payload (and
 * changes entry sizes); without it entries are sized as etcd's index(i).terms(...). */
static ents at_(rr_index_t first, bool with_data, const rr_term_t *terms, size_t n)
{
    ents e = {.n = n};
    assert_true(n <= N(e.v));
    for (size_t i = 0; i < n; i++) {
        e.v[i] = (rr_entry){.index = first + i, .term = terms[i]};
        if (with_data) {
            e.v[i].data = payload.bytes;
            e.v[i].data_len = 7;
            e.v[i].buf = &payload.b;
        }
    }
    return e;
}
#define TERMS(...)       (const rr_term_t[]){__VA_ARGS__}, N(((rr_term_t[]){__VA_ARGS__}))
#define AT(first, ...)   at_(first, true, TERMS(__VA_ARGS__))
#define BARE(first, ...) at_(first, false, TERMS(__VA_ARGS__))
static const ents none = {.n = 0};

/* Entries [from, to) with term == index, as etcd's index(from).termRange(from, to). */
static rr_entry *term_range(rr_index_t from, rr_index_t to, bool with_data)
{
    rr_entry *v = calloc((size_t)(to - from) + 1, sizeof(rr_entry));
    for (rr_index_t i = from; i < to; i++) {
        v[i - from] = (rr_entry){.index = i, .term = i};
        if (with_data) {
            v[i - from].data = payload.bytes;
            v[i - from].data_len = 7;
            v[i - from].buf = &payload.b;
        }
    }
    return v;
}

/* ---- the fixture: one memstorage and one log per test, events recorded ---- */

static rr_memstorage *ms;
static rr_log lg;
static bool lg_open;
static rr_log_event events[64];
static size_t n_events;
/* A copy of the log's state when the RESTORE event fired. */
static rr_log at_restore;

static void record(void *ctx, const rr_log *l, const rr_log_event *ev)
{
    (void)ctx;
    if (ev->type == RR_LOG_EVENT_RESTORE)
        at_restore = *l;
    if (n_events < N(events))
        events[n_events++] = *ev;
}

static int setup(void **state)
{
    (void)state;
    memset(&payload, 0, sizeof(payload));
    payload.b.refs = 1;
    payload.b.release = tbuf_release;
    memcpy(payload.bytes, "payload", 7);
    ms = rr_memstorage_new();
    assert_non_null(ms);
    lg_open = false;
    n_events = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (lg_open)
        rr_log_destroy(&lg);
    rr_memstorage_free(ms);
    /* Every reference the storage, the log and the test took was given back. */
    assert_int_equal(payload.b.refs, 1);
    assert_int_equal(payload.released, 0);
    return 0;
}

static void open_log_with(uint64_t max_applying_bytes)
{
    assert_int_equal(rr_log_init(&lg, rr_memstorage_storage(ms), max_applying_bytes), 0);
    lg.on_event = record;
    lg_open = true;
}

static void open_log(void)
{
    open_log_with(0);
}

static void reopen(void)
{
    if (lg_open)
        rr_log_destroy(&lg);
    rr_memstorage_free(ms);
    ms = rr_memstorage_new();
    lg_open = false;
    n_events = 0;
}

static void storage_snap(rr_index_t index, rr_term_t term)
{
    rr_snapshot s = {.meta = {.index = index, .term = term}};
    assert_int_equal(rr_memstorage_apply_snapshot(ms, &s), 0);
}

static void storage_append(ents e)
{
    assert_int_equal(rr_memstorage_append(ms, e.v, e.n), 0);
}

static rr_entry_id id(rr_term_t term, rr_index_t index)
{
    return (rr_entry_id){.term = term, .index = index};
}

static rr_term_t term_of(rr_index_t i)
{
    rr_term_t t = 77;
    assert_int_equal(rr_log_term(&lg, i, &t), 0);
    return t;
}

/* out holds exactly the entries of want. */
static void assert_entries(const rr_entry_vec *out, const rr_entry *want, size_t n)
{
    assert_int_equal(out->n, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(out->v[i].index, want[i].index);
        assert_int_equal(out->v[i].term, want[i].term);
        assert_int_equal(out->v[i].data_len, want[i].data_len);
    }
}

static bool has_event(uint8_t type, rr_index_t index, rr_term_t term, rr_term_t log_term)
{
    for (size_t i = 0; i < n_events; i++) {
        const rr_log_event *e = &events[i];
        if (e->type == type && e->index == index && e->term == term && e->log_term == log_term)
            return true;
    }
    return false;
}

/* =======================================================================================
 * raftLog
 * ===================================================================================== */

static void test_find_conflict(void **state)
{
    (void)state;
    const struct {
        ents e;
        rr_index_t want;
    } tests[] = {
        /* no conflict, empty */
        {none, 0},
        /* no conflict */
        {AT(1, 1, 2, 3), 0},
        {AT(2, 2, 3), 0},
        {AT(3, 3), 0},
        /* no conflict, but new entries */
        {AT(1, 1, 2, 3, 4, 4), 4},
        {AT(2, 2, 3, 4, 5), 4},
        {AT(3, 3, 4, 4), 4},
        {AT(4, 4, 4), 4},
        /* conflicts with existing entries */
        {AT(1, 4, 4), 1},
        {AT(2, 1, 4, 4), 2},
        {AT(3, 1, 2, 4, 4), 3},
    };
    for (size_t k = 0; k < N(tests); k++) {
        reopen();
        open_log();
        ents prev = AT(1, 1, 2, 3);
        rr_log_append(&lg, prev.v, prev.n);
        assert_int_equal(rr_log_find_conflict(&lg, tests[k].e.v, tests[k].e.n), tests[k].want);
    }
    /* A conflict inside the log is reported with both terms; a mere extension is not. */
    n_events = 0;
    ents c = AT(2, 1, 4);
    assert_int_equal(rr_log_find_conflict(&lg, c.v, c.n), 2);
    assert_int_equal(n_events, 1);
    assert_true(has_event(RR_LOG_EVENT_CONFLICT, 2, 1, 2));
    n_events = 0;
    ents x = AT(4, 4);
    assert_int_equal(rr_log_find_conflict(&lg, x.v, x.n), 4);
    assert_int_equal(n_events, 0);
}

static void test_find_conflict_by_term(void **state)
{
    (void)state;
    const struct {
        ents e; /* e.v[0] is the snapshot's (index, term) */
        rr_index_t index;
        rr_term_t term;
        rr_index_t want;
    } tests[] = {
        /* Log starts from index 1. */
        {BARE(0, 0, 2, 2, 5, 5, 5), 100, 2, 100}, /* unavailable */
        {BARE(0, 0, 2, 2, 5, 5, 5), 5, 6, 5},
        {BARE(0, 0, 2, 2, 5, 5, 5), 5, 5, 5},
        {BARE(0, 0, 2, 2, 5, 5, 5), 5, 4, 2},
        {BARE(0, 0, 2, 2, 5, 5, 5), 5, 2, 2},
        {BARE(0, 0, 2, 2, 5, 5, 5), 5, 1, 0},
        {BARE(0, 0, 2, 2, 5, 5, 5), 1, 2, 1},
        {BARE(0, 0, 2, 2, 5, 5, 5), 1, 1, 0},
        {BARE(0, 0, 2, 2, 5, 5, 5), 0, 0, 0},
        /* Log with compacted entries. */
        {BARE(10, 3, 3, 3, 4, 4, 4), 30, 3, 30}, /* unavailable */
        {BARE(10, 3, 3, 3, 4, 4, 4), 14, 9, 14},
        {BARE(10, 3, 3, 3, 4, 4, 4), 14, 4, 14},
        {BARE(10, 3, 3, 3, 4, 4, 4), 14, 3, 12},
        {BARE(10, 3, 3, 3, 4, 4, 4), 14, 2, 9},
        {BARE(10, 3, 3, 3, 4, 4, 4), 11, 5, 11},
        {BARE(10, 3, 3, 3, 4, 4, 4), 10, 5, 10},
        {BARE(10, 3, 3, 3, 4, 4, 4), 10, 3, 10},
        {BARE(10, 3, 3, 3, 4, 4, 4), 10, 2, 9},
        {BARE(10, 3, 3, 3, 4, 4, 4), 9, 2, 9}, /* compacted */
        {BARE(10, 3, 3, 3, 4, 4, 4), 4, 2, 4}, /* compacted */
        {BARE(10, 3, 3, 3, 4, 4, 4), 0, 0, 0}, /* compacted */
    };
    for (size_t k = 0; k < N(tests); k++) {
        reopen();
        storage_snap(tests[k].e.v[0].index, tests[k].e.v[0].term);
        open_log();
        rr_log_append(&lg, tests[k].e.v + 1, tests[k].e.n - 1);
        rr_entry_id got = rr_log_find_conflict_by_term(&lg, tests[k].index, tests[k].term);
        assert_int_equal(got.index, tests[k].want);
        assert_int_equal(got.term, rr_log_term_or_zero(&lg, got.index));
    }
}

static void test_is_up_to_date(void **state)
{
    (void)state;
    open_log();
    ents prev = AT(1, 1, 2, 3);
    rr_log_append(&lg, prev.v, prev.n);
    rr_index_t last = rr_log_last_index(&lg);
    const struct {
        rr_index_t last;
        rr_term_t term;
        bool want;
    } tests[] = {
        /* greater term, ignore last index */
        {last - 1, 4, true},
        {last, 4, true},
        {last + 1, 4, true},
        /* smaller term, ignore last index */
        {last - 1, 2, false},
        {last, 2, false},
        {last + 1, 2, false},
        /* equal term: equal or larger last index wins */
        {last - 1, 3, false},
        {last, 3, true},
        {last + 1, 3, true},
    };
    for (size_t k = 0; k < N(tests); k++)
        assert_int_equal(rr_log_is_up_to_date(&lg, id(tests[k].term, tests[k].last)),
                         tests[k].want);
    assert_int_equal(rr_log_last_entry_id(&lg).index, 3);
    assert_int_equal(rr_log_last_entry_id(&lg).term, 3);
}

static void test_append(void **state)
{
    (void)state;
    const struct {
        ents e;
        rr_index_t windex;
        ents want;
        rr_index_t woffset;
    } tests[] = {
        {none, 2, AT(1, 1, 2), 3},
        {AT(3, 2), 3, AT(1, 1, 2, 2), 3},
        /* conflicts with index 1 */
        {AT(1, 2), 1, AT(1, 2), 1},
        /* conflicts with index 2 */
        {AT(2, 3, 3), 3, AT(1, 1, 3, 3), 2},
    };
    for (size_t k = 0; k < N(tests); k++) {
        reopen();
        storage_append(AT(1, 1, 2));
        open_log();
        assert_int_equal(rr_log_append(&lg, tests[k].e.v, tests[k].e.n), tests[k].windex);
        rr_entry_vec out = {0};
        assert_int_equal(rr_log_entries(&lg, 1, RR_NO_LIMIT, &out), 0);
        assert_entries(&out, tests[k].want.v, tests[k].want.n);
        rr_entry_vec_free(&out);
        assert_int_equal(lg.unstable.offset, tests[k].woffset);
    }
}

static void test_maybe_append(void **state)
{
    (void)state;
    const rr_index_t last = 3;
    const rr_term_t lastt = 3;
    const rr_index_t commit = 1;
    const struct {
        rr_entry_id prev;
        rr_index_t committed;
        ents e;
        rr_index_t wlast;
        bool wappend;
        rr_index_t wcommit;
    } tests[] = {
        /* not match: term is different */
        {{lastt - 1, last}, last, AT(last + 1, 4), 0, false, commit},
        /* not match: index out of bound */
        {{lastt, last + 1}, last, AT(last + 2, 4), 0, false, commit},
        /* match with the last existing entry */
        {{lastt, last}, last, none, last, true, last},
        {{lastt, last}, last + 1, none, last, true, last}, /* not above last new */
        {{lastt, last}, last - 1, none, last, true, last - 1},
        {{lastt, last}, 0, none, last, true, commit}, /* commit never decreases */
        {{0, 0}, last, none, 0, true, commit},
        {{lastt, last}, last, AT(last + 1, 4), last + 1, true, last},
        {{lastt, last}, last + 1, AT(last + 1, 4), last + 1, true, last + 1},
        {{lastt, last}, last + 2, AT(last + 1, 4), last + 1, true, last + 1},
        {{lastt, last}, last + 2, AT(last + 1, 4, 4), last + 2, true, last + 2},
        /* match with the entry in the middle */
        {{lastt - 1, last - 1}, last, AT(last, 4), last, true, last},
        {{lastt - 2, last - 2}, last, AT(last - 1, 4), last - 1, true, last - 1},
        {{lastt - 2, last - 2}, last, AT(last - 1, 4, 4), last, true, last},
        /* (etcd's conflict-with-committed case panics: RR_ASSERT here) */
    };
    for (size_t k = 0; k < N(tests); k++) {
        reopen();
        open_log();
        ents prev = AT(1, 1, 2, 3);
        rr_log_append(&lg, prev.v, prev.n);
        lg.committed = commit;
        rr_index_t got = 0;
        bool ok = rr_log_maybe_append(&lg, tests[k].prev, tests[k].committed, tests[k].e.v,
                                      tests[k].e.n, &got);
        assert_int_equal(ok, tests[k].wappend);
        if (ok)
            assert_int_equal(got, tests[k].wlast);
        assert_int_equal(lg.committed, tests[k].wcommit);
        if (ok && tests[k].e.n > 0) {
            rr_index_t li = rr_log_last_index(&lg);
            rr_entry_vec out = {0};
            assert_int_equal(rr_log_slice(&lg, li - tests[k].e.n + 1, li + 1, RR_NO_LIMIT, &out),
                             0);
            assert_entries(&out, tests[k].e.v, tests[k].e.n);
            rr_entry_vec_free(&out);
        }
    }
}

static void test_compaction_side_effects(void **state)
{
    (void)state;
    const rr_index_t last = 1000, unstable = 750;
    rr_entry *stable = term_range(1, unstable + 1, true);
    assert_int_equal(rr_memstorage_append(ms, stable, unstable), 0);
    free(stable);
    open_log();
    rr_entry *tail = term_range(unstable + 1, last + 1, true);
    rr_log_append(&lg, tail, last - unstable);
    free(tail);

    assert_true(rr_log_maybe_commit(&lg, rr_log_last_entry_id(&lg)));
    rr_log_applied_to(&lg, lg.committed, 0);

    const rr_index_t offset = 500;
    assert_int_equal(rr_memstorage_compact(ms, offset), 0);
    assert_int_equal(rr_log_last_index(&lg), last);
    for (rr_index_t j = offset; j <= last; j++) {
        assert_int_equal(term_of(j), j);
        assert_true(rr_log_match_term(&lg, id(j, j)));
    }

    const rr_entry *next;
    size_t n;
    rr_log_next_unstable_ents(&lg, &next, &n);
    assert_int_equal(n, 250);
    assert_int_equal(next[0].index, 751);

    rr_index_t prev = rr_log_last_index(&lg);
    rr_entry one = {.index = prev + 1, .term = prev + 1};
    rr_log_append(&lg, &one, 1);
    assert_int_equal(rr_log_last_index(&lg), prev + 1);

    rr_entry_vec out = {0};
    assert_int_equal(rr_log_entries(&lg, rr_log_last_index(&lg), RR_NO_LIMIT, &out), 0);
    assert_int_equal(out.n, 1);
    rr_entry_vec_free(&out);
}

/* The storage holds a snapshot at 3 and entry 4; the log appends 4..6 (term 1) and learns
 * 4 is stable and 5 committed (etcd's TestHasNextCommittedEnts setup). */
static void committed_setup(uint64_t max_applying_bytes)
{
    storage_snap(3, 1);
    ents e = AT(4, 1, 1, 1);
    rr_memstorage_append(ms, e.v, 1);
    open_log_with(max_applying_bytes);
    rr_log_append(&lg, e.v, e.n);
    rr_log_stable_to(&lg, id(1, 4));
    rr_log_maybe_commit(&lg, id(1, 5));
}

static void test_has_next_and_next_committed_ents(void **state)
{
    (void)state;
    const struct {
        rr_index_t applied, applying;
        bool allow_unstable, paused, snap;
        size_t wfirst, wn; /* expected entries: wn of them from index wfirst */
    } tests[] = {
        {3, 3, true, false, false, 4, 2},
        {3, 4, true, false, false, 5, 1},
        {3, 5, true, false, false, 0, 0},
        {4, 4, true, false, false, 5, 1},
        {4, 5, true, false, false, 0, 0},
        {5, 5, true, false, false, 0, 0},
        /* Don't allow unstable entries. */
        {3, 3, false, false, false, 4, 1},
        {3, 4, false, false, false, 0, 0},
        {3, 5, false, false, false, 0, 0},
        {4, 4, false, false, false, 0, 0},
        {4, 5, false, false, false, 0, 0},
        {5, 5, false, false, false, 0, 0},
        /* Paused. */
        {3, 3, true, true, false, 0, 0},
        /* With a snapshot pending. */
        {3, 3, true, false, true, 0, 0},
    };
    for (size_t k = 0; k < N(tests); k++) {
        reopen();
        committed_setup(0);
        rr_log_applied_to(&lg, tests[k].applied, 0);
        rr_log_accept_applying(&lg, tests[k].applying, 0, tests[k].allow_unstable);
        lg.applying_ents_paused = tests[k].paused;
        if (tests[k].snap) {
            rr_snapshot s = {.meta = {.index = 4, .term = 1}};
            rr_log_restore(&lg, &s);
        }
        assert_int_equal(rr_log_has_next_committed_ents(&lg, tests[k].allow_unstable),
                         tests[k].wn > 0);
        rr_entry_vec out = {0};
        assert_int_equal(rr_log_next_committed_ents(&lg, tests[k].allow_unstable, &out), 0);
        assert_int_equal(out.n, tests[k].wn);
        for (size_t i = 0; i < out.n; i++)
            assert_int_equal(out.v[i].index, tests[k].wfirst + i);
        rr_entry_vec_free(&out);
    }
}

static void test_accept_applying(void **state)
{
    (void)state;
    const uint64_t max = 100;
    const struct {
        rr_index_t index;
        bool allow_unstable;
        uint64_t size;
        bool wpaused;
    } tests[] = {
        {3, true, max - 1, true},
        {3, true, max, true},
        {3, true, max + 1, true},
        {4, true, max - 1, true},
        {4, true, max, true},
        {4, true, max + 1, true},
        {5, true, max - 1, false},
        {5, true, max, true},
        {5, true, max + 1, true},
        /* Don't allow unstable entries. */
        {3, false, max - 1, true},
        {3, false, max, true},
        {3, false, max + 1, true},
        {4, false, max - 1, false},
        {4, false, max, true},
        {4, false, max + 1, true},
        {5, false, max - 1, false},
        {5, false, max, true},
        {5, false, max + 1, true},
    };
    for (size_t k = 0; k < N(tests); k++) {
        reopen();
        committed_setup(max);
        rr_log_applied_to(&lg, 3, 0);
        rr_log_accept_applying(&lg, tests[k].index, tests[k].size, tests[k].allow_unstable);
        assert_int_equal(lg.applying_ents_paused, tests[k].wpaused);
    }
}

static void test_applied_to(void **state)
{
    (void)state;
    const uint64_t max = 100, over = 5;
    const struct {
        rr_index_t index;
        uint64_t size;
        uint64_t wapplying_bytes;
        bool wpaused;
    } tests[] = {
        /* Apply some of the in-progress entries (applying = 5 below). */
        {4, over - 1, max + 1, true},
        {4, over, max, true},
        {4, over + 1, max - 1, false},
        /* Apply all of them. */
        {5, over - 1, max + 1, true},
        {5, over, max, true},
        {5, over + 1, max - 1, false},
        /* Apply all outstanding bytes. */
        {4, max + over, 0, false},
        /* More than outstanding: accounting does not underflow. */
        {4, max + over + 1, 0, false},
    };
    for (size_t k = 0; k < N(tests); k++) {
        reopen();
        committed_setup(max);
        rr_log_applied_to(&lg, 3, 0);
        rr_log_accept_applying(&lg, 5, max + over, false);
        rr_log_applied_to(&lg, tests[k].index, tests[k].size);
        assert_int_equal(lg.applied, tests[k].index);
        assert_int_equal(lg.applying, 5);
        assert_int_equal(lg.applying_ents_bytes, tests[k].wapplying_bytes);
        assert_int_equal(lg.applying_ents_paused, tests[k].wpaused);
    }
}

/* MaxCommittedSizePerReady end to end: batches are cut by size, the log pauses until the
 * application catches up, and the first entry always goes out. */
static void test_next_committed_ents_size_limit(void **state)
{
    (void)state;
    ents e = AT(1, 1, 1, 1, 1, 1);
    const uint64_t esz = rr_entry_size_bytes(&e.v[0]);
    open_log_with(2 * esz + esz / 2); /* room for two entries */
    rr_log_append(&lg, e.v, e.n);
    rr_log_commit_to(&lg, 5);

    rr_entry_vec out = {0};
    assert_int_equal(rr_log_next_committed_ents(&lg, true, &out), 0);
    assert_int_equal(out.n, 2);
    rr_log_accept_applying(&lg, out.v[out.n - 1].index, rr_entries_size_bytes(out.v, out.n), true);
    assert_true(lg.applying_ents_paused); /* cut short by the limit */
    assert_false(rr_log_has_next_committed_ents(&lg, true));
    rr_entry_vec_clear(&out);

    rr_log_applied_to(&lg, 1, esz); /* one entry's bytes come back */
    assert_false(lg.applying_ents_paused);
    assert_int_equal(rr_log_next_committed_ents(&lg, true, &out), 0);
    assert_int_equal(out.n, 1); /* room for one more only */
    assert_int_equal(out.v[0].index, 3);
    rr_log_accept_applying(&lg, 3, esz, true);
    rr_entry_vec_clear(&out);

    rr_log_applied_to(&lg, 3, 2 * esz);
    assert_int_equal(lg.applying_ents_bytes, 0);
    assert_int_equal(rr_log_next_committed_ents(&lg, true, &out), 0);
    assert_int_equal(out.n, 2);
    assert_int_equal(out.v[0].index, 4);
    rr_log_accept_applying(&lg, 5, 2 * esz, true);
    assert_false(lg.applying_ents_paused); /* all committed were handed out, under limit */
    rr_entry_vec_free(&out);

    /* A single entry larger than the whole limit still goes out, then pauses. */
    reopen();
    ents big = AT(1, 1);
    open_log_with(1);
    rr_log_append(&lg, big.v, big.n);
    rr_log_commit_to(&lg, 1);
    assert_int_equal(rr_log_next_committed_ents(&lg, true, &out), 0);
    assert_int_equal(out.n, 1);
    rr_log_accept_applying(&lg, 1, rr_entry_size_bytes(&out.v[0]), true);
    assert_true(lg.applying_ents_paused);
    rr_entry_vec_free(&out);
}

static void test_next_unstable_ents(void **state)
{
    (void)state;
    const struct {
        rr_index_t unstable;
        size_t wn;
    } tests[] = {{3, 0}, {1, 2}};
    for (size_t k = 0; k < N(tests); k++) {
        reopen();
        ents prev = AT(1, 1, 2);
        size_t stable = (size_t)tests[k].unstable - 1;
        rr_memstorage_append(ms, prev.v, stable);
        open_log();
        rr_log_append(&lg, prev.v + stable, prev.n - stable);

        const rr_entry *next;
        size_t n;
        rr_log_next_unstable_ents(&lg, &next, &n);
        assert_int_equal(n, tests[k].wn);
        assert_int_equal(rr_log_has_next_unstable_ents(&lg), n > 0);
        if (n > 0) {
            assert_int_equal(next[0].index, 1);
            rr_log_stable_to(&lg, id(next[n - 1].term, next[n - 1].index));
        }
        assert_int_equal(lg.unstable.offset, 3);
    }
}

static void test_commit_to(void **state)
{
    (void)state;
    const struct {
        rr_index_t commit, want;
    } tests[] = {{3, 3}, {1, 2}}; /* never decreases; beyond last asserts (etcd panics) */
    for (size_t k = 0; k < N(tests); k++) {
        reopen();
        open_log();
        ents prev = AT(1, 1, 2, 3);
        rr_log_append(&lg, prev.v, prev.n);
        lg.committed = 2;
        rr_log_commit_to(&lg, tests[k].commit);
        assert_int_equal(lg.committed, tests[k].want);
    }
}

static void test_maybe_commit(void **state)
{
    (void)state;
    open_log();
    ents e = AT(1, 1, 2, 2);
    rr_log_append(&lg, e.v, e.n);
    assert_false(rr_log_maybe_commit(&lg, id(1, 2))); /* term mismatch */
    assert_false(rr_log_maybe_commit(&lg, id(0, 3))); /* term 0 never commits */
    assert_false(rr_log_maybe_commit(&lg, id(2, 4))); /* beyond the log: unknown term */
    assert_true(rr_log_maybe_commit(&lg, id(2, 2)));
    assert_int_equal(lg.committed, 2);
    assert_false(rr_log_maybe_commit(&lg, id(2, 2))); /* not above committed */
    assert_false(rr_log_maybe_commit(&lg, id(1, 1)));
    assert_true(rr_log_maybe_commit(&lg, id(2, 3)));
    assert_int_equal(lg.committed, 3);
}

static void test_stable_to(void **state)
{
    (void)state;
    const struct {
        rr_index_t i;
        rr_term_t t;
        rr_index_t woffset;
    } tests[] = {
        {1, 1, 2},
        {2, 2, 3},
        {2, 1, 1}, /* bad term */
        {3, 1, 1}, /* bad index */
    };
    for (size_t k = 0; k < N(tests); k++) {
        reopen();
        open_log();
        ents e = AT(1, 1, 2);
        rr_log_append(&lg, e.v, e.n);
        rr_log_stable_to(&lg, id(tests[k].t, tests[k].i));
        assert_int_equal(lg.unstable.offset, tests[k].woffset);
    }
}

static void test_stable_to_with_snap(void **state)
{
    (void)state;
    const rr_index_t si = 5;
    const rr_term_t st = 2;
    const struct {
        rr_index_t i;
        rr_term_t t;
        ents e;
        rr_index_t woffset;
    } tests[] = {
        {si + 1, st, none, si + 1},           {si, st, none, si + 1},
        {si - 1, st, none, si + 1},           {si + 1, st + 1, none, si + 1},
        {si, st + 1, none, si + 1},           {si - 1, st + 1, none, si + 1},
        {si + 1, st, AT(si + 1, st), si + 2}, {si, st, AT(si + 1, st), si + 1},
        {si - 1, st, AT(si + 1, st), si + 1}, {si + 1, st + 1, AT(si + 1, st), si + 1},
        {si, st + 1, AT(si + 1, st), si + 1}, {si - 1, st + 1, AT(si + 1, st), si + 1},
    };
    for (size_t k = 0; k < N(tests); k++) {
        reopen();
        storage_snap(si, st);
        open_log();
        rr_log_append(&lg, tests[k].e.v, tests[k].e.n);
        rr_log_stable_to(&lg, id(tests[k].t, tests[k].i));
        assert_int_equal(lg.unstable.offset, tests[k].woffset);
    }
}

static void test_compaction(void **state)
{
    (void)state;
    const struct {
        rr_index_t compact[4];
        size_t n;
        int wrc[4];
        size_t wleft[4];
    } tests[] = {
        /* out of upper bound */
        {{1001}, 1, {RR_ERR_UNAVAILABLE}, {0}},
        {{300, 500, 800, 900}, 4, {0, 0, 0, 0}, {700, 500, 200, 100}},
        /* out of lower bound */
        {{300, 299}, 2, {0, RR_ERR_COMPACTED}, {700, 0}},
    };
    for (size_t k = 0; k < N(tests); k++) {
        reopen();
        rr_entry *all = term_range(1, 1001, true);
        assert_int_equal(rr_memstorage_append(ms, all, 1000), 0);
        free(all);
        open_log();
        assert_false(rr_log_maybe_commit(&lg, id(0, 1000))); /* a no-op, as in etcd */
        rr_log_applied_to(&lg, lg.committed, 0);
        for (size_t j = 0; j < tests[k].n; j++) {
            int rc = rr_memstorage_compact(ms, tests[k].compact[j]);
            assert_int_equal(rc, tests[k].wrc[j]);
            if (rc != 0)
                continue;
            rr_entry_vec out = {0};
            assert_int_equal(rr_log_entries(&lg, rr_log_first_index(&lg), RR_NO_LIMIT, &out), 0);
            assert_int_equal(out.n, tests[k].wleft[j]);
            rr_entry_vec_free(&out);
        }
    }
}

static void test_init_from_snapshot(void **state)
{
    (void)state;
    storage_snap(1000, 1000);
    open_log();
    rr_entry_vec out = {0};
    assert_int_equal(rr_log_entries(&lg, rr_log_first_index(&lg), RR_NO_LIMIT, &out), 0);
    assert_int_equal(out.n, 0);
    assert_int_equal(rr_log_first_index(&lg), 1001);
    assert_int_equal(lg.committed, 1000);
    assert_int_equal(lg.applied, 1000);
    assert_int_equal(lg.applying, 1000);
    assert_int_equal(lg.unstable.offset, 1001);
    assert_int_equal(lg.unstable.offset_in_progress, 1001);
    assert_int_equal(term_of(1000), 1000);
    assert_int_equal(rr_log_last_term(&lg), 1000);
}

static void test_out_of_bounds(void **state)
{
    (void)state;
    const rr_index_t offset = 100, num = 100, first = offset + 1;
    storage_snap(offset, 0);
    open_log();
    rr_entry *tail = term_range(offset + 1, offset + num + 1, false);
    rr_log_append(&lg, tail, num);
    free(tail);
    const struct {
        rr_index_t lo, hi;
        int rc;
    } tests[] = {
        {first - 2, first + 1, RR_ERR_COMPACTED},
        {first - 1, first + 1, RR_ERR_COMPACTED},
        {first, first, 0},
        {first + num / 2, first + num / 2, 0},
        {first + num - 1, first + num - 1, 0},
        {first + num, first + num, 0},
        /* etcd panics on these two */
        {first + num, first + num + 1, RR_ERR_UNAVAILABLE},
        {first + num + 1, first + num + 1, RR_ERR_UNAVAILABLE},
    };
    for (size_t k = 0; k < N(tests); k++) {
        rr_entry_vec out = {0};
        assert_int_equal(rr_log_slice(&lg, tests[k].lo, tests[k].hi, RR_NO_LIMIT, &out),
                         tests[k].rc);
        assert_int_equal(out.n, 0);
        rr_entry_vec_free(&out);
    }
}

static void test_term(void **state)
{
    (void)state;
    const rr_index_t offset = 100, num = 100;
    storage_snap(offset, 1);
    open_log();
    rr_entry *tail = term_range(1, num, true);
    for (rr_index_t i = 0; i < num - 1; i++)
        tail[i].index = offset + 1 + i;
    rr_log_append(&lg, tail, num - 1);
    free(tail);
    const struct {
        rr_index_t i;
        rr_term_t t;
        int rc;
    } tests[] = {
        {offset - 1, 0, RR_ERR_COMPACTED},     {offset, 1, 0},
        {offset + num / 2, num / 2, 0},        {offset + num - 1, num - 1, 0},
        {offset + num, 0, RR_ERR_UNAVAILABLE},
    };
    for (size_t k = 0; k < N(tests); k++) {
        rr_term_t t = 77;
        assert_int_equal(rr_log_term(&lg, tests[k].i, &t), tests[k].rc);
        assert_int_equal(t, tests[k].t);
        assert_int_equal(rr_log_term_or_zero(&lg, tests[k].i), tests[k].t);
    }
}

static void test_term_with_unstable_snapshot(void **state)
{
    (void)state;
    const rr_index_t ssi = 100, usi = ssi + 5;
    storage_snap(ssi, 1);
    open_log();
    rr_snapshot s = {.meta = {.index = usi, .term = 1}};
    rr_log_restore(&lg, &s);
    const struct {
        rr_index_t i;
        rr_term_t t;
        int rc;
    } tests[] = {
        /* cannot get term from storage */
        {ssi, 0, RR_ERR_COMPACTED},
        /* nor from the gap between storage and the unstable snapshot */
        {ssi + 1, 0, RR_ERR_COMPACTED},
        {usi - 1, 0, RR_ERR_COMPACTED},
        /* the unstable snapshot's index */
        {usi, 1, 0},
        /* nothing beyond it */
        {usi + 1, 0, RR_ERR_UNAVAILABLE},
    };
    for (size_t k = 0; k < N(tests); k++) {
        rr_term_t t = 77;
        assert_int_equal(rr_log_term(&lg, tests[k].i, &t), tests[k].rc);
        assert_int_equal(t, tests[k].t);
    }
}

static void test_slice(void **state)
{
    (void)state;
    const rr_index_t offset = 100, num = 100, last = offset + num, half = offset + num / 2;
    const rr_entry halfe = {.index = half, .term = half};
    const uint64_t hs = rr_entry_size_bytes(&halfe);

    storage_snap(offset, 0);
    rr_entry *lower = term_range(offset + 1, half, false);
    assert_int_equal(rr_memstorage_append(ms, lower, (size_t)(half - offset - 1)), 0);
    free(lower);
    open_log();
    rr_entry *upper = term_range(half, last, false);
    rr_log_append(&lg, upper, (size_t)(last - half));
    free(upper);

    const struct {
        rr_index_t lo, hi;
        uint64_t lim;
        int rc;
        rr_index_t wfrom, wto; /* expected entries [wfrom, wto) */
    } tests[] = {
        /* compacted */
        {offset - 1, offset + 1, RR_NO_LIMIT, RR_ERR_COMPACTED, 0, 0},
        {offset, offset + 1, RR_NO_LIMIT, RR_ERR_COMPACTED, 0, 0},
        /* hi out of bounds (etcd panics) */
        {last, last + 1, RR_NO_LIMIT, RR_ERR_UNAVAILABLE, 0, 0},
        /* no limit */
        {offset + 1, offset + 1, RR_NO_LIMIT, 0, 0, 0},
        {offset + 1, half - 1, RR_NO_LIMIT, 0, offset + 1, half - 1},
        {offset + 1, half, RR_NO_LIMIT, 0, offset + 1, half},
        {offset + 1, half + 1, RR_NO_LIMIT, 0, offset + 1, half + 1},
        {offset + 1, last, RR_NO_LIMIT, 0, offset + 1, last},
        {half - 1, half, RR_NO_LIMIT, 0, half - 1, half},
        {half - 1, half + 1, RR_NO_LIMIT, 0, half - 1, half + 1},
        {half - 1, last, RR_NO_LIMIT, 0, half - 1, last},
        {half, half + 1, RR_NO_LIMIT, 0, half, half + 1},
        {half, last, RR_NO_LIMIT, 0, half, last},
        {last - 1, last, RR_NO_LIMIT, 0, last - 1, last},
        /* at least one entry is always returned */
        {offset + 1, last, 0, 0, offset + 1, offset + 2},
        {half - 1, half + 1, 0, 0, half - 1, half},
        {half, last, 0, 0, half, half + 1},
        {half + 1, last, 0, 0, half + 1, half + 2},
        /* low limit */
        {offset + 1, last, hs - 1, 0, offset + 1, offset + 2},
        {half - 1, half + 1, hs - 1, 0, half - 1, half},
        {half, last, hs - 1, 0, half, half + 1},
        /* just enough for one */
        {offset + 1, last, hs, 0, offset + 1, offset + 2},
        {half - 1, half + 1, hs, 0, half - 1, half},
        {half, last, hs, 0, half, half + 1},
        /* not enough for two */
        {offset + 1, last, hs + 1, 0, offset + 1, offset + 2},
        {half - 1, half + 1, hs + 1, 0, half - 1, half},
        {half, last, hs + 1, 0, half, half + 1},
        /* enough for two */
        {offset + 1, last, hs * 2, 0, offset + 1, offset + 3},
        {half - 2, half + 1, hs * 2, 0, half - 2, half},
        {half - 1, half + 1, hs * 2, 0, half - 1, half + 1},
        {half, last, hs * 2, 0, half, half + 2},
        /* not enough for three */
        {half - 2, half + 1, hs * 3 - 1, 0, half - 2, half},
        /* enough for three */
        {half - 1, half + 2, hs * 3, 0, half - 1, half + 2},
    };
    for (size_t k = 0; k < N(tests); k++) {
        rr_entry_vec out = {0};
        assert_int_equal(rr_log_slice(&lg, tests[k].lo, tests[k].hi, tests[k].lim, &out),
                         tests[k].rc);
        assert_int_equal(out.n, tests[k].wto - tests[k].wfrom);
        for (size_t i = 0; i < out.n; i++) {
            assert_int_equal(out.v[i].index, tests[k].wfrom + i);
            assert_int_equal(out.v[i].term, tests[k].wfrom + i);
        }
        rr_entry_vec_free(&out);
    }

    /* out keeps what it had; on error it is left unchanged. */
    rr_entry_vec out = {0};
    assert_int_equal(rr_log_slice(&lg, half - 1, half + 1, RR_NO_LIMIT, &out), 0);
    assert_int_equal(rr_log_slice(&lg, offset, half, RR_NO_LIMIT, &out), RR_ERR_COMPACTED);
    assert_int_equal(rr_log_slice(&lg, half + 1, half + 2, 0, &out), 0);
    assert_int_equal(out.n, 3);
    assert_int_equal(out.v[2].index, half + 1);
    rr_entry_vec_free(&out);
    assert_int_equal(rr_log_entries(&lg, last, RR_NO_LIMIT, &out), 0); /* past last: none */
    assert_int_equal(out.n, 0);
}

/* Slices that straddle storage and unstable carry one reference per entry handed out, and
 * the limit is applied across the seam as etcd's limitSize over the concatenation. */
static void test_slice_refs_across_storage_and_unstable(void **state)
{
    (void)state;
    storage_append(AT(1, 1, 1, 1));
    open_log();
    ents tail = AT(4, 2, 2, 2);
    rr_log_append(&lg, tail.v, tail.n);
    assert_int_equal(payload.b.refs, 1 + 3 + 3);
    const uint64_t esz = rr_entry_size_bytes(&tail.v[0]);

    rr_entry_vec out = {0};
    assert_int_equal(rr_log_slice(&lg, 2, 7, RR_NO_LIMIT, &out), 0);
    assert_int_equal(out.n, 5);
    assert_int_equal(payload.b.refs, 1 + 6 + 5);
    assert_int_equal(out.v[1].term, 1);
    assert_int_equal(out.v[2].term, 2);
    rr_entry_vec_clear(&out);
    assert_int_equal(payload.b.refs, 1 + 6);

    /* Limits landing just before, on and after the seam. */
    for (uint64_t k = 1; k <= 5; k++) {
        assert_int_equal(rr_log_slice(&lg, 2, 7, k * esz, &out), 0);
        assert_int_equal(out.n, k);
        rr_entry_vec_clear(&out);
        assert_int_equal(rr_log_slice(&lg, 2, 7, k * esz + esz - 1, &out), 0);
        assert_int_equal(out.n, k);
        rr_entry_vec_clear(&out);
    }
    rr_entry_vec_free(&out);
}

/* =======================================================================================
 * The unstable tail (etcd's log_unstable_test.go, through the log's API)
 * ===================================================================================== */

/* Storage holds entries 1..offset-1 (term 1); the unstable tail holds e (starting at
 * offset) with offset_in_progress = oip; snap_term != 0 adds an unstable snapshot at
 * offset - 1. */
static void unstable_setup(rr_index_t offset, ents e, rr_index_t oip, rr_term_t snap_term)
{
    reopen();
    if (offset > 1) {
        rr_entry *pre = term_range(1, offset, true);
        for (rr_index_t i = 0; i + 1 < offset; i++)
            pre[i].term = 1;
        assert_int_equal(rr_memstorage_append(ms, pre, (size_t)(offset - 1)), 0);
        free(pre);
    }
    open_log();
    if (e.n > 0)
        assert_int_equal(e.v[0].index, offset);
    rr_log_append(&lg, e.v, e.n);
    assert_int_equal(lg.unstable.offset, offset);
    lg.unstable.offset_in_progress = oip;
    if (snap_term != 0) {
        lg.unstable.snapshot = calloc(1, sizeof(rr_snapshot));
        lg.unstable.snapshot->meta.index = offset - 1;
        lg.unstable.snapshot->meta.term = snap_term;
    }
    n_events = 0;
}

static void test_unstable_first_last_term(void **state)
{
    (void)state;
    /* No snapshot: first index from storage, last from the tail. */
    unstable_setup(5, AT(5, 1), 5, 0);
    assert_int_equal(rr_log_first_index(&lg), 1);
    assert_int_equal(rr_log_last_index(&lg), 5);
    assert_int_equal(term_of(5), 1);
    /* A snapshot: first index after it; its term answers at its index. */
    unstable_setup(5, AT(5, 1), 5, 1);
    assert_int_equal(rr_log_first_index(&lg), 5);
    assert_int_equal(rr_log_last_index(&lg), 5);
    assert_int_equal(term_of(4), 1);
    assert_int_equal(term_of(5), 1);
    rr_term_t t;
    assert_int_equal(rr_log_term(&lg, 3, &t), RR_ERR_COMPACTED);
    assert_int_equal(rr_log_term(&lg, 6, &t), RR_ERR_UNAVAILABLE);
    /* Only a snapshot: the last index is the snapshot's. */
    unstable_setup(5, none, 5, 1);
    assert_int_equal(rr_log_first_index(&lg), 5);
    assert_int_equal(rr_log_last_index(&lg), 4);
    assert_int_equal(term_of(4), 1);
    assert_int_equal(rr_log_term(&lg, 5, &t), RR_ERR_UNAVAILABLE);
}

static void test_unstable_restore(void **state)
{
    (void)state;
    unstable_setup(5, AT(5, 1), 6, 1);
    lg.unstable.snapshot_in_progress = true;
    lg.committed = 3;
    lg.applying = 2;
    lg.applied = 1;
    tbuf data = {.b = {.refs = 1, .release = tbuf_release}};
    rr_snapshot s = {.meta = {.index = 6, .term = 2}, .buf = &data.b, .data = data.bytes};
    rr_log_restore(&lg, &s);
    assert_int_equal(lg.unstable.offset, 7);
    assert_int_equal(lg.unstable.offset_in_progress, 7);
    assert_int_equal(lg.unstable.entries.n, 0);
    assert_non_null(lg.unstable.snapshot);
    assert_int_equal(lg.unstable.snapshot->meta.index, 6);
    assert_int_equal(lg.unstable.snapshot->meta.term, 2);
    assert_false(lg.unstable.snapshot_in_progress);
    assert_int_equal(lg.committed, 6);
    assert_int_equal(lg.applied, 1); /* applied follows only when the snapshot is applied */
    assert_int_equal(data.b.refs, 2);
    assert_int_equal(payload.b.refs, 1 + 4); /* the tail's reference is gone */

    /* The event saw the log before the restore (etcd prints that state). */
    assert_true(has_event(RR_LOG_EVENT_RESTORE, 6, 2, 0));
    assert_int_equal(at_restore.committed, 3);
    assert_int_equal(at_restore.applied, 1);
    assert_int_equal(at_restore.applying, 2);
    assert_int_equal(at_restore.unstable.offset, 5);
    assert_int_equal(at_restore.unstable.offset_in_progress, 6);
    assert_int_equal(at_restore.unstable.entries.n, 1);

    /* The log's snapshot is the unstable one, with its own reference. */
    rr_snapshot got;
    assert_int_equal(rr_log_snapshot(&lg, &got), 0);
    assert_int_equal(got.meta.index, 6);
    assert_int_equal(data.b.refs, 3);
    rr_snapshot_clear(&got);

    /* Restoring again replaces (and releases) the pending snapshot. */
    rr_snapshot s2 = {.meta = {.index = 8, .term = 3}};
    rr_log_restore(&lg, &s2);
    assert_int_equal(data.b.refs, 1);
    /* Storage persisted it: the unstable snapshot goes away. */
    rr_log_stable_snap_to(&lg, 7); /* not ours: ignored */
    assert_non_null(lg.unstable.snapshot);
    rr_log_stable_snap_to(&lg, 8);
    assert_null(lg.unstable.snapshot);
    assert_false(rr_log_has_next_or_in_progress_snapshot(&lg));
}

static void test_unstable_next_entries(void **state)
{
    (void)state;
    const struct {
        rr_index_t oip;
        size_t wn;
        rr_index_t wfirst;
    } tests[] = {
        {5, 2, 5}, /* nothing in progress */
        {6, 1, 6}, /* partially in progress */
        {7, 0, 0}, /* everything in progress */
    };
    for (size_t k = 0; k < N(tests); k++) {
        unstable_setup(5, AT(5, 1, 1), tests[k].oip, 0);
        const rr_entry *next;
        size_t n;
        rr_log_next_unstable_ents(&lg, &next, &n);
        assert_int_equal(n, tests[k].wn);
        assert_int_equal(rr_log_has_next_unstable_ents(&lg), n > 0);
        assert_true(rr_log_has_next_or_in_progress_unstable_ents(&lg));
        if (n > 0)
            assert_int_equal(next[0].index, tests[k].wfirst);
        else
            assert_null(next);
    }
}

static void test_unstable_next_snapshot(void **state)
{
    (void)state;
    unstable_setup(5, none, 5, 0);
    assert_null(rr_log_next_unstable_snapshot(&lg));
    assert_false(rr_log_has_next_unstable_snapshot(&lg));
    assert_false(rr_log_has_next_or_in_progress_snapshot(&lg));
    unstable_setup(5, none, 5, 1);
    assert_non_null(rr_log_next_unstable_snapshot(&lg));
    assert_int_equal(rr_log_next_unstable_snapshot(&lg)->meta.index, 4);
    assert_true(rr_log_has_next_unstable_snapshot(&lg));
    lg.unstable.snapshot_in_progress = true;
    assert_null(rr_log_next_unstable_snapshot(&lg));
    assert_false(rr_log_has_next_unstable_snapshot(&lg));
    assert_true(rr_log_has_next_or_in_progress_snapshot(&lg));
}

static void test_unstable_accept_in_progress(void **state)
{
    (void)state;
    const struct {
        ents e;
        rr_term_t snap; /* nonzero: an unstable snapshot at 4 */
        rr_index_t oip;
        bool snap_in_progress;
        rr_index_t woip;
        bool wsnap_in_progress;
    } tests[] = {
        {none, 0, 5, false, 5, false},
        {AT(5, 1), 0, 5, false, 6, false},
        {AT(5, 1, 1), 0, 5, false, 7, false},
        {AT(5, 1, 1), 0, 6, false, 7, false},
        {AT(5, 1, 1), 0, 7, false, 7, false},
        /* with a snapshot */
        {none, 1, 5, false, 5, true},
        {AT(5, 1), 1, 5, false, 6, true},
        {AT(5, 1, 1), 1, 5, false, 7, true},
        {AT(5, 1, 1), 1, 6, false, 7, true},
        {AT(5, 1, 1), 1, 7, false, 7, true},
        {none, 1, 5, true, 5, true},
        {AT(5, 1), 1, 5, true, 6, true},
        {AT(5, 1, 1), 1, 5, true, 7, true},
        {AT(5, 1, 1), 1, 6, true, 7, true},
        {AT(5, 1, 1), 1, 7, true, 7, true},
    };
    for (size_t k = 0; k < N(tests); k++) {
        unstable_setup(5, tests[k].e, tests[k].oip, tests[k].snap);
        lg.unstable.snapshot_in_progress = tests[k].snap_in_progress;
        rr_log_accept_unstable(&lg);
        assert_int_equal(lg.unstable.offset_in_progress, tests[k].woip);
        assert_int_equal(lg.unstable.snapshot_in_progress, tests[k].wsnap_in_progress);
        assert_false(rr_log_has_next_unstable_ents(&lg));
        assert_false(rr_log_has_next_unstable_snapshot(&lg));
    }
}

static void test_unstable_stable_to(void **state)
{
    (void)state;
    const struct {
        rr_index_t offset;
        ents e;
        rr_index_t oip;
        rr_term_t snap; /* nonzero: an unstable snapshot at offset - 1 */
        rr_index_t i;
        rr_term_t t;
        rr_index_t woffset, woip;
        size_t wlen;
        uint8_t wevent; /* 0xff: none */
    } tests[] = {
        {1, none, 1, 0, 5, 1, 1, 1, 0, RR_LOG_EVENT_STABLE_MISSING},
        {5, AT(5, 1), 6, 0, 5, 1, 6, 6, 0, 0xff}, /* stable to the first entry */
        {5, AT(5, 1, 1), 6, 0, 5, 1, 6, 6, 1, 0xff},
        {5, AT(5, 1, 1), 7, 0, 5, 1, 6, 7, 1, 0xff}, /* in progress ahead */
        {6, AT(6, 2), 7, 0, 6, 1, 6, 7, 1, RR_LOG_EVENT_STABLE_MISMATCH},
        {5, AT(5, 1), 6, 0, 4, 1, 5, 6, 1, RR_LOG_EVENT_STABLE_MISSING}, /* old entry */
        {5, AT(5, 1), 6, 0, 4, 2, 5, 6, 1, RR_LOG_EVENT_STABLE_MISSING},
        /* with a snapshot */
        {5, AT(5, 1), 6, 1, 5, 1, 6, 6, 0, 0xff},
        {5, AT(5, 1, 1), 6, 1, 5, 1, 6, 6, 1, 0xff},
        {5, AT(5, 1, 1), 7, 1, 5, 1, 6, 7, 1, 0xff},
        {6, AT(6, 2), 7, 1, 6, 1, 6, 7, 1, RR_LOG_EVENT_STABLE_MISMATCH},
        {5, AT(5, 1), 6, 1, 4, 1, 5, 6, 1, RR_LOG_EVENT_STABLE_SNAPSHOT},
        {5, AT(5, 2), 6, 2, 4, 1, 5, 6, 1, RR_LOG_EVENT_STABLE_SNAPSHOT},
    };
    for (size_t k = 0; k < N(tests); k++) {
        unstable_setup(tests[k].offset, tests[k].e, tests[k].oip, tests[k].snap);
        rr_log_stable_to(&lg, id(tests[k].t, tests[k].i));
        assert_int_equal(lg.unstable.offset, tests[k].woffset);
        assert_int_equal(lg.unstable.offset_in_progress, tests[k].woip);
        assert_int_equal(lg.unstable.entries.n, tests[k].wlen);
        if (tests[k].wevent == 0xff) {
            assert_int_equal(n_events, 0);
        } else {
            assert_int_equal(n_events, 1);
            assert_int_equal(events[0].type, tests[k].wevent);
            assert_int_equal(events[0].index, tests[k].i);
            assert_int_equal(events[0].term, tests[k].t);
        }
    }
    /* The mismatch event carries the term the log holds. */
    unstable_setup(6, AT(6, 2), 7, 0);
    rr_log_stable_to(&lg, id(1, 6));
    assert_true(has_event(RR_LOG_EVENT_STABLE_MISMATCH, 6, 1, 2));
}

static void test_unstable_truncate_and_append(void **state)
{
    (void)state;
    const struct {
        ents e;
        rr_index_t oip;
        ents add;
        rr_index_t woffset, woip;
        ents want;
        uint8_t wevent; /* 0xff: none */
    } tests[] = {
        /* append to the end */
        {AT(5, 1), 5, AT(6, 1, 1), 5, 5, AT(5, 1, 1, 1), 0xff},
        {AT(5, 1), 6, AT(6, 1, 1), 5, 6, AT(5, 1, 1, 1), 0xff},
        /* replace the unstable entries */
        {AT(5, 1), 5, AT(5, 2, 2), 5, 5, AT(5, 2, 2), RR_LOG_EVENT_UNSTABLE_REPLACE},
        {AT(5, 1), 5, AT(4, 2, 2, 2), 4, 4, AT(4, 2, 2, 2), RR_LOG_EVENT_UNSTABLE_REPLACE},
        {AT(5, 1), 6, AT(5, 2, 2), 5, 5, AT(5, 2, 2), RR_LOG_EVENT_UNSTABLE_REPLACE},
        /* truncate the existing entries and append */
        {AT(5, 1, 1, 1), 5, AT(6, 2), 5, 5, AT(5, 1, 2), RR_LOG_EVENT_UNSTABLE_TRUNCATE},
        {AT(5, 1, 1, 1), 5, AT(7, 2, 2), 5, 5, AT(5, 1, 1, 2, 2), RR_LOG_EVENT_UNSTABLE_TRUNCATE},
        {AT(5, 1, 1, 1), 6, AT(6, 2), 5, 6, AT(5, 1, 2), RR_LOG_EVENT_UNSTABLE_TRUNCATE},
        {AT(5, 1, 1, 1), 7, AT(6, 2), 5, 6, AT(5, 1, 2), RR_LOG_EVENT_UNSTABLE_TRUNCATE},
    };
    for (size_t k = 0; k < N(tests); k++) {
        unstable_setup(5, tests[k].e, tests[k].oip, 0);
        rr_log_append(&lg, tests[k].add.v, tests[k].add.n);
        assert_int_equal(lg.unstable.offset, tests[k].woffset);
        assert_int_equal(lg.unstable.offset_in_progress, tests[k].woip);
        const ents *w = &tests[k].want;
        assert_int_equal(lg.unstable.entries.n, w->n);
        for (size_t i = 0; i < w->n; i++) {
            assert_int_equal(lg.unstable.entries.v[i].index, w->v[i].index);
            assert_int_equal(lg.unstable.entries.v[i].term, w->v[i].term);
        }
        /* storage (4 entries) + the tail */
        assert_int_equal(payload.b.refs, 1 + 4 + w->n);
        if (tests[k].wevent == 0xff) {
            assert_int_equal(n_events, 0);
        } else {
            assert_int_equal(n_events, 1);
            assert_int_equal(events[0].type, tests[k].wevent);
            assert_int_equal(events[0].index, tests[k].add.v[0].index);
        }
        /* The log reads the new entries over storage's older ones. */
        for (size_t i = 0; i < w->n; i++)
            assert_int_equal(term_of(w->v[i].index), w->v[i].term);
        assert_int_equal(rr_log_last_index(&lg), w->v[w->n - 1].index);
    }
}

/* =======================================================================================
 * Async storage writes: the append ABA race (etcd's async_storage_writes_append_aba_race)
 * ===================================================================================== */

static void test_async_append_aba_race(void **state)
{
    (void)state;
    /* Node 1 holds entries 1..11 of term 1, all stable and committed. */
    rr_entry *pre = term_range(1, 12, true);
    for (int i = 0; i < 11; i++)
        pre[i].term = 1;
    assert_int_equal(rr_memstorage_append(ms, pre, 11), 0);
    free(pre);
    open_log();
    rr_log_commit_to(&lg, 11);

    /* Write A: 1/12 from the term-1 leader. */
    ents a = AT(12, 1);
    rr_index_t last = 0;
    assert_true(rr_log_maybe_append(&lg, id(1, 11), 11, a.v, a.n, &last));
    rr_log_accept_unstable(&lg);
    assert_false(rr_log_has_next_unstable_ents(&lg));

    /* Write B: the term-2 leader overwrites 12 while A is in flight. */
    n_events = 0;
    ents b = AT(12, 2);
    assert_true(rr_log_maybe_append(&lg, id(1, 11), 11, b.v, b.n, &last));
    assert_true(has_event(RR_LOG_EVENT_CONFLICT, 12, 2, 1));
    assert_true(has_event(RR_LOG_EVENT_UNSTABLE_REPLACE, 12, 0, 0));
    assert_true(rr_log_has_next_unstable_ents(&lg)); /* 2/12 must be written again */
    rr_log_accept_unstable(&lg);

    /* Write C: the term-3 leader overwrites 12 again. */
    n_events = 0;
    ents c = AT(12, 3);
    assert_true(rr_log_maybe_append(&lg, id(1, 11), 11, c.v, c.n, &last));
    assert_true(has_event(RR_LOG_EVENT_CONFLICT, 12, 3, 2));
    rr_log_accept_unstable(&lg);

    /* A completes: storage holds 1/12 now, but the log still answers 3. (raft drops A's
     * response for its old term; were it delivered, the term check below ignores it.) */
    storage_append(a);
    n_events = 0;
    rr_log_stable_to(&lg, id(1, 12));
    assert_true(has_event(RR_LOG_EVENT_STABLE_MISMATCH, 12, 1, 3));
    assert_int_equal(lg.unstable.offset, 12);
    assert_int_equal(term_of(12), 3);

    /* B completes: 2/12 in storage; its response (term 3 by then, as in the transcript)
     * names 2/12, which no longer matches: the entry stays unstable. */
    storage_append(b);
    n_events = 0;
    rr_log_stable_to(&lg, id(2, 12));
    assert_true(has_event(RR_LOG_EVENT_STABLE_MISMATCH, 12, 2, 3));
    assert_int_equal(lg.unstable.offset, 12);
    assert_int_equal(lg.unstable.entries.n, 1);
    assert_int_equal(term_of(12), 3);
    assert_false(rr_log_has_next_unstable_ents(&lg)); /* C still in flight: not re-sent */

    /* C completes: now the tail can go, and storage answers 3. */
    storage_append(c);
    rr_log_stable_to(&lg, id(3, 12));
    assert_int_equal(lg.unstable.offset, 13);
    assert_int_equal(lg.unstable.offset_in_progress, 13);
    assert_int_equal(lg.unstable.entries.n, 0);
    assert_int_equal(term_of(12), 3);
    assert_false(rr_log_has_next_or_in_progress_unstable_ents(&lg));
}

/* Entries written while a write is in flight are handed out once; a stable_to of the
 * earlier write keeps later in-progress marks. */
static void test_async_pipelined_writes(void **state)
{
    (void)state;
    open_log();
    ents e1 = AT(1, 1, 1);
    rr_log_append(&lg, e1.v, e1.n);
    rr_log_accept_unstable(&lg); /* write 1: [1, 2] */
    ents e2 = AT(3, 1);
    rr_log_append(&lg, e2.v, e2.n);
    const rr_entry *next;
    size_t n;
    rr_log_next_unstable_ents(&lg, &next, &n);
    assert_int_equal(n, 1);
    assert_int_equal(next[0].index, 3);
    rr_log_accept_unstable(&lg); /* write 2: [3] */
    assert_false(rr_log_has_next_unstable_ents(&lg));

    storage_append(e1);
    rr_log_stable_to(&lg, id(1, 2));
    assert_int_equal(lg.unstable.offset, 3);
    assert_int_equal(lg.unstable.offset_in_progress, 4);
    assert_false(rr_log_has_next_unstable_ents(&lg));
    /* Committed entries up to the stable index only, unless unstable ones are allowed. */
    rr_log_commit_to(&lg, 3);
    assert_int_equal(rr_log_max_appliable_index(&lg, false), 2);
    assert_int_equal(rr_log_max_appliable_index(&lg, true), 3);

    storage_append(e2);
    rr_log_stable_to(&lg, id(1, 3));
    assert_int_equal(lg.unstable.offset, 4);
    assert_int_equal(rr_log_max_appliable_index(&lg, false), 3);
}

static void test_sizes(void **state)
{
    (void)state;
    ents e = AT(1, 1, 1, 1);
    assert_int_equal(rr_entries_payload_bytes(e.v, e.n), 21);
    assert_int_equal(rr_entries_size_bytes(e.v, e.n), 3 * rr_entry_size_bytes(&e.v[0]));
    assert_int_equal(rr_entries_size_bytes(NULL, 0), 0);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_find_conflict),
        T(test_find_conflict_by_term),
        T(test_is_up_to_date),
        T(test_append),
        T(test_maybe_append),
        T(test_compaction_side_effects),
        T(test_has_next_and_next_committed_ents),
        T(test_accept_applying),
        T(test_applied_to),
        T(test_next_committed_ents_size_limit),
        T(test_next_unstable_ents),
        T(test_commit_to),
        T(test_maybe_commit),
        T(test_stable_to),
        T(test_stable_to_with_snap),
        T(test_compaction),
        T(test_init_from_snapshot),
        T(test_out_of_bounds),
        T(test_term),
        T(test_term_with_unstable_snapshot),
        T(test_slice),
        T(test_slice_refs_across_storage_and_unstable),
        T(test_unstable_first_last_term),
        T(test_unstable_restore),
        T(test_unstable_next_entries),
        T(test_unstable_next_snapshot),
        T(test_unstable_accept_in_progress),
        T(test_unstable_stable_to),
        T(test_unstable_truncate_and_append),
        T(test_async_append_aba_race),
        T(test_async_pipelined_writes),
        T(test_sizes),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
