/*
 * protocol.h: the Raft protocol state machine (etcd raft's raft.go), driven by rawnode.c.
 * Depends on log.h, tracker.h, confchange.h. Single-threaded, no I/O.
 *
 * Outgoing messages collect in two queues (etcd v3.6):
 *   msgs               may leave at once;
 *   msgs_after_append  responses that vouch for local state (MsgAppResp, MsgVoteResp,
 *                      MsgPreVoteResp): they may leave only after everything unstable at
 *                      the time they were queued is durable (Raft thesis §3.8). In async
 *                      mode they ride as responses of a MsgStorageAppend; in sync mode the
 *                      Ready carries them and the self-addressed ones are stepped on
 *                      advance.
 */
#ifndef RR_CORE_PROTOCOL_H
#define RR_CORE_PROTOCOL_H

#include "confchange.h"
#include "log.h"
#include "tracker.h"

typedef struct rr_msg_vec {
    rr_message *v;
    size_t n;
    size_t cap;
} rr_msg_vec;

/* Moves *m (ownership of its arrays) to the end of vec, zeroing *m. Aborts on OOM: the
 * core cannot make progress without memory and message loss here would be silent. */
void rr_msg_vec_push(rr_msg_vec *vec, rr_message *m);
void rr_msg_vec_free(rr_msg_vec *vec);

/* A ReadIndex request waiting for a heartbeat quorum (ReadOnlySafe, thesis §6.4). */
typedef struct rr_read_request {
    rr_message req;   /* owned copy; req.entries[0].data is the request context */
    rr_index_t index; /* commit index when the request arrived */
    rr_id_set acks;   /* voters that acknowledged a heartbeat carrying the context */
} rr_read_request;

typedef struct rr_read_only {
    uint8_t option;         /* rr_read_only_option */
    rr_read_request *queue; /* FIFO of pending requests, distinct contexts */
    size_t n;
    size_t cap;
} rr_read_only;

typedef struct rr_read_state_vec {
    rr_read_state *v;
    size_t n;
    size_t cap;
} rr_read_state_vec;

typedef struct rr_raft {
    rr_node_id_t id;
    rr_term_t term;
    rr_node_id_t vote;
    rr_log log;
    rr_tracker trk;
    uint8_t state; /* rr_state_type */
    bool is_learner;
    rr_node_id_t lead;
    /* Target of a leadership transfer in progress (thesis §3.10), or none. */
    rr_node_id_t lead_transferee;
    /* Only one conf change may be pending: proposals of another are refused until the
     * applied index passes this (>= the index of the latest conf change proposed). */
    rr_index_t pending_conf_index;
    /* The configuration includes every conf change at or below this index: the last one
     * applied, or the snapshot restored (or started from). Apply work created before a
     * restore may still reach the application afterwards (async storage writes); its
     * changes are already in the configuration and must not apply twice. */
    rr_index_t conf_index;
    /* A committed entry our log lacks, learned from a vote refusal (index 0: none). No
     * log without it can win an election (Leader Completeness), so until we hold it we
     * do not campaign: our terms would only outrun the candidate that can win. */
    rr_entry_id lacks_committed;
    /* Payload bytes of the uncommitted tail (leader only), bounded by
     * max_uncommitted_size_bytes; reset on term change. */
    uint64_t uncommitted_size_bytes;

    rr_msg_vec msgs;
    rr_msg_vec msgs_after_append;
    rr_read_state_vec read_states;
    rr_read_only read_only;
    /* MsgReadIndex held until the leader commits an entry of its term (thesis §6.4). */
    rr_msg_vec pending_read_index;

    uint32_t election_elapsed_ticks;
    uint32_t heartbeat_elapsed_ticks;
    uint32_t election_timeout_ticks;
    uint32_t heartbeat_timeout_ticks;
    /* In [election, 2 * election): reset on becoming follower or candidate. */
    uint32_t randomized_election_timeout_ticks;
    uint64_t rand_state;

    uint64_t max_msg_size_bytes;
    uint64_t max_uncommitted_size_bytes;
    bool check_quorum;
    bool pre_vote;
    bool disable_proposal_forwarding;
    bool disable_conf_change_validation;
    bool step_down_on_removal;

    /* Leader lease for lease-based reads (thesis §6.4.1). A follower refuses votes for
     * election_ticks of its own after hearing from the leader, so once a quorum
     * acknowledged a heartbeat round sent at leader tick t, no other leader can exist
     * before t + lease (lease shortened for clock drift, limits.h). Rounds are numbered
     * in the heartbeat context and echoed back; etcd's lease instead trusts CheckQuorum,
     * which can leave an old leader serving reads up to an election timeout after a new
     * one could win. */
    uint64_t leader_ticks; /* ticks since becoming leader */
    uint64_t lease_round;  /* number of the last heartbeat round sent */
    struct {
        uint64_t round;
        uint64_t sent_tick;
        rr_id_set acks;
    } lease_rounds[RR_LEASE_ROUNDS];
    uint64_t lease_expiry_tick; /* the lease holds while leader_ticks < this */
    /* A node that restarts has forgotten when it last heard from a leader: in lease mode
     * it refuses votes for an election timeout, as if it had just heard from one. */
    uint32_t vote_hold_ticks;

    rr_entry_vec scratch; /* reused: entries being appended by a proposal */
} rr_raft;

/* Validates cfg and builds the state machine from cfg->storage. Returns 0, -EINVAL,
 * -ENOMEM or a storage error. */
int rr_raft_init(rr_raft *r, const rr_config *cfg);
void rr_raft_destroy(rr_raft *r);

void rr_raft_tick(rr_raft *r);
/* Steps any message, local or remote. Returns 0 or RR_DROPPED. */
int rr_raft_step(rr_raft *r, const rr_message *m);
/* Applies the committed conf change at index; returns the ConfState in *cs. Returns false,
 * changing nothing, when the configuration already includes index (conf_index). */
bool rr_raft_apply_conf_change(rr_raft *r, rr_index_t index, const rr_conf_change *cc,
                               rr_conf_state *cs);

rr_soft_state rr_raft_soft_state(const rr_raft *r);
rr_hard_state rr_raft_hard_state(const rr_raft *r);

/* Test hook (the conformance runner's set-randomized-election-timeout). */
void rr_raft_set_randomized_election_timeout(rr_raft *r, uint32_t ticks);

/* The rawnode's handle on its raft, for harnesses that need internals (conformance). */
rr_raft *rr_rawnode_raft(rr_rawnode *rn);

#endif
