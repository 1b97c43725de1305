/* quorum.c: majority and joint quorums. See quorum.h. */
#include "quorum.h"

#include "ringraft/assert.h"

rr_index_t rr_majority_committed(const rr_id_set *c, rr_acked_index_fn acked, void *ctx)
{
    if (c->n == 0)
        return RR_INDEX_INF;

    /* Insertion sort of at most RR_NODES_MAX indexes, descending: no allocation, and n is
     * tiny. The index at position n/2 is acknowledged by n/2 + 1 voters: a majority. */
    rr_index_t srt[RR_NODES_MAX];
    for (uint32_t i = 0; i < c->n; i++) {
        rr_index_t idx = 0;
        if (!acked(ctx, c->ids[i], &idx))
            idx = 0;
        uint32_t j = i;
        while (j > 0 && srt[j - 1] < idx) {
            srt[j] = srt[j - 1];
            j--;
        }
        srt[j] = idx;
    }
    return srt[c->n / 2];
}

rr_vote_result rr_majority_vote_result(const rr_id_set *c, rr_vote_fn vote, void *ctx)
{
    if (c->n == 0)
        return RR_VOTE_WON; /* see the header: makes joint configs compose */

    uint32_t granted = 0, missing = 0;
    for (uint32_t i = 0; i < c->n; i++) {
        int v = vote(ctx, c->ids[i]);
        if (v < 0)
            missing++;
        else if (v > 0)
            granted++;
    }
    uint32_t q = c->n / 2 + 1;
    if (granted >= q)
        return RR_VOTE_WON;
    if (granted + missing >= q)
        return RR_VOTE_PENDING;
    return RR_VOTE_LOST;
}

rr_index_t rr_joint_committed(const rr_joint_config *c, rr_acked_index_fn acked, void *ctx)
{
    rr_index_t a = rr_majority_committed(&c->incoming, acked, ctx);
    rr_index_t b = rr_majority_committed(&c->outgoing, acked, ctx);
    return a < b ? a : b;
}

rr_vote_result rr_joint_vote_result(const rr_joint_config *c, rr_vote_fn vote, void *ctx)
{
    rr_vote_result a = rr_majority_vote_result(&c->incoming, vote, ctx);
    rr_vote_result b = rr_majority_vote_result(&c->outgoing, vote, ctx);
    if (a == b)
        return a;
    if (a == RR_VOTE_LOST || b == RR_VOTE_LOST)
        return RR_VOTE_LOST;
    return RR_VOTE_PENDING; /* one won, the other pending */
}

void rr_joint_ids(const rr_joint_config *c, rr_id_set *out)
{
    *out = c->incoming;
    for (uint32_t i = 0; i < c->outgoing.n; i++) {
        bool ok = rr_id_set_insert(out, c->outgoing.ids[i]);
        RR_ASSERT(ok);
    }
}

const char *rr_vote_result_name(rr_vote_result r)
{
    switch (r) {
    case RR_VOTE_PENDING:
        return "VotePending";
    case RR_VOTE_LOST:
        return "VoteLost";
    case RR_VOTE_WON:
        return "VoteWon";
    }
    return "VoteUnknown";
}
