/* test_tracker.c: in-flight windows, progress transitions and the progress tracker
 * (engine/core/src/tracker.c), after etcd's tracker tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tracker.h"

/* ---- inflights ----------------------------------------------------------------------- */

static void test_inflights_allocate_lazily_and_grow_to_size(void **state)
{
    (void)state;
    rr_inflights in;
    rr_inflights_init(&in, 10, 0);
    assert_null(in.buf);
    assert_false(rr_inflights_full(&in));

    uint32_t want_slots[] = {1, 2, 4, 4, 8, 8, 8, 8, 10, 10};
    for (uint32_t i = 0; i < 10; i++) {
        rr_inflights_add(&in, i, 100);
        assert_int_equal(in.buf_size, want_slots[i]);
    }
    assert_int_equal(in.count, 10);
    assert_int_equal(in.bytes, 1000);
    rr_inflights_destroy(&in);
    assert_null(in.buf);
}

static void test_inflights_full_by_count_and_wrap(void **state)
{
    (void)state;
    rr_inflights in;
    rr_inflights_init(&in, 10, 0);
    for (rr_index_t i = 0; i < 5; i++)
        rr_inflights_add(&in, i, 100);
    assert_int_equal(in.start, 0);
    assert_int_equal(in.count, 5);

    /* Frees 0..4 and restarts an empty window at slot 0. */
    rr_inflights_free_le(&in, 4);
    assert_int_equal(in.count, 0);
    assert_int_equal(in.start, 0);
    assert_int_equal(in.bytes, 0);

    for (rr_index_t i = 5; i < 15; i++)
        rr_inflights_add(&in, i, 100);
    assert_true(rr_inflights_full(&in));
    rr_inflights_free_le(&in, 9); /* frees 5..9 */
    assert_int_equal(in.count, 5);
    assert_int_equal(in.start, 5);
    assert_false(rr_inflights_full(&in));

    /* Wraps around: slots 0..4 hold 15..19. */
    for (rr_index_t i = 15; i < 20; i++)
        rr_inflights_add(&in, i, 100);
    assert_true(rr_inflights_full(&in));
    assert_int_equal(in.buf[0].index, 15);
    assert_int_equal(in.buf[4].index, 19);
    assert_int_equal(in.bytes, 1000);

    /* A stale acknowledgement (left of the window) frees nothing. */
    rr_inflights_free_le(&in, 3);
    assert_int_equal(in.count, 10);

    rr_inflights_free_le(&in, 17);
    assert_int_equal(in.count, 2);
    assert_int_equal(in.start, 3);
    assert_int_equal(in.bytes, 200);

    rr_inflights_free_le(&in, 100);
    assert_int_equal(in.count, 0);
    assert_int_equal(in.start, 0);
    rr_inflights_destroy(&in);
}

static void test_inflights_full_by_bytes(void **state)
{
    (void)state;
    rr_inflights in;
    rr_inflights_init(&in, 10, 1000);
    rr_inflights_add(&in, 1, 400);
    rr_inflights_add(&in, 2, 500);
    assert_false(rr_inflights_full(&in)); /* 900 < 1000 */
    rr_inflights_add(&in, 3, 100);
    assert_true(rr_inflights_full(&in)); /* 1000 >= 1000 */
    rr_inflights_free_le(&in, 1);
    assert_int_equal(in.bytes, 600);
    assert_false(rr_inflights_full(&in));
    /* One message may overshoot the budget; the window is then full. */
    rr_inflights_add(&in, 4, 5000);
    assert_true(rr_inflights_full(&in));
    assert_int_equal(in.count, 3);

    rr_inflights_reset(&in);
    assert_int_equal(in.count, 0);
    assert_int_equal(in.bytes, 0);
    assert_false(rr_inflights_full(&in));
    rr_inflights_destroy(&in);
}

/* ---- progress ------------------------------------------------------------------------ */

static rr_progress progress(uint8_t st, rr_index_t match, rr_index_t next)
{
    rr_progress pr;
    rr_progress_init(&pr, 1, next, 256, 0, false);
    pr.state = st;
    pr.match = match;
    return pr;
}

static void test_progress_init(void **state)
{
    (void)state;
    rr_progress pr;
    rr_progress_init(&pr, 7, 5, 4, 100, true);
    assert_int_equal(pr.id, 7);
    assert_int_equal(pr.match, 0);
    assert_int_equal(pr.next, 5);
    assert_int_equal(pr.state, RR_PROGRESS_PROBE);
    assert_true(pr.is_learner);
    assert_false(pr.recent_active);
    assert_int_equal(pr.inflights.size, 4);
    assert_int_equal(pr.inflights.max_bytes, 100);
    assert_string_equal(rr_progress_state_name(pr.state), "StateProbe");
    assert_string_equal(rr_progress_state_name(RR_PROGRESS_REPLICATE), "StateReplicate");
    assert_string_equal(rr_progress_state_name(RR_PROGRESS_SNAPSHOT), "StateSnapshot");
}

static void test_progress_become_probe(void **state)
{
    (void)state;
    /* From replicate: next = match + 1. */
    rr_progress pr = progress(RR_PROGRESS_REPLICATE, 1, 5);
    rr_progress_sent_entries(&pr, 2, 10);
    rr_progress_become_probe(&pr);
    assert_int_equal(pr.state, RR_PROGRESS_PROBE);
    assert_int_equal(pr.match, 1);
    assert_int_equal(pr.next, 2);
    assert_int_equal(pr.inflights.count, 0);
    assert_false(pr.msg_app_flow_paused);
    rr_progress_destroy(&pr);

    /* From snapshot: after the snapshot ... */
    pr = progress(RR_PROGRESS_REPLICATE, 1, 5);
    rr_progress_become_snapshot(&pr, 10);
    rr_progress_become_probe(&pr);
    assert_int_equal(pr.next, 11);
    assert_int_equal(pr.pending_snapshot, 0);

    /* ... or after match, whichever is larger. */
    pr = progress(RR_PROGRESS_REPLICATE, 1, 5);
    rr_progress_become_snapshot(&pr, 10);
    pr.match = 12;
    rr_progress_become_probe(&pr);
    assert_int_equal(pr.next, 13);
}

static void test_progress_become_replicate_and_snapshot(void **state)
{
    (void)state;
    rr_progress pr = progress(RR_PROGRESS_PROBE, 1, 5);
    pr.msg_app_flow_paused = true;
    rr_progress_become_replicate(&pr);
    assert_int_equal(pr.state, RR_PROGRESS_REPLICATE);
    assert_int_equal(pr.next, 2);
    assert_false(pr.msg_app_flow_paused);

    rr_progress_sent_commit(&pr, 1);
    rr_progress_become_snapshot(&pr, 10);
    assert_int_equal(pr.state, RR_PROGRESS_SNAPSHOT);
    assert_int_equal(pr.pending_snapshot, 10);
    assert_int_equal(pr.next, 11);
    assert_int_equal(pr.sent_commit, 10);
    assert_int_equal(pr.match, 1);
    assert_true(rr_progress_is_paused(&pr));
}

static void test_progress_sent_entries(void **state)
{
    (void)state;
    /* Replicate: next moves past the entries, the window fills, a full window pauses. */
    rr_progress pr;
    rr_progress_init(&pr, 1, 1, 2, 0, false);
    rr_progress_become_replicate(&pr);
    rr_progress_sent_entries(&pr, 3, 30);
    assert_int_equal(pr.next, 4);
    assert_int_equal(pr.inflights.count, 1);
    assert_false(rr_progress_is_paused(&pr));
    rr_progress_sent_entries(&pr, 0, 0); /* an empty MsgApp adds nothing in flight */
    assert_int_equal(pr.inflights.count, 1);
    rr_progress_sent_entries(&pr, 1, 10);
    assert_int_equal(pr.next, 5);
    assert_true(rr_progress_is_paused(&pr));

    /* An acknowledgement frees the window (the caller frees inflights) and unpauses. */
    assert_true(rr_progress_maybe_update(&pr, 3));
    rr_inflights_free_le(&pr.inflights, 3);
    assert_false(rr_progress_is_paused(&pr));
    assert_int_equal(pr.inflights.count, 1);
    rr_progress_destroy(&pr);

    /* Probe: only a non-empty MsgApp pauses; next does not move. */
    pr = progress(RR_PROGRESS_PROBE, 0, 5);
    rr_progress_sent_entries(&pr, 0, 0);
    assert_false(rr_progress_is_paused(&pr));
    rr_progress_sent_entries(&pr, 2, 20);
    assert_true(rr_progress_is_paused(&pr));
    assert_int_equal(pr.next, 5);
    assert_int_equal(pr.inflights.count, 0);
}

static void test_progress_is_paused(void **state)
{
    (void)state;
    struct {
        uint8_t st;
        bool paused;
        bool want;
    } cases[] = {
        {RR_PROGRESS_PROBE, false, false},     {RR_PROGRESS_PROBE, true, true},
        {RR_PROGRESS_REPLICATE, false, false}, {RR_PROGRESS_REPLICATE, true, true},
        {RR_PROGRESS_SNAPSHOT, false, true},   {RR_PROGRESS_SNAPSHOT, true, true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rr_progress pr = progress(cases[i].st, 0, 1);
        pr.msg_app_flow_paused = cases[i].paused;
        assert_int_equal(rr_progress_is_paused(&pr), cases[i].want);
    }
}

static void test_progress_maybe_update(void **state)
{
    (void)state;
    struct {
        rr_index_t update;
        bool ok;
        rr_index_t match, next;
    } cases[] = {
        {2, false, 3, 5}, /* below match: stale */
        {3, false, 3, 5}, /* equal to match: stale */
        {4, true, 4, 5},  /* between match and next */
        {5, true, 5, 6},  /* next moves past the acknowledged index */
        {7, true, 7, 8},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rr_progress pr = progress(RR_PROGRESS_PROBE, 3, 5);
        pr.msg_app_flow_paused = true;
        assert_int_equal(rr_progress_maybe_update(&pr, cases[i].update), cases[i].ok);
        assert_int_equal(pr.match, cases[i].match);
        assert_int_equal(pr.next, cases[i].next);
        assert_int_equal(pr.msg_app_flow_paused, !cases[i].ok);
    }
}

static void test_progress_maybe_decr_to(void **state)
{
    (void)state;
    struct {
        uint8_t st;
        rr_index_t match, next, rejected, hint;
        bool ok;
        rr_index_t want_next;
    } cases[] = {
        /* Replicate: a rejection at or below match is stale ... */
        {RR_PROGRESS_REPLICATE, 5, 10, 5, 5, false, 10},
        {RR_PROGRESS_REPLICATE, 5, 10, 4, 4, false, 10},
        /* ... otherwise next falls back to match + 1, whatever the hint. */
        {RR_PROGRESS_REPLICATE, 5, 10, 9, 9, true, 6},
        /* Probe: only a rejection of next - 1 counts. */
        {RR_PROGRESS_PROBE, 0, 10, 5, 5, false, 10},
        {RR_PROGRESS_PROBE, 0, 10, 9, 9, true, 9},
        {RR_PROGRESS_PROBE, 0, 2, 1, 1, true, 1},
        {RR_PROGRESS_PROBE, 0, 1, 0, 0, true, 1},
        /* The hint lowers next below the rejected index, never below match + 1. */
        {RR_PROGRESS_PROBE, 0, 10, 9, 2, true, 3},
        {RR_PROGRESS_PROBE, 0, 10, 9, 0, true, 1},
        {RR_PROGRESS_PROBE, 4, 10, 9, 2, true, 5},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rr_progress pr = progress(cases[i].st, cases[i].match, cases[i].next);
        pr.msg_app_flow_paused = true;
        bool ok = rr_progress_maybe_decr_to(&pr, cases[i].rejected, cases[i].hint);
        assert_int_equal(ok, cases[i].ok);
        assert_int_equal(pr.match, cases[i].match);
        assert_int_equal(pr.next, cases[i].want_next);
        if (ok && cases[i].st == RR_PROGRESS_PROBE)
            assert_false(pr.msg_app_flow_paused);
    }
}

static void test_progress_commit_bookkeeping(void **state)
{
    (void)state;
    rr_progress pr = progress(RR_PROGRESS_REPLICATE, 5, 10);
    assert_true(rr_progress_can_bump_commit(&pr, 3));
    rr_progress_sent_commit(&pr, 3);
    assert_false(rr_progress_can_bump_commit(&pr, 3)); /* already sent */
    assert_true(rr_progress_can_bump_commit(&pr, 7));
    rr_progress_sent_commit(&pr, 9);
    /* The follower holds at most next - 1 = 9: a larger commit would not help. */
    assert_false(rr_progress_can_bump_commit(&pr, 12));

    /* A rejection regresses what was sent: the follower did not apply it. */
    assert_true(rr_progress_maybe_decr_to(&pr, 9, 6));
    assert_int_equal(pr.next, 6);
    assert_int_equal(pr.sent_commit, 5);
    assert_false(rr_progress_can_bump_commit(&pr, 9)); /* 5 == next - 1 */

    /* So does falling back to probing. */
    rr_progress_sent_commit(&pr, 5);
    pr.match = 2;
    rr_progress_become_probe(&pr);
    assert_int_equal(pr.next, 3);
    assert_int_equal(pr.sent_commit, 2);
}

/* ---- tracker ------------------------------------------------------------------------- */

static void add_member(rr_tracker *t, rr_node_id_t id, bool voter, bool learner)
{
    rr_progress *pr = &t->progress[t->n_progress++];
    rr_progress_init(pr, id, 1, t->max_inflight, t->max_inflight_bytes, learner);
    if (voter)
        assert_true(rr_id_set_insert(&t->config.voters.incoming, id));
    if (learner)
        assert_true(rr_id_set_insert(&t->config.learners, id));
}

/* Voters 1 2 3, learner 4. */
static void three_voters_one_learner(rr_tracker *t)
{
    rr_tracker_init(t, 8, 0);
    add_member(t, 1, true, false);
    add_member(t, 2, true, false);
    add_member(t, 3, true, false);
    add_member(t, 4, false, true);
}

static void test_tracker_lookup_and_ids(void **state)
{
    (void)state;
    rr_tracker t;
    three_voters_one_learner(&t);
    assert_non_null(rr_tracker_get(&t, 2));
    assert_int_equal(rr_tracker_get(&t, 4)->id, 4);
    assert_null(rr_tracker_get(&t, 5));
    assert_false(rr_tracker_is_singleton(&t));

    rr_id_set v, l;
    rr_tracker_voter_ids(&t, &v);
    rr_tracker_learner_ids(&t, &l);
    assert_int_equal(v.n, 3);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.ids[0], 4);

    rr_conf_state cs;
    rr_tracker_conf_state(&t, &cs);
    assert_int_equal(cs.voters.n, 3);
    assert_int_equal(cs.voters_outgoing.n, 0);
    assert_int_equal(cs.learners.n, 1);
    assert_false(cs.auto_leave);
    rr_tracker_destroy(&t);

    rr_tracker s;
    rr_tracker_init(&s, 8, 0);
    add_member(&s, 9, true, false);
    assert_true(rr_tracker_is_singleton(&s));
    rr_tracker_destroy(&s);
}

static void test_tracker_committed_ignores_learners(void **state)
{
    (void)state;
    rr_tracker t;
    three_voters_one_learner(&t);
    rr_tracker_get(&t, 1)->match = 10;
    rr_tracker_get(&t, 2)->match = 7;
    rr_tracker_get(&t, 3)->match = 2;
    rr_tracker_get(&t, 4)->match = 100;
    assert_int_equal(rr_tracker_committed(&t), 7);

    /* Joint: both halves must have committed. */
    assert_true(rr_id_set_insert(&t.config.voters.outgoing, 3));
    assert_int_equal(rr_tracker_committed(&t), 2);
    rr_tracker_destroy(&t);
}

static void test_tracker_quorum_active(void **state)
{
    (void)state;
    rr_tracker t;
    three_voters_one_learner(&t);
    rr_tracker_get(&t, 1)->recent_active = true;
    rr_tracker_get(&t, 4)->recent_active = true; /* learners do not count */
    assert_false(rr_tracker_quorum_active(&t));
    rr_tracker_get(&t, 3)->recent_active = true;
    assert_true(rr_tracker_quorum_active(&t));
    rr_tracker_destroy(&t);
}

static void test_tracker_votes(void **state)
{
    (void)state;
    rr_tracker t;
    three_voters_one_learner(&t);
    uint32_t granted, rejected;
    assert_int_equal(rr_tracker_tally_votes(&t, &granted, &rejected), RR_VOTE_PENDING);

    rr_tracker_record_vote(&t, 1, true);
    rr_tracker_record_vote(&t, 1, false); /* only the first answer counts */
    rr_tracker_record_vote(&t, 4, true);  /* a learner's vote is not counted */
    rr_tracker_record_vote(&t, 9, true);  /* nor is a stranger's */
    assert_int_equal(rr_tracker_tally_votes(&t, &granted, &rejected), RR_VOTE_PENDING);
    assert_int_equal(granted, 1);
    assert_int_equal(rejected, 0);

    rr_tracker_record_vote(&t, 2, false);
    assert_int_equal(rr_tracker_tally_votes(&t, &granted, &rejected), RR_VOTE_PENDING);
    assert_int_equal(granted, 1);
    assert_int_equal(rejected, 1);

    rr_tracker_record_vote(&t, 3, true);
    assert_int_equal(rr_tracker_tally_votes(&t, &granted, &rejected), RR_VOTE_WON);
    assert_int_equal(granted, 2);

    rr_tracker_reset_votes(&t);
    rr_tracker_record_vote(&t, 2, false);
    rr_tracker_record_vote(&t, 3, false);
    assert_int_equal(rr_tracker_tally_votes(&t, &granted, &rejected), RR_VOTE_LOST);
    assert_int_equal(granted, 0);
    assert_int_equal(rejected, 2);
    rr_tracker_destroy(&t);
}

static void test_tracker_install(void **state)
{
    (void)state;
    rr_tracker t;
    three_voters_one_learner(&t);
    rr_progress *p2 = rr_tracker_get(&t, 2);
    rr_progress_become_replicate(p2);
    rr_progress_sent_entries(p2, 1, 10); /* allocates 2's window */
    p2->match = 4;

    /* New configuration: voters 2 3 5, learner 1; 4 leaves. */
    rr_tracker_change c = {0};
    c.config.voters.incoming = (rr_id_set){.n = 3, .ids = {2, 3, 5}};
    c.config.learners = (rr_id_set){.n = 1, .ids = {1}};
    c.progress[0] = *rr_tracker_get(&t, 1);
    c.progress[0].is_learner = true;
    c.progress[1] = *rr_tracker_get(&t, 2);
    c.progress[1].match = 0; /* a stale copy: the live progress must win */
    c.progress[2] = *rr_tracker_get(&t, 3);
    rr_progress_init(&c.progress[3], 5, 7, 8, 0, false);
    c.n_progress = 4;

    rr_tracker_install(&t, &c);
    assert_int_equal(t.n_progress, 4);
    assert_null(rr_tracker_get(&t, 4));
    assert_true(rr_tracker_get(&t, 1)->is_learner);
    assert_int_equal(rr_tracker_get(&t, 2)->match, 4);
    assert_int_equal(rr_tracker_get(&t, 2)->inflights.count, 1);
    assert_int_equal(rr_tracker_get(&t, 5)->next, 7);
    assert_int_equal(t.config.voters.incoming.n, 3);
    assert_int_equal(t.progress[3].id, 5);
    rr_tracker_destroy(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inflights_allocate_lazily_and_grow_to_size),
        cmocka_unit_test(test_inflights_full_by_count_and_wrap),
        cmocka_unit_test(test_inflights_full_by_bytes),
        cmocka_unit_test(test_progress_init),
        cmocka_unit_test(test_progress_become_probe),
        cmocka_unit_test(test_progress_become_replicate_and_snapshot),
        cmocka_unit_test(test_progress_sent_entries),
        cmocka_unit_test(test_progress_is_paused),
        cmocka_unit_test(test_progress_maybe_update),
        cmocka_unit_test(test_progress_maybe_decr_to),
        cmocka_unit_test(test_progress_commit_bookkeeping),
        cmocka_unit_test(test_tracker_lookup_and_ids),
        cmocka_unit_test(test_tracker_committed_ignores_learners),
        cmocka_unit_test(test_tracker_quorum_active),
        cmocka_unit_test(test_tracker_votes),
        cmocka_unit_test(test_tracker_install),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
