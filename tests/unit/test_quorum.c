/* test_quorum.c: majority and joint quorum arithmetic (engine/core/src/quorum.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "quorum.h"

/* A table of (id, index) acknowledgements; ids absent from it are unknown. */
typedef struct acks {
    uint32_t n;
    rr_node_id_t id[8];
    rr_index_t idx[8];
} acks;

static bool acked(void *ctx, rr_node_id_t id, rr_index_t *index)
{
    const acks *a = ctx;
    for (uint32_t i = 0; i < a->n; i++) {
        if (a->id[i] == id) {
            *index = a->idx[i];
            return true;
        }
    }
    return false;
}

/* votes: 'y' granted, 'n' rejected, anything else not voted, indexed by id - 1. */
static int vote(void *ctx, rr_node_id_t id)
{
    const char *v = ctx;
    char c = v[id - 1];
    return c == 'y' ? 1 : c == 'n' ? 0 : -1;
}

static rr_id_set ids(uint32_t n, const rr_node_id_t *v)
{
    rr_id_set s = {0};
    for (uint32_t i = 0; i < n; i++)
        assert_true(rr_id_set_insert(&s, v[i]));
    return s;
}

static void test_empty_majority_commits_everything(void **state)
{
    (void)state;
    rr_id_set empty = {0};
    acks a = {0};
    assert_true(rr_majority_committed(&empty, acked, &a) == RR_INDEX_INF);
    assert_int_equal(rr_majority_vote_result(&empty, vote, "___"), RR_VOTE_WON);
}

static void test_majority_committed_is_median_of_acks(void **state)
{
    (void)state;
    rr_id_set c = ids(3, (rr_node_id_t[]){1, 2, 3});
    acks a = {.n = 2, .id = {1, 2}, .idx = {12, 5}};
    assert_int_equal(rr_majority_committed(&c, acked, &a), 5); /* 3 unknown counts as 0 */
    a.n = 3;
    a.id[2] = 3;
    a.idx[2] = 20;
    assert_int_equal(rr_majority_committed(&c, acked, &a), 12);

    rr_id_set c4 = ids(4, (rr_node_id_t[]){1, 2, 3, 4});
    acks b = {.n = 4, .id = {1, 2, 3, 4}, .idx = {10, 20, 30, 40}};
    assert_int_equal(rr_majority_committed(&c4, acked, &b), 20); /* needs 3 of 4 */
}

static void test_majority_vote(void **state)
{
    (void)state;
    rr_id_set c = ids(3, (rr_node_id_t[]){1, 2, 3});
    assert_int_equal(rr_majority_vote_result(&c, vote, "y__"), RR_VOTE_PENDING);
    assert_int_equal(rr_majority_vote_result(&c, vote, "yy_"), RR_VOTE_WON);
    assert_int_equal(rr_majority_vote_result(&c, vote, "yn_"), RR_VOTE_PENDING);
    assert_int_equal(rr_majority_vote_result(&c, vote, "ynn"), RR_VOTE_LOST);
    rr_id_set c2 = ids(2, (rr_node_id_t[]){1, 2});
    assert_int_equal(rr_majority_vote_result(&c2, vote, "n_"), RR_VOTE_LOST);
}

static void test_joint_needs_both_majorities(void **state)
{
    (void)state;
    rr_joint_config j = {.incoming = ids(3, (rr_node_id_t[]){1, 2, 3}),
                         .outgoing = ids(3, (rr_node_id_t[]){4, 5, 6})};
    acks a = {.n = 6, .id = {1, 2, 3, 4, 5, 6}, .idx = {9, 9, 9, 1, 2, 3}};
    assert_int_equal(rr_joint_committed(&j, acked, &a), 2);
    assert_int_equal(rr_joint_vote_result(&j, vote, "yyynnn"), RR_VOTE_LOST);
    assert_int_equal(rr_joint_vote_result(&j, vote, "yyyyy_"), RR_VOTE_WON);
    assert_int_equal(rr_joint_vote_result(&j, vote, "yyyy__"), RR_VOTE_PENDING);

    /* With an empty outgoing half a joint config is its incoming half. */
    rr_joint_config s = {.incoming = j.incoming};
    assert_int_equal(rr_joint_committed(&s, acked, &a), 9);
    rr_id_set u;
    rr_joint_ids(&j, &u);
    assert_int_equal(u.n, 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_majority_commits_everything),
        cmocka_unit_test(test_majority_committed_is_median_of_acks),
        cmocka_unit_test(test_majority_vote),
        cmocka_unit_test(test_joint_needs_both_majorities),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
