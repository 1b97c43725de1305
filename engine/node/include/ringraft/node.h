/*
 * node.h: the embedding API of ringraft (rr_node_*): a replicated, durable log driven by
 * threads.
 *
 * A node runs the pure core (ringraft/core.h) on a raft thread in async-storage mode:
 *   client threads --propose--> [MPSC ring] --> raft thread (owns the RawNode, batches all
 *   pending proposals into each Ready, ticks on a timerfd)
 *   raft thread --> disk (appends + hard state, group commit; durable completions come back)
 *   raft thread <-> network (messages out; received messages and unreachable reports back;
 *   on a follower whose raft thread sleeps, the network's thread runs the raft turn for a
 *   small receive itself, holding the raft role: receive, write, acknowledge, one thread)
 *   raft thread --> [SPSC ring] --> apply thread (runs the state machine, completes
 *   proposals and read barriers) --> [SPSC ring] --> raft thread (applied acknowledgements)
 * The leader sends MsgApps while its own append is in flight (thesis §10.2.1). Every thread
 * sleeps when idle.
 *
 * Threads and callbacks:
 * - rr_node_propose / rr_node_read_barrier / rr_node_add / rr_node_remove /
 *   rr_node_transfer_leader / rr_node_stats may be called from any thread, concurrently,
 *   between rr_node_start and rr_node_stop.
 * - Every completion callback and the apply callback run on the node's apply thread, one at a
 *   time, in log order. They must not call rr_node_stop; they may call rr_node_propose.
 *
 * Buffers:
 * - rr_node_propose copies the payload once into an engine buffer; rr_node_propose_buf
 *   takes a caller buffer (rr_buf, released through its release callback when the last
 *   holder — WAL write, network send, apply — is done) and copies nothing.
 * - Entries passed to the apply callback are valid during the call only.
 *
 * Errors are 0 or -errno (-EAGAIN when a bounded queue is full, -ESHUTDOWN after stop).
 */
#ifndef RINGRAFT_NODE_H
#define RINGRAFT_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringraft/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rr_node rr_node;

/* Bytes of context a membership change may carry (an address). */
#define RR_NODE_CONTEXT_BYTES_MAX 256u

/* How a proposal (or a membership change, or a read barrier) ended. */
typedef enum rr_node_status {
    RR_NODE_COMMITTED = 0,  /* committed and applied at index (read barrier: may read now) */
    RR_NODE_NOT_LEADER = 1, /* this node is not the leader; leader_hint names it if known */
    RR_NODE_DROPPED = 2,    /* the leader dropped it (transfer in progress, limits) */
    RR_NODE_LOST = 3,       /* accepted, then overwritten by a new leader: not applied */
    RR_NODE_STOPPED = 4,    /* the node stopped first */
} rr_node_status;

typedef struct rr_node_result {
    uint8_t status; /* rr_node_status */
    rr_index_t index;
    rr_term_t term;
    rr_node_id_t leader_hint;
} rr_node_result;

/* Runs on the apply thread. */
typedef void (*rr_node_done_fn)(void *ctx, const rr_node_result *res);

typedef struct rr_node_callbacks {
    void *ctx;
    /* Committed normal entries, in log order, on the apply thread. Required. */
    void (*apply)(void *ctx, const rr_entry *ents, size_t n);
    /* Optional, both or neither, on the apply thread. save: the state machine as of
     * everything applied so far, as bytes in *buf (one reference handed to the node, which
     * releases it when persisted) at data[0..len). restore: replace the state machine with
     * a snapshot's bytes (from the leader, or from disk at start); entries after it follow.
     * Return 0 or -errno (a failed restore stops the node: the state would be wrong). */
    int (*snapshot_save)(void *ctx, rr_buf **buf, const uint8_t **data, uint64_t *len);
    int (*snapshot_restore)(void *ctx, const uint8_t *data, uint64_t len);
} rr_node_callbacks;

/* The node's view of durable storage (io/), narrow so tests can substitute a simulated disk
 * (STYLE.md habit 12). All calls but fd come from the thread holding the raft role: the raft
 * thread, or the network's thread while the raft thread sleeps (on_receive); never two. */
typedef struct rr_node_disk_ops {
    /* Queues entries (a reference each, held until durable), the hard state if hs is not
     * NULL, a snapshot if snap is not NULL. Returns a sequence number > 0 that completes
     * when all of it is durable, or -errno (fatal for the node). */
    int64_t (*append)(void *ctx, const rr_entry *ents, size_t n, const rr_hard_state *hs,
                      const rr_snapshot *snap);
    /* The highest sequence number durable so far (never blocks), or -errno (fatal). */
    int64_t (*durable)(void *ctx);
    /* A descriptor that becomes readable when durable() may have advanced; durable()
     * clears it (the raft thread polls it while sleeping: it must not stay readable). */
    int (*wait_fd)(void *ctx);
    /* The core's view of what was appended. */
    rr_storage (*storage)(void *ctx);
    /* Persists a snapshot taken locally (synchronously), then discards the log up to
     * compact_index. Optional (NULL: snapshots are not taken). Returns 0 or -errno. */
    int (*save_snapshot)(void *ctx, const rr_snapshot *snap, rr_index_t compact_index);
    void (*close)(void *ctx);
    /* Optional (NULL: reported as 0): durable writes (syncs) completed so far. Any thread. */
    uint64_t (*syncs)(void *ctx);
    /* Optional (NULL: append starts its writes at once). Called once per raft-thread turn,
     * after the turn's messages went to the network, and before any wait on wait_fd: a
     * disk may hold appends back until then, to write a turn as one batch, or to write a
     * small one on the raft thread when that is quicker than handing it over. Returns 1
     * when writes completed during the call (durable() advanced), 0, or -errno (fatal). */
    int (*flush)(void *ctx);
} rr_node_disk_ops;

/* What the network tells the core about a peer. */
typedef enum rr_node_net_report_kind {
    RR_NODE_NET_UNREACHABLE = 1,     /* a send failed or the connection went away */
    RR_NODE_NET_SNAPSHOT_DONE = 2,   /* a MsgSnap was streamed completely */
    RR_NODE_NET_SNAPSHOT_FAILED = 3, /* a MsgSnap could not be delivered */
} rr_node_net_report_kind;

typedef struct rr_node_net_report {
    rr_node_id_t peer;
    uint8_t kind; /* rr_node_net_report_kind */
} rr_node_net_report;

/* What the network has done so far (rr_node_stats). */
typedef struct rr_node_net_counters {
    uint64_t bytes_sent;
    uint64_t frames_sent;
    uint64_t frames_zero_copy; /* of which sent with SEND_ZC */
    uint64_t msgs_dropped;     /* send queue full, peer gone, receive ring full */
} rr_node_net_counters;

/* The node's view of the network (net/). All calls from the thread holding the raft role
 * (see rr_node_disk_ops), except on_receive and counters. */
typedef struct rr_node_net_ops {
    /* Takes ownership of *m (sent or dropped: the transport reports drops as unreachable). */
    void (*send)(void *ctx, rr_message *m);
    /* Pushes queued sends out (once per raft-thread turn). */
    void (*flush)(void *ctx);
    /* Moves up to max received messages into out (the caller frees them). */
    uint32_t (*recv)(void *ctx, rr_message *out, uint32_t max);
    /* Moves up to max reports (unreachable peers, snapshot outcomes) into out. */
    uint32_t (*reports)(void *ctx, rr_node_net_report *out, uint32_t max);
    /* Membership changes reach the transport as they take effect (in log order, raft
     * thread): add_peer with the context the change was proposed with (rrkv: "host:port"),
     * remove_peer on removal. Optional (NULL: the peer set is fixed). add_peer returns 0
     * or -errno (logged; the peer stays unreachable). */
    int (*add_peer)(void *ctx, rr_node_id_t id, const uint8_t *context, uint32_t context_len);
    void (*remove_peer)(void *ctx, rr_node_id_t id);
    /* A descriptor that becomes readable when recv or reports may return something; recv
     * clears it. */
    int (*wait_fd)(void *ctx);
    void (*close)(void *ctx);
    /* Optional (NULL: zeros): counters so far. Any thread. */
    void (*counters)(void *ctx, rr_node_net_counters *out);
    /* Optional: a network with a thread of its own that receives may call fn(arg, bytes)
     * on that thread after it queued received messages that came in `bytes` bytes, in
     * place of waking the raft thread (see rr_transport_on_receive). fn returns true when
     * it ran the raft thread's turn there (a follower whose raft thread sleeps, for a small
     * receive: the two never run at once), false when the raft thread must be woken as
     * usual. Called once, from rr_node_start. */
    void (*on_receive)(void *ctx, bool (*fn)(void *arg, uint64_t bytes), void *arg);
} rr_node_net_ops;

/* The seams over ringraft's own io/ and net/ (the usual choice). */
typedef struct rr_wal rr_wal;
typedef struct rr_transport rr_transport;

/* Disk ops over an opened WAL (rr_wal_open); the node closes it. Returns 0 or -ENOMEM. */
int rr_node_disk_wal(rr_wal *wal, const rr_node_disk_ops **ops, void **ctx);
/* Net ops over a started transport (TCP or in-process), passed as the ctx; the node frees
 * it. */
const rr_node_net_ops *rr_node_net_transport(void);

typedef struct rr_node_config {
    rr_node_id_t id;
    /* The initial voters (ids), when the disk holds no configuration yet (first start). */
    uint32_t n_voters;
    rr_node_id_t voters[RR_NODES_MAX];
    uint32_t tick_ms;                /* default 100 */
    uint32_t election_ticks;         /* default 10 */
    uint32_t heartbeat_ticks;        /* default 1 */
    uint64_t max_size_per_msg_bytes; /* default 1 MiB */
    uint32_t max_inflight_msgs;      /* default 256 */
    uint32_t propose_ring_capacity;  /* power of two; default 65536 proposals */
    uint32_t max_batch_entries;      /* proposals per MsgProp; default 4096 */
    rr_read_only_option read_only;   /* default safe */
    uint64_t rand_seed;              /* election timeout randomisation; default id */
    /* Take a snapshot once this many entries were applied since the last one (checked after
     * each applied batch; 0: never; needs the callbacks and
     * the disk's save_snapshot). The log keeps snapshot_keep_entries behind it for
     * followers that are a little behind. Defaults: 0 and 10000. */
    uint64_t snapshot_every_entries;
    uint64_t snapshot_keep_entries;
    /* Where the node persists and how it talks. Required: engine/node never guesses. */
    const rr_node_disk_ops *disk;
    void *disk_ctx;
    const rr_node_net_ops *net;
    void *net_ctx;
} rr_node_config;

void rr_node_config_init(rr_node_config *cfg, rr_node_id_t id);

/* Creates a node (threads not started). Takes ownership of the disk and net contexts (their
 * close is called by rr_node_free). Returns 0, -EINVAL, -ENOMEM or a storage error. */
int rr_node_create(const rr_node_config *cfg, const rr_node_callbacks *cb, rr_node **out);
/* Starts the threads. Returns 0 or -errno. */
int rr_node_start(rr_node *n);
/* Stops: no new requests; pending ones complete with RR_NODE_STOPPED; waits for in-flight
 * disk writes; joins the threads. Idempotent. Requests must not race with it: one submitted
 * concurrently may be freed by rr_node_free without its callback. */
void rr_node_stop(rr_node *n);
/* Stops if needed and frees everything (the disk and net contexts included). */
void rr_node_free(rr_node *n);

/* Proposes len bytes (copied). done(ctx, res) runs on the apply thread exactly once.
 * Returns 0 (done will be called), -EINVAL (len over RR_ENTRY_BYTES_MAX), -EAGAIN (the
 * propose ring is full: back off), -ENOMEM or -ESHUTDOWN (done is not called). */
int rr_node_propose(rr_node *n, const void *data, uint32_t len, rr_node_done_fn done, void *ctx);
/* Proposes data inside buf without copying; the node takes a reference on buf. */
int rr_node_propose_buf(rr_node *n, const uint8_t *data, uint32_t len, rr_buf *buf,
                        rr_node_done_fn done, void *ctx);
/* A linearizable read barrier (ReadIndex): done runs once everything committed before the
 * call has been applied, with status RR_NODE_COMMITTED; the caller may then read its state
 * machine. Same returns as rr_node_propose. */
int rr_node_read_barrier(rr_node *n, rr_node_done_fn done, void *ctx);
/* Membership changes through the log; done runs when the change is applied. context
 * (copied, at most RR_NODE_CONTEXT_BYTES_MAX) travels with the change to every node's
 * net add_peer. Removing the
 * leader itself first hands leadership to the most up-to-date voter and completes with
 * RR_NODE_NOT_LEADER naming it: retry the removal there. */
int rr_node_add(rr_node *n, rr_node_id_t id, bool learner, const void *context,
                uint32_t context_len, rr_node_done_fn done, void *ctx);
int rr_node_remove(rr_node *n, rr_node_id_t id, rr_node_done_fn done, void *ctx);
int rr_node_transfer_leader(rr_node *n, rr_node_id_t to);
/* Asks for a snapshot now (besides snapshot_every_entries): the apply thread saves the state
 * machine between two applied batches (snapshot_save), the raft thread persists it and
 * compacts the log behind it, keeping snapshot_keep_entries; stats' snapshots counts it
 * once persisted. Several calls before it runs make one snapshot. Returns 0, -ENOTSUP
 * (no snapshot_save callback or disk save_snapshot) or -ESHUTDOWN. Any thread. */
int rr_node_snapshot(rr_node *n);

/* Where a proposal's time goes, stage by stage (leader-local proposals). */
typedef enum rr_node_stage {
    RR_NODE_STAGE_QUEUE = 0,  /* rr_node_propose -> taken by the raft thread */
    RR_NODE_STAGE_COMMIT = 1, /* taken -> committed (replicated, durable on a quorum) */
    RR_NODE_STAGE_APPLY = 2,  /* committed -> applied, callback run */
    RR_NODE_STAGE_TOTAL = 3,  /* rr_node_propose -> callback run */
    RR_NODE_STAGE_DISK = 4,   /* one disk append -> durable (write + fsync), per append */
    RR_NODE_STAGE_ACK = 5,    /* a MsgApp with entries sent -> that follower's ack of them
                                 (network both ways + the follower's durable write) */
    RR_NODE_STAGE_COUNT = 6,
} rr_node_stage;

typedef struct rr_node_latency {
    uint64_t count;
    uint64_t p50_ns, p90_ns, p99_ns, p999_ns, max_ns;
    double mean_ns;
} rr_node_latency;

typedef struct rr_node_stats {
    rr_node_id_t id;
    rr_node_id_t leader;
    rr_term_t term;
    rr_index_t commit;
    rr_index_t applied;
    uint64_t proposals; /* accepted by rr_node_propose */
    uint64_t entries_applied;
    uint64_t readies;      /* Ready structs handled */
    uint64_t disk_appends; /* append calls (each one group of entries) */
    uint64_t messages_sent;
    uint64_t messages_received;
    uint64_t batch_entries_max;
    uint64_t snapshots;      /* taken and persisted by this node */
    uint64_t bytes_proposed; /* payload bytes accepted by rr_node_propose(_buf) */
    uint64_t disk_syncs;     /* durable writes completed (0 when the disk does not say) */
    /* Raft-thread turns the network's thread ran while the raft thread slept (on_receive):
     * received messages handled without a hand-off. */
    uint64_t turns_on_net;
    rr_node_net_counters net; /* zeros when the network does not say */
    /* Since start or the last rr_node_stats_reset: */
    rr_node_latency stage[RR_NODE_STAGE_COUNT];
    double propose_batch_mean; /* proposals per MsgProp */
    double disk_batch_mean;    /* entries per disk append */
    /* Kept for existing callers: stage[RR_NODE_STAGE_TOTAL]'s p50, p99 and max. */
    uint64_t commit_p50_ns, commit_p99_ns, commit_max_ns;
} rr_node_stats;

/* Clears the latency and batch histograms (e.g. after a benchmark's warm-up). Any thread. */
void rr_node_stats_reset(rr_node *n);

/* A consistent-enough snapshot of counters (read without stopping the threads). */
void rr_node_stats_get(rr_node *n, rr_node_stats *out);

/* The membership as this node has applied it: voters, learners and, during a joint change,
 * both halves. Starts from the bootstrap (or stored) configuration, then follows every
 * configuration change this node hands out for application and every snapshot it
 * installs. On the leader it is what the next change will be validated against, except for
 * a change proposed but not yet committed. Any thread. */
void rr_node_conf_get(rr_node *n, rr_conf_state *out);

#ifdef __cplusplus
}
#endif
#endif
