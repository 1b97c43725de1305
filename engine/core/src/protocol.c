/*
 * protocol.c: the Raft protocol (etcd raft v3.6's raft.go semantics). See protocol.h.
 *
 * Section numbers cite Diego Ongaro's thesis, "Consensus: Bridging Theory and Practice"
 * (2014); "paper" is the extended Raft paper (Ongaro & Ousterhout, 2014).
 *
 * Memory: messages own their arrays (core.h). This file allocates message arrays, read
 * contexts and queue growth; an allocation failure aborts (RR_ASSERT), since a state
 * machine that silently lost a message or a log entry would be worse than a crash.
 */
#include "protocol.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ringraft/assert.h"
#include "ringraft/le.h"

static const uint8_t campaign_transfer_ctx[] = "CampaignTransfer";
#define CAMPAIGN_TRANSFER_LEN ((uint32_t)(sizeof campaign_transfer_ctx - 1))

typedef enum campaign_type {
    CAMPAIGN_PRE_ELECTION,
    CAMPAIGN_ELECTION,
    CAMPAIGN_TRANSFER,
} campaign_type;

/* ---- small helpers ----------------------------------------------------------------- */

static void *xrealloc(void *p, size_t bytes)
{
    void *q = realloc(p, bytes == 0 ? 1 : bytes);
    RR_ASSERT(q != NULL);
    return q;
}

static uint8_t *dup_bytes(const uint8_t *p, uint32_t len)
{
    if (len == 0)
        return NULL;
    uint8_t *q = xrealloc(NULL, len);
    memcpy(q, p, len);
    return q;
}

void rr_msg_vec_push(rr_msg_vec *vec, rr_message *m)
{
    if (vec->n == vec->cap) {
        vec->cap = vec->cap == 0 ? 8 : vec->cap * 2;
        vec->v = xrealloc(vec->v, vec->cap * sizeof(vec->v[0]));
    }
    vec->v[vec->n++] = *m;
    memset(m, 0, sizeof(*m));
}

void rr_msg_vec_free(rr_msg_vec *vec)
{
    for (size_t i = 0; i < vec->n; i++)
        rr_message_free(&vec->v[i]);
    free(vec->v);
    memset(vec, 0, sizeof(*vec));
}

static rr_message new_msg(uint8_t type, rr_node_id_t to)
{
    rr_message m;
    memset(&m, 0, sizeof(m));
    m.type = type;
    m.to = to;
    return m;
}

/* Moves the entries of vec into m (the message now owns the array and references). */
static void msg_take_entries(rr_message *m, rr_entry_vec *vec)
{
    RR_ASSERT(vec->n <= UINT32_MAX);
    m->entries = vec->n > 0 ? vec->v : NULL;
    m->n_entries = (uint32_t)vec->n;
    if (vec->n == 0)
        free(vec->v);
    memset(vec, 0, sizeof(*vec));
}

static void msg_copy_entries(rr_message *m, const rr_entry *ents, uint32_t n)
{
    rr_entry_vec vec = {0};
    for (uint32_t i = 0; i < n; i++)
        RR_ASSERT(rr_entry_vec_push(&vec, &ents[i]) == 0);
    msg_take_entries(m, &vec);
}

static bool is_vote_type(uint8_t t)
{
    return t == RR_MSG_VOTE || t == RR_MSG_VOTE_RESP || t == RR_MSG_PRE_VOTE ||
           t == RR_MSG_PRE_VOTE_RESP;
}

static uint8_t vote_resp_type(uint8_t t)
{
    RR_ASSERT(t == RR_MSG_VOTE || t == RR_MSG_PRE_VOTE);
    return t == RR_MSG_VOTE ? RR_MSG_VOTE_RESP : RR_MSG_PRE_VOTE_RESP;
}

static bool hard_state_empty(const rr_hard_state *hs)
{
    return hs->term == 0 && hs->vote == 0 && hs->commit == 0;
}

/* splitmix64: a tiny, well-mixed PRNG; the caller seeds it (the core has no randomness
 * source of its own). */
static uint64_t next_rand(rr_raft *r)
{
    uint64_t z = (r->rand_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void reset_randomized_election_timeout(rr_raft *r)
{
    r->randomized_election_timeout_ticks =
        r->election_timeout_ticks + (uint32_t)(next_rand(r) % r->election_timeout_ticks);
}

void rr_raft_set_randomized_election_timeout(rr_raft *r, uint32_t ticks)
{
    r->randomized_election_timeout_ticks = ticks;
}

rr_soft_state rr_raft_soft_state(const rr_raft *r)
{
    rr_soft_state ss = {.lead = r->lead, .raft_state = r->state};
    return ss;
}

rr_hard_state rr_raft_hard_state(const rr_raft *r)
{
    rr_hard_state hs = {.term = r->term, .vote = r->vote, .commit = r->log.committed};
    return hs;
}

/* ---- read-only queue (ReadIndex, thesis §6.4) -------------------------------------- */

static const rr_entry *read_ctx(const rr_message *m)
{
    RR_ASSERT(m->n_entries >= 1);
    return &m->entries[0];
}

static bool ctx_equal(const rr_entry *e, const uint8_t *ctx, uint32_t len)
{
    return e->data_len == len && (len == 0 || memcmp(e->data, ctx, len) == 0);
}

static rr_read_request *read_only_find(rr_read_only *ro, const uint8_t *ctx, uint32_t len)
{
    for (size_t i = 0; i < ro->n; i++) {
        if (ctx_equal(read_ctx(&ro->queue[i].req), ctx, len))
            return &ro->queue[i];
    }
    return NULL;
}

static void read_only_add(rr_read_only *ro, rr_index_t index, const rr_message *m)
{
    const rr_entry *ctx = read_ctx(m);
    if (read_only_find(ro, ctx->data, ctx->data_len) != NULL)
        return;
    if (ro->n == ro->cap) {
        ro->cap = ro->cap == 0 ? 4 : ro->cap * 2;
        ro->queue = xrealloc(ro->queue, ro->cap * sizeof(ro->queue[0]));
    }
    rr_read_request *rq = &ro->queue[ro->n++];
    memset(rq, 0, sizeof(*rq));
    RR_ASSERT(rr_message_copy(&rq->req, m) == 0);
    rq->index = index;
}

static void read_only_reset(rr_read_only *ro)
{
    for (size_t i = 0; i < ro->n; i++)
        rr_message_free(&ro->queue[i].req);
    ro->n = 0;
}

static void read_only_destroy(rr_read_only *ro)
{
    read_only_reset(ro);
    free(ro->queue);
    ro->queue = NULL;
    ro->cap = 0;
}

static int acks_vote(void *ctx, rr_node_id_t id)
{
    return rr_id_set_contains(ctx, id) ? 1 : -1;
}

/* ---- sending ------------------------------------------------------------------------ */

/* Queues m (taking ownership). Responses that vouch for local state wait for persistence
 * (thesis §3.8): see protocol.h. */
static void send(rr_raft *r, rr_message *m)
{
    if (m->from == RR_NODE_ID_NONE)
        m->from = r->id;
    if (is_vote_type(m->type)) {
        RR_ASSERT(m->term != 0); /* campaign messages carry the term they are about */
    } else {
        RR_ASSERT(m->term == 0);
        /* Proposals and read requests are forwarded as if local: no term. */
        if (m->type != RR_MSG_PROP && m->type != RR_MSG_READ_INDEX)
            m->term = r->term;
    }
    if (m->type == RR_MSG_APP_RESP || m->type == RR_MSG_VOTE_RESP ||
        m->type == RR_MSG_PRE_VOTE_RESP) {
        rr_msg_vec_push(&r->msgs_after_append, m);
    } else {
        RR_ASSERT(m->to != r->id);
        rr_msg_vec_push(&r->msgs, m);
    }
}

static bool maybe_send_snapshot(rr_raft *r, rr_node_id_t to, rr_progress *pr)
{
    if (!pr->recent_active)
        return false; /* don't ship a snapshot to a peer that may be down */
    rr_snapshot *snap = xrealloc(NULL, sizeof(*snap));
    memset(snap, 0, sizeof(*snap));
    int err = rr_log_snapshot(&r->log, snap);
    if (err == RR_ERR_SNAP_TEMP_UNAVAILABLE) {
        free(snap);
        return false;
    }
    RR_ASSERT(err == 0);
    RR_ASSERT(snap->meta.index != 0);
    rr_progress_become_snapshot(pr, snap->meta.index);
    rr_message m = new_msg(RR_MSG_SNAP, to);
    m.snapshot = snap;
    send(r, &m);
    return true;
}

/* Sends a MsgApp with new entries (if any) and the commit index. Returns true if a
 * message (MsgApp or MsgSnap) was sent. Empty MsgApps only go out with send_if_empty:
 * they convey the commit index but are waste when sending several in a row. */
static bool maybe_send_append(rr_raft *r, rr_node_id_t to, bool send_if_empty)
{
    rr_progress *pr = rr_tracker_get(&r->trk, to);
    RR_ASSERT(pr != NULL);
    if (rr_progress_is_paused(pr))
        return false;

    rr_index_t prev_index = pr->next - 1;
    rr_term_t prev_term = 0;
    if (rr_log_term(&r->log, prev_index, &prev_term) != 0)
        return maybe_send_snapshot(r, to, pr); /* compacted past next: needs a snapshot */

    rr_entry_vec ents = {0};
    int err = 0;
    /* A throttled replicating follower only gets empty MsgApps: if every in-flight message
     * was lost, one of those is acked or rejected eventually and frees the window. */
    if (pr->state != RR_PROGRESS_REPLICATE || !rr_inflights_full(&pr->inflights))
        err = rr_log_entries(&r->log, pr->next, r->max_msg_size_bytes, &ents);
    if (ents.n == 0 && !send_if_empty) {
        rr_entry_vec_free(&ents);
        return false;
    }
    if (err != 0) {
        rr_entry_vec_free(&ents);
        return maybe_send_snapshot(r, to, pr);
    }

    uint32_t n = (uint32_t)ents.n;
    uint64_t bytes = rr_entries_payload_bytes(ents.v, ents.n);
    rr_message m = new_msg(RR_MSG_APP, to);
    m.index = prev_index;
    m.log_term = prev_term;
    m.commit = r->log.committed;
    msg_take_entries(&m, &ents);
    send(r, &m);
    rr_progress_sent_entries(pr, n, bytes);
    rr_progress_sent_commit(pr, r->log.committed);
    return true;
}

static void send_append(rr_raft *r, rr_node_id_t to)
{
    maybe_send_append(r, to, true);
}

static void send_heartbeat(rr_raft *r, rr_node_id_t to, const uint8_t *ctx, uint32_t len)
{
    rr_progress *pr = rr_tracker_get(&r->trk, to);
    /* Never advance a follower's commit past what it is known to hold. */
    rr_index_t commit = pr->match < r->log.committed ? pr->match : r->log.committed;
    rr_message m = new_msg(RR_MSG_HEARTBEAT, to);
    m.commit = commit;
    m.context = dup_bytes(ctx, len);
    m.context_len = m.context != NULL ? len : 0;
    send(r, &m);
    rr_progress_sent_commit(pr, commit);
}

static void bcast_append(rr_raft *r)
{
    for (uint32_t i = 0; i < r->trk.n_progress; i++) {
        rr_node_id_t id = r->trk.progress[i].id;
        if (id != r->id)
            send_append(r, id);
    }
}

static void bcast_heartbeat_with_ctx(rr_raft *r, const uint8_t *ctx, uint32_t len)
{
    for (uint32_t i = 0; i < r->trk.n_progress; i++) {
        rr_node_id_t id = r->trk.progress[i].id;
        if (id != r->id)
            send_heartbeat(r, id, ctx, len);
    }
}

static bool lease_mode(const rr_raft *r)
{
    return r->read_only.option == RR_READ_ONLY_LEASE_BASED;
}

/* Lease mode: a numbered heartbeat round; its acknowledgements extend the lease. */
static void bcast_lease_heartbeat(rr_raft *r)
{
    uint64_t round = ++r->lease_round;
    size_t slot = round % RR_LEASE_ROUNDS;
    r->lease_rounds[slot].round = round;
    r->lease_rounds[slot].sent_tick = r->leader_ticks;
    memset(&r->lease_rounds[slot].acks, 0, sizeof(r->lease_rounds[slot].acks));
    rr_id_set_insert(&r->lease_rounds[slot].acks, r->id);
    uint8_t ctx[8];
    rr_le_put_u64(ctx, round);
    bcast_heartbeat_with_ctx(r, ctx, sizeof ctx);
}

static void bcast_heartbeat(rr_raft *r)
{
    if (lease_mode(r)) {
        bcast_lease_heartbeat(r);
        return;
    }
    if (r->read_only.n == 0) {
        bcast_heartbeat_with_ctx(r, NULL, 0);
        return;
    }
    const rr_entry *ctx = read_ctx(&r->read_only.queue[r->read_only.n - 1].req);
    bcast_heartbeat_with_ctx(r, ctx->data, ctx->data_len);
}

static void send_timeout_now(rr_raft *r, rr_node_id_t to)
{
    /* The transferee campaigns at once and voters waive their lease check for it: our
     * lease ends here. */
    r->lease_expiry_tick = 0;
    rr_message m = new_msg(RR_MSG_TIMEOUT_NOW, to);
    send(r, &m);
}

/* ---- state transitions -------------------------------------------------------------- */

static void abort_leader_transfer(rr_raft *r)
{
    r->lead_transferee = RR_NODE_ID_NONE;
}

static void reset(rr_raft *r, rr_term_t term)
{
    if (r->term != term) {
        r->term = term;
        r->vote = RR_NODE_ID_NONE;
    }
    r->lead = RR_NODE_ID_NONE;
    r->election_elapsed_ticks = 0;
    r->heartbeat_elapsed_ticks = 0;
    reset_randomized_election_timeout(r);
    abort_leader_transfer(r);
    rr_tracker_reset_votes(&r->trk);

    rr_index_t last = rr_log_last_index(&r->log);
    for (uint32_t i = 0; i < r->trk.n_progress; i++) {
        rr_progress *pr = &r->trk.progress[i];
        pr->match = pr->id == r->id ? last : 0;
        pr->next = last + 1;
        pr->sent_commit = 0;
        pr->state = RR_PROGRESS_PROBE;
        pr->pending_snapshot = 0;
        pr->recent_active = false;
        pr->msg_app_flow_paused = false;
        rr_inflights_reset(&pr->inflights);
    }
    r->pending_conf_index = 0;
    r->uncommitted_size_bytes = 0;
    read_only_reset(&r->read_only);
    r->leader_ticks = 0;
    r->lease_expiry_tick = 0;
    memset(r->lease_rounds, 0, sizeof(r->lease_rounds));
}

static void become_follower(rr_raft *r, rr_term_t term, rr_node_id_t lead)
{
    reset(r, term);
    r->lead = lead;
    r->state = RR_STATE_FOLLOWER;
}

static void become_candidate(rr_raft *r)
{
    RR_ASSERT(r->state != RR_STATE_LEADER);
    reset(r, r->term + 1);
    r->vote = r->id;
    r->state = RR_STATE_CANDIDATE;
}

/* Thesis §9.6: a pre-candidate changes neither its term nor its vote. */
static void become_pre_candidate(rr_raft *r)
{
    RR_ASSERT(r->state != RR_STATE_LEADER);
    rr_tracker_reset_votes(&r->trk);
    r->lead = RR_NODE_ID_NONE;
    r->state = RR_STATE_PRE_CANDIDATE;
}

static bool increase_uncommitted_size(rr_raft *r, const rr_entry *ents, size_t n)
{
    uint64_t s = rr_entries_payload_bytes(ents, n);
    /* An empty tail accepts any proposal, and empty payloads are never refused: a new
     * leader's empty entry and the auto-leave of a joint config must always get in. */
    if (r->uncommitted_size_bytes > 0 && s > 0 &&
        r->uncommitted_size_bytes + s > r->max_uncommitted_size_bytes)
        return false;
    r->uncommitted_size_bytes += s;
    return true;
}

static void reduce_uncommitted_size(rr_raft *r, uint64_t s)
{
    /* The estimate may undercount but never overcounts: saturate at zero. */
    r->uncommitted_size_bytes = s > r->uncommitted_size_bytes ? 0 : r->uncommitted_size_bytes - s;
}

/* Appends ents (term and index assigned here) to the leader's log. The leader acks its own
 * append with a MsgAppResp to itself that waits for persistence like any other ack. */
static bool append_entry(rr_raft *r, rr_entry *ents, size_t n)
{
    rr_index_t li = rr_log_last_index(&r->log);
    for (size_t i = 0; i < n; i++) {
        ents[i].term = r->term;
        ents[i].index = li + 1 + i;
    }
    if (!increase_uncommitted_size(r, ents, n))
        return false;
    li = rr_log_append(&r->log, ents, n);
    rr_message m = new_msg(RR_MSG_APP_RESP, r->id);
    m.index = li;
    send(r, &m);
    return true;
}

static void become_leader(rr_raft *r)
{
    RR_ASSERT(r->state != RR_STATE_FOLLOWER);
    reset(r, r->term);
    r->lead = r->id;
    r->state = RR_STATE_LEADER;
    rr_progress *self = rr_tracker_get(&r->trk, r->id);
    RR_ASSERT(self != NULL);
    rr_progress_become_replicate(self);
    self->recent_active = true; /* the leader is always active to itself */
    /* Conservatively assume a conf change may be pending anywhere in the log. */
    r->pending_conf_index = rr_log_last_index(&r->log);

    /* Paper §5.4.2: a leader commits entries of earlier terms only by committing one of
     * its own, so it appends an empty entry at once (payload 0: never refused). */
    rr_entry empty;
    memset(&empty, 0, sizeof(empty));
    bool ok = append_entry(r, &empty, 1);
    RR_ASSERT(ok);
}

static bool promotable(const rr_raft *r)
{
    const rr_progress *pr = rr_tracker_get_const(&r->trk, r->id);
    return pr != NULL && !pr->is_learner && !rr_log_has_next_or_in_progress_snapshot(&r->log);
}

static bool maybe_commit(rr_raft *r)
{
    rr_entry_id id = {.term = r->term, .index = rr_tracker_committed(&r->trk)};
    return rr_log_maybe_commit(&r->log, id);
}

/* Whether a committed but unapplied entry is a conf change (scanned in pages bounded by
 * the applying size limit, so a long unapplied tail doesn't load at once). */
static bool has_unapplied_conf_changes(const rr_raft *r)
{
    if (r->log.applied >= r->log.committed)
        return false;
    rr_index_t lo = r->log.applied + 1, hi = r->log.committed + 1;
    rr_entry_vec page = {0};
    bool found = false;
    while (lo < hi && !found) {
        int err = rr_log_slice(&r->log, lo, hi, r->log.max_applying_ents_bytes, &page);
        RR_ASSERT(err == 0);
        RR_ASSERT(page.n > 0);
        for (size_t i = 0; i < page.n && !found; i++) {
            uint8_t t = page.v[i].type;
            found = t == RR_ENTRY_CONF_CHANGE || t == RR_ENTRY_CONF_CHANGE_V2;
        }
        lo = page.v[page.n - 1].index + 1;
        rr_entry_vec_clear(&page);
    }
    rr_entry_vec_free(&page);
    return found;
}

static rr_message vote_request(rr_raft *r, uint8_t vote_type, rr_term_t term, rr_node_id_t to)
{
    rr_entry_id last = rr_log_last_entry_id(&r->log);
    rr_message m = new_msg(vote_type, to);
    m.term = term;
    m.index = last.index;
    m.log_term = last.term;
    return m;
}

static void campaign(rr_raft *r, campaign_type t)
{
    rr_term_t term;
    uint8_t vote_type;
    if (t == CAMPAIGN_PRE_ELECTION) {
        become_pre_candidate(r);
        vote_type = RR_MSG_PRE_VOTE;
        term = r->term + 1; /* pre-votes ask about the term we would campaign in */
    } else {
        become_candidate(r);
        vote_type = RR_MSG_VOTE;
        term = r->term;
    }
    rr_id_set voters;
    rr_tracker_voter_ids(&r->trk, &voters);
    for (uint32_t i = 0; i < voters.n; i++) {
        rr_node_id_t id = voters.ids[i];
        if (id == r->id) {
            /* Our own vote counts once it is durable: a response to ourselves that waits
             * for persistence like any other vote. */
            rr_message m = new_msg(vote_resp_type(vote_type), id);
            m.term = term;
            send(r, &m);
            continue;
        }
        rr_message m = vote_request(r, vote_type, term, id);
        if (t == CAMPAIGN_TRANSFER) {
            m.context = dup_bytes(campaign_transfer_ctx, CAMPAIGN_TRANSFER_LEN);
            m.context_len = CAMPAIGN_TRANSFER_LEN;
        }
        send(r, &m);
    }
}

/* Whether our log lacks a committed entry a vote refusal told us of. */
static bool lacks_committed_entry(rr_raft *r)
{
    rr_entry_id id = r->lacks_committed;
    if (id.index == 0)
        return false;
    if (r->log.committed >= id.index || rr_log_match_term(&r->log, id)) {
        r->lacks_committed = (rr_entry_id){0};
        return false;
    }
    return true;
}

static void hup(rr_raft *r, campaign_type t)
{
    if (r->state == RR_STATE_LEADER)
        return;
    if (!promotable(r))
        return;
    /* A node must not campaign with a committed conf change unapplied: its view of the
     * voters could be wrong (thesis §4.1). */
    if (has_unapplied_conf_changes(r))
        return;
    /* Beyond etcd: without pre-vote, a node that cannot win still raises everyone's term
     * with each campaign, and two such nodes voting for each other can keep the one that
     * can win a term behind forever (rr-sim found it). A transfer is the leader's call. */
    if (t != CAMPAIGN_TRANSFER && lacks_committed_entry(r)) {
        /* Our election timer ran out: forget the leader we knew, or its lease would last
         * forever and we would ignore the candidates that can win. */
        if (r->state != RR_STATE_FOLLOWER || r->lead != RR_NODE_ID_NONE)
            become_follower(r, r->term, RR_NODE_ID_NONE);
        return;
    }
    campaign(r, t);
}

static rr_vote_result poll(rr_raft *r, rr_node_id_t id, bool granted)
{
    rr_tracker_record_vote(&r->trk, id, granted);
    uint32_t g = 0, rj = 0;
    return rr_tracker_tally_votes(&r->trk, &g, &rj);
}

/* ---- configuration ------------------------------------------------------------------ */

static void switch_to_config(rr_raft *r, const rr_tracker_change *c, rr_conf_state *cs)
{
    rr_tracker_install(&r->trk, c);
    rr_tracker_conf_state(&r->trk, cs);
    const rr_progress *pr = rr_tracker_get_const(&r->trk, r->id);
    r->is_learner = pr != NULL && pr->is_learner;

    if ((pr == NULL || r->is_learner) && r->state == RR_STATE_LEADER && r->step_down_on_removal) {
        /* Removed or demoted while leading (thesis §4.2.2). */
        become_follower(r, r->term, RR_NODE_ID_NONE);
        return;
    }
    /* A leader that stays on after its removal still leads the others, so it commits by
     * their quorum like any leader (etcd returns here, and a change that shrank the
     * quorum leaves entries the others already hold uncommitted until the next
     * proposal; rr-sim found it). */
    if (r->state != RR_STATE_LEADER || cs->voters.n == 0)
        return;

    if (maybe_commit(r)) {
        bcast_append(r); /* the new quorum committed more */
    } else {
        /* Probe added members now rather than at the next heartbeat or proposal. */
        for (uint32_t i = 0; i < r->trk.n_progress; i++) {
            rr_node_id_t id = r->trk.progress[i].id;
            if (id != r->id)
                maybe_send_append(r, id, false);
        }
    }
    rr_id_set voters;
    rr_tracker_voter_ids(&r->trk, &voters);
    if (r->lead_transferee != RR_NODE_ID_NONE && !rr_id_set_contains(&voters, r->lead_transferee))
        abort_leader_transfer(r);
}

bool rr_raft_apply_conf_change(rr_raft *r, rr_index_t index, const rr_conf_change *cc,
                               rr_conf_state *cs)
{
    if (index <= r->conf_index) {
        rr_tracker_conf_state(&r->trk, cs);
        return false;
    }
    rr_tracker_change *c = xrealloc(NULL, sizeof(*c));
    rr_index_t last = rr_log_last_index(&r->log);
    bool auto_leave = false;
    const char *err;
    if (rr_conf_change_leave_joint(cc))
        err = rr_confchange_leave_joint(&r->trk, last, c);
    else if (rr_conf_change_enter_joint(cc, &auto_leave))
        err = rr_confchange_enter_joint(&r->trk, last, auto_leave, cc->changes, cc->n_changes, c);
    else
        err = rr_confchange_simple(&r->trk, last, cc->changes, cc->n_changes, c);
    /* A committed change that does not apply means the log or the application is broken;
     * continuing would diverge from the other replicas. */
    RR_ASSERT(err == NULL);
    switch_to_config(r, c, cs);
    free(c);
    r->conf_index = index;
    return true;
}

/* ---- applying ----------------------------------------------------------------------- */

static void applied_to(rr_raft *r, rr_index_t index, uint64_t bytes)
{
    rr_index_t applied = index > r->log.applied ? index : r->log.applied;
    rr_log_applied_to(&r->log, applied, bytes);

    if (r->trk.config.auto_leave && applied >= r->pending_conf_index &&
        r->state == RR_STATE_LEADER) {
        /* Leave the joint configuration with an empty v2 change. Its payload is empty, so
         * only a leadership transfer can refuse it, and then this runs again on the next
         * applied entry. */
        rr_entry e;
        memset(&e, 0, sizeof(e));
        e.type = RR_ENTRY_CONF_CHANGE_V2;
        rr_message m = new_msg(RR_MSG_PROP, RR_NODE_ID_NONE);
        m.from = r->id;
        m.entries = &e;
        m.n_entries = 1;
        (void)rr_raft_step(r, &m); /* borrowed message: nothing to free */
    }
}

static void applied_snap(rr_raft *r, const rr_snapshot *snap)
{
    rr_log_stable_snap_to(&r->log, snap->meta.index);
    applied_to(r, snap->meta.index, 0);
}

/* ---- reads -------------------------------------------------------------------------- */

static bool committed_entry_in_current_term(const rr_raft *r)
{
    return rr_log_term_or_zero(&r->log, r->log.committed) == r->term;
}

static void push_read_state(rr_raft *r, rr_index_t index, const rr_entry *ctx)
{
    rr_read_state_vec *v = &r->read_states;
    if (v->n == v->cap) {
        v->cap = v->cap == 0 ? 4 : v->cap * 2;
        v->v = xrealloc(v->v, v->cap * sizeof(v->v[0]));
    }
    rr_read_state *rs = &v->v[v->n++];
    rs->index = index;
    rs->request_ctx = dup_bytes(ctx->data, ctx->data_len);
    rs->request_ctx_len = rs->request_ctx != NULL ? ctx->data_len : 0;
}

/* Answers a read request at read_index: locally as a read state, or to the follower that
 * forwarded it. */
static void respond_to_read_index(rr_raft *r, const rr_message *req, rr_index_t read_index)
{
    if (req->from == RR_NODE_ID_NONE || req->from == r->id) {
        push_read_state(r, read_index, read_ctx(req));
        return;
    }
    rr_message m = new_msg(RR_MSG_READ_INDEX_RESP, req->from);
    m.index = read_index;
    msg_copy_entries(&m, req->entries, req->n_entries);
    send(r, &m);
}

static bool lease_valid(const rr_raft *r)
{
    return r->leader_ticks < r->lease_expiry_tick;
}

static void send_read_index_response(rr_raft *r, const rr_message *m)
{
    /* The one voter answers at once, but (unlike etcd) only once it has committed an
     * entry of its term like any leader: with async storage a restarted singleton leader's
     * commit index can trail entries it acknowledged before the crash. And it must be the
     * one voter: a leader that applied its own removal may face a single voter that is
     * not itself and may already lead a later term. rr-sim found both. */
    if (rr_tracker_is_singleton(&r->trk) &&
        rr_id_set_contains(&r->trk.config.voters.incoming, r->id)) {
        respond_to_read_index(r, m, r->log.committed);
        return;
    }
    if (lease_mode(r)) {
        if (lease_valid(r)) {
            respond_to_read_index(r, m, r->log.committed);
            return;
        }
        /* No valid lease (new leader, or acknowledgements lagging): hold the read at
         * today's commit index until a quorum renews the lease. */
        read_only_add(&r->read_only, r->log.committed, m);
        return;
    }
    /* Safe: confirm leadership with a heartbeat round carrying the context (§6.4). */
    read_only_add(&r->read_only, r->log.committed, m);
    const rr_entry *ctx = read_ctx(m);
    rr_read_request *rq = read_only_find(&r->read_only, ctx->data, ctx->data_len);
    rr_id_set_insert(&rq->acks, r->id);
    bcast_heartbeat_with_ctx(r, ctx->data, ctx->data_len);
}

static void release_pending_read_index(rr_raft *r)
{
    if (r->pending_read_index.n == 0 || !committed_entry_in_current_term(r))
        return;
    rr_msg_vec pending = r->pending_read_index;
    memset(&r->pending_read_index, 0, sizeof(r->pending_read_index));
    for (size_t i = 0; i < pending.n; i++)
        send_read_index_response(r, &pending.v[i]);
    rr_msg_vec_free(&pending);
}

/* A heartbeat response carried ctx: if a quorum acked it, every request up to and
 * including it is confirmed. */
static void read_only_ack(rr_raft *r, rr_node_id_t from, const uint8_t *ctx, uint32_t len)
{
    rr_read_only *ro = &r->read_only;
    rr_read_request *rq = read_only_find(ro, ctx, len);
    if (rq == NULL)
        return;
    rr_id_set_insert(&rq->acks, from);
    if (rr_joint_vote_result(&r->trk.config.voters, acks_vote, &rq->acks) != RR_VOTE_WON)
        return;
    size_t upto = (size_t)(rq - ro->queue) + 1;
    /* Detach the confirmed prefix first: responding may queue nothing here, but keep the
     * queue consistent regardless. */
    rr_read_request *done = xrealloc(NULL, upto * sizeof(*done));
    memcpy(done, ro->queue, upto * sizeof(*done));
    memmove(ro->queue, ro->queue + upto, (ro->n - upto) * sizeof(*done));
    ro->n -= upto;
    for (size_t i = 0; i < upto; i++) {
        respond_to_read_index(r, &done[i].req, done[i].index);
        rr_message_free(&done[i].req);
    }
    free(done);
}

/* A heartbeat response echoed round number ctx: once a quorum acknowledged that round, the
 * lease runs from the round's sending; reads held for a lease are answered. */
static void lease_ack(rr_raft *r, rr_node_id_t from, const uint8_t *ctx, uint32_t len)
{
    if (len != 8)
        return;
    uint64_t round = rr_le_get_u64(ctx);
    size_t slot = round % RR_LEASE_ROUNDS;
    if (r->lease_rounds[slot].round != round || round == 0)
        return; /* too old: a newer round reused the slot */
    rr_id_set_insert(&r->lease_rounds[slot].acks, from);
    if (rr_joint_vote_result(&r->trk.config.voters, acks_vote, &r->lease_rounds[slot].acks) !=
        RR_VOTE_WON)
        return;
    uint64_t e = r->election_timeout_ticks;
    uint64_t lease = e * RR_LEASE_DRIFT_DIV / (RR_LEASE_DRIFT_DIV + 1);
    lease = lease > RR_LEASE_SLACK_TICKS ? lease - RR_LEASE_SLACK_TICKS : 0;
    uint64_t expiry = r->lease_rounds[slot].sent_tick + lease;
    if (expiry > r->lease_expiry_tick)
        r->lease_expiry_tick = expiry;
    if (!lease_valid(r))
        return;
    rr_read_only *ro = &r->read_only;
    size_t n = ro->n;
    rr_read_request *held = ro->queue;
    ro->queue = NULL;
    ro->n = ro->cap = 0;
    for (size_t i = 0; i < n; i++) {
        respond_to_read_index(r, &held[i].req, held[i].index);
        rr_message_free(&held[i].req);
    }
    free(held);
}

/* ---- follower handlers -------------------------------------------------------------- */

static void handle_append_entries(rr_raft *r, const rr_message *m)
{
    if (m->index < r->log.committed) {
        rr_message resp = new_msg(RR_MSG_APP_RESP, m->from);
        resp.index = r->log.committed;
        send(r, &resp);
        return;
    }
    rr_entry_id prev = {.term = m->log_term, .index = m->index};
    rr_index_t last_new = 0;
    if (rr_log_maybe_append(&r->log, prev, m->commit, m->entries, m->n_entries, &last_new)) {
        rr_message resp = new_msg(RR_MSG_APP_RESP, m->from);
        resp.index = last_new;
        send(r, &resp);
        return;
    }
    /* Reject with a hint: the largest (index, term) at or below the probe whose term is <=
     * the probe's term — skips a divergent uncommitted tail in one round trip. */
    rr_index_t last = rr_log_last_index(&r->log);
    rr_index_t hint_index = m->index < last ? m->index : last;
    rr_entry_id hint = rr_log_find_conflict_by_term(&r->log, hint_index, m->log_term);
    rr_message resp = new_msg(RR_MSG_APP_RESP, m->from);
    resp.index = m->index;
    resp.reject = true;
    resp.reject_hint = hint.index;
    resp.log_term = hint.term;
    send(r, &resp);
}

static void handle_heartbeat(rr_raft *r, const rr_message *m)
{
    rr_log_commit_to(&r->log, m->commit);
    rr_message resp = new_msg(RR_MSG_HEARTBEAT_RESP, m->from);
    resp.context = dup_bytes(m->context, m->context_len);
    resp.context_len = resp.context != NULL ? m->context_len : 0;
    send(r, &resp);
}

static bool conf_state_has(const rr_conf_state *cs, rr_node_id_t id)
{
    return rr_id_set_contains(&cs->voters, id) || rr_id_set_contains(&cs->learners, id) ||
           rr_id_set_contains(&cs->voters_outgoing, id);
}

/* Restores the log and configuration from a snapshot; false if it was ignored. */
static bool restore(rr_raft *r, const rr_snapshot *s)
{
    if (s->meta.index <= r->log.committed)
        return false;
    if (r->state != RR_STATE_FOLLOWER) {
        /* Defense in depth: only followers restore. */
        become_follower(r, r->term + 1, RR_NODE_ID_NONE);
        return false;
    }
    if (!conf_state_has(&s->meta.conf_state, r->id))
        return false;

    rr_entry_id id = {.term = s->meta.term, .index = s->meta.index};
    if (rr_log_match_term(&r->log, id)) {
        /* We already have the entry: just fast-forward the commit index. */
        rr_log_commit_to(&r->log, s->meta.index);
        return false;
    }
    rr_log_restore(&r->log, s);

    uint32_t max_inflight = r->trk.max_inflight;
    uint64_t max_inflight_bytes = r->trk.max_inflight_bytes;
    rr_tracker_destroy(&r->trk);
    rr_tracker_init(&r->trk, max_inflight, max_inflight_bytes);
    rr_tracker_change *c = xrealloc(NULL, sizeof(*c));
    const char *err =
        rr_confchange_restore(&r->trk, rr_log_last_index(&r->log), &s->meta.conf_state, c);
    RR_ASSERT(err == NULL);
    rr_conf_state cs;
    switch_to_config(r, c, &cs);
    free(c);
    RR_ASSERT(rr_conf_state_equal(&cs, &s->meta.conf_state));
    r->conf_index = s->meta.index;
    return true;
}

static void handle_snapshot(rr_raft *r, const rr_message *m)
{
    rr_snapshot empty;
    memset(&empty, 0, sizeof(empty));
    const rr_snapshot *s = m->snapshot != NULL ? m->snapshot : &empty;
    rr_message resp = new_msg(RR_MSG_APP_RESP, m->from);
    resp.index = restore(r, s) ? rr_log_last_index(&r->log) : r->log.committed;
    send(r, &resp);
}

/* ---- step functions per role -------------------------------------------------------- */

static int step_leader_prop(rr_raft *r, const rr_message *m)
{
    RR_ASSERT(m->n_entries > 0);
    if (rr_tracker_get(&r->trk, r->id) == NULL)
        return RR_DROPPED; /* removed from the configuration while leading */
    if (r->lead_transferee != RR_NODE_ID_NONE)
        return RR_DROPPED; /* thesis §3.10: no new entries during a transfer */

    rr_entry_vec *ents = &r->scratch;
    rr_entry_vec_clear(ents);
    for (uint32_t i = 0; i < m->n_entries; i++)
        RR_ASSERT(rr_entry_vec_push(ents, &m->entries[i]) == 0);

    for (size_t i = 0; i < ents->n; i++) {
        rr_entry *e = &ents->v[i];
        if (e->type != RR_ENTRY_CONF_CHANGE && e->type != RR_ENTRY_CONF_CHANGE_V2)
            continue;
        rr_conf_change cc;
        if (rr_conf_change_decode(e->data, e->data_len, e->type == RR_ENTRY_CONF_CHANGE, &cc) !=
            0) {
            rr_entry_vec_clear(ents);
            return RR_DROPPED; /* malformed conf change from a peer */
        }
        bool already_pending = r->pending_conf_index > r->log.applied;
        bool already_joint = r->trk.config.voters.outgoing.n > 0;
        bool wants_leave_joint = cc.n_changes == 0;
        bool failed = already_pending || (already_joint && !wants_leave_joint) ||
                      (!already_joint && wants_leave_joint);
        if (failed && !r->disable_conf_change_validation) {
            /* Keep the slot (proposal indexes stay as the proposer expects) but make it a
             * no-op entry. */
            rr_entry_clear(e);
            e->type = RR_ENTRY_NORMAL;
        } else {
            r->pending_conf_index = rr_log_last_index(&r->log) + i + 1;
        }
    }
    bool ok = append_entry(r, ents->v, ents->n);
    rr_entry_vec_clear(ents);
    if (!ok)
        return RR_DROPPED;
    bcast_append(r);
    return 0;
}

static void step_leader_app_resp(rr_raft *r, const rr_message *m, rr_progress *pr)
{
    pr->recent_active = true;
    if (m->reject) {
        /* reject_hint is the follower's guess of the last matching index and log_term its
         * term there; skip every index where our term is above it (at most one probe per
         * term in our log). */
        rr_index_t next_probe = m->reject_hint;
        if (m->log_term > 0)
            next_probe = rr_log_find_conflict_by_term(&r->log, m->reject_hint, m->log_term).index;
        if (rr_progress_maybe_decr_to(pr, m->index, next_probe)) {
            if (pr->state == RR_PROGRESS_REPLICATE)
                rr_progress_become_probe(pr);
            send_append(r, m->from);
        }
        return;
    }

    /* Also move a probing peer that is caught up back to replicate (see the transcript
     * heartbeat_resp_recovers_from_probing). */
    if (!rr_progress_maybe_update(pr, m->index) &&
        !(pr->match == m->index && pr->state == RR_PROGRESS_PROBE))
        return;

    if (pr->state == RR_PROGRESS_PROBE) {
        rr_progress_become_replicate(pr);
    } else if (pr->state == RR_PROGRESS_SNAPSHOT && pr->match + 1 >= rr_log_first_index(&r->log)) {
        /* Caught up from the log whatever snapshot the follower applied: back to replicate
         * through probe, which accounts for the snapshot. */
        rr_progress_become_probe(pr);
        rr_progress_become_replicate(pr);
    } else if (pr->state == RR_PROGRESS_REPLICATE) {
        rr_inflights_free_le(&pr->inflights, m->index);
    }

    if (maybe_commit(r)) {
        /* The leader committed an entry of its term: pending reads may be answered. */
        release_pending_read_index(r);
        bcast_append(r);
    } else if (r->id != m->from && rr_progress_can_bump_commit(pr, r->log.committed)) {
        send_append(r, m->from); /* carry the commit index sooner than a heartbeat would */
    }
    /* The window may allow several messages now (probe -> replicate, or several freed). */
    if (r->id != m->from) {
        while (maybe_send_append(r, m->from, false)) {
        }
    }
    if (m->from == r->lead_transferee && pr->match == rr_log_last_index(&r->log))
        send_timeout_now(r, m->from);
}

static void step_leader_heartbeat_resp(rr_raft *r, const rr_message *m, rr_progress *pr)
{
    pr->recent_active = true;
    pr->msg_app_flow_paused = false;
    /* Even a paused follower gets an (empty) append: it recovers a window whose messages
     * were all lost, and moves a caught-up probing follower back to replicate. */
    if (pr->match < rr_log_last_index(&r->log) || pr->state == RR_PROGRESS_PROBE)
        send_append(r, m->from);
    if (lease_mode(r)) {
        lease_ack(r, m->from, m->context, m->context_len);
        return;
    }
    if (m->context_len == 0)
        return;
    read_only_ack(r, m->from, m->context, m->context_len);
}

static void step_leader_transfer(rr_raft *r, const rr_message *m, rr_progress *pr)
{
    if (pr->is_learner)
        return;
    rr_node_id_t transferee = m->from;
    if (r->lead_transferee != RR_NODE_ID_NONE) {
        if (r->lead_transferee == transferee)
            return; /* already in progress to the same node */
        abort_leader_transfer(r);
    }
    if (transferee == r->id)
        return;
    /* Thesis §3.10: the transfer must finish within an election timeout. */
    r->election_elapsed_ticks = 0;
    r->lead_transferee = transferee;
    if (pr->match == rr_log_last_index(&r->log))
        send_timeout_now(r, transferee);
    else
        send_append(r, transferee); /* catch it up first; MsgAppResp sends TimeoutNow */
}

static int step_leader(rr_raft *r, const rr_message *m)
{
    switch (m->type) {
    case RR_MSG_BEAT:
        bcast_heartbeat(r);
        return 0;
    case RR_MSG_CHECK_QUORUM:
        if (!rr_tracker_quorum_active(&r->trk))
            become_follower(r, r->term, RR_NODE_ID_NONE);
        for (uint32_t i = 0; i < r->trk.n_progress; i++) {
            if (r->trk.progress[i].id != r->id)
                r->trk.progress[i].recent_active = false;
        }
        return 0;
    case RR_MSG_PROP:
        return step_leader_prop(r, m);
    case RR_MSG_READ_INDEX:
        if (!committed_entry_in_current_term(r)) {
            /* §6.4: the commit index is only known once an entry of this term commits. */
            rr_message copy;
            RR_ASSERT(rr_message_copy(&copy, m) == 0);
            rr_msg_vec_push(&r->pending_read_index, &copy);
            return 0;
        }
        send_read_index_response(r, m);
        return 0;
    case RR_MSG_FORGET_LEADER:
        return 0;
    default:
        break;
    }

    rr_progress *pr = rr_tracker_get(&r->trk, m->from);
    if (pr == NULL)
        return 0;
    switch (m->type) {
    case RR_MSG_APP_RESP:
        step_leader_app_resp(r, m, pr);
        break;
    case RR_MSG_HEARTBEAT_RESP:
        step_leader_heartbeat_resp(r, m, pr);
        break;
    case RR_MSG_SNAP_STATUS:
        if (pr->state != RR_PROGRESS_SNAPSHOT)
            return 0;
        if (m->reject)
            pr->pending_snapshot = 0; /* before become_probe: don't probe from it */
        rr_progress_become_probe(pr);
        /* Success: wait for the follower's MsgAppResp. Failure: wait a heartbeat. */
        pr->msg_app_flow_paused = true;
        break;
    case RR_MSG_UNREACHABLE:
        /* Optimistic replication probably lost a MsgApp: fall back to probing. */
        if (pr->state == RR_PROGRESS_REPLICATE)
            rr_progress_become_probe(pr);
        break;
    case RR_MSG_TRANSFER_LEADER:
        step_leader_transfer(r, m, pr);
        break;
    default:
        break;
    }
    return 0;
}

static int step_candidate(rr_raft *r, const rr_message *m)
{
    /* Only count responses of our own kind: a candidate may still get pre-vote responses
     * of its pre-candidacy in this term. */
    uint8_t my_resp = r->state == RR_STATE_PRE_CANDIDATE ? RR_MSG_PRE_VOTE_RESP : RR_MSG_VOTE_RESP;
    switch (m->type) {
    case RR_MSG_PROP:
        return RR_DROPPED; /* no leader */
    case RR_MSG_APP:
        become_follower(r, m->term, m->from); /* m->term == r->term */
        handle_append_entries(r, m);
        return 0;
    case RR_MSG_HEARTBEAT:
        become_follower(r, m->term, m->from);
        handle_heartbeat(r, m);
        return 0;
    case RR_MSG_SNAP:
        become_follower(r, m->term, m->from);
        handle_snapshot(r, m);
        return 0;
    default:
        break;
    }
    if (m->type != my_resp)
        return 0; /* MsgTimeoutNow and others are ignored */
    switch (poll(r, m->from, !m->reject)) {
    case RR_VOTE_WON:
        if (r->state == RR_STATE_PRE_CANDIDATE) {
            campaign(r, CAMPAIGN_ELECTION);
        } else {
            become_leader(r);
            bcast_append(r);
        }
        break;
    case RR_VOTE_LOST:
        /* A pre-vote response carries a future term: stay at ours. */
        become_follower(r, r->term, RR_NODE_ID_NONE);
        break;
    case RR_VOTE_PENDING:
        break;
    }
    return 0;
}

/* Forwards m to the leader (proposals, transfers, reads). */
static void forward_to_leader(rr_raft *r, const rr_message *m)
{
    rr_message copy;
    RR_ASSERT(rr_message_copy(&copy, m) == 0);
    copy.to = r->lead;
    send(r, &copy);
}

static int step_follower(rr_raft *r, const rr_message *m)
{
    switch (m->type) {
    case RR_MSG_PROP:
        if (r->lead == RR_NODE_ID_NONE || r->disable_proposal_forwarding)
            return RR_DROPPED;
        forward_to_leader(r, m);
        return 0;
    case RR_MSG_APP:
        r->election_elapsed_ticks = 0;
        r->lead = m->from;
        handle_append_entries(r, m);
        return 0;
    case RR_MSG_HEARTBEAT:
        r->election_elapsed_ticks = 0;
        r->lead = m->from;
        handle_heartbeat(r, m);
        return 0;
    case RR_MSG_SNAP:
        r->election_elapsed_ticks = 0;
        r->lead = m->from;
        handle_snapshot(r, m);
        return 0;
    case RR_MSG_TRANSFER_LEADER:
        if (r->lead != RR_NODE_ID_NONE)
            forward_to_leader(r, m);
        return 0;
    case RR_MSG_FORGET_LEADER:
        /* A lease-based reader must not forget the leader: the lease protects its reads. */
        if (r->read_only.option != RR_READ_ONLY_LEASE_BASED)
            r->lead = RR_NODE_ID_NONE;
        return 0;
    case RR_MSG_TIMEOUT_NOW:
        /* Transfers skip pre-vote: there is no partition to recover from. */
        hup(r, CAMPAIGN_TRANSFER);
        return 0;
    case RR_MSG_READ_INDEX:
        if (r->lead != RR_NODE_ID_NONE)
            forward_to_leader(r, m);
        return 0;
    case RR_MSG_READ_INDEX_RESP:
        if (m->n_entries == 1)
            push_read_state(r, m->index, &m->entries[0]);
        return 0;
    default:
        return 0;
    }
}

/* ---- Step: term handling, then the role's step function (paper Figure 2) ----------- */

static bool step_higher_term(rr_raft *r, const rr_message *m)
{
    if (m->type == RR_MSG_VOTE || m->type == RR_MSG_PRE_VOTE) {
        bool force = m->context_len == CAMPAIGN_TRANSFER_LEN &&
                     memcmp(m->context, campaign_transfer_ctx, CAMPAIGN_TRANSFER_LEN) == 0;
        bool in_lease = (r->check_quorum && r->lead != RR_NODE_ID_NONE &&
                         r->election_elapsed_ticks < r->election_timeout_ticks) ||
                        r->vote_hold_ticks > 0;
        /* Thesis §4.2.3: within the minimum election timeout of hearing from a leader,
         * ignore vote requests: they come from a disruptive (e.g. removed) server. */
        if (!force && in_lease)
            return false;
    }
    if (m->type == RR_MSG_PRE_VOTE)
        return true; /* never change our term for a pre-vote */
    if (m->type == RR_MSG_PRE_VOTE_RESP && !m->reject)
        return true; /* our own future term, granted: we bump it when we win */
    if (m->type == RR_MSG_APP || m->type == RR_MSG_HEARTBEAT || m->type == RR_MSG_SNAP)
        become_follower(r, m->term, m->from);
    else
        become_follower(r, m->term, RR_NODE_ID_NONE);
    return true;
}

static void step_lower_term(rr_raft *r, const rr_message *m)
{
    /* etcd answers a lower term only where it must and counts on our own campaign to
     * carry our term to the sender otherwise. That fails when configurations differ: we
     * may not campaign at all (not a voter in the configuration we know) or not at the
     * sender (it is missing from that configuration), and the sender, which needs us,
     * never learns why we do not answer: a leader without check quorum stays stuck, a
     * candidate chases our term forever, both adding one per timeout. rr-sim found both.
     * So while we know no leader we also answer as Raft's paper does; with a leader we
     * keep etcd's silence, which spares a cluster the removed node's term. */
    bool leaderless = r->lead == RR_NODE_ID_NONE;
    if ((r->check_quorum || r->pre_vote || leaderless) &&
        (m->type == RR_MSG_HEARTBEAT || m->type == RR_MSG_APP)) {
        /* A stale leader (or one cut off while we advanced our term): answer so that it
         * learns our term. With check quorum we may not bump terms on votes, so this is
         * how a partitioned node's higher term reaches the cluster. */
        rr_message resp = new_msg(RR_MSG_APP_RESP, m->from);
        send(r, &resp);
    } else if (m->type == RR_MSG_PRE_VOTE || (m->type == RR_MSG_VOTE && leaderless)) {
        /* Reject rather than ignore, or a cluster upgraded to pre-vote could deadlock. */
        rr_message resp = new_msg(vote_resp_type(m->type), m->from);
        resp.term = r->term;
        resp.reject = true;
        send(r, &resp);
    } else if (m->type == RR_MSG_STORAGE_APPEND_RESP) {
        /* Appends made under an older term may have been overwritten since (append ABA
         * guard): only the snapshot, term-independent, still counts. */
        if (m->snapshot != NULL)
            applied_snap(r, m->snapshot);
    }
}

static void step_vote(rr_raft *r, const rr_message *m)
{
    /* Beyond etcd: a candidate repeats its request with its commit index to a node that
     * refused it knowing less (see learn_commit_from_rejection). If our log has the
     * candidate's last entry, our logs agree up to it (Log Matching): its commit holds. */
    if (m->commit > r->log.committed && r->state != RR_STATE_LEADER &&
        rr_log_match_term(&r->log, (rr_entry_id){.term = m->log_term, .index = m->index}))
        rr_log_commit_to(&r->log, m->commit < m->index ? m->commit : m->index);
    bool can_vote = r->vote == m->from ||
                    (r->vote == RR_NODE_ID_NONE && r->lead == RR_NODE_ID_NONE) ||
                    (m->type == RR_MSG_PRE_VOTE && m->term > r->term);
    rr_entry_id cand = {.term = m->log_term, .index = m->index};
    bool cand_up_to_date = rr_log_is_up_to_date(&r->log, cand);
    rr_message resp = new_msg(vote_resp_type(m->type), m->from);
    if (can_vote && cand_up_to_date) {
        /* Learners vote too: one may have been promoted without knowing yet. The response
         * carries the request's term so a pre-candidate ahead of us accepts it. */
        resp.term = m->term;
        send(r, &resp);
        if (m->type == RR_MSG_VOTE) {
            r->election_elapsed_ticks = 0;
            r->vote = m->from;
        }
    } else {
        resp.term = r->term;
        resp.reject = true;
        if (!promotable(r) && !cand_up_to_date) {
            /* Beyond etcd (etcd-io/etcd#12359): a node that applied its own removal (or is
             * a learner) never campaigns, yet its longer log can make it refuse every
             * candidate that still counts it as a voter, for lack of knowing that the
             * removal committed. Tell the candidate what we know is committed. */
            resp.commit = r->log.committed;
            resp.log_term = rr_log_term_or_zero(&r->log, r->log.committed);
        }
        send(r, &resp);
    }
}

/* A vote rejection from a node that does not campaign may carry its commit index and the
 * term there (step_vote). Where our log has that entry, the logs match up to it (Log
 * Matching), so it is committed for us too: learning it lets us apply the configuration
 * that no longer needs the refusing node. */
static void learn_commit_from_rejection(rr_raft *r, const rr_message *m)
{
    rr_entry_id id = {.term = m->log_term, .index = m->commit};
    if (m->commit < r->log.committed &&
        (r->state == RR_STATE_CANDIDATE || r->state == RR_STATE_PRE_CANDIDATE)) {
        /* The refuser (a node that does not campaign) knows less than we do, and may
         * not campaign only because it has not applied what we know is committed (say,
         * the change making it a voter; its longer log then refuses us and blocks every
         * election). Ask again with our commit index so that it can learn it. */
        bool pre = r->state == RR_STATE_PRE_CANDIDATE;
        rr_message again = vote_request(r, pre ? RR_MSG_PRE_VOTE : RR_MSG_VOTE,
                                        pre ? r->term + 1 : r->term, m->from);
        again.commit = r->log.committed;
        send(r, &again);
        return;
    }
    if (m->commit <= r->log.committed)
        return;
    if (rr_log_match_term(&r->log, id)) {
        rr_log_commit_to(&r->log, m->commit);
        return;
    }
    /* The refuser's commit index is committed, and our log lacks that entry: we cannot
     * win. Step down and stay quiet until a leader brings it (see lacks_committed). */
    r->lacks_committed = id;
    if (r->state == RR_STATE_CANDIDATE || r->state == RR_STATE_PRE_CANDIDATE)
        become_follower(r, r->term, RR_NODE_ID_NONE);
}

int rr_raft_step(rr_raft *r, const rr_message *m)
{
    if (m->term != 0 && m->term > r->term) {
        if (!step_higher_term(r, m))
            return 0;
    } else if (m->term != 0 && m->term < r->term) {
        step_lower_term(r, m);
        return 0;
    }

    if ((m->type == RR_MSG_VOTE_RESP || m->type == RR_MSG_PRE_VOTE_RESP) && m->reject &&
        m->commit != 0)
        learn_commit_from_rejection(r, m);
    switch (m->type) {
    case RR_MSG_HUP:
        hup(r, r->pre_vote ? CAMPAIGN_PRE_ELECTION : CAMPAIGN_ELECTION);
        return 0;
    case RR_MSG_STORAGE_APPEND_RESP:
        if (m->index != 0) {
            rr_entry_id id = {.term = m->log_term, .index = m->index};
            rr_log_stable_to(&r->log, id);
        }
        if (m->snapshot != NULL)
            applied_snap(r, m->snapshot);
        return 0;
    case RR_MSG_STORAGE_APPLY_RESP:
        if (m->n_entries > 0) {
            rr_index_t index = m->entries[m->n_entries - 1].index;
            applied_to(r, index, rr_log_applying_bytes(&r->log, m->entries, m->n_entries));
            reduce_uncommitted_size(r, rr_entries_payload_bytes(m->entries, m->n_entries));
        }
        return 0;
    case RR_MSG_VOTE:
    case RR_MSG_PRE_VOTE:
        step_vote(r, m);
        return 0;
    default:
        break;
    }
    switch (r->state) {
    case RR_STATE_LEADER:
        return step_leader(r, m);
    case RR_STATE_CANDIDATE:
    case RR_STATE_PRE_CANDIDATE:
        return step_candidate(r, m);
    default:
        return step_follower(r, m);
    }
}

/* ---- ticks -------------------------------------------------------------------------- */

static void step_local(rr_raft *r, uint8_t type)
{
    rr_message m = new_msg(type, RR_NODE_ID_NONE);
    m.from = r->id;
    (void)rr_raft_step(r, &m);
}

static void tick_election(rr_raft *r)
{
    r->election_elapsed_ticks++;
    if (promotable(r) && r->election_elapsed_ticks >= r->randomized_election_timeout_ticks) {
        r->election_elapsed_ticks = 0;
        step_local(r, RR_MSG_HUP);
    }
}

static void tick_heartbeat(rr_raft *r)
{
    r->leader_ticks++;
    r->heartbeat_elapsed_ticks++;
    r->election_elapsed_ticks++;
    if (r->election_elapsed_ticks >= r->election_timeout_ticks) {
        r->election_elapsed_ticks = 0;
        if (r->check_quorum)
            step_local(r, RR_MSG_CHECK_QUORUM);
        /* A transfer that did not finish in an election timeout is abandoned. */
        if (r->state == RR_STATE_LEADER && r->lead_transferee != RR_NODE_ID_NONE)
            abort_leader_transfer(r);
    }
    if (r->state != RR_STATE_LEADER)
        return;
    if (r->heartbeat_elapsed_ticks >= r->heartbeat_timeout_ticks) {
        r->heartbeat_elapsed_ticks = 0;
        step_local(r, RR_MSG_BEAT);
    }
}

void rr_raft_tick(rr_raft *r)
{
    if (r->vote_hold_ticks > 0)
        r->vote_hold_ticks--;
    if (r->state == RR_STATE_LEADER)
        tick_heartbeat(r);
    else
        tick_election(r);
}

/* ---- construction ------------------------------------------------------------------- */

static int validate(const rr_config *c)
{
    if (c->id == RR_NODE_ID_NONE || c->id == RR_LOCAL_APPEND_THREAD ||
        c->id == RR_LOCAL_APPLY_THREAD)
        return -EINVAL;
    if (c->heartbeat_ticks == 0 || c->election_ticks <= c->heartbeat_ticks)
        return -EINVAL;
    if (c->storage.ops == NULL || c->max_inflight_msgs == 0 ||
        c->max_inflight_msgs > RR_INFLIGHT_MSGS_MAX)
        return -EINVAL;
    if (c->max_inflight_bytes != 0 && c->max_inflight_bytes < c->max_size_per_msg_bytes)
        return -EINVAL;
    if (c->read_only_option == RR_READ_ONLY_LEASE_BASED && !c->check_quorum)
        return -EINVAL; /* a lease is only sound if the leader steps down without quorum */
    return 0;
}

int rr_raft_init(rr_raft *r, const rr_config *c)
{
    int err = validate(c);
    if (err != 0)
        return err;
    memset(r, 0, sizeof(*r));
    uint64_t max_committed = c->max_committed_size_per_ready_bytes != 0
                                 ? c->max_committed_size_per_ready_bytes
                                 : c->max_size_per_msg_bytes;
    err = rr_log_init(&r->log, c->storage, max_committed);
    if (err != 0)
        return err;
    rr_hard_state hs;
    rr_conf_state cs;
    memset(&hs, 0, sizeof(hs));
    memset(&cs, 0, sizeof(cs));
    err = c->storage.ops->initial_state(c->storage.ctx, &hs, &cs);
    if (err != 0) {
        rr_log_destroy(&r->log);
        return err;
    }

    r->id = c->id;
    r->max_msg_size_bytes = c->max_size_per_msg_bytes;
    r->max_uncommitted_size_bytes = c->max_uncommitted_entries_size_bytes != 0
                                        ? c->max_uncommitted_entries_size_bytes
                                        : RR_NO_LIMIT;
    rr_tracker_init(&r->trk, c->max_inflight_msgs,
                    c->max_inflight_bytes != 0 ? c->max_inflight_bytes : RR_NO_LIMIT);
    r->election_timeout_ticks = c->election_ticks;
    r->heartbeat_timeout_ticks = c->heartbeat_ticks;
    r->check_quorum = c->check_quorum;
    r->pre_vote = c->pre_vote;
    r->read_only.option = c->read_only_option;
    r->disable_proposal_forwarding = c->disable_proposal_forwarding;
    r->disable_conf_change_validation = c->disable_conf_change_validation;
    r->step_down_on_removal = c->step_down_on_removal;
    r->rand_state = c->rand_seed ^ (c->id * 0xD6E8FEB86659FD93ull);

    rr_tracker_change *chg = xrealloc(NULL, sizeof(*chg));
    const char *cerr = rr_confchange_restore(&r->trk, rr_log_last_index(&r->log), &cs, chg);
    if (cerr != NULL) {
        free(chg);
        rr_raft_destroy(r);
        return -EINVAL;
    }
    rr_conf_state got;
    switch_to_config(r, chg, &got);
    free(chg);
    RR_ASSERT(rr_conf_state_equal(&got, &cs));
    /* The storage's configuration is its snapshot's, plus every change the application
     * applied up to c->applied; later entries are applied again. */
    r->conf_index = rr_log_first_index(&r->log) - 1;
    if (c->applied > r->conf_index)
        r->conf_index = c->applied;

    if (!hard_state_empty(&hs)) {
        if (hs.commit > rr_log_last_index(&r->log)) {
            rr_raft_destroy(r);
            return -EINVAL; /* storage is inconsistent with its own hard state */
        }
        /* A commit index below the snapshot is stale, not inconsistent: everything in a
         * snapshot is committed. It happens in async mode, where entries are applied (and
         * may be snapshotted) before the hard state that commits them is durable; etcd
         * refuses to start from it. */
        if (hs.commit > r->log.committed)
            r->log.committed = hs.commit;
        r->term = hs.term;
        r->vote = hs.vote;
    }
    if (c->applied > 0) {
        if (c->applied > r->log.committed) {
            rr_raft_destroy(r);
            return -EINVAL;
        }
        rr_log_applied_to(&r->log, c->applied, 0);
    }
    become_follower(r, r->term, RR_NODE_ID_NONE);
    if (lease_mode(r))
        r->vote_hold_ticks = r->election_timeout_ticks;
    return 0;
}

void rr_raft_destroy(rr_raft *r)
{
    rr_log_destroy(&r->log);
    rr_tracker_destroy(&r->trk);
    rr_msg_vec_free(&r->msgs);
    rr_msg_vec_free(&r->msgs_after_append);
    rr_msg_vec_free(&r->pending_read_index);
    for (size_t i = 0; i < r->read_states.n; i++)
        free(r->read_states.v[i].request_ctx);
    free(r->read_states.v);
    read_only_destroy(&r->read_only);
    rr_entry_vec_free(&r->scratch);
    memset(r, 0, sizeof(*r));
}
