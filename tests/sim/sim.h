/*
 * sim.h: rr-sim, a deterministic simulator of a ringraft cluster (issue 5).
 *
 * The whole cluster runs in one process on virtual time: an event heap ordered by
 * (time, sequence) holds message deliveries, fsync and apply completions, ticks and
 * workload actions, and one PRNG seeded from the seed draws every choice, so a seed
 * replays exactly. After every event each node's Ready is handled and the checkers run.
 *
 * Modules (one file each):
 *   sim.c       the cluster: nodes, Ready handling, crash and restart, the event loop
 *   disk.c      a disk per node: page cache the core reads, durable image, fsync queue
 *   net.c       the network: latency, drops, duplicates, partitions
 *   check.c     the invariants and the trace of the last events
 *   workload.c  clients (proposals, reads, conf changes, transfers, snapshots), faults,
 *               and the liveness condition
 *   main.c      options and the loop over seeds
 *
 * Ownership: every rr_message held by the simulator (in the heap, a disk or apply queue)
 * is owned by its holder and freed with rr_message_free once delivered or dropped.
 */
#ifndef RR_SIM_H
#define RR_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringraft/core.h"

#define RR_SIM_NODES_MAX    7
#define RR_SIM_NODES_MIN    3
#define RR_SIM_TRACE_EVENTS 48

/* One tick is 1000 us of virtual time (skewed per node); elections take 10..20 ticks. */
#define RR_SIM_TICK_US 1000u

_Static_assert(RR_SIM_NODES_MAX <= RR_NODES_MAX, "a simulated cluster fits a configuration");

/* Environment faults that break the model's assumptions; each must be caught. */
typedef struct rr_sim_teeth {
    bool ack_early;   /* the disk acknowledges a write before it is durable */
    bool lose_acked;  /* a crash also loses acknowledged writes */
    bool forget_vote; /* a restart forgets the persisted vote */
} rr_sim_teeth;

typedef struct rr_sim_opts {
    uint64_t seed;
    uint64_t n_seeds;
    uint32_t nodes; /* 0: drawn from the seed */
    uint32_t steps; /* events in the fault phase */
    double drop_rate;
    double dup_rate;
    double reorder_rate;
    double partition_rate; /* per workload event */
    double crash_rate;     /* per workload event */
    uint32_t liveness_ticks_max;
    bool verbose;
    bool protocol_checks_only; /* no persistence-order or node durability checks: the
                                * teeth must then be caught by cluster-wide invariants */
    rr_sim_teeth teeth;
    const char *expect; /* invariant a teeth run expects to see violated, or NULL */
} rr_sim_opts;

typedef enum rr_sim_event_kind {
    EV_TICK = 0,
    EV_MSG = 1,
    EV_FSYNC = 2,
    EV_APPLY = 3,
    EV_WORKLOAD = 4,
    EV_RESTART = 5,
    EV_HEAL = 6,
} rr_sim_event_kind;

typedef struct rr_sim_event {
    uint64_t at_us;
    uint64_t seq;
    uint8_t kind; /* rr_sim_event_kind */
    uint32_t node;
    uint32_t epoch; /* EV_FSYNC / EV_APPLY: the incarnation they belong to */
    rr_message msg; /* EV_MSG: owned */
} rr_sim_event;

typedef struct rr_sim_heap {
    rr_sim_event *v;
    size_t n;
    size_t cap;
} rr_sim_heap;

/* A FIFO of owned messages (disk writes, apply work). */
typedef struct rr_sim_msgq {
    rr_message *v;
    size_t head;
    size_t n;
    size_t cap;
} rr_sim_msgq;

#define RR_SIM_READS_MAX 64

typedef struct rr_sim_read {
    uint64_t id;
    uint32_t node;
    bool used;
    bool ready;                      /* its read state arrived */
    rr_index_t index;                /* from the read state */
    rr_index_t acked_index_at_start; /* highest acknowledged write when the read began */
} rr_sim_read;

typedef struct rr_sim_node {
    rr_node_id_t id;
    bool up;
    bool async;
    uint32_t epoch; /* incremented by each crash */
    rr_rawnode *rn;
    rr_memstorage *cache;    /* what the core reads: written, perhaps not yet durable */
    rr_memstorage *durable;  /* what survives a crash */
    rr_sim_msgq disk_queue;  /* writes in the cache, not yet durable (MsgStorageAppend) */
    rr_sim_msgq apply_queue; /* MsgStorageApply waiting for the apply thread */
    uint64_t fsync_last_us;  /* fsyncs complete in order */
    uint64_t apply_last_us;
    /* Newest snapshot the core restored since start: the only reason it may decline a
     * conf change handed out for application (rr_rawnode_apply_conf_change). */
    rr_index_t restored_snap_index;
    uint32_t tick_us; /* skewed tick period */
    /* the state machine: a hash chain over applied entries, and the configuration */
    rr_index_t sm_index;
    uint64_t sm_hash;
    rr_conf_state sm_conf;
    /* what the node reported in Readies */
    rr_term_t term;
    rr_index_t commit;
    uint8_t state;
    rr_node_id_t lead;
    /* what the node has promised to peers (durability checker) */
    rr_index_t promise_index;
    rr_term_t promise_term;
    rr_term_t vote_term;
    rr_node_id_t vote_for;
} rr_sim_node;

typedef enum rr_sim_prop_status {
    PROP_PENDING = 0,
    PROP_COMMITTED = 1,
    PROP_REJECTED = 2,
} rr_sim_prop_status;

typedef struct rr_sim_prop {
    uint32_t node;
    uint32_t epoch;
    uint8_t status; /* rr_sim_prop_status */
} rr_sim_prop;

/* What the checkers remember about one log index across the cluster. */
typedef struct rr_sim_ent_rec {
    rr_term_t term;
    rr_term_t prev_term; /* UINT64_MAX: unknown */
    uint64_t hash;
} rr_sim_ent_rec;

typedef struct rr_sim_index_rec {
    rr_sim_ent_rec *ents; /* distinct terms seen at this index */
    uint32_t n_ents;
    uint32_t cap_ents;
    bool committed;
    rr_term_t committed_term;
    rr_term_t commit_term; /* smallest term in which a node saw it committed */
    bool applied;
    uint64_t applied_hash; /* entry hash */
    bool sm_set;
    uint64_t sm_hash; /* state machine hash after applying it */
} rr_sim_index_rec;

typedef struct rr_sim_trace_rec {
    uint64_t step;
    uint64_t at_us;
    uint8_t kind;
    uint8_t what; /* message type, or a workload action */
    uint32_t node;
    rr_message hdr; /* header fields only (no owned pointers) */
    uint64_t aux;
    rr_index_t snap_index; /* MsgSnap */
} rr_sim_trace_rec;

typedef struct rr_sim {
    rr_sim_opts opt;
    uint64_t seed;
    uint64_t rng;
    uint32_t n;
    rr_sim_node nodes[RR_SIM_NODES_MAX + 1]; /* 1-based: nodes[id] */
    rr_sim_heap heap;
    uint64_t now_us;
    uint64_t seq;
    uint64_t step;
    /* faults */
    bool faults_on;
    bool blocked[RR_SIM_NODES_MAX + 1][RR_SIM_NODES_MAX + 1];          /* [from][to] */
    uint64_t link_last_us[RR_SIM_NODES_MAX + 1][RR_SIM_NODES_MAX + 1]; /* FIFO links */
    rr_config tmpl; /* per-seed settings shared by every node */
    /* checkers */
    rr_node_id_t *leader_of_term;
    size_t cap_terms;
    rr_sim_index_rec *idx; /* by log index */
    size_t cap_idx;
    rr_index_t committed_max;
    rr_index_t acked_index_max; /* highest index of a write acknowledged to its client */
    /* workload */
    rr_sim_prop *props;
    size_t n_props;
    size_t cap_props;
    rr_sim_read reads[RR_SIM_READS_MAX];
    uint64_t reads_started;
    uint64_t reads_served;
    uint64_t writes_acked;
    uint64_t conf_changes;
    uint64_t crashes;
    /* trace */
    rr_sim_trace_rec trace[RR_SIM_TRACE_EVENTS];
    uint64_t n_trace;
    /* outcome */
    bool failed;
    char violation[48];
    char detail[256];
} rr_sim;

/* ---- PRNG (splitmix64): the only source of randomness ----------------------------- */

static inline uint64_t rr_sim_rand(rr_sim *s)
{
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n). */
static inline uint64_t rr_sim_below(rr_sim *s, uint64_t n)
{
    return n == 0 ? 0 : rr_sim_rand(s) % n;
}

static inline bool rr_sim_chance(rr_sim *s, double p)
{
    return (double)(rr_sim_rand(s) >> 11) * (1.0 / 9007199254740992.0) < p;
}

/* ---- sim.c ----------------------------------------------------------------------- */

int rr_sim_run_seed(const rr_sim_opts *opt, uint64_t seed, uint32_t *liveness_ticks);
void rr_sim_push_event(rr_sim *s, uint64_t at_us, uint8_t kind, uint32_t node, rr_message *m);
void rr_sim_crash(rr_sim *s, uint32_t node);
void rr_sim_restart(rr_sim *s, uint32_t node);
/* Steps a message into a live node; the message stays the caller's. */
void rr_sim_step(rr_sim *s, uint32_t node, const rr_message *m);
/* Applies committed entries to a node's state machine (and conf changes to its core). */
void rr_sim_apply(rr_sim *s, rr_sim_node *n, const rr_entry *ents, uint32_t n_ents);
/* Restores a node's state machine from snapshot data. */
void rr_sim_sm_restore(rr_sim *s, rr_sim_node *n, const rr_snapshot *snap);
void rr_sim_deliver_responses(rr_sim *s, rr_sim_node *n, rr_message *op);
void *rr_sim_xcalloc(size_t n, size_t size);
void *rr_sim_xrealloc(void *p, size_t size);

/* ---- disk.c ---------------------------------------------------------------------- */

void rr_sim_msgq_push(rr_sim_msgq *q, rr_message *m);
bool rr_sim_msgq_pop(rr_sim_msgq *q, rr_message *m);
void rr_sim_msgq_free(rr_sim_msgq *q);
void rr_sim_disk_init(rr_sim_node *n, const rr_snapshot *boot);
/* Takes over op (a MsgStorageAppend, or the equivalent built from a sync Ready). */
void rr_sim_disk_write(rr_sim *s, rr_sim_node *n, rr_message *op, bool sync);
void rr_sim_disk_fsync_done(rr_sim *s, rr_sim_node *n);
void rr_sim_disk_crash(rr_sim *s, rr_sim_node *n);
/* Rebuilds the cache from the durable image; returns 0 or an error. */
int rr_sim_disk_recover(rr_sim *s, rr_sim_node *n);
void rr_sim_disk_free(rr_sim_node *n);
/* The term of entry i in a storage, or 0 when unknown (compacted or absent). */
rr_term_t rr_sim_storage_term(rr_memstorage *ms, rr_index_t i);
rr_index_t rr_sim_storage_last(rr_memstorage *ms);
rr_index_t rr_sim_storage_snap_index(rr_memstorage *ms);
/* Snapshots the state machine at its applied index, then compacts (workload). */
void rr_sim_snapshot_create(rr_sim *s, rr_sim_node *n);
void rr_sim_snapshot_take(rr_sim_node *n);
/* The Storage the core reads: the cache, except that a snapshot asked for is taken fresh
 * from the state machine, as etcd's rafttest does (an older one may predate the
 * configuration that made the leader send it, and the follower would refuse it). */
rr_storage rr_sim_disk_storage(rr_sim_node *n);

/* ---- net.c ----------------------------------------------------------------------- */

/* Sends a message from node `from` (taken over). */
void rr_sim_net_send(rr_sim *s, uint32_t from, rr_message *m);
void rr_sim_net_deliver(rr_sim *s, rr_message *m);
void rr_sim_net_partition(rr_sim *s);
void rr_sim_net_heal(rr_sim *s);

/* ---- check.c --------------------------------------------------------------------- */

/* Records a violation (the first one wins) with a printf-style detail. */
void rr_sim_fail(rr_sim *s, const char *invariant, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void rr_sim_trace(rr_sim *s, uint8_t kind, uint8_t what, uint32_t node, const rr_message *m,
                  uint64_t aux);
void rr_sim_trace_dump(const rr_sim *s, uint64_t last);
void rr_sim_check_free(rr_sim *s);
uint64_t rr_sim_entry_hash(const rr_entry *e);
void rr_sim_check_leader(rr_sim *s, rr_sim_node *n);
void rr_sim_check_append(rr_sim *s, rr_sim_node *n, const rr_entry *ents, uint32_t n_ents);
void rr_sim_check_snapshot(rr_sim *s, const rr_snapshot *snap);
void rr_sim_check_commit(rr_sim *s, rr_sim_node *n, rr_index_t commit);
void rr_sim_check_applied(rr_sim *s, rr_sim_node *n, const rr_entry *e);
void rr_sim_check_send(rr_sim *s, rr_sim_node *n, const rr_message *m);
void rr_sim_check_promises(rr_sim *s, rr_sim_node *n);
void rr_sim_check_truncate(rr_sim *s, rr_sim_node *n, const rr_message *op);

/* ---- workload.c ------------------------------------------------------------------ */

void rr_sim_workload(rr_sim *s);
void rr_sim_read_state(rr_sim *s, rr_sim_node *n, const rr_read_state *rs);
void rr_sim_reads_serve(rr_sim *s, rr_sim_node *n);
void rr_sim_prop_applied(rr_sim *s, rr_sim_node *n, const rr_entry *e);
/* True once the cluster is quiet: one leader, everything committed and applied. */
bool rr_sim_live(rr_sim *s);

#endif
