/* log.c: the raft log — stable storage plus the unstable tail, with the commit and apply
 * bookkeeping (etcd raft v3.6 log.go and log_unstable.go semantics). See log.h. */
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "entry_internal.h"
#include "ringraft/assert.h"

static rr_index_t min_index(rr_index_t a, rr_index_t b)
{
    return a < b ? a : b;
}

static rr_index_t max_index(rr_index_t a, rr_index_t b)
{
    return a > b ? a : b;
}

static void emit(const rr_log *l, uint8_t type, rr_index_t index, rr_term_t term,
                 rr_term_t log_term)
{
    if (l->on_event == NULL)
        return;
    const rr_log_event ev = {.type = type, .index = index, .term = term, .log_term = log_term};
    l->on_event(l->on_event_ctx, l, &ev);
}

/* The core cannot go on with a half-updated log (log.h: "Allocation"). */
static void must_alloc(int rc)
{
    RR_ASSERT(rc == 0);
}

static rr_index_t storage_first_index(const rr_log *l)
{
    return l->storage.ops->first_index(l->storage.ctx);
}

static rr_index_t storage_last_index(const rr_log *l)
{
    return l->storage.ops->last_index(l->storage.ctx);
}

static void check_invariants(const rr_log *l)
{
    const rr_unstable *u = &l->unstable;
    /* applied may sit below first - 1 between restoring a snapshot and applying it. */
    RR_ASSERT(l->applied <= l->applying);
    RR_ASSERT(l->applying <= l->committed);
    RR_ASSERT(l->committed <= rr_log_last_index(l));
    RR_ASSERT(u->offset <= u->offset_in_progress);
    RR_ASSERT(u->offset_in_progress <= u->offset + u->entries.n);
    /* offset - 1 when restored; entries after it may become stable before the snapshot
     * does (a storage response reports entries first), moving offset past it. */
    if (u->snapshot != NULL)
        RR_ASSERT(u->snapshot->meta.index < u->offset);
    if (u->entries.n > 0)
        RR_ASSERT(u->entries.v[0].index == u->offset);
    for (size_t i = 1; i < u->entries.n; i++)
        RR_DEBUG_ASSERT(u->entries.v[i].index == u->offset + i);
}

/* =======================================================================================
 * The unstable tail: entries (and a snapshot) not yet known to be in storage.
 *
 * Entries stay here after they are handed out for writing (offset_in_progress marks how
 * far), so that the log keeps answering from memory until storage confirms them: storage
 * may not show a write before it completes.
 * ===================================================================================== */

static bool unstable_maybe_first_index(const rr_unstable *u, rr_index_t *i)
{
    if (u->snapshot == NULL)
        return false;
    *i = u->snapshot->meta.index + 1;
    return true;
}

static bool unstable_maybe_last_index(const rr_unstable *u, rr_index_t *i)
{
    if (u->entries.n > 0) {
        *i = u->offset + u->entries.n - 1;
        return true;
    }
    if (u->snapshot != NULL) {
        *i = u->snapshot->meta.index;
        return true;
    }
    return false;
}

static bool unstable_maybe_term(const rr_unstable *u, rr_index_t i, rr_term_t *term)
{
    if (i < u->offset) {
        if (u->snapshot == NULL || u->snapshot->meta.index != i)
            return false;
        *term = u->snapshot->meta.term;
        return true;
    }
    if (i - u->offset >= u->entries.n)
        return false;
    *term = u->entries.v[i - u->offset].term;
    return true;
}

static void unstable_truncate_and_append(rr_log *l, const rr_entry *ents, size_t n)
{
    rr_unstable *u = &l->unstable;
    rr_index_t from = ents[0].index;
    rr_index_t end = u->offset + u->entries.n; /* one past the last unstable entry */
    RR_ASSERT(from <= end);                    /* no gap */

    if (from == end) {
        must_alloc(rr_entry_vec_push_n(&u->entries, ents, n));
        return;
    }
    if (from <= u->offset) {
        /* The new entries replace the whole tail, and may start before it: storage then
         * truncates its own suffix when it writes them. Nothing is in progress any more. */
        emit(l, RR_LOG_EVENT_UNSTABLE_REPLACE, from, 0, 0);
        must_alloc(rr_entry_vec_reserve(&u->entries, n));
        rr_entry_vec_truncate(&u->entries, 0);
        must_alloc(rr_entry_vec_push_n(&u->entries, ents, n));
        u->offset = from;
        u->offset_in_progress = from;
        return;
    }
    /* Keep [offset, from), drop the conflicting rest. A write in flight that covered the
     * dropped entries no longer makes them stable: only what precedes `from` stays marked. */
    emit(l, RR_LOG_EVENT_UNSTABLE_TRUNCATE, from, 0, 0);
    size_t keep = (size_t)(from - u->offset);
    must_alloc(rr_entry_vec_reserve(&u->entries, keep + n));
    rr_entry_vec_truncate(&u->entries, keep);
    must_alloc(rr_entry_vec_push_n(&u->entries, ents, n));
    u->offset_in_progress = min_index(u->offset_in_progress, from);
}

static void unstable_stable_to(rr_log *l, rr_entry_id id)
{
    rr_unstable *u = &l->unstable;
    rr_term_t term = 0;
    if (!unstable_maybe_term(u, id.index, &term)) {
        emit(l, RR_LOG_EVENT_STABLE_MISSING, id.index, id.term, 0);
        return;
    }
    if (id.index < u->offset) {
        /* The index is the unstable snapshot's: stable_snap_to handles it. */
        emit(l, RR_LOG_EVENT_STABLE_SNAPSHOT, id.index, id.term, term);
        return;
    }
    if (term != id.term) {
        /* The entry was overwritten (a newer leader's entry at the same index) after the
         * write began: what storage confirmed is not what we hold, so keep it unstable
         * until the write of the newer entry reports. */
        emit(l, RR_LOG_EVENT_STABLE_MISMATCH, id.index, id.term, term);
        return;
    }
    rr_entry_vec_drop_front(&u->entries, (size_t)(id.index + 1 - u->offset));
    u->offset = id.index + 1;
    u->offset_in_progress = max_index(u->offset_in_progress, u->offset);
}

static void unstable_set_snapshot(rr_unstable *u, const rr_snapshot *snap)
{
    rr_snapshot copy;
    rr_snapshot_copy(&copy, snap); /* reference first: snap may be our own snapshot */
    if (u->snapshot == NULL) {
        u->snapshot = malloc(sizeof(rr_snapshot));
        RR_ASSERT(u->snapshot != NULL);
    } else {
        rr_snapshot_clear(u->snapshot);
    }
    *u->snapshot = copy;
}

static void unstable_drop_snapshot(rr_unstable *u)
{
    if (u->snapshot == NULL)
        return;
    rr_snapshot_clear(u->snapshot);
    free(u->snapshot);
    u->snapshot = NULL;
    u->snapshot_in_progress = false;
}

/* =======================================================================================
 * The log
 * ===================================================================================== */

int rr_log_init(rr_log *l, rr_storage storage, uint64_t max_applying_ents_bytes)
{
    RR_ASSERT(storage.ops != NULL);
    memset(l, 0, sizeof(*l));
    l->storage = storage;
    l->max_applying_ents_bytes =
        max_applying_ents_bytes == 0 ? RR_NO_LIMIT : max_applying_ents_bytes;
    rr_index_t first = storage_first_index(l);
    rr_index_t last = storage_last_index(l);
    RR_ASSERT(first >= 1);
    RR_ASSERT(first <= last + 1);
    l->unstable.offset = last + 1;
    l->unstable.offset_in_progress = last + 1;
    /* Everything up to the storage's snapshot is committed and applied. */
    l->committed = first - 1;
    l->applying = first - 1;
    l->applied = first - 1;
    return 0;
}

void rr_log_destroy(rr_log *l)
{
    rr_entry_vec_free(&l->unstable.entries);
    unstable_drop_snapshot(&l->unstable);
    memset(l, 0, sizeof(*l));
}

rr_index_t rr_log_first_index(const rr_log *l)
{
    rr_index_t i;
    if (unstable_maybe_first_index(&l->unstable, &i))
        return i;
    return storage_first_index(l);
}

rr_index_t rr_log_last_index(const rr_log *l)
{
    rr_index_t i;
    if (unstable_maybe_last_index(&l->unstable, &i))
        return i;
    return storage_last_index(l);
}

int rr_log_term(const rr_log *l, rr_index_t i, rr_term_t *term)
{
    /* The unstable tail first: it answers without asking storage for the valid range. */
    if (unstable_maybe_term(&l->unstable, i, term))
        return 0;
    *term = 0;
    /* Valid range [first - 1, last]: the entry before first is compacted but its term is
     * kept for matching appends (Raft paper §7, lastIncludedTerm). */
    if (i < rr_log_first_index(l) - 1)
        return RR_ERR_COMPACTED;
    if (i > rr_log_last_index(l))
        return RR_ERR_UNAVAILABLE;
    int rc = l->storage.ops->term(l->storage.ctx, i, term);
    if (rc != 0)
        *term = 0;
    if (rc != 0 && rc != RR_ERR_COMPACTED)
        RR_ASSERT(rc == RR_ERR_UNAVAILABLE); /* any other storage failure is fatal */
    return rc;
}

rr_term_t rr_log_term_or_zero(const rr_log *l, rr_index_t i)
{
    rr_term_t t = 0;
    if (rr_log_term(l, i, &t) != 0)
        return 0;
    return t;
}

rr_term_t rr_log_last_term(const rr_log *l)
{
    rr_term_t t = 0;
    int rc = rr_log_term(l, rr_log_last_index(l), &t);
    RR_ASSERT(rc == 0); /* the last entry's term is always known */
    return t;
}

rr_entry_id rr_log_last_entry_id(const rr_log *l)
{
    return (rr_entry_id){.term = rr_log_last_term(l), .index = rr_log_last_index(l)};
}

bool rr_log_match_term(const rr_log *l, rr_entry_id id)
{
    rr_term_t t = 0;
    return rr_log_term(l, id.index, &t) == 0 && t == id.term;
}

bool rr_log_is_up_to_date(const rr_log *l, rr_entry_id last)
{
    rr_entry_id ours = rr_log_last_entry_id(l);
    return last.term > ours.term || (last.term == ours.term && last.index >= ours.index);
}

/* ---- appending ---- */

rr_index_t rr_log_find_conflict(const rr_log *l, const rr_entry *ents, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        rr_entry_id id = {.term = ents[k].term, .index = ents[k].index};
        if (rr_log_match_term(l, id))
            continue;
        if (id.index <= rr_log_last_index(l))
            emit(l, RR_LOG_EVENT_CONFLICT, id.index, id.term, rr_log_term_or_zero(l, id.index));
        return id.index;
    }
    return 0;
}

rr_entry_id rr_log_find_conflict_by_term(const rr_log *l, rr_index_t index, rr_term_t term)
{
    for (; index > 0; index--) {
        rr_term_t ours = 0;
        /* An unknown term (compacted or not yet here) may match: guess this index. */
        if (rr_log_term(l, index, &ours) != 0)
            return (rr_entry_id){.term = 0, .index = index};
        if (ours <= term)
            return (rr_entry_id){.term = ours, .index = index};
    }
    return (rr_entry_id){.term = 0, .index = 0};
}

rr_index_t rr_log_append(rr_log *l, const rr_entry *ents, size_t n)
{
    if (n == 0)
        return rr_log_last_index(l);
    for (size_t k = 1; k < n; k++)
        RR_DEBUG_ASSERT(ents[k].index == ents[0].index + k);
    /* Committed entries are never overwritten (Raft paper §5.4, Leader Completeness). */
    RR_ASSERT(ents[0].index > l->committed);
    unstable_truncate_and_append(l, ents, n);
    check_invariants(l);
    return rr_log_last_index(l);
}

bool rr_log_maybe_append(rr_log *l, rr_entry_id prev, rr_index_t commit, const rr_entry *ents,
                         size_t n, rr_index_t *last_new_index)
{
    /* Raft paper §5.3: reject unless we hold prev (the Log Matching consistency check). */
    if (!rr_log_match_term(l, prev))
        return false;
    if (n > 0)
        RR_ASSERT(ents[0].index == prev.index + 1);

    rr_index_t last_new = prev.index + n;
    rr_index_t ci = rr_log_find_conflict(l, ents, n);
    if (ci != 0) {
        /* Entries before ci are already ours; a conflict below commit would mean two
         * different committed entries at one index. */
        RR_ASSERT(ci > l->committed);
        size_t skip = (size_t)(ci - (prev.index + 1));
        RR_ASSERT(skip < n);
        rr_log_append(l, ents + skip, n - skip);
    }
    /* Only up to what this message proved we share with the leader. */
    rr_log_commit_to(l, min_index(commit, last_new));
    *last_new_index = last_new;
    return true;
}

/* ---- reading ---- */

/* Appends to out what a size-limited read takes of src[0..want) (rr_entries_within). */
static int push_limited(rr_entry_vec *out, const rr_entry *src, size_t want, size_t taken,
                        uint64_t size_bytes, uint64_t max_bytes)
{
    size_t take = rr_entries_within(src, want, taken, &size_bytes, max_bytes);
    return rr_entry_vec_push_n(out, src, take);
}

int rr_log_slice(const rr_log *l, rr_index_t lo, rr_index_t hi, uint64_t max_bytes,
                 rr_entry_vec *out)
{
    RR_ASSERT(lo <= hi);
    if (lo < rr_log_first_index(l))
        return RR_ERR_COMPACTED;
    if (hi > rr_log_last_index(l) + 1)
        return RR_ERR_UNAVAILABLE;
    if (lo == hi)
        return 0;

    const rr_unstable *u = &l->unstable;
    size_t start = out->n;
    uint64_t size_bytes = 0;
    if (lo < u->offset) {
        rr_index_t cut = min_index(hi, u->offset);
        int rc = l->storage.ops->entries(l->storage.ctx, lo, cut, max_bytes, out);
        if (rc != 0) {
            rr_entry_vec_truncate(out, start);
            /* Storage lost entries that its last index still covers: fatal. */
            if (rc != -ENOMEM)
                RR_ASSERT(rc == RR_ERR_COMPACTED);
            return rc;
        }
        size_t got = out->n - start;
        RR_ASSERT(got <= cut - lo);
        /* A short answer means the size limit was reached inside storage. */
        if (got < cut - lo || hi <= u->offset)
            return 0;
        if (max_bytes != RR_NO_LIMIT)
            size_bytes = rr_entries_size_bytes(out->v + start, got);
    }
    rr_index_t from = max_index(lo, u->offset);
    int rc = push_limited(out, &u->entries.v[from - u->offset], (size_t)(hi - from), out->n - start,
                          size_bytes, max_bytes);
    if (rc != 0)
        rr_entry_vec_truncate(out, start);
    return rc;
}

int rr_log_entries(const rr_log *l, rr_index_t i, uint64_t max_bytes, rr_entry_vec *out)
{
    rr_index_t last = rr_log_last_index(l);
    if (i > last)
        return 0;
    return rr_log_slice(l, i, last + 1, max_bytes, out);
}

/* ---- handing out the unstable tail for persistence ---- */

void rr_log_next_unstable_ents(const rr_log *l, const rr_entry **ents, size_t *n)
{
    const rr_unstable *u = &l->unstable;
    size_t in_progress = (size_t)(u->offset_in_progress - u->offset);
    *n = u->entries.n - in_progress;
    *ents = *n > 0 ? &u->entries.v[in_progress] : NULL;
}

bool rr_log_has_next_unstable_ents(const rr_log *l)
{
    const rr_unstable *u = &l->unstable;
    return u->offset_in_progress < u->offset + u->entries.n;
}

bool rr_log_has_next_or_in_progress_unstable_ents(const rr_log *l)
{
    return l->unstable.entries.n > 0;
}

const rr_snapshot *rr_log_next_unstable_snapshot(const rr_log *l)
{
    const rr_unstable *u = &l->unstable;
    if (u->snapshot == NULL || u->snapshot_in_progress)
        return NULL;
    return u->snapshot;
}

bool rr_log_has_next_unstable_snapshot(const rr_log *l)
{
    return rr_log_next_unstable_snapshot(l) != NULL;
}

bool rr_log_has_next_or_in_progress_snapshot(const rr_log *l)
{
    return l->unstable.snapshot != NULL;
}

void rr_log_accept_unstable(rr_log *l)
{
    rr_unstable *u = &l->unstable;
    if (u->entries.n > 0)
        u->offset_in_progress = u->entries.v[u->entries.n - 1].index + 1;
    if (u->snapshot != NULL)
        u->snapshot_in_progress = true;
}

void rr_log_stable_to(rr_log *l, rr_entry_id id)
{
    unstable_stable_to(l, id);
    check_invariants(l);
}

void rr_log_stable_snap_to(rr_log *l, rr_index_t i)
{
    rr_unstable *u = &l->unstable;
    if (u->snapshot != NULL && u->snapshot->meta.index == i)
        unstable_drop_snapshot(u);
}

/* ---- committing and applying ---- */

void rr_log_commit_to(rr_log *l, rr_index_t to)
{
    if (to <= l->committed)
        return; /* commit never decreases */
    /* Committing past our last entry means the log lost acknowledged entries. */
    RR_ASSERT(to <= rr_log_last_index(l));
    l->committed = to;
}

bool rr_log_maybe_commit(rr_log *l, rr_entry_id id)
{
    /* Term 0 never commits: it would match the 0 that unknown terms read as. */
    if (id.index <= l->committed || id.term == 0)
        return false;
    if (rr_log_term_or_zero(l, id.index) != id.term)
        return false;
    rr_log_commit_to(l, id.index);
    return true;
}

rr_index_t rr_log_max_appliable_index(const rr_log *l, bool allow_unstable)
{
    rr_index_t hi = l->committed;
    if (!allow_unstable)
        hi = min_index(hi, l->unstable.offset - 1);
    return hi;
}

bool rr_log_has_next_committed_ents(const rr_log *l, bool allow_unstable)
{
    if (l->applying_ents_paused)
        return false; /* too many bytes handed out and not yet applied */
    /* A pending snapshot is applied first; entries after it wait, so that the order of
     * application is never in question. */
    if (rr_log_has_next_or_in_progress_snapshot(l))
        return false;
    return l->applying < rr_log_max_appliable_index(l, allow_unstable);
}

int rr_log_next_committed_ents(const rr_log *l, bool allow_unstable, rr_entry_vec *out)
{
    if (!rr_log_has_next_committed_ents(l, allow_unstable))
        return 0;
    rr_index_t lo = l->applying + 1;
    rr_index_t hi = rr_log_max_appliable_index(l, allow_unstable) + 1;
    /* Not paused means below the limit (accept_applying / applied_to keep it so). */
    RR_ASSERT(l->applying_ents_bytes < l->max_applying_ents_bytes);
    uint64_t max_bytes = l->max_applying_ents_bytes == RR_NO_LIMIT
                             ? RR_NO_LIMIT
                             : l->max_applying_ents_bytes - l->applying_ents_bytes;
    int rc = rr_log_slice(l, lo, hi, max_bytes, out);
    if (rc != -ENOMEM)
        RR_ASSERT(rc == 0); /* committed, unapplied entries are never compacted */
    return rc;
}

void rr_log_accept_applying(rr_log *l, rr_index_t i, uint64_t bytes, bool allow_unstable)
{
    RR_ASSERT(i <= l->committed);
    l->applying = i;
    l->applying_ents_bytes += bytes;
    /* Pause when the bytes in flight reach the limit, or when the last batch was cut short
     * by the limit (i below what could have been handed out): the next entry would push
     * us over, so wait for applied_to to make room. */
    l->applying_ents_paused = l->applying_ents_bytes >= l->max_applying_ents_bytes ||
                              i < rr_log_max_appliable_index(l, allow_unstable);
    check_invariants(l);
}

uint64_t rr_log_applying_bytes(const rr_log *l, const rr_entry *ents, size_t n)
{
    return l->max_applying_ents_bytes == RR_NO_LIMIT ? 0 : rr_entries_size_bytes(ents, n);
}

void rr_log_applied_to(rr_log *l, rr_index_t i, uint64_t bytes)
{
    RR_ASSERT(i <= l->committed);
    RR_ASSERT(i >= l->applied);
    l->applied = i;
    l->applying = max_index(l->applying, i);
    /* Saturate: a restart (config applied) reports without having accepted anything. */
    l->applying_ents_bytes = l->applying_ents_bytes > bytes ? l->applying_ents_bytes - bytes : 0;
    l->applying_ents_paused = l->applying_ents_bytes >= l->max_applying_ents_bytes;
    check_invariants(l);
}

/* ---- snapshots ---- */

int rr_log_snapshot(const rr_log *l, rr_snapshot *out)
{
    if (l->unstable.snapshot != NULL) {
        rr_snapshot_copy(out, l->unstable.snapshot);
        return 0;
    }
    return l->storage.ops->snapshot(l->storage.ctx, out);
}

void rr_log_restore(rr_log *l, const rr_snapshot *snap)
{
    emit(l, RR_LOG_EVENT_RESTORE, snap->meta.index, snap->meta.term, 0);
    rr_unstable *u = &l->unstable;
    l->committed = snap->meta.index;
    /* The snapshot replaces the whole log: storage truncates when it persists it. */
    rr_entry_vec_clear(&u->entries);
    u->offset = snap->meta.index + 1;
    u->offset_in_progress = u->offset;
    unstable_set_snapshot(u, snap);
    u->snapshot_in_progress = false;
    check_invariants(l);
}

/* ---- sizes ---- */
