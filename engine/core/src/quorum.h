/*
 * quorum.h: majority and joint quorums (etcd raft's quorum package). Depends on nothing
 * but the id set. Pure functions; any thread.
 *
 * A majority config is an rr_id_set of voters. A joint config is two of them (incoming and
 * outgoing, Raft thesis §4.3): a decision needs a majority of each. The empty majority
 * config is special so that a joint config with an empty outgoing half behaves like its
 * incoming half alone: it commits "everything" (RR_INDEX_INF) and wins every vote.
 */
#ifndef RR_CORE_QUORUM_H
#define RR_CORE_QUORUM_H

#include "ringraft/core.h"

#define RR_INDEX_INF UINT64_MAX

typedef enum rr_vote_result {
    RR_VOTE_PENDING = 1, /* neither won nor lost yet */
    RR_VOTE_LOST = 2,
    RR_VOTE_WON = 3,
} rr_vote_result;

typedef struct rr_joint_config {
    rr_id_set incoming; /* [0] in etcd */
    rr_id_set outgoing; /* [1] in etcd; empty unless joint */
} rr_joint_config;

/* Looks up the acknowledged (match) index of id; returns false when unknown. */
typedef bool (*rr_acked_index_fn)(void *ctx, rr_node_id_t id, rr_index_t *index);
/* Looks up id's vote: 1 granted, 0 rejected, -1 not voted yet. */
typedef int (*rr_vote_fn)(void *ctx, rr_node_id_t id);

/* The largest index acknowledged by a majority of c (unknown ids count as 0);
 * RR_INDEX_INF for the empty config. */
rr_index_t rr_majority_committed(const rr_id_set *c, rr_acked_index_fn acked, void *ctx);
rr_vote_result rr_majority_vote_result(const rr_id_set *c, rr_vote_fn vote, void *ctx);

/* min of the two halves' committed indexes. */
rr_index_t rr_joint_committed(const rr_joint_config *c, rr_acked_index_fn acked, void *ctx);
/* Won if both halves won, lost if either lost, else pending. */
rr_vote_result rr_joint_vote_result(const rr_joint_config *c, rr_vote_fn vote, void *ctx);
/* Union of both halves' ids, sorted. */
void rr_joint_ids(const rr_joint_config *c, rr_id_set *out);

const char *rr_vote_result_name(rr_vote_result r);

#endif
