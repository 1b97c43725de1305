/* tracker.c: in-flight windows, per-follower progress and the progress tracker. See
 * tracker.h. Semantics are etcd raft v3.6's tracker package. */
#include "tracker.h"

#include <stdlib.h>
#include <string.h>

#include "ringraft/assert.h"

static rr_index_t min_index(rr_index_t a, rr_index_t b)
{
    return a < b ? a : b;
}

static rr_index_t max_index(rr_index_t a, rr_index_t b)
{
    return a > b ? a : b;
}

/* ---- inflights ---------------------------------------------------------------------- */

void rr_inflights_init(rr_inflights *in, uint32_t size, uint64_t max_bytes)
{
    memset(in, 0, sizeof(*in));
    in->size = size;
    in->max_bytes = max_bytes;
}

void rr_inflights_destroy(rr_inflights *in)
{
    free(in->buf);
    in->buf = NULL;
    in->buf_size = 0;
    in->start = 0;
    in->count = 0;
    in->bytes = 0;
}

/* Doubles the ring, up to `size` slots. A leader may track thousands of followers across
 * groups, most of them idle, so the ring starts empty and grows only when a window fills.
 * Positions are kept: the ring only wraps (at `size`) once buf_size == size, so the used
 * slots always lie below buf_size and realloc preserves them. */
static void inflights_grow(rr_inflights *in)
{
    uint32_t n = in->buf_size == 0 ? 1 : in->buf_size * 2;
    if (n > in->size)
        n = in->size;
    rr_inflight *buf = realloc(in->buf, (size_t)n * sizeof(*buf));
    /* The core has no way to report failure from the replication path; running out of
     * memory for a few hundred 16-byte slots is not survivable anyway. */
    RR_ASSERT(buf != NULL);
    in->buf = buf;
    in->buf_size = n;
}

void rr_inflights_add(rr_inflights *in, rr_index_t index, uint64_t bytes)
{
    RR_ASSERT(!rr_inflights_full(in));
    if (in->count > 0)
        RR_ASSERT(index >= in->buf[(in->start + in->count - 1) % in->size].index);

    uint32_t next = in->start + in->count;
    if (next >= in->size)
        next -= in->size;
    if (next >= in->buf_size)
        inflights_grow(in);
    RR_ASSERT(next < in->buf_size);
    in->buf[next].index = index;
    in->buf[next].bytes = bytes;
    in->count++;
    in->bytes += bytes;
}

void rr_inflights_free_le(rr_inflights *in, rr_index_t to)
{
    if (in->count == 0 || to < in->buf[in->start].index)
        return; /* left of the window: a stale or duplicate acknowledgement */

    uint32_t pos = in->start;
    uint32_t freed = 0;
    uint64_t bytes = 0;
    while (freed < in->count && in->buf[pos].index <= to) {
        bytes += in->buf[pos].bytes;
        freed++;
        if (++pos == in->size)
            pos = 0;
    }
    RR_ASSERT(bytes <= in->bytes);
    in->count -= freed;
    in->bytes -= bytes;
    /* An empty window restarts at slot 0 so that it does not grow the ring needlessly. */
    in->start = in->count == 0 ? 0 : pos;
}

bool rr_inflights_full(const rr_inflights *in)
{
    if (in->count == in->size)
        return true;
    return in->max_bytes != 0 && in->bytes >= in->max_bytes;
}

void rr_inflights_reset(rr_inflights *in)
{
    in->start = 0;
    in->count = 0;
    in->bytes = 0;
}

/* ---- progress ----------------------------------------------------------------------- */

void rr_progress_init(rr_progress *pr, rr_node_id_t id, rr_index_t next, uint32_t max_inflight,
                      uint64_t max_inflight_bytes, bool is_learner)
{
    RR_ASSERT(id != RR_NODE_ID_NONE);
    RR_ASSERT(next >= 1); /* match (0) < next */
    memset(pr, 0, sizeof(*pr));
    pr->id = id;
    pr->next = next;
    pr->state = RR_PROGRESS_PROBE;
    pr->is_learner = is_learner;
    rr_inflights_init(&pr->inflights, max_inflight, max_inflight_bytes);
}

void rr_progress_destroy(rr_progress *pr)
{
    rr_inflights_destroy(&pr->inflights);
}

/* Every state change starts the flow afresh: unpaused, no snapshot pending, nothing in
 * flight (messages of the old state are either lost or will be answered as stale). */
static void progress_reset_state(rr_progress *pr, uint8_t state)
{
    pr->msg_app_flow_paused = false;
    pr->pending_snapshot = 0;
    pr->state = state;
    rr_inflights_reset(&pr->inflights);
}

void rr_progress_become_probe(rr_progress *pr)
{
    /* Leaving StateSnapshot means the snapshot was delivered (or reported done): probe
     * right after it rather than from match, which may well be compacted away. */
    rr_index_t floor = pr->match + 1;
    if (pr->state == RR_PROGRESS_SNAPSHOT)
        floor = max_index(floor, pr->pending_snapshot + 1);
    progress_reset_state(pr, RR_PROGRESS_PROBE);
    pr->next = floor;
    pr->sent_commit = min_index(pr->sent_commit, pr->next - 1);
}

void rr_progress_become_replicate(rr_progress *pr)
{
    progress_reset_state(pr, RR_PROGRESS_REPLICATE);
    pr->next = pr->match + 1;
}

void rr_progress_become_snapshot(rr_progress *pr, rr_index_t snapshot_index)
{
    progress_reset_state(pr, RR_PROGRESS_SNAPSHOT);
    pr->pending_snapshot = snapshot_index;
    /* The snapshot carries everything up to its index, committed included. */
    pr->next = snapshot_index + 1;
    pr->sent_commit = snapshot_index;
}

void rr_progress_sent_entries(rr_progress *pr, uint32_t n_entries, uint64_t bytes)
{
    switch (pr->state) {
    case RR_PROGRESS_REPLICATE:
        /* Optimistic pipelining (thesis §10.2.2): assume the entries arrive and send
         * the next ones without waiting, within the inflights window. */
        if (n_entries > 0) {
            pr->next += n_entries;
            rr_inflights_add(&pr->inflights, pr->next - 1, bytes);
        }
        /* A message that fills the window is treated as a probe: pause until acked. */
        pr->msg_app_flow_paused = rr_inflights_full(&pr->inflights);
        break;
    case RR_PROGRESS_PROBE:
        /* One probe per heartbeat interval (etcd pauses only on non-empty probes). */
        if (n_entries > 0)
            pr->msg_app_flow_paused = true;
        break;
    default:
        RR_UNREACHABLE(); /* no MsgApp is sent while a snapshot is pending */
    }
}

void rr_progress_sent_commit(rr_progress *pr, rr_index_t commit)
{
    pr->sent_commit = commit;
}

bool rr_progress_can_bump_commit(const rr_progress *pr, rr_index_t commit)
{
    /* The follower commits at most up to what it holds (next - 1 in normal operation):
     * once that much commit index is in flight, a larger one would not help. */
    return commit > pr->sent_commit && pr->sent_commit < pr->next - 1;
}

bool rr_progress_maybe_update(rr_progress *pr, rr_index_t n)
{
    if (n <= pr->match)
        return false; /* an outdated response */
    pr->match = n;
    pr->next = max_index(pr->next, n + 1);
    pr->msg_app_flow_paused = false;
    return true;
}

bool rr_progress_maybe_decr_to(rr_progress *pr, rr_index_t rejected, rr_index_t match_hint)
{
    if (pr->state == RR_PROGRESS_REPLICATE) {
        /* Below match the follower already acknowledged: the rejection is stale. */
        if (rejected <= pr->match)
            return false;
        pr->next = pr->match + 1;
        /* The commit index sent with the rejected entries was likely not applied. */
        pr->sent_commit = min_index(pr->sent_commit, pr->next - 1);
        return true;
    }

    /* Probing sends one MsgApp at a time at next - 1: any other rejection is stale
     * (best effort: assumes reordering is rare). */
    if (pr->next - 1 != rejected)
        return false;

    /* Back off using the follower's hint (the optimisation of thesis §3.5), never below
     * match + 1. */
    pr->next = max_index(min_index(rejected, match_hint + 1), pr->match + 1);
    pr->sent_commit = min_index(pr->sent_commit, pr->next - 1);
    pr->msg_app_flow_paused = false;
    return true;
}

bool rr_progress_is_paused(const rr_progress *pr)
{
    switch (pr->state) {
    case RR_PROGRESS_PROBE:
    case RR_PROGRESS_REPLICATE:
        return pr->msg_app_flow_paused;
    case RR_PROGRESS_SNAPSHOT:
        return true;
    default:
        RR_UNREACHABLE();
        return true;
    }
}

const char *rr_progress_state_name(uint8_t state)
{
    switch (state) {
    case RR_PROGRESS_PROBE:
        return "StateProbe";
    case RR_PROGRESS_REPLICATE:
        return "StateReplicate";
    case RR_PROGRESS_SNAPSHOT:
        return "StateSnapshot";
    default:
        return "StateUnknown";
    }
}

/* ---- tracker ------------------------------------------------------------------------ */

void rr_tracker_init(rr_tracker *t, uint32_t max_inflight, uint64_t max_inflight_bytes)
{
    memset(t, 0, sizeof(*t));
    t->max_inflight = max_inflight;
    t->max_inflight_bytes = max_inflight_bytes;
}

void rr_tracker_destroy(rr_tracker *t)
{
    for (uint32_t i = 0; i < t->n_progress; i++)
        rr_progress_destroy(&t->progress[i]);
    t->n_progress = 0;
}

/* Position of id in a progress array sorted by id, or n when absent. */
static uint32_t progress_find(const rr_progress *v, uint32_t n, rr_node_id_t id)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (v[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && v[lo].id == id ? lo : n;
}

rr_progress *rr_tracker_get(rr_tracker *t, rr_node_id_t id)
{
    uint32_t i = progress_find(t->progress, t->n_progress, id);
    return i < t->n_progress ? &t->progress[i] : NULL;
}

const rr_progress *rr_tracker_get_const(const rr_tracker *t, rr_node_id_t id)
{
    uint32_t i = progress_find(t->progress, t->n_progress, id);
    return i < t->n_progress ? &t->progress[i] : NULL;
}

void rr_tracker_conf_state(const rr_tracker *t, rr_conf_state *cs)
{
    memset(cs, 0, sizeof(*cs));
    cs->voters = t->config.voters.incoming;
    cs->voters_outgoing = t->config.voters.outgoing;
    cs->learners = t->config.learners;
    cs->learners_next = t->config.learners_next;
    cs->auto_leave = t->config.auto_leave;
}

bool rr_tracker_is_singleton(const rr_tracker *t)
{
    return t->config.voters.incoming.n == 1 && t->config.voters.outgoing.n == 0;
}

static bool match_acked(void *ctx, rr_node_id_t id, rr_index_t *index)
{
    const rr_progress *pr = rr_tracker_get_const(ctx, id);
    if (pr == NULL)
        return false;
    *index = pr->match;
    return true;
}

rr_index_t rr_tracker_committed(const rr_tracker *t)
{
    /* The callback only reads; the quorum interface takes a plain void *. */
    return rr_joint_committed(&t->config.voters, match_acked, (void *)(uintptr_t)t);
}

/* A voter counts as a "yes" when it was heard from since the last check (learners never
 * reach the quorum functions: they are not in the voter sets). */
static int recent_active_vote(void *ctx, rr_node_id_t id)
{
    const rr_progress *pr = rr_tracker_get_const(ctx, id);
    if (pr == NULL || pr->is_learner)
        return -1;
    return pr->recent_active ? 1 : 0;
}

bool rr_tracker_quorum_active(const rr_tracker *t)
{
    /* CheckQuorum (thesis §6.2): a leader steps down unless a quorum recently answered. */
    return rr_joint_vote_result(&t->config.voters, recent_active_vote, (void *)(uintptr_t)t) ==
           RR_VOTE_WON;
}

void rr_tracker_voter_ids(const rr_tracker *t, rr_id_set *out)
{
    rr_joint_ids(&t->config.voters, out);
}

void rr_tracker_learner_ids(const rr_tracker *t, rr_id_set *out)
{
    *out = t->config.learners;
}

void rr_tracker_reset_votes(rr_tracker *t)
{
    t->voted.n = 0;
    t->granted.n = 0;
}

void rr_tracker_record_vote(rr_tracker *t, rr_node_id_t id, bool granted)
{
    if (rr_id_set_contains(&t->voted, id))
        return; /* the first answer of a node counts (thesis §3.4: one vote per term) */
    /* Only voters decide the election and there are at most RR_NODES_MAX of them; the
     * sets can only overflow with answers from more distinct non-members than that, and
     * dropping those changes no outcome. */
    if (!rr_id_set_insert(&t->voted, id))
        return;
    if (granted) {
        bool ok = rr_id_set_insert(&t->granted, id);
        RR_ASSERT(ok); /* granted is a subset of voted */
    }
}

static int recorded_vote(void *ctx, rr_node_id_t id)
{
    const rr_tracker *t = ctx;
    if (!rr_id_set_contains(&t->voted, id))
        return -1;
    return rr_id_set_contains(&t->granted, id) ? 1 : 0;
}

rr_vote_result rr_tracker_tally_votes(const rr_tracker *t, uint32_t *granted, uint32_t *rejected)
{
    /* The counts are informational (logs); votes of ids no longer tracked are ignored. */
    uint32_t yes = 0, no = 0;
    for (uint32_t i = 0; i < t->n_progress; i++) {
        const rr_progress *pr = &t->progress[i];
        if (pr->is_learner || !rr_id_set_contains(&t->voted, pr->id))
            continue;
        if (rr_id_set_contains(&t->granted, pr->id))
            yes++;
        else
            no++;
    }
    if (granted != NULL)
        *granted = yes;
    if (rejected != NULL)
        *rejected = no;
    return rr_joint_vote_result(&t->config.voters, recorded_vote, (void *)(uintptr_t)t);
}

void rr_tracker_install(rr_tracker *t, const rr_tracker_change *c)
{
    RR_ASSERT(c->n_progress <= RR_NODES_MAX);

    /* Members that left: their in-flight window goes with them. */
    for (uint32_t i = 0; i < t->n_progress; i++) {
        if (progress_find(c->progress, c->n_progress, t->progress[i].id) == c->n_progress)
            rr_progress_destroy(&t->progress[i]);
    }

    /* Both arrays are sorted by id, so the merged one is too. A member that stays keeps
     * its live progress (the change only holds a snapshot of it); only its role, which
     * is what a configuration change alters, comes from the change. */
    rr_progress merged[RR_NODES_MAX];
    for (uint32_t i = 0; i < c->n_progress; i++) {
        const rr_progress *next = &c->progress[i];
        uint32_t j = progress_find(t->progress, t->n_progress, next->id);
        if (j == t->n_progress) {
            RR_ASSERT(next->inflights.buf == NULL); /* a new member owns no window yet */
            merged[i] = *next;
        } else {
            merged[i] = t->progress[j];
            merged[i].is_learner = next->is_learner;
        }
        if (i > 0)
            RR_ASSERT(merged[i - 1].id < merged[i].id);
    }
    memcpy(t->progress, merged, (size_t)c->n_progress * sizeof(merged[0]));
    t->n_progress = c->n_progress;
    t->config = c->config;
}
