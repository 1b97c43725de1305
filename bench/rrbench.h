/*
 * rrbench.h: what rrbench's two modes share. rrbench.c parses options, runs the cluster as
 * threads of one process and prints the report; rrbench_procs.c runs it as one process
 * per node (--procs): the parent spawns the nodes, starts the measured window, may SIGKILL
 * and restart the leader, merges what the nodes report and, with --verify, checks that
 * every acknowledged entry survived.
 */
#ifndef RRBENCH_H
#define RRBENCH_H

#include <stdbool.h>
#include <stdint.h>

#include "histogram.h"
#include "ringraft/node.h"
#include "ringraft/wal.h"

#define NODES_MAX   7
#define CLUSTER_ID  0x72726263ull /* "rrbc" */
#define PAYLOAD_MAX (1u << 20)

typedef struct opts {
    uint32_t nodes;
    uint32_t size_bytes;
    uint32_t clients;
    uint32_t window;
    double duration_s;
    double warmup_s;
    const char *dir;
    bool no_fsync;
    bool inproc;
    uint32_t tick_ms;
    int wal_sync; /* -1: the WAL's default; else rr_wal_sync_mode */
    bool json;
    double rate; /* --rate: open loop at this many proposals/s (0: closed loop) */
    /* --procs: one process per node. */
    bool procs;
    bool verify;           /* record acknowledged and applied entries; check them at the end */
    bool verify_only;      /* only check the files an earlier --verify run left in --dir */
    double kill_leader_at; /* seconds into the measured window; 0: never */
    double restart_after;  /* seconds after the kill */
    uint32_t snapshot_mib; /* a snapshot per this much log (MiB of records); 0: never */
    /* Internal: set by the parent for a node process. */
    rr_node_id_t node_id; /* 0: not a node process */
    uint32_t incarnation; /* 0 on first start, +1 per restart */
    uint16_t ports[NODES_MAX + 1];
} opts;

/* What the report prints, from either mode. */
typedef struct rrbench_result {
    double secs;  /* the measured window */
    double cpu_s; /* CPU seconds of the whole cluster in the window */
    bool per_node_cpu;
    double cpu_node_s[NODES_MAX + 1]; /* per node, when per_node_cpu */
    uint64_t committed, failed;
    uint64_t missed; /* --rate: sends due while --clients x --window were in flight */
    rr_hist lat;     /* commit latency, propose -> callback */
    rr_node_stats leader0, leader1; /* the leader's counters at the window's start and end */
} rrbench_result;

/* What the proposing side counts in the measured window: measuring is set and cleared by
 * the driver; the rest is written by the proposing node's apply thread (completions). */
typedef struct rrbench_tally {
    uint32_t measuring; /* atomic: 1 during the measured window */
    uint64_t committed; /* atomic: committed in the window */
    uint64_t failed;    /* atomic: any other outcome in the window */
    rr_hist lat;        /* commit latency of those committed */
} rrbench_tally;

uint64_t rrbench_now_ns(void);
/* Counts the result of a proposal made at start_ns, if the window is open. */
void rrbench_tally_done(rrbench_tally *t, const rr_node_result *res, uint64_t start_ns);
double rrbench_cpu_s(void);
void rrbench_die(const char *what, int rc);
/* Opens node id's WAL under o->dir (or an in-memory one with --no-fsync); exits on error. */
rr_wal *rrbench_open_wal(const opts *o, rr_node_id_t id);
/* Creates --dir if needed; exits if a node's directory is already there (a benchmark
 * starts from empty logs; an earlier run's would be recovered instead). */
void rrbench_fresh_dir(const opts *o);
void rrbench_report(const opts *o, const rrbench_result *r);
/* Node id of the benchmark cluster (voters 1..o->nodes) over its WAL and transport t;
 * exits on error. With o->snapshot_mib, cb->ctx must start with a uint64_t: the state
 * machine (a count of applied entries the caller's apply keeps), which this node's
 * snapshots save and restore. */
rr_node *rrbench_node_new(const opts *o, rr_node_id_t id, rr_transport *t,
                          const rr_node_callbacks *cb);

/* --procs, in the parent: returns the exit status. */
int rrbench_procs(const opts *o, int argc, char **argv);
/* --procs, in a node process (o->node_id set): returns the exit status. */
int rrbench_node_process(const opts *o);

#endif
