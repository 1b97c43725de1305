/*
 * interaction_env.h: etcd raft's rafttest InteractionEnv over ringraft's RawNode and
 * in-memory storage: several nodes, the messages in flight between them, and the Ready
 * handling loop that etcd's interaction transcripts (the .txt files in testdata/) drive.
 *
 * What the env does, as etcd's harness does it:
 * - Node i (1-based id) is created by add-nodes, optionally bootstrapped from a snapshot at
 *   `index` with term 1 (the storage then holds only its dummy entry). Its storage is an
 *   rr_memstorage whose snapshot() answers the newest entry of the node's History: the
 *   state of an "appender" state machine (the concatenated payloads of applied entries),
 *   recorded after every applied entry.
 * - Handling a Ready prints it; in synchronous mode it then persists hard state, snapshot
 *   or entries into the storage, applies committed entries (committed conf changes go to
 *   rr_rawnode_apply_conf_change), queues the messages and advances. In async mode the
 *   local MsgStorageAppend / MsgStorageApply messages are queued as append and apply work,
 *   done later (process-append-thread, process-apply-thread), whose responses join the
 *   messages in flight.
 * - Output goes to the current case's buffer, indented by two spaces inside stabilize and
 *   multi-node commands. Log level NONE silences all of it except errors.
 * Ownership: the env owns its nodes, their storages and queued messages; everything is
 * freed by rr_ienv_free. Single-threaded test code.
 */
#ifndef RR_CONFORMANCE_INTERACTION_ENV_H
#define RR_CONFORMANCE_INTERACTION_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "datadriven.h"
#include "ringraft/core.h"

/* Nodes one env may hold (ids 1..IENV_NODES_MAX). */
#define IENV_NODES_MAX 64
/* Rounds after which stabilize gives up: transcripts settle within a few dozen. */
#define IENV_STABILIZE_ROUNDS_MAX 10000
#define IENV_ERR_BYTES            512

/* etcd's logger levels; NONE silences the harness output too. */
enum {
    IENV_LEVEL_DEBUG = 0,
    IENV_LEVEL_INFO = 1,
    IENV_LEVEL_WARN = 2,
    IENV_LEVEL_ERROR = 3,
    IENV_LEVEL_FATAL = 4,
    IENV_LEVEL_NONE = 5,
};

/* An ordered queue of owned messages. */
typedef struct rr_ienv_msgs {
    rr_message *v;
    size_t n;
    size_t cap;
} rr_ienv_msgs;

typedef struct rr_ienv_node {
    rr_node_id_t id;
    rr_rawnode *rn;
    rr_memstorage *ms;
    rr_storage inner;   /* ms's own storage interface */
    rr_storage storage; /* what the rawnode reads: inner, with snapshot() from history */
    rr_config cfg;
    rr_ienv_msgs append_work; /* MsgStorageAppend, async mode */
    rr_ienv_msgs apply_work;  /* MsgStorageApply, async mode */
    /* The appender state machine after each applied entry; history[0] is the bootstrap
     * snapshot (or an empty one). Each holds a reference to its data. */
    rr_snapshot *history;
    size_t n_history;
    size_t cap_history;
} rr_ienv_node;

typedef struct rr_ienv {
    rr_ienv_node *nodes[IENV_NODES_MAX]; /* nodes[i] has id i + 1 */
    uint32_t n_nodes;
    rr_ienv_msgs msgs; /* in flight between nodes, in send order */
    int level;
    rr_dd_out *out;     /* where output goes now (the case's buffer, or an indent buffer) */
    rr_dd_out discard;  /* sink while the level is NONE */
    rr_dd_cmd *sub_cmd; /* scratch for commands given as input lines */
    char err[IENV_ERR_BYTES];
    bool fatal; /* the error is the harness's (bad arguments), not a raft outcome */
} rr_ienv;

/* A recipient of deliver-msgs: deliver to id, or drop what is addressed to it. */
typedef struct rr_ienv_recipient {
    rr_node_id_t id;
    bool drop;
} rr_ienv_recipient;

rr_ienv *rr_ienv_new(void);
void rr_ienv_free(rr_ienv *e);

/* Output, subject to the log level. */
rr_dd_out *rr_ienv_sink(rr_ienv *e);
void rr_ienv_puts(rr_ienv *e, const char *s);
void rr_ienv_printf(rr_ienv *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool rr_ienv_quiet(const rr_ienv *e);

/* Output between indent_begin and indent_end is collected in *tmp, then appended to the
 * outer buffer line by line behind two spaces (etcd's withIndent). */
rr_dd_out *rr_ienv_indent_begin(rr_ienv *e, rr_dd_out *tmp);
void rr_ienv_indent_end(rr_ienv *e, rr_dd_out *saved, rr_dd_out *tmp);

/* Records an error message in e->err and returns -1 (fatal: a harness error). */
int rr_ienv_fail(rr_ienv *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int rr_ienv_fatal(rr_ienv *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* etcd's wording for our error codes (storage errors, dropped proposals). */
const char *rr_ienv_strerror(int rc);

/* Commands. Each returns 0, or -1 with e->err set. idx is 0-based and valid. */
int rr_ienv_add_nodes(rr_ienv *e, uint32_t n, const rr_config *tmpl, const rr_conf_state *cs,
                      rr_index_t index, const uint8_t *content, size_t content_len);
/* Proposes data (copied into a buffer of its own) as a normal entry. */
int rr_ienv_propose(rr_ienv *e, uint32_t idx, const uint8_t *data, size_t len);
int rr_ienv_process_ready(rr_ienv *e, uint32_t idx);
int rr_ienv_process_append_thread(rr_ienv *e, uint32_t idx);
int rr_ienv_process_apply_thread(rr_ienv *e, uint32_t idx);
/* Returns the number of messages delivered or dropped. type < 0: every type. */
size_t rr_ienv_deliver_msgs(rr_ienv *e, int type, const rr_ienv_recipient *rs, size_t n);
int rr_ienv_stabilize(rr_ienv *e, const uint32_t *idxs, size_t n);
int rr_ienv_status(rr_ienv *e, uint32_t idx);
int rr_ienv_raft_state(rr_ienv *e);
int rr_ienv_raft_log(rr_ienv *e, uint32_t idx);
int rr_ienv_compact(rr_ienv *e, uint32_t idx, rr_index_t new_first_index);
int rr_ienv_send_snapshot(rr_ienv *e, uint32_t from_idx, uint32_t to_idx);

#endif
