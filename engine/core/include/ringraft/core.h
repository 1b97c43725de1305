/*
 * core.h: the pure Raft core of ringraft — types, storage interface and RawNode.
 *
 * The core is a deterministic state machine with the semantics of etcd raft v3.6. It does
 * no I/O, reads no clock, starts no thread and draws no randomness of its own: the caller
 * ticks it, steps messages into it, proposes into it, and collects a Ready that says what
 * to persist, what to send and what to apply. Everything here is single-threaded: one
 * rr_rawnode is used by one thread at a time (engine/node's raft thread).
 *
 * Where it differs from etcd on purpose (each found by rr-sim, each with a unit test in
 * tests/unit/test_protocol.c):
 * - A vote refused for a shorter log by a node that does not campaign (a learner, or one
 *   that applied its own removal) carries that node's commit index in `commit` and the
 *   term there in `log_term`. A candidate whose log has that entry learns it is committed
 *   (etcd-io/etcd#12359: otherwise such a node can block every election while the others
 *   have not applied its removal); a candidate whose log lacks it cannot win (Leader
 *   Completeness), so it steps down and starts no election (a leadership transfer aside)
 *   until it holds the entry; its election timer still ends a leader's lease. A candidate
 *   refused by such a node that knows a lower commit index asks it again with `commit`
 *   set to its own, and a node whose log has the candidate's last entry learns it (it may
 *   not campaign only for not having applied the change that makes it a voter).
 * - A node that knows no leader answers a lower-term MsgVote, MsgHeartbeat or MsgApp with
 *   its term (etcd stays silent unless check quorum or pre-vote is on): with differing
 *   configurations the sender may never hear that term otherwise.
 * - A leader that stays on after applying its own removal (step_down_on_removal off)
 *   commits by the remaining voters' quorum at once, as any leader after a conf change.
 * - A leader answers a ReadIndex at once only if it is the configuration's single voter
 *   (etcd also did when a removed leader faced one other voter), and even then only after
 *   committing an entry of its term (with async storage, a restarted single voter's commit
 *   index may trail entries it acknowledged).
 * - rr_rawnode_apply_conf_change and rr_rawnode_new below.
 *
 * Ownership rules (the same everywhere in this header):
 * - Payload bytes live in reference-counted buffers (rr_buf). An rr_entry or rr_snapshot
 *   points at bytes inside a buffer and holds one reference to it (or buf == NULL when the
 *   bytes are static or empty). Whoever owns an entry owns that reference.
 * - The core never modifies payload bytes; many entries, messages and storage backends may
 *   share one buffer. Reference counts are atomic so buffers may cross threads.
 * - Functions taking `const` pointers borrow them for the duration of the call; the core
 *   takes its own references to whatever it keeps.
 * - A Ready, and every message, entry array and snapshot in it, is owned by the caller
 *   from rr_rawnode_ready() until rr_ready_free() (or rr_message_free() for a message the
 *   caller moved out of the Ready; see rr_ready).
 *
 * Errors are 0 or a negative code (ringraft/errors.h). Protocol outcomes — a proposal
 * dropped for lack of a leader, a transfer refused — are results: RR_DROPPED below.
 */
#ifndef RINGRAFT_CORE_H
#define RINGRAFT_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringraft/errors.h"
#include "ringraft/limits.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef uint64_t rr_term_t;
typedef uint64_t rr_index_t;
typedef uint64_t rr_node_id_t;

/* A proposal or request the core did not accept (no leader, transfer in progress,
 * uncommitted size limit, conf change pending ...). Nothing was appended. */
#define RR_DROPPED (-(RR_ERR_BASE + 50))

/* ---------------------------------------------------------------------------------------
 * Reference-counted payload buffers
 * ------------------------------------------------------------------------------------- */

/* A buffer of immutable bytes shared by entries, messages, the WAL and the network.
 * Embed it in your own allocation; `release` is called once when the last reference goes,
 * on whichever thread drops it. refs starts at 1 for the creator. */
typedef struct rr_buf {
    uint32_t refs;
    void (*release)(struct rr_buf *buf);
} rr_buf;

static inline void rr_buf_ref(rr_buf *buf)
{
    if (buf != NULL)
        __atomic_fetch_add(&buf->refs, 1, __ATOMIC_RELAXED); /* no ordering: we hold a ref */
}

static inline void rr_buf_unref(rr_buf *buf)
{
    /* acq_rel: every write to the buffer by any holder happens-before release(). */
    if (buf != NULL && __atomic_sub_fetch(&buf->refs, 1, __ATOMIC_ACQ_REL) == 0)
        buf->release(buf);
}

/* rr_buf_ref / rr_buf_unref n times in one atomic operation (a run of entries sharing buf);
 * NULL is ignored. */
static inline void rr_buf_ref_n(rr_buf *buf, uint32_t n)
{
    if (buf != NULL)
        __atomic_fetch_add(&buf->refs, n, __ATOMIC_RELAXED);
}

static inline void rr_buf_unref_n(rr_buf *buf, uint32_t n)
{
    if (buf != NULL && __atomic_sub_fetch(&buf->refs, n, __ATOMIC_ACQ_REL) == 0)
        buf->release(buf);
}

/* ---------------------------------------------------------------------------------------
 * Log entries, state, configuration
 * ------------------------------------------------------------------------------------- */

typedef enum rr_entry_type {
    RR_ENTRY_NORMAL = 0,
    RR_ENTRY_CONF_CHANGE = 1,    /* data: rr_conf_change encoded as v1 */
    RR_ENTRY_CONF_CHANGE_V2 = 2, /* data: rr_conf_change encoded as v2 */
} rr_entry_type;

/* A log entry. data == NULL is etcd's nil payload and differs from a non-NULL empty one in
 * rr_entry_size_bytes (so in size limits); encoders keep the distinction. */
typedef struct rr_entry {
    rr_term_t term;
    rr_index_t index;
    const uint8_t *data; /* data_len bytes inside *buf (or static when buf is NULL) */
    rr_buf *buf;         /* one reference owned by whoever owns the entry */
    uint32_t data_len;
    uint8_t type; /* rr_entry_type */
} rr_entry;

/* Releases the entry's buffer reference and clears it. */
void rr_entry_clear(rr_entry *e);

/* Takes (releases) one reference per entry of ents[0..n), as n rr_buf_ref (rr_buf_unref)
 * would, with one atomic operation per run of entries sharing a buffer: the entries of a
 * batch usually do (a proposal slab, a network receive buffer). Unref leaves the entries'
 * fields as they are. */
void rr_entries_ref(const rr_entry *ents, size_t n);
void rr_entries_unref(const rr_entry *ents, size_t n);

/* Bytes an entry accounts for in size limits (MaxSizePerMsg, MaxCommittedSizePerReady):
 * its encoded size as etcd's protobuf would count it, so limits behave as etcd's. */
uint64_t rr_entry_size_bytes(const rr_entry *e);

/* Growable array of owned entries. */
typedef struct rr_entry_vec {
    rr_entry *v;
    size_t n;
    size_t cap;
} rr_entry_vec;

/* Appends a copy of *e taking a new reference on e->buf. Returns 0 or -ENOMEM. The array
 * may move: pointers into vec->v are valid until the next push. */
int rr_entry_vec_push(rr_entry_vec *vec, const rr_entry *e);
/* Releases every entry's reference, keeps the allocation, sets n = 0. */
void rr_entry_vec_clear(rr_entry_vec *vec);
/* Releases everything, including the array. */
void rr_entry_vec_free(rr_entry_vec *vec);

typedef struct rr_hard_state {
    rr_term_t term;
    rr_node_id_t vote;
    rr_index_t commit;
} rr_hard_state;

typedef enum rr_state_type {
    RR_STATE_FOLLOWER = 0,
    RR_STATE_CANDIDATE = 1,
    RR_STATE_LEADER = 2,
    RR_STATE_PRE_CANDIDATE = 3,
} rr_state_type;

typedef struct rr_soft_state {
    rr_node_id_t lead;
    uint8_t raft_state; /* rr_state_type */
} rr_soft_state;

/* A sorted set of distinct nonzero node ids. */
typedef struct rr_id_set {
    uint32_t n;
    rr_node_id_t ids[RR_NODES_MAX];
} rr_id_set;

/* Whether id is in s (binary search). */
bool rr_id_set_contains(const rr_id_set *s, rr_node_id_t id);
/* Inserts keeping order; returns false when full (RR_NODES_MAX). Present ids are kept. */
bool rr_id_set_insert(rr_id_set *s, rr_node_id_t id);
/* Removes id, keeping order; an absent id is not an error. */
void rr_id_set_remove(rr_id_set *s, rr_node_id_t id);

/* The membership as persisted in snapshots (etcd's ConfState). */
typedef struct rr_conf_state {
    rr_id_set voters;
    rr_id_set voters_outgoing; /* non-empty only in a joint configuration */
    rr_id_set learners;
    rr_id_set learners_next; /* voters to become learners when the joint config is left */
    bool auto_leave;
} rr_conf_state;

/* Whether a and b hold the same sets and auto_leave (the sets are sorted: order-free). */
bool rr_conf_state_equal(const rr_conf_state *a, const rr_conf_state *b);

typedef struct rr_snapshot_meta {
    rr_conf_state conf_state;
    rr_index_t index;
    rr_term_t term;
} rr_snapshot_meta;

typedef struct rr_snapshot {
    rr_snapshot_meta meta;
    const uint8_t *data; /* state machine bytes inside *buf */
    rr_buf *buf;
    uint64_t data_len;
} rr_snapshot;

/* Releases the snapshot's data reference and zeroes it. */
void rr_snapshot_clear(rr_snapshot *snap);

/* ---------------------------------------------------------------------------------------
 * Configuration changes
 * ------------------------------------------------------------------------------------- */

typedef enum rr_conf_change_type {
    RR_CONF_ADD_NODE = 0,
    RR_CONF_REMOVE_NODE = 1,
    RR_CONF_UPDATE_NODE = 2,
    RR_CONF_ADD_LEARNER_NODE = 3,
} rr_conf_change_type;

typedef enum rr_conf_change_transition {
    RR_TRANSITION_AUTO = 0,           /* simple if possible, else joint with auto-leave */
    RR_TRANSITION_JOINT_IMPLICIT = 1, /* joint, left automatically */
    RR_TRANSITION_JOINT_EXPLICIT = 2, /* joint, left by an empty conf change */
} rr_conf_change_transition;

typedef struct rr_conf_change_single {
    uint8_t type; /* rr_conf_change_type */
    rr_node_id_t node_id;
} rr_conf_change_single;

/* One configuration change, v1 (exactly one change, transition AUTO) or v2. An empty v2
 * change (n_changes == 0) leaves a joint configuration. */
typedef struct rr_conf_change {
    bool v1;
    uint8_t transition; /* rr_conf_change_transition */
    uint32_t n_changes;
    rr_conf_change_single changes[RR_NODES_MAX];
    const uint8_t *context; /* borrowed; carried opaquely in the entry */
    uint32_t context_len;
} rr_conf_change;

/* Encoded size of cc in an entry's data. */
size_t rr_conf_change_encoded_bytes(const rr_conf_change *cc);
/* Encodes cc into out[0..cap). Returns the bytes written or -ENOBUFS. */
int rr_conf_change_encode(const rr_conf_change *cc, uint8_t *out, size_t cap);
/* Decodes an entry's data (v1 when the entry type is RR_ENTRY_CONF_CHANGE). cc->context
 * points into data. Returns 0 or RR_ERR_CORRUPT / RR_ERR_TOO_LARGE. */
int rr_conf_change_decode(const uint8_t *data, size_t len, bool v1, rr_conf_change *cc);

/* ---------------------------------------------------------------------------------------
 * Messages
 * ------------------------------------------------------------------------------------- */

/* Message types, numbered as etcd's raftpb.MessageType (so traces line up). */
typedef enum rr_msg_type {
    RR_MSG_HUP = 0,
    RR_MSG_BEAT = 1,
    RR_MSG_PROP = 2,
    RR_MSG_APP = 3,
    RR_MSG_APP_RESP = 4,
    RR_MSG_VOTE = 5,
    RR_MSG_VOTE_RESP = 6,
    RR_MSG_SNAP = 7,
    RR_MSG_HEARTBEAT = 8,
    RR_MSG_HEARTBEAT_RESP = 9,
    RR_MSG_UNREACHABLE = 10,
    RR_MSG_SNAP_STATUS = 11,
    RR_MSG_CHECK_QUORUM = 12,
    RR_MSG_TRANSFER_LEADER = 13,
    RR_MSG_TIMEOUT_NOW = 14,
    RR_MSG_READ_INDEX = 15,
    RR_MSG_READ_INDEX_RESP = 16,
    RR_MSG_PRE_VOTE = 17,
    RR_MSG_PRE_VOTE_RESP = 18,
    RR_MSG_STORAGE_APPEND = 19,
    RR_MSG_STORAGE_APPEND_RESP = 20,
    RR_MSG_STORAGE_APPLY = 21,
    RR_MSG_STORAGE_APPLY_RESP = 22,
    RR_MSG_FORGET_LEADER = 23,
    RR_MSG_TYPE_COUNT = 24,
} rr_msg_type;

/* Pseudo node ids used as from/to of the local storage messages in async mode. */
#define RR_LOCAL_APPEND_THREAD ((rr_node_id_t)UINT64_MAX)
#define RR_LOCAL_APPLY_THREAD  ((rr_node_id_t)UINT64_MAX - 1)

/* True for messages that never leave the node (MsgHup, MsgBeat, storage messages ...). */
bool rr_msg_is_local(uint8_t type);
/* True for responses (MsgAppResp, MsgVoteResp, ...). */
bool rr_msg_is_response(uint8_t type);
/* etcd's name for the type ("MsgApp"), for traces; "MsgUnknown" outside the enum. Static. */
const char *rr_msg_type_name(uint8_t type);

typedef struct rr_message {
    uint8_t type; /* rr_msg_type */
    bool reject;
    rr_node_id_t to;
    rr_node_id_t from;
    rr_term_t term;
    rr_term_t log_term;
    rr_index_t index;
    rr_index_t commit;
    rr_node_id_t vote; /* MsgStorageAppend: the vote to persist */
    rr_index_t reject_hint;
    rr_entry *entries; /* owned array of n_entries owned entries */
    uint32_t n_entries;
    rr_snapshot *snapshot; /* owned, or NULL */
    uint8_t *context;      /* owned copy, or NULL */
    uint32_t context_len;
    struct rr_message *responses; /* MsgStorageAppend/Apply: owned array to deliver when done */
    uint32_t n_responses;
} rr_message;

/* Frees everything a message owns (entries' references, arrays, snapshot, context,
 * responses) and zeroes it. The struct itself is the caller's. Arrays, snapshot and context
 * must come from malloc (as the core's do); responses nest one level at most. */
void rr_message_free(rr_message *m);
/* Deep copy: dst gets its own arrays and its own buffer references. Returns 0 or -ENOMEM. */
int rr_message_copy(rr_message *dst, const rr_message *src);

/* ---------------------------------------------------------------------------------------
 * Storage: what the core reads of the persisted log (etcd's Storage interface)
 * ------------------------------------------------------------------------------------- */

/* All callbacks are called on the thread driving the rawnode. Returned entries and
 * snapshots carry their own buffer references, which the core then owns. */
typedef struct rr_storage_ops {
    /* The persisted hard state and configuration. Returns 0 or an error. */
    int (*initial_state)(void *ctx, rr_hard_state *hs, rr_conf_state *cs);
    /* Appends entries [lo, hi) to out, stopping before the total rr_entry_size_bytes
     * exceeds max_bytes — but always at least one entry. Returns 0, RR_ERR_COMPACTED
     * (lo <= the snapshot index), RR_ERR_UNAVAILABLE (hi > last + 1) or -ENOMEM. Any other
     * error is fatal for the core (it asserts). */
    int (*entries)(void *ctx, rr_index_t lo, rr_index_t hi, uint64_t max_bytes, rr_entry_vec *out);
    /* The term of entry i, for i in [first - 1, last]. Returns 0, RR_ERR_COMPACTED or
     * RR_ERR_UNAVAILABLE. */
    int (*term)(void *ctx, rr_index_t i, rr_term_t *term);
    /* Index of the first entry still available (snapshot index + 1). */
    rr_index_t (*first_index)(void *ctx);
    /* Index of the last entry (the snapshot index if the log is empty). */
    rr_index_t (*last_index)(void *ctx);
    /* The most recent snapshot; out->buf carries a new reference. Returns 0 or
     * RR_ERR_SNAP_TEMP_UNAVAILABLE. */
    int (*snapshot)(void *ctx, rr_snapshot *out);
} rr_storage_ops;

typedef struct rr_storage {
    const rr_storage_ops *ops;
    void *ctx;
} rr_storage;

/* The in-memory storage (etcd's MemoryStorage): the log is ents[0..n) where ents[0] is a
 * dummy holding the snapshot's (index, term). Used by tests, the conformance runner and
 * the simulator. Not thread-safe. */
typedef struct rr_memstorage rr_memstorage;

/* An empty storage (the dummy at index 0, term 0), or NULL when out of memory. */
rr_memstorage *rr_memstorage_new(void);
/* Frees ms, its entries (dropping their buffer references) and its snapshot; NULL is
 * ignored. Any rr_storage made from it is invalid afterwards. */
void rr_memstorage_free(rr_memstorage *ms);
/* The Storage interface over ms, for rr_config.storage; valid until rr_memstorage_free.
 * The core only reads through it: writes go through the rr_memstorage_* calls. */
rr_storage rr_memstorage_storage(rr_memstorage *ms);
/* Records hs as the persisted hard state (copied). */
void rr_memstorage_set_hard_state(rr_memstorage *ms, const rr_hard_state *hs);
/* Replaces the log with the snapshot's (index, term). Returns 0 or RR_ERR_SNAP_OUT_OF_DATE. */
int rr_memstorage_apply_snapshot(rr_memstorage *ms, const rr_snapshot *snap);
/* Makes a snapshot at index i (<= last) with cs (NULL keeps the previous configuration, as
 * etcd does) and data (a reference is taken on buf; with buf NULL, data must outlive the
 * storage). Returns 0 or RR_ERR_SNAP_OUT_OF_DATE / RR_ERR_UNAVAILABLE. */
int rr_memstorage_create_snapshot(rr_memstorage *ms, rr_index_t i, const rr_conf_state *cs,
                                  const uint8_t *data, uint64_t len, rr_buf *buf);
/* Discards entries before index i. Returns 0, RR_ERR_COMPACTED or RR_ERR_UNAVAILABLE. */
int rr_memstorage_compact(rr_memstorage *ms, rr_index_t i);
/* Appends entries, truncating any conflicting suffix (entries older than the first index
 * are ignored). Takes references. Returns 0, -ENOMEM, or RR_ERR_UNAVAILABLE on a gap. */
int rr_memstorage_append(rr_memstorage *ms, const rr_entry *ents, size_t n);

/* ---------------------------------------------------------------------------------------
 * RawNode
 * ------------------------------------------------------------------------------------- */

typedef enum rr_read_only_option {
    RR_READ_ONLY_SAFE = 0, /* confirm leadership with a heartbeat round */
    /* Answer from the leader lease, without a heartbeat round. Requires check_quorum.
     * Safe while no clock runs faster than the leader's by more than 12.5 % (limits.h):
     * the lease runs from the sending of the newest heartbeat round a quorum acknowledged,
     * and a read arriving without a valid lease waits for the next acknowledged round.
     * (etcd trusts CheckQuorum instead, which can serve stale reads for up to an
     * election timeout after a new leader could win; tests/unit/test_protocol.c.) */
    RR_READ_ONLY_LEASE_BASED = 1,
} rr_read_only_option;

#define RR_NO_LIMIT UINT64_MAX

typedef struct rr_config {
    rr_node_id_t id; /* nonzero */
    uint32_t election_ticks;
    uint32_t heartbeat_ticks;
    rr_storage storage;
    rr_index_t applied; /* last applied index on restart (0: from storage) */
    /* Seed of the PRNG that randomizes the election timeout in [election, 2*election). */
    uint64_t rand_seed;
    uint64_t max_size_per_msg_bytes;             /* 0: one entry per MsgApp */
    uint64_t max_committed_size_per_ready_bytes; /* 0: RR_NO_LIMIT */
    uint64_t max_uncommitted_entries_size_bytes; /* 0: RR_NO_LIMIT */
    uint32_t max_inflight_msgs;                  /* > 0 */
    uint64_t max_inflight_bytes;                 /* 0: RR_NO_LIMIT */
    bool check_quorum;
    bool pre_vote;
    uint8_t read_only_option; /* rr_read_only_option */
    bool disable_proposal_forwarding;
    bool disable_conf_change_validation;
    bool step_down_on_removal;
    bool async_storage_writes;
} rr_config;

/* Fills defaults: election 10 ticks, heartbeat 1, 256 messages in flight, no byte limits
 * (max_size_per_msg_bytes = RR_NO_LIMIT), rand_seed = id, and — unlike etcd's zero-value
 * Config, as DESIGN.md chooses — pre_vote and check_quorum on. Safe read-only mode, sync
 * storage writes. */
void rr_config_init(rr_config *cfg, rr_node_id_t id, rr_storage storage);

typedef struct rr_read_state {
    rr_index_t index;
    uint8_t *request_ctx; /* owned by the Ready */
    uint32_t request_ctx_len;
} rr_read_state;

/*
 * What the application must do next. Handle in this order (synchronous mode):
 * persist hard_state, entries and snapshot (fsync when must_sync); send messages; apply
 * committed_entries; then call rr_rawnode_advance(). In async mode (config
 * async_storage_writes) persistence and application are requested by the local messages
 * MsgStorageAppend / MsgStorageApply inside `messages`, and advance is not called.
 *
 * Everything inside is owned by the caller until rr_ready_free(). To keep a message
 * longer, copy the struct out and zero the slot; it is then freed with rr_message_free().
 */
typedef struct rr_ready {
    bool has_soft_state;
    rr_soft_state soft_state;
    bool has_hard_state;
    rr_hard_state hard_state;
    rr_read_state *read_states;
    uint32_t n_read_states;
    rr_entry *entries; /* to persist before messages that depend on them */
    uint32_t n_entries;
    rr_snapshot *snapshot; /* to persist, or NULL */
    rr_entry *committed_entries;
    uint32_t n_committed_entries;
    rr_message *messages;
    uint32_t n_messages;
    bool must_sync;
} rr_ready;

/* Frees what the Ready owns (its copies of entries, messages, snapshot and read states,
 * dropping buffer references) and zeroes it; a message moved out of it first (struct
 * copied, slot zeroed) is not touched. */
void rr_ready_free(rr_ready *rd);

typedef enum rr_progress_state {
    RR_PROGRESS_PROBE = 0,
    RR_PROGRESS_REPLICATE = 1,
    RR_PROGRESS_SNAPSHOT = 2,
} rr_progress_state;

typedef struct rr_progress_status {
    rr_node_id_t id;
    rr_index_t match;
    rr_index_t next;
    rr_index_t pending_snapshot;
    uint32_t inflight_count;
    uint32_t inflight_capacity;
    uint64_t inflight_bytes;
    uint8_t state; /* rr_progress_state */
    bool paused;   /* as etcd's IsPaused(): no more MsgApp until something changes */
    bool msg_app_flow_paused;
    bool recent_active;
    bool is_learner;
} rr_progress_status;

typedef struct rr_status {
    rr_node_id_t id;
    rr_hard_state hard_state;
    rr_soft_state soft_state;
    rr_index_t applied;
    rr_node_id_t lead_transferee;
    rr_conf_state config;
    uint32_t n_progress; /* leader only; sorted by id */
    rr_progress_status progress[RR_NODES_MAX];
} rr_status;

typedef struct rr_rawnode rr_rawnode;

/* Creates a RawNode from cfg, reading the initial state from cfg->storage, which must stay
 * valid until rr_rawnode_free. Returns 0 and *out, or -EINVAL (bad config, or a hard state
 * committing past the stored log) / -ENOMEM / a storage error. A hard state committing
 * less than the storage's snapshot is accepted: the snapshot's index is committed. */
int rr_rawnode_new(const rr_config *cfg, rr_rawnode **out);
/* Frees the RawNode; NULL is ignored. A Ready already handed out stays valid (it owns its
 * copies) until its rr_ready_free; the storage is the caller's and is not touched. */
void rr_rawnode_free(rr_rawnode *rn);

/* Advances the logical clock by one tick (heartbeats, elections, check quorum). */
void rr_rawnode_tick(rr_rawnode *rn);
/* Starts an election (a pre-election with pre_vote). Returns 0. */
int rr_rawnode_campaign(rr_rawnode *rn);
/* Proposes data as a normal entry. The core takes its own reference on buf (data must lie
 * inside it); with buf NULL the bytes are copied. Returns 0, RR_DROPPED (no leader,
 * forwarding disabled, transfer in progress, uncommitted size limit), -EINVAL (len over
 * RR_ENTRY_BYTES_MAX) or -ENOMEM. A proposal that returns 0 may still be lost (a leader
 * change): the application learns the outcome from the committed entries. */
int rr_rawnode_propose(rr_rawnode *rn, const uint8_t *data, uint32_t len, rr_buf *buf);
/* Proposes n normal entries at once (one MsgProp: one append, one broadcast). Each entry's
 * data, data_len and buf are used (term, index and type are ignored); the core takes its
 * own reference on each buf, and copies the bytes of an entry whose buf is NULL. All or
 * nothing: returns 0, RR_DROPPED, -EINVAL (n == 0 or an entry over RR_ENTRY_BYTES_MAX) or
 * -ENOMEM. */
int rr_rawnode_propose_batch(rr_rawnode *rn, const rr_entry *ents, uint32_t n);
/* The (index, term) of the last entry in the log, stable or not. Right after a proposal
 * returned 0 on the leader, its n entries are the last n, with this term. */
void rr_rawnode_last_entry(const rr_rawnode *rn, rr_index_t *index, rr_term_t *term);
/* Proposes a configuration change (cc and its context are copied). Returns 0, RR_DROPPED,
 * or -ENOMEM. A change that fails validation while another is pending (or a joint state
 * forbids it) still returns 0 but enters the log as an empty normal entry, as in etcd;
 * disable_conf_change_validation turns that check off. */
int rr_rawnode_propose_conf_change(rr_rawnode *rn, const rr_conf_change *cc);
/* Applies the committed conf change of the entry at `index` (decode the entry with
 * rr_conf_change_decode) and returns the configuration in *cs. Call it for every conf
 * change entry the application applies, in log order. Returns true when the change was
 * applied; false, changing nothing, when the configuration already includes that index —
 * in async mode a snapshot restored from the leader replaces the configuration at once,
 * while a MsgStorageApply created before it may still be on its way to the application,
 * and its changes must not apply twice (etcd leaves that hazard to the application; rr-sim
 * found it). A committed change that cannot apply means the log is corrupt: the core
 * asserts. */
bool rr_rawnode_apply_conf_change(rr_rawnode *rn, rr_index_t index, const rr_conf_change *cc,
                                  rr_conf_state *cs);
/* Steps a message received from a peer, or a local storage response in async mode. m is
 * borrowed: the core copies and references what it keeps. Returns 0, RR_DROPPED (e.g. a
 * proposal forwarded nowhere), -EINVAL for a local message type that must not come from
 * the network, or -ENOENT for a response from a node the configuration does not track. */
int rr_rawnode_step(rr_rawnode *rn, const rr_message *m);

/* Whether rr_rawnode_ready would return anything new: messages, entries to persist or
 * apply, a changed hard or soft state, a snapshot or read states. */
bool rr_rawnode_has_ready(const rr_rawnode *rn);
/* Collects the Ready (call when rr_rawnode_has_ready). The caller owns it until
 * rr_ready_free(); it stays valid across later calls on the rawnode. Handing it out
 * accepts it: the next Ready reports only what changed since. Returns 0. */
int rr_rawnode_ready(rr_rawnode *rn, rr_ready *rd);
/* Synchronous mode only: the last Ready has been persisted, its messages sent and its
 * committed entries applied. Call exactly once per Ready, before the next rr_rawnode_ready;
 * it steps the local acknowledgements (the leader's own append, its own vote). */
void rr_rawnode_advance(rr_rawnode *rn);

/* Requests a linearizable read (ReadIndex, thesis §6.4); the result appears in a later
 * Ready's read_states carrying ctx (copied, at most RR_READ_CONTEXT_BYTES_MAX bytes;
 * contexts of outstanding reads must differ). Once the application has applied up to the
 * read state's index, reads issued before the request may be served. A follower forwards
 * to the leader; with no leader the request is dropped silently (retry on timeout).
 * Returns 0, -EINVAL (ctx too long) or -ENOMEM. */
int rr_rawnode_read_index(rr_rawnode *rn, const uint8_t *ctx, uint32_t ctx_len);
/* Asks the leader to hand leadership to transferee (thesis §3.10): it catches the target up,
 * sends MsgTimeoutNow, and refuses proposals meanwhile; the attempt is abandoned after an
 * election timeout. On a follower the request is forwarded to the leader. */
void rr_rawnode_transfer_leader(rr_rawnode *rn, rr_node_id_t transferee);
/* A follower forgets its leader (lead becomes 0) until it hears from one again: lets it
 * grant votes at once when the application knows the leader is gone. Ignored in lease
 * mode, where the lease depends on followers remembering. */
void rr_rawnode_forget_leader(rr_rawnode *rn);
/* The transport failed to deliver to id: the leader falls back to probing id. */
void rr_rawnode_report_unreachable(rr_rawnode *rn, rr_node_id_t id);
/* The transport finished sending a snapshot to id (failed: it did not arrive). On success
 * the leader waits for id's append response; on failure it probes again later. */
void rr_rawnode_report_snapshot(rr_rawnode *rn, rr_node_id_t id, bool failed);
/* Fills *out (no allocation). Progress entries are filled on the leader only. */
void rr_rawnode_status(const rr_rawnode *rn, rr_status *out);

#ifdef __cplusplus
}
#endif
#endif
