/* test_confchange.c: configuration changes (engine/core/src/confchange.c): errors, new
 * member progress, restore, the conf change predicates, and randomized safety properties
 * (a failing seed is printed and replays the case). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "confchange.h"

#define SEEDS 2000

static uint64_t rng_next(uint64_t *s)
{
    /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint32_t rng_below(uint64_t *s, uint32_t n)
{
    return (uint32_t)(rng_next(s) % n);
}

static rr_conf_change_single cc(uint8_t type, rr_node_id_t id)
{
    return (rr_conf_change_single){.type = type, .node_id = id};
}

/* Parses "v1 l2 r3 u4" (the transcripts' notation). */
static uint32_t parse(const char *s, rr_conf_change_single *out)
{
    uint32_t n = 0;
    while (*s != '\0') {
        while (*s == ' ')
            s++;
        char kind = *s++;
        rr_node_id_t id = 0;
        while (*s >= '0' && *s <= '9')
            id = id * 10 + (rr_node_id_t)(*s++ - '0');
        uint8_t type = kind == 'v'   ? RR_CONF_ADD_NODE
                       : kind == 'l' ? RR_CONF_ADD_LEARNER_NODE
                       : kind == 'r' ? RR_CONF_REMOVE_NODE
                                     : RR_CONF_UPDATE_NODE;
        out[n++] = cc(type, id);
    }
    return n;
}

static const char *simple(rr_tracker *t, rr_index_t last, const char *changes)
{
    rr_conf_change_single ccs[64];
    uint32_t n = parse(changes, ccs);
    rr_tracker_change c;
    const char *err = rr_confchange_simple(t, last, ccs, n, &c);
    if (err == NULL)
        rr_tracker_install(t, &c);
    return err;
}

static const char *enter_joint(rr_tracker *t, rr_index_t last, bool auto_leave, const char *changes)
{
    rr_conf_change_single ccs[64];
    uint32_t n = parse(changes, ccs);
    rr_tracker_change c;
    const char *err = rr_confchange_enter_joint(t, last, auto_leave, ccs, n, &c);
    if (err == NULL)
        rr_tracker_install(t, &c);
    return err;
}

static const char *leave_joint(rr_tracker *t)
{
    rr_tracker_change c;
    const char *err = rr_confchange_leave_joint(t, 0, &c);
    if (err == NULL)
        rr_tracker_install(t, &c);
    return err;
}

static bool id_sets_equal(const rr_id_set *a, const rr_id_set *b)
{
    return a->n == b->n && memcmp(a->ids, b->ids, a->n * sizeof(a->ids[0])) == 0;
}

/* The configuration and the progress map agree; NULL or what is wrong. */
static const char *invariant_violation(const rr_tracker *t)
{
    const rr_tracker_config *cfg = &t->config;
    for (uint32_t i = 0; i < t->n_progress; i++) {
        const rr_progress *pr = &t->progress[i];
        if (i > 0 && t->progress[i - 1].id >= pr->id)
            return "progress not sorted";
        bool in = rr_id_set_contains(&cfg->voters.incoming, pr->id);
        bool out = rr_id_set_contains(&cfg->voters.outgoing, pr->id);
        bool lrn = rr_id_set_contains(&cfg->learners, pr->id);
        bool next = rr_id_set_contains(&cfg->learners_next, pr->id);
        if (!in && !out && !lrn)
            return "tracked node in no role";
        if (lrn && (in || out))
            return "learner is also a voter";
        if (pr->is_learner != lrn)
            return "is_learner disagrees with learners";
        if (next && !out)
            return "learners_next not an outgoing voter";
        if (next && in)
            return "learners_next also an incoming voter";
    }
    const rr_id_set *sets[] = {&cfg->voters.incoming, &cfg->voters.outgoing, &cfg->learners,
                               &cfg->learners_next};
    for (size_t s = 0; s < 4; s++) {
        for (uint32_t i = 0; i < sets[s]->n; i++) {
            if (rr_tracker_get_const(t, sets[s]->ids[i]) == NULL)
                return "member without progress";
        }
    }
    if (cfg->voters.outgoing.n == 0 && (cfg->learners_next.n > 0 || cfg->auto_leave))
        return "joint-only state in a simple configuration";
    return NULL;
}

static uint32_t random_changes(uint64_t *rng, rr_conf_change_single *ccs, uint32_t max)
{
    uint32_t n = 1 + rng_below(rng, max);
    for (uint32_t i = 0; i < n; i++)
        ccs[i] = cc((uint8_t)rng_below(rng, 4), rng_below(rng, 9)); /* id 0 is ignored */
    return n;
}

/* A random reachable non-joint configuration: voters 1..k plus some learners. */
static void random_tracker(uint64_t *rng, rr_tracker *t)
{
    rr_tracker_init(t, 4, 0);
    uint32_t k = 1 + rng_below(rng, 5);
    for (uint32_t i = 0; i < k; i++) {
        rr_conf_change_single c = cc(RR_CONF_ADD_NODE, 1 + rng_below(rng, 8));
        rr_tracker_change out;
        assert_null(rr_confchange_simple(t, i, &c, 1, &out));
        rr_tracker_install(t, &out);
    }
    for (uint32_t i = rng_below(rng, 3); i > 0; i--) {
        rr_conf_change_single c = cc(RR_CONF_ADD_LEARNER_NODE, 1 + rng_below(rng, 8));
        rr_tracker_change out;
        if (rr_confchange_simple(t, k, &c, 1, &out) == NULL)
            rr_tracker_install(t, &out);
    }
}

/* ---- errors -------------------------------------------------------------------------- */

static void test_errors(void **state)
{
    (void)state;
    rr_tracker t;
    rr_tracker_init(&t, 4, 0);
    assert_string_equal(simple(&t, 0, "l1"), "removed all voters");
    assert_string_equal(enter_joint(&t, 0, false, "v1"), "can't make a zero-voter config joint");
    assert_string_equal(leave_joint(&t), "can't leave a non-joint config");
    assert_null(simple(&t, 0, "v1"));
    rr_conf_change_single bad = cc(7, 2);
    rr_tracker_change out;
    assert_string_equal(rr_confchange_simple(&t, 0, &bad, 1, &out), "unexpected conf type");
    assert_string_equal(simple(&t, 0, "v2 v3"),
                        "more than one voter changed without entering joint config");
    assert_string_equal(simple(&t, 0, "r1"), "removed all voters");
    assert_null(enter_joint(&t, 0, true, "v2 v3"));
    assert_string_equal(enter_joint(&t, 0, false, ""), "config is already joint");
    assert_string_equal(simple(&t, 0, "v4"), "can't apply simple config change in joint config");
    assert_null(leave_joint(&t));
    assert_int_equal(t.config.voters.incoming.n, 3);
    rr_tracker_destroy(&t);
}

static void test_nodes_max(void **state)
{
    (void)state;
    rr_tracker t;
    rr_tracker_init(&t, 4, 0);
    rr_conf_change_single c;
    rr_tracker_change out;
    for (rr_node_id_t id = 1; id <= RR_NODES_MAX; id++) {
        c = cc(RR_CONF_ADD_LEARNER_NODE, id);
        if (id == 1)
            c.type = RR_CONF_ADD_NODE;
        assert_null(rr_confchange_simple(&t, 1, &c, 1, &out));
        rr_tracker_install(&t, &out);
    }
    assert_int_equal(t.n_progress, RR_NODES_MAX);
    c = cc(RR_CONF_ADD_LEARNER_NODE, RR_NODES_MAX + 1);
    assert_string_equal(rr_confchange_simple(&t, 1, &c, 1, &out),
                        "configuration would exceed RR_NODES_MAX members");
    /* Promotions within the limit are fine. */
    c = cc(RR_CONF_ADD_NODE, 2);
    assert_null(rr_confchange_simple(&t, 1, &c, 1, &out));
    rr_tracker_destroy(&t);
}

/* ---- progress of members ------------------------------------------------------------- */

static void test_new_member_progress(void **state)
{
    (void)state;
    rr_tracker t;
    rr_tracker_init(&t, 4, 100);
    assert_null(simple(&t, 0, "v1"));
    const rr_progress *p1 = rr_tracker_get_const(&t, 1);
    assert_int_equal(p1->next, 1); /* max(last index, 1) */
    assert_int_equal(p1->match, 0);
    assert_true(p1->recent_active); /* so CheckQuorum does not fire before it answers */
    assert_int_equal(p1->state, RR_PROGRESS_PROBE);
    assert_int_equal(p1->inflights.size, 4);
    assert_int_equal(p1->inflights.max_bytes, 100);

    assert_null(simple(&t, 7, "l2"));
    assert_int_equal(rr_tracker_get_const(&t, 2)->next, 7);
    assert_true(rr_tracker_get_const(&t, 2)->is_learner);

    /* Promotion and demotion keep the progress. */
    rr_tracker_get(&t, 2)->match = 5;
    assert_null(simple(&t, 9, "v2"));
    assert_int_equal(rr_tracker_get_const(&t, 2)->match, 5);
    assert_false(rr_tracker_get_const(&t, 2)->is_learner);
    assert_null(enter_joint(&t, 9, false, "l2"));
    assert_false(rr_tracker_get_const(&t, 2)->is_learner); /* staged in learners_next */
    assert_int_equal(t.config.learners_next.n, 1);
    assert_null(leave_joint(&t));
    assert_true(rr_tracker_get_const(&t, 2)->is_learner);
    assert_int_equal(rr_tracker_get_const(&t, 2)->match, 5);
    assert_int_equal(rr_tracker_get_const(&t, 2)->next, 7);
    rr_tracker_destroy(&t);
}

/* ---- randomized safety properties ---------------------------------------------------- */

static void test_simple_changes_at_most_one_voter(void **state)
{
    (void)state;
    uint32_t accepted = 0;
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        uint64_t rng = seed;
        rr_tracker t;
        random_tracker(&rng, &t);
        rr_conf_change_single ccs[6];
        uint32_t n = random_changes(&rng, ccs, 6);
        rr_tracker_change out;
        const char *err = rr_confchange_simple(&t, 3, ccs, n, &out);
        rr_id_set before = t.config.voters.incoming;
        if (err == NULL) {
            accepted++;
            rr_tracker_install(&t, &out);
            uint32_t diff = 0;
            for (uint32_t i = 0; i < before.n; i++)
                diff += !rr_id_set_contains(&t.config.voters.incoming, before.ids[i]);
            for (uint32_t i = 0; i < t.config.voters.incoming.n; i++)
                diff += !rr_id_set_contains(&before, t.config.voters.incoming.ids[i]);
            if (diff > 1)
                fail_msg("seed %llu: simple change altered %u voters", (unsigned long long)seed,
                         diff);
            if (t.config.voters.incoming.n == 0 || t.config.voters.outgoing.n != 0)
                fail_msg("seed %llu: simple change left no voters or a joint config",
                         (unsigned long long)seed);
        } else if (!id_sets_equal(&before, &t.config.voters.incoming)) {
            fail_msg("seed %llu: a rejected change altered the tracker", (unsigned long long)seed);
        }
        const char *bad = invariant_violation(&t);
        if (bad != NULL)
            fail_msg("seed %llu: %s", (unsigned long long)seed, bad);
        rr_tracker_destroy(&t);
    }
    assert_true(accepted > SEEDS / 10); /* the property was exercised */
}

static void test_enter_then_leave_joint(void **state)
{
    (void)state;
    uint32_t accepted = 0;
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        uint64_t rng = seed;
        rr_tracker t;
        random_tracker(&rng, &t);
        rr_conf_change_single ccs[8];
        uint32_t n = random_changes(&rng, ccs, 8);
        rr_id_set old_voters = t.config.voters.incoming;
        rr_tracker_change out;
        if (rr_confchange_enter_joint(&t, 3, seed % 2 == 0, ccs, n, &out) != NULL) {
            rr_tracker_destroy(&t);
            continue;
        }
        accepted++;
        rr_tracker_install(&t, &out);
        const char *bad = invariant_violation(&t);
        if (bad != NULL)
            fail_msg("seed %llu: joint: %s", (unsigned long long)seed, bad);
        /* C_old,new: the outgoing half is exactly the old voters. */
        if (!id_sets_equal(&t.config.voters.outgoing, &old_voters))
            fail_msg("seed %llu: outgoing half is not C_old", (unsigned long long)seed);
        if (t.config.auto_leave != (seed % 2 == 0))
            fail_msg("seed %llu: auto_leave not carried", (unsigned long long)seed);
        rr_id_set new_voters = t.config.voters.incoming;

        if (leave_joint(&t) != NULL)
            fail_msg("seed %llu: cannot leave the joint config", (unsigned long long)seed);
        bad = invariant_violation(&t);
        if (bad != NULL)
            fail_msg("seed %llu: after leaving: %s", (unsigned long long)seed, bad);
        if (t.config.voters.outgoing.n != 0 || t.config.learners_next.n != 0 || t.config.auto_leave)
            fail_msg("seed %llu: still joint after leaving", (unsigned long long)seed);
        if (!id_sets_equal(&t.config.voters.incoming, &new_voters))
            fail_msg("seed %llu: leaving changed C_new", (unsigned long long)seed);
        rr_tracker_destroy(&t);
    }
    assert_true(accepted > SEEDS / 10);
}

/* ---- the safety argument of joint consensus (thesis §4.3) -------------------------- */

/* Ids live in 1..8 (random_changes), so a vote set is a bitmask over bits 1..8. */
#define UNIVERSE_MASKS 512u

static int mask_vote(void *ctx, rr_node_id_t id)
{
    uint32_t mask = *(const uint32_t *)ctx;
    return (int)((mask >> id) & 1u); /* granted, or rejected: no vote is pending */
}

/* Marks win[m] for every vote set m that wins an election (or commits) under c. */
static void winning_sets(const rr_joint_config *c, bool win[UNIVERSE_MASKS])
{
    for (uint32_t m = 0; m < UNIVERSE_MASKS; m += 2)
        win[m] = win[m + 1] = rr_joint_vote_result(c, mask_vote, &m) == RR_VOTE_WON;
}

/* Whether some quorum of a and some quorum of b share no member: then two leaders could
 * be elected in one term, or an entry committed by one quorum be unknown to the other. */
static bool disjoint_quorums_exist(const rr_joint_config *a, const rr_joint_config *b)
{
    static bool wa[UNIVERSE_MASKS], wb[UNIVERSE_MASKS];
    winning_sets(a, wa);
    winning_sets(b, wb);
    for (uint32_t x = 2; x < UNIVERSE_MASKS; x += 2) {
        if (!wa[x])
            continue;
        for (uint32_t y = 2; y < UNIVERSE_MASKS; y += 2) {
            if (wb[y] && (x & y) == 0)
                return true;
        }
    }
    return false;
}

/* Every configuration change the changer accepts — simple, entering a joint configuration,
 * leaving it — moves between configurations whose quorums all intersect, so no moment of a
 * change allows two disjoint majorities. */
static void test_no_two_disjoint_quorums_across_changes(void **state)
{
    (void)state;
    uint32_t transitions = 0;
    for (uint64_t seed = 1; seed <= SEEDS / 4; seed++) {
        uint64_t rng = seed;
        rr_tracker t;
        random_tracker(&rng, &t);
        for (int step = 0; step < 6; step++) {
            rr_joint_config before = t.config.voters;
            rr_conf_change_single ccs[6];
            uint32_t n = random_changes(&rng, ccs, 6);
            rr_tracker_change out;
            const char *err;
            if (t.config.voters.outgoing.n > 0)
                err = rr_confchange_leave_joint(&t, 3, &out);
            else if (rng_below(&rng, 2) == 0)
                err = rr_confchange_simple(&t, 3, ccs, n, &out);
            else
                err = rr_confchange_enter_joint(&t, 3, false, ccs, n, &out);
            if (err != NULL)
                continue;
            rr_tracker_install(&t, &out);
            transitions++;
            if (disjoint_quorums_exist(&before, &t.config.voters))
                fail_msg("seed %llu step %d: a change allows two disjoint quorums",
                         (unsigned long long)seed, step);
        }
        rr_tracker_destroy(&t);
    }
    assert_true(transitions > SEEDS / 4); /* the property was exercised */

    /* The check has teeth: replacing two of three voters in one step, which the changer
     * refuses as a simple change, does allow disjoint quorums ({2,3} and {4,5}). */
    rr_joint_config old = {0}, swapped = {0};
    for (rr_node_id_t id = 1; id <= 3; id++)
        assert_true(rr_id_set_insert(&old.incoming, id));
    rr_node_id_t ids[] = {1, 4, 5};
    for (int i = 0; i < 3; i++)
        assert_true(rr_id_set_insert(&swapped.incoming, ids[i]));
    assert_true(disjoint_quorums_exist(&old, &swapped));
    rr_tracker t;
    rr_tracker_init(&t, 4, 0);
    assert_null(simple(&t, 0, "v1"));
    assert_null(simple(&t, 0, "v2"));
    assert_null(simple(&t, 0, "v3"));
    assert_non_null(simple(&t, 0, "v4 v5 r2 r3"));
    rr_tracker_destroy(&t);
}

/* ---- restore ------------------------------------------------------------------------- */

static void check_restore(const rr_conf_state *cs, uint64_t seed)
{
    rr_tracker t;
    rr_tracker_init(&t, 4, 0);
    rr_tracker_change out;
    const char *err = rr_confchange_restore(&t, 10, cs, &out);
    if (err != NULL)
        fail_msg("seed %llu: restore failed: %s", (unsigned long long)seed, err);
    rr_tracker_install(&t, &out);
    rr_conf_state got;
    rr_tracker_conf_state(&t, &got);
    if (!rr_conf_state_equal(&got, cs))
        fail_msg("seed %llu: restore does not round-trip", (unsigned long long)seed);
    const char *bad = invariant_violation(&t);
    if (bad != NULL)
        fail_msg("seed %llu: restored: %s", (unsigned long long)seed, bad);
    for (uint32_t i = 0; i < t.n_progress; i++) {
        if (t.progress[i].next != 10 || t.progress[i].match != 0)
            fail_msg("seed %llu: restored progress not fresh", (unsigned long long)seed);
    }
    rr_tracker_destroy(&t);
}

static void test_restore_example(void **state)
{
    (void)state;
    /* etcd's example: (1 2 3)&&(1 2 4 6) learners=(5) learners_next=(4). */
    rr_conf_state cs = {
        .voters = {.n = 3, .ids = {1, 2, 3}},
        .voters_outgoing = {.n = 4, .ids = {1, 2, 4, 6}},
        .learners = {.n = 1, .ids = {5}},
        .learners_next = {.n = 1, .ids = {4}},
        .auto_leave = true,
    };
    check_restore(&cs, 0);

    rr_conf_state empty = {0};
    check_restore(&empty, 0);

    rr_conf_state simple_cs = {.voters = {.n = 2, .ids = {1, 2}}, .learners = {.n = 1, .ids = {3}}};
    check_restore(&simple_cs, 0);
}

static void test_restore_roundtrips_reachable_configs(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        uint64_t rng = seed;
        rr_tracker t;
        random_tracker(&rng, &t);
        rr_conf_change_single ccs[8];
        uint32_t n = random_changes(&rng, ccs, 8);
        rr_tracker_change out;
        if (rng_below(&rng, 2) == 0 &&
            rr_confchange_enter_joint(&t, 3, seed % 3 == 0, ccs, n, &out) == NULL)
            rr_tracker_install(&t, &out);
        rr_conf_state cs;
        rr_tracker_conf_state(&t, &cs);
        rr_tracker_destroy(&t);
        check_restore(&cs, seed);
    }
}

/* ---- conf change predicates ---------------------------------------------------------- */

static void test_conf_change_predicates(void **state)
{
    (void)state;
    bool auto_leave = true;
    rr_conf_change v1 = {.v1 = true, .n_changes = 1, .changes = {{RR_CONF_ADD_NODE, 2}}};
    assert_false(rr_conf_change_enter_joint(&v1, &auto_leave));
    assert_false(auto_leave);
    assert_false(rr_conf_change_leave_joint(&v1));

    rr_conf_change one = {.n_changes = 1, .changes = {{RR_CONF_ADD_NODE, 2}}};
    assert_false(rr_conf_change_enter_joint(&one, &auto_leave));
    assert_false(rr_conf_change_leave_joint(&one));

    rr_conf_change two = {.n_changes = 2,
                          .changes = {{RR_CONF_ADD_NODE, 2}, {RR_CONF_ADD_NODE, 3}}};
    assert_true(rr_conf_change_enter_joint(&two, &auto_leave));
    assert_true(auto_leave);

    one.transition = RR_TRANSITION_JOINT_IMPLICIT;
    assert_true(rr_conf_change_enter_joint(&one, &auto_leave));
    assert_true(auto_leave);
    one.transition = RR_TRANSITION_JOINT_EXPLICIT;
    assert_true(rr_conf_change_enter_joint(&one, &auto_leave));
    assert_false(auto_leave);
    assert_false(rr_conf_change_leave_joint(&one));

    /* The empty v2 change leaves, whatever its context. */
    static const uint8_t ctx[] = {1, 2, 3};
    rr_conf_change empty = {.context = ctx, .context_len = sizeof(ctx)};
    assert_false(rr_conf_change_enter_joint(&empty, NULL));
    assert_true(rr_conf_change_leave_joint(&empty));
    empty.transition = RR_TRANSITION_JOINT_EXPLICIT;
    assert_false(rr_conf_change_leave_joint(&empty));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_nodes_max),
        cmocka_unit_test(test_new_member_progress),
        cmocka_unit_test(test_simple_changes_at_most_one_voter),
        cmocka_unit_test(test_enter_then_leave_joint),
        cmocka_unit_test(test_no_two_disjoint_quorums_across_changes),
        cmocka_unit_test(test_restore_example),
        cmocka_unit_test(test_restore_roundtrips_reachable_configs),
        cmocka_unit_test(test_conf_change_predicates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
