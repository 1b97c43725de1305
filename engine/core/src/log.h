/*
 * log.h: the raft log = stable entries (Storage) + the unstable tail (etcd raft's raftLog
 * and unstable). Depends on core.h only.
 *
 *   snapshot/first ... applied ... applying ... committed ... stabled ... last
 *   |<-------------- storage (persisted) ------------->|<-- unstable -->|
 *
 * Invariants (asserted in check_invariants, but for the one marked "kept, not asserted"):
 *   applied <= applying <= committed <= last_index; first_index - 1 <= applied except
 *   between rr_log_restore() and the application of that snapshot (kept, not asserted:
 *   the exception has no state of its own to test against)
 *   unstable.offset == index of unstable.entries.v[0] (== stabled + 1 once entries exist),
 *   and a pending unstable snapshot, if any, has index offset - 1 when restored and below
 *   offset always (entries after it may be reported stable before the snapshot is).
 *   offset_in_progress in [offset, offset + n]: entries below it are being written by the
 *   storage (async mode) and must not be handed out again.
 * Entries handed out (slices, next_* functions) carry their own buffer references.
 */
#ifndef RR_CORE_LOG_H
#define RR_CORE_LOG_H

#include "entry_internal.h"
#include "ringraft/core.h"

/* (index, term) of an entry, etcd's entryID. */
typedef struct rr_entry_id {
    rr_term_t term;
    rr_index_t index;
} rr_entry_id;

typedef struct rr_unstable {
    rr_snapshot *snapshot; /* owned incoming snapshot not yet persisted, or NULL */
    rr_entry_vec entries;  /* owned; entries.v[i].index == offset + i */
    /* Index of entries.v[0] (or where it would be): storage holds what precedes it. It may
     * lie below storage's last index: the next write then truncates storage. */
    rr_index_t offset;
    bool snapshot_in_progress; /* the snapshot is being written: not handed out again */
    /* Exclusive end of the entries being written (async mode); in [offset, offset + n]. */
    rr_index_t offset_in_progress;
} rr_unstable;

/* What the log tells an observer: the events etcd's raftLog and unstable write to their
 * logger at INFO level, which the conformance transcripts print. The core has no stdio:
 * whoever installs the hook formats the line. */
typedef enum rr_log_event_type {
    /* "found conflict at index <index> [existing term: <log_term>, conflicting term: <term>]" */
    RR_LOG_EVENT_CONFLICT = 0,
    /* "replace the unstable entries from index <index>" */
    RR_LOG_EVENT_UNSTABLE_REPLACE = 1,
    /* "truncate the unstable entries before index <index>" */
    RR_LOG_EVENT_UNSTABLE_TRUNCATE = 2,
    /* "entry at index <index> missing from unstable log; ignoring" */
    RR_LOG_EVENT_STABLE_MISSING = 3,
    /* "entry at index <index> matched unstable snapshot; ignoring" */
    RR_LOG_EVENT_STABLE_SNAPSHOT = 4,
    /* "entry at (index,term)=(<index>,<term>) mismatched with entry at (<index>,<log_term>)
     *  in unstable log; ignoring" */
    RR_LOG_EVENT_STABLE_MISMATCH = 5,
    /* "log [committed=.., applied=.., applying=.., unstable.offset=..,
     *  unstable.offsetInProgress=.., len(unstable.Entries)=..] starts to restore snapshot
     *  [index: <index>, term: <term>]" — raised before the log changes, so the hook reads
     *  the old state from the rr_log it is given. */
    RR_LOG_EVENT_RESTORE = 6,
} rr_log_event_type;

typedef struct rr_log_event {
    uint8_t type; /* rr_log_event_type */
    rr_index_t index;
    rr_term_t term;     /* the term given to the log (incoming entry, stableTo, snapshot) */
    rr_term_t log_term; /* the term the log holds at index (0 when it has none) */
} rr_log_event;

struct rr_log;
typedef void (*rr_log_event_fn)(void *ctx, const struct rr_log *l, const rr_log_event *ev);

typedef struct rr_log {
    rr_storage storage;
    rr_unstable unstable;
    rr_index_t committed; /* highest index known committed */
    rr_index_t applying;  /* highest index handed to the application to apply */
    rr_index_t applied;   /* highest index the application reported applied */
    /* Flow control of committed entries handed out per Ready (MaxCommittedSizePerReady). */
    uint64_t max_applying_ents_bytes;
    uint64_t applying_ents_bytes;
    bool applying_ents_paused;
    /* Optional observer (NULL after init; set it directly). Called synchronously. */
    rr_log_event_fn on_event;
    void *on_event_ctx;
} rr_log;

/* Builds the log over storage: committed = applied = applying = first_index - 1, the
 * unstable offset after storage's last index. max_applying_ents_bytes 0 means no limit.
 * Returns 0 or -ENOMEM.
 *
 * Allocation: functions returning int report -ENOMEM; the others (append, maybe_append,
 * restore) abort when memory runs out, as the core cannot continue with a half-updated
 * log. Storage errors other than RR_ERR_COMPACTED / RR_ERR_UNAVAILABLE are fatal too. */
int rr_log_init(rr_log *l, rr_storage storage, uint64_t max_applying_ents_bytes);
void rr_log_destroy(rr_log *l);

rr_index_t rr_log_first_index(const rr_log *l);
rr_index_t rr_log_last_index(const rr_log *l);
rr_term_t rr_log_last_term(const rr_log *l);
rr_entry_id rr_log_last_entry_id(const rr_log *l);
/* The term of entry i. 0 with RR_ERR_COMPACTED / RR_ERR_UNAVAILABLE when i is outside
 * [first - 1, last]; the dummy index first - 1 answers the snapshot term. */
int rr_log_term(const rr_log *l, rr_index_t i, rr_term_t *term);
/* term(i) or 0 when unavailable (etcd's zeroTermOnOutOfBounds). */
rr_term_t rr_log_term_or_zero(const rr_log *l, rr_index_t i);
bool rr_log_match_term(const rr_log *l, rr_entry_id id);
/* Raft paper §5.4.1: a candidate's log (last index i, last term t) is at least as
 * up-to-date as ours. */
bool rr_log_is_up_to_date(const rr_log *l, rr_entry_id last);

/* Follower side of MsgApp: entries ents[0..n) following prev. Returns true and
 * *last_new_index when prev matches (conflicting suffix truncated, commit advanced to
 * min(commit, last new index)); false when prev does not match. */
bool rr_log_maybe_append(rr_log *l, rr_entry_id prev, rr_index_t commit, const rr_entry *ents,
                         size_t n, rr_index_t *last_new_index);
/* Leader side: appends to the unstable tail (truncating a conflict). ents are contiguous
 * and start above committed. Returns the new last index. */
rr_index_t rr_log_append(rr_log *l, const rr_entry *ents, size_t n);
/* First index in ents that conflicts with or extends the log, 0 if none. */
rr_index_t rr_log_find_conflict(const rr_log *l, const rr_entry *ents, size_t n);
/* Fast log rejection (etcd's findConflictByTerm): the largest index <= index whose term is
 * <= term, and that term; or the largest whose term is unknown (compacted, not yet here),
 * with term 0. */
rr_entry_id rr_log_find_conflict_by_term(const rr_log *l, rr_index_t index, rr_term_t term);

/* Entries [lo, hi) limited to max_bytes (at least one), appended to out with references;
 * the limit counts only what this call appends. Returns 0, RR_ERR_COMPACTED (lo < first),
 * RR_ERR_UNAVAILABLE (hi > last + 1) or -ENOMEM; on error out is unchanged. */
int rr_log_slice(const rr_log *l, rr_index_t lo, rr_index_t hi, uint64_t max_bytes,
                 rr_entry_vec *out);
/* Entries from i to last, limited to max_bytes; nothing when i > last. */
int rr_log_entries(const rr_log *l, rr_index_t i, uint64_t max_bytes, rr_entry_vec *out);

/* Unstable entries not yet being written: borrowed, valid until the log next changes. */
void rr_log_next_unstable_ents(const rr_log *l, const rr_entry **ents, size_t *n);
bool rr_log_has_next_unstable_ents(const rr_log *l);
bool rr_log_has_next_or_in_progress_unstable_ents(const rr_log *l);
/* The unstable snapshot if not yet being written, else NULL. Borrowed. */
const rr_snapshot *rr_log_next_unstable_snapshot(const rr_log *l);
bool rr_log_has_next_unstable_snapshot(const rr_log *l);
bool rr_log_has_next_or_in_progress_snapshot(const rr_log *l);
/* Marks everything next_unstable_* returned as being written (etcd acceptUnstable). */
void rr_log_accept_unstable(rr_log *l);

/* Committed entries ready to apply, limited by max_applying_ents_bytes less what is being
 * applied, appended to out; nothing while paused or while a snapshot is pending.
 * allow_unstable lets entries not yet stable on this node be applied (synchronous mode, or
 * async with a leader that trusts its own write). Returns 0 or -ENOMEM. */
int rr_log_next_committed_ents(const rr_log *l, bool allow_unstable, rr_entry_vec *out);
bool rr_log_has_next_committed_ents(const rr_log *l, bool allow_unstable);
/* Highest index that may be applied: committed, capped at stabled unless allow_unstable. */
rr_index_t rr_log_max_appliable_index(const rr_log *l, bool allow_unstable);
/* The application was handed entries up to i of `bytes` total. */
void rr_log_accept_applying(rr_log *l, rr_index_t i, uint64_t bytes, bool allow_unstable);
/* The bytes of ents to account as applying: their sizes when MaxCommittedSizePerReady
 * limits them, else 0 (no accounting needed, none computed). */
uint64_t rr_log_applying_bytes(const rr_log *l, const rr_entry *ents, size_t n);
/* The application applied entries up to i of `bytes` total. */
void rr_log_applied_to(rr_log *l, rr_index_t i, uint64_t bytes);

void rr_log_commit_to(rr_log *l, rr_index_t to);
/* Commits to id.index if id's term matches our log (paper §5.4.2 is the caller's job). */
bool rr_log_maybe_commit(rr_log *l, rr_entry_id id);

/* Storage persisted entries up to id: the unstable entries up to id.index are dropped.
 * Ignored (with an event) when id.index is not an unstable entry (already stable, or the
 * unstable snapshot's index) or when the unstable entry there has another term: it was
 * overwritten after the write began (etcd's unstable.stableTo). The other half of the
 * append ABA guard is the caller's: raft drops a MsgStorageAppendResp from an older term
 * (see etcd's newStorageAppendRespMsg and async_storage_writes_append_aba_race.txt). */
void rr_log_stable_to(rr_log *l, rr_entry_id id);
/* Storage persisted the unstable snapshot at index i. */
void rr_log_stable_snap_to(rr_log *l, rr_index_t i);

/* The latest snapshot: the unstable one if any, else storage's; *out carries a new
 * reference. Returns 0 or storage's error (RR_ERR_SNAP_TEMP_UNAVAILABLE). */
int rr_log_snapshot(const rr_log *l, rr_snapshot *out);
/* Replaces the log with snap (committed = snap index). Takes a reference. */
void rr_log_restore(rr_log *l, const rr_snapshot *snap);

#endif
