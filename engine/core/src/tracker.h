/*
 * tracker.h: what a leader knows of each follower (etcd raft's tracker package): the
 * in-flight window, per-peer Progress, and the tracker holding the active configuration,
 * every member's Progress and the votes of an election. Depends on quorum.h.
 *
 * Single-threaded (the raft thread). The only allocation is an inflights ring, allocated
 * lazily on first use and sized by the max_inflight config.
 */
#ifndef RR_CORE_TRACKER_H
#define RR_CORE_TRACKER_H

#include "quorum.h"

/* ---- inflights: the MsgApp window of one follower, bounded by count and by bytes ---- */

typedef struct rr_inflight {
    rr_index_t index; /* last entry index of the MsgApp */
    uint64_t bytes;   /* payload bytes of the MsgApp */
} rr_inflight;

typedef struct rr_inflights {
    uint32_t start;     /* ring position of the oldest in-flight message */
    uint32_t count;     /* messages in flight */
    uint32_t size;      /* capacity in messages (max_inflight_msgs) */
    uint32_t buf_size;  /* allocated slots, grows to size */
    uint64_t bytes;     /* payload bytes in flight */
    uint64_t max_bytes; /* 0: no byte limit */
    rr_inflight *buf;   /* owned; NULL until the first add */
} rr_inflights;

void rr_inflights_init(rr_inflights *in, uint32_t size, uint64_t max_bytes);
void rr_inflights_destroy(rr_inflights *in);
/* Records a MsgApp ending at index (increasing). The caller checks !full() first. */
void rr_inflights_add(rr_inflights *in, rr_index_t index, uint64_t bytes);
/* Frees every in-flight message with index <= to (acknowledged). */
void rr_inflights_free_le(rr_inflights *in, rr_index_t to);
bool rr_inflights_full(const rr_inflights *in);
void rr_inflights_reset(rr_inflights *in);

/* ---- progress: the leader's view of one follower (Raft thesis §3.5, etcd's Progress) ---- */

typedef struct rr_progress {
    rr_node_id_t id;
    rr_index_t match; /* highest index known replicated */
    rr_index_t next;  /* next index to send; match < next */
    /* Highest commit index sent to the follower (etcd v3.6 sentCommit): lets the leader
     * skip empty MsgApps that would not advance the follower's commit. */
    rr_index_t sent_commit;
    uint8_t state;               /* rr_progress_state */
    rr_index_t pending_snapshot; /* state SNAPSHOT: index of the snapshot sent */
    bool recent_active;          /* heard from since the last check-quorum round */
    /* Probe: one MsgApp per heartbeat interval; replicate: the inflights window is full. */
    bool msg_app_flow_paused;
    bool is_learner;
    rr_inflights inflights;
} rr_progress;

/* A new progress in probe state with match 0, the given next (>= 1), not recently active,
 * and an empty in-flight window (allocated on first use). */
void rr_progress_init(rr_progress *pr, rr_node_id_t id, rr_index_t next, uint32_t max_inflight,
                      uint64_t max_inflight_bytes, bool is_learner);
void rr_progress_destroy(rr_progress *pr);
void rr_progress_become_probe(rr_progress *pr);
void rr_progress_become_replicate(rr_progress *pr);
void rr_progress_become_snapshot(rr_progress *pr, rr_index_t snapshot_index);
/* Bookkeeping after sending a MsgApp with n_entries entries of `bytes` payload bytes,
 * starting at next (etcd's UpdateOnEntriesSend). Probe or replicate state only. */
void rr_progress_sent_entries(rr_progress *pr, uint32_t n_entries, uint64_t bytes);
/* Records the commit index carried by a message just sent (etcd's SentCommit). */
void rr_progress_sent_commit(rr_progress *pr, rr_index_t commit);
/* An append response acknowledged n: returns true if match advanced. */
bool rr_progress_maybe_update(rr_progress *pr, rr_index_t n);
/* A rejection of the MsgApp at `rejected` with hint `match_hint`: returns false when the
 * rejection is stale. */
bool rr_progress_maybe_decr_to(rr_progress *pr, rr_index_t rejected, rr_index_t match_hint);
/* No more MsgApps should be sent (etcd's IsPaused). */
bool rr_progress_is_paused(const rr_progress *pr);
/* The follower's commit index could be advanced to `commit` by a MsgApp. */
bool rr_progress_can_bump_commit(const rr_progress *pr, rr_index_t commit);
const char *rr_progress_state_name(uint8_t state);

/* ---- tracker: configuration + progress of every member + votes ---- */

typedef struct rr_tracker_config {
    rr_joint_config voters;
    /* Leave the joint configuration automatically once it is committed (etcd AutoLeave). */
    bool auto_leave;
    rr_id_set learners;
    /* Outgoing voters demoted to learners when the joint configuration is left: a node
     * may not be a voter and a learner at once, so they wait here. */
    rr_id_set learners_next;
} rr_tracker_config;

typedef struct rr_tracker {
    rr_tracker_config config;
    uint32_t n_progress; /* progress[] sorted by id: every voter and learner */
    rr_progress progress[RR_NODES_MAX];
    rr_id_set voted;   /* ids that voted this election */
    rr_id_set granted; /* subset of voted that granted */
    uint32_t max_inflight;
    uint64_t max_inflight_bytes;
} rr_tracker;

void rr_tracker_init(rr_tracker *t, uint32_t max_inflight, uint64_t max_inflight_bytes);
void rr_tracker_destroy(rr_tracker *t);
rr_progress *rr_tracker_get(rr_tracker *t, rr_node_id_t id);
const rr_progress *rr_tracker_get_const(const rr_tracker *t, rr_node_id_t id);
/* The configuration as persisted (ConfState). */
void rr_tracker_conf_state(const rr_tracker *t, rr_conf_state *cs);
bool rr_tracker_is_singleton(const rr_tracker *t);
/* Largest index committed by the voters' quorum according to their match indexes. */
rr_index_t rr_tracker_committed(const rr_tracker *t);
/* Whether the voters that were recently active form a quorum (CheckQuorum). */
bool rr_tracker_quorum_active(const rr_tracker *t);
/* Voters sorted by id (union of both halves), and learners sorted by id. As etcd's
 * LearnerNodes, learners_next are not included: they are still outgoing voters. */
void rr_tracker_voter_ids(const rr_tracker *t, rr_id_set *out);
void rr_tracker_learner_ids(const rr_tracker *t, rr_id_set *out);
void rr_tracker_reset_votes(rr_tracker *t);
/* Records id's vote unless it already voted in this election. */
void rr_tracker_record_vote(rr_tracker *t, rr_node_id_t id, bool granted);
/* Counts votes of current voters; returns the election's result. */
rr_vote_result rr_tracker_tally_votes(const rr_tracker *t, uint32_t *granted, uint32_t *rejected);

/* ---- the result of a configuration change, before it is installed ---- */

/* A configuration and the progress of every member (progress[].inflights of members that
 * were already tracked are shared with the tracker the change started from). */
typedef struct rr_tracker_change {
    rr_tracker_config config;
    uint32_t n_progress;
    rr_progress progress[RR_NODES_MAX];
} rr_tracker_change;

/* Installs a computed change: progresses of members that left are destroyed, the others
 * keep their live progress (only is_learner is taken from the change), new ones come from
 * the change. */
void rr_tracker_install(rr_tracker *t, const rr_tracker_change *c);

#endif
