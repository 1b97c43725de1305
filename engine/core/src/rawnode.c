/*
 * rawnode.c: RawNode and Ready (etcd raft v3.6's rawnode.go semantics). See core.h.
 *
 * A Ready is accepted as soon as it is handed out: the state it reports becomes the new
 * baseline ("prev" soft and hard state), the unstable entries it carries are marked in
 * progress, and the committed entries it carries count against the applying budget.
 *   sync mode:  the caller persists, sends, applies, then calls advance(), which steps
 *               the local acknowledgements recorded at accept time;
 *   async mode: the Ready's MsgStorageAppend / MsgStorageApply carry those
 *               acknowledgements as responses, which the storage threads deliver back
 *               through rr_rawnode_step once durable / applied.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"
#include "ringraft/assert.h"

struct rr_rawnode {
    rr_raft raft;
    bool async_storage_writes;
    rr_soft_state prev_soft;
    rr_hard_state prev_hard;
    /* sync mode: local acknowledgements to step on advance */
    rr_msg_vec steps_on_advance;
};

/* A heap copy of caller bytes the core must keep (contexts, conf changes, payloads handed
 * without a buffer). */
typedef struct heap_buf {
    rr_buf buf;
    uint8_t data[];
} heap_buf;

static void heap_buf_release(rr_buf *b)
{
    free(b);
}

static heap_buf *heap_buf_new(size_t len)
{
    heap_buf *h = malloc(sizeof(*h) + (len == 0 ? 1 : len));
    if (h == NULL)
        return NULL;
    h->buf.refs = 1;
    h->buf.release = heap_buf_release;
    return h;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n == 0 ? 1 : n, size);
    RR_ASSERT(p != NULL);
    return p;
}

static bool soft_equal(rr_soft_state a, rr_soft_state b)
{
    return a.lead == b.lead && a.raft_state == b.raft_state;
}

static bool hard_equal(rr_hard_state a, rr_hard_state b)
{
    return a.term == b.term && a.vote == b.vote && a.commit == b.commit;
}

static bool hard_empty(rr_hard_state hs)
{
    return hs.term == 0 && hs.vote == 0 && hs.commit == 0;
}

/* Copies n entries into a new owned array (references taken). malloc, not calloc: every
 * byte is written, and jemalloc zeroes a large calloc with madvise(MADV_DONTNEED), whose
 * TLB shootdown IPIs and refaults cost ~10 % of a loaded 3-node run (BENCHMARKS.md). */
static rr_entry *copy_entries(const rr_entry *ents, size_t n)
{
    if (n == 0)
        return NULL;
    rr_entry *v = malloc(n * sizeof(*v));
    RR_ASSERT(v != NULL);
    memcpy(v, ents, n * sizeof(*v));
    rr_entries_ref(ents, n);
    return v;
}

static rr_snapshot *copy_snapshot(const rr_snapshot *s)
{
    rr_snapshot *c = xcalloc(1, sizeof(*c));
    *c = *s;
    rr_buf_ref(c->buf);
    return c;
}

int rr_rawnode_new(const rr_config *cfg, rr_rawnode **out)
{
    rr_rawnode *rn = calloc(1, sizeof(*rn));
    if (rn == NULL)
        return -ENOMEM;
    int err = rr_raft_init(&rn->raft, cfg);
    if (err != 0) {
        free(rn);
        return err;
    }
    rn->async_storage_writes = cfg->async_storage_writes;
    rn->prev_soft = rr_raft_soft_state(&rn->raft);
    rn->prev_hard = rr_raft_hard_state(&rn->raft);
    *out = rn;
    return 0;
}

void rr_rawnode_free(rr_rawnode *rn)
{
    if (rn == NULL)
        return;
    rr_msg_vec_free(&rn->steps_on_advance);
    rr_raft_destroy(&rn->raft);
    free(rn);
}

rr_raft *rr_rawnode_raft(rr_rawnode *rn)
{
    return &rn->raft;
}

void rr_rawnode_tick(rr_rawnode *rn)
{
    rr_raft_tick(&rn->raft);
}

static int step_local_type(rr_rawnode *rn, uint8_t type, rr_node_id_t from, bool reject)
{
    rr_message m;
    memset(&m, 0, sizeof(m));
    m.type = type;
    m.from = from;
    m.reject = reject;
    return rr_raft_step(&rn->raft, &m);
}

int rr_rawnode_campaign(rr_rawnode *rn)
{
    return step_local_type(rn, RR_MSG_HUP, RR_NODE_ID_NONE, false);
}

/* Steps a MsgProp of one entry. A payload without a buffer is copied so that the log may
 * keep it. */
static int propose_entry(rr_rawnode *rn, uint8_t type, const uint8_t *data, uint32_t len,
                         rr_buf *buf)
{
    heap_buf *h = NULL;
    if (buf == NULL && len > 0) {
        h = heap_buf_new(len);
        if (h == NULL)
            return -ENOMEM;
        memcpy(h->data, data, len);
        data = h->data;
        buf = &h->buf;
    }
    rr_entry e;
    memset(&e, 0, sizeof(e));
    e.type = type;
    e.data = data;
    e.data_len = len;
    e.buf = buf;
    rr_message m;
    memset(&m, 0, sizeof(m));
    m.type = RR_MSG_PROP;
    m.from = rn->raft.id;
    m.entries = &e;
    m.n_entries = 1;
    int rc = rr_raft_step(&rn->raft, &m);
    if (h != NULL)
        rr_buf_unref(&h->buf); /* the log took its own reference if it kept the entry */
    return rc;
}

int rr_rawnode_propose(rr_rawnode *rn, const uint8_t *data, uint32_t len, rr_buf *buf)
{
    if (len > RR_ENTRY_BYTES_MAX)
        return -EINVAL;
    return propose_entry(rn, RR_ENTRY_NORMAL, data, len, buf);
}

int rr_rawnode_propose_batch(rr_rawnode *rn, const rr_entry *ents, uint32_t n)
{
    if (n == 0)
        return -EINVAL;
    rr_entry *v = malloc((size_t)n * sizeof(*v)); /* each written below (copy_entries: why) */
    if (v == NULL)
        return -ENOMEM;
    int rc = 0;
    uint32_t made = 0;
    for (; made < n; made++) {
        const rr_entry *e = &ents[made];
        if (e->data_len > RR_ENTRY_BYTES_MAX) {
            rc = -EINVAL;
            break;
        }
        v[made] = (rr_entry){
            .type = RR_ENTRY_NORMAL, .data_len = e->data_len, .data = e->data, .buf = e->buf};
        if (e->buf == NULL && e->data_len > 0) {
            heap_buf *h = heap_buf_new(e->data_len);
            if (h == NULL) {
                rc = -ENOMEM;
                break;
            }
            memcpy(h->data, e->data, e->data_len);
            v[made].data = h->data;
            v[made].buf = &h->buf; /* our reference, dropped below */
        } else {
            rr_buf_ref(e->buf); /* uniform: every v[i] holds one reference we drop */
        }
    }
    if (rc == 0) {
        rr_message m;
        memset(&m, 0, sizeof(m));
        m.type = RR_MSG_PROP;
        m.from = rn->raft.id;
        m.entries = v;
        m.n_entries = n;
        rc = rr_raft_step(&rn->raft, &m);
    }
    for (uint32_t i = 0; i < made; i++)
        rr_buf_unref(v[i].buf);
    free(v);
    return rc;
}

void rr_rawnode_last_entry(const rr_rawnode *rn, rr_index_t *index, rr_term_t *term)
{
    rr_entry_id last = rr_log_last_entry_id(&rn->raft.log);
    *index = last.index;
    *term = last.term;
}

int rr_rawnode_propose_conf_change(rr_rawnode *rn, const rr_conf_change *cc)
{
    size_t len = rr_conf_change_encoded_bytes(cc);
    heap_buf *h = heap_buf_new(len);
    if (h == NULL)
        return -ENOMEM;
    int n = rr_conf_change_encode(cc, h->data, len);
    RR_ASSERT(n >= 0 && (size_t)n == len);
    uint8_t type = cc->v1 ? RR_ENTRY_CONF_CHANGE : RR_ENTRY_CONF_CHANGE_V2;
    int rc = propose_entry(rn, type, h->data, (uint32_t)len, &h->buf);
    rr_buf_unref(&h->buf);
    return rc;
}

bool rr_rawnode_apply_conf_change(rr_rawnode *rn, rr_index_t index, const rr_conf_change *cc,
                                  rr_conf_state *cs)
{
    return rr_raft_apply_conf_change(&rn->raft, index, cc, cs);
}

int rr_rawnode_step(rr_rawnode *rn, const rr_message *m)
{
    bool from_local = m->from == RR_LOCAL_APPEND_THREAD || m->from == RR_LOCAL_APPLY_THREAD;
    /* Local messages arriving from the network are forged or confused: refuse them. */
    if (rr_msg_is_local(m->type) && !from_local)
        return -EINVAL;
    if (rr_msg_is_response(m->type) && !from_local &&
        rr_tracker_get(&rn->raft.trk, m->from) == NULL)
        return -ENOENT; /* a response from a peer we do not track */
    return rr_raft_step(&rn->raft, m);
}

/* ---- Ready -------------------------------------------------------------------------- */

static bool need_storage_append_resp(const rr_raft *r, const rr_ready *rd)
{
    return rr_log_has_next_or_in_progress_unstable_ents(&r->log) || rd->snapshot != NULL;
}

/* The acknowledgement the append thread returns once everything unstable so far is
 * durable. It carries the current term and the last (index, term) of the log, so that a
 * response outliving a term change, whose entries may since have been overwritten, is
 * ignored (the append ABA guard; see etcd's newStorageAppendRespMsg). */
static rr_message storage_append_resp(const rr_raft *r, const rr_ready *rd)
{
    rr_message m;
    memset(&m, 0, sizeof(m));
    m.type = RR_MSG_STORAGE_APPEND_RESP;
    m.to = r->id;
    m.from = RR_LOCAL_APPEND_THREAD;
    m.term = r->term;
    if (rr_log_has_next_or_in_progress_unstable_ents(&r->log)) {
        rr_entry_id last = rr_log_last_entry_id(&r->log);
        m.index = last.index;
        m.log_term = last.term;
    }
    if (rd->snapshot != NULL)
        m.snapshot = copy_snapshot(rd->snapshot);
    return m;
}

static rr_message storage_apply_resp(const rr_raft *r, const rr_ready *rd)
{
    rr_message m;
    memset(&m, 0, sizeof(m));
    m.type = RR_MSG_STORAGE_APPLY_RESP;
    m.to = r->id;
    m.from = RR_LOCAL_APPLY_THREAD;
    m.entries = copy_entries(rd->committed_entries, rd->n_committed_entries);
    m.n_entries = rd->n_committed_entries;
    return m;
}

static void ready_push_message(rr_ready *rd, size_t *cap, rr_message *m)
{
    if (rd->n_messages == *cap) {
        *cap = *cap == 0 ? 8 : *cap * 2;
        rd->messages = realloc(rd->messages, *cap * sizeof(rr_message));
        RR_ASSERT(rd->messages != NULL);
    }
    rd->messages[rd->n_messages++] = *m;
    memset(m, 0, sizeof(*m));
}

/* Async mode: MsgStorageAppend carries entries, hard state and snapshot to persist, and
 * the responses to deliver once they are durable. */
static void add_storage_append(rr_rawnode *rn, rr_ready *rd, size_t *cap)
{
    rr_raft *r = &rn->raft;
    if (rd->n_entries == 0 && !rd->has_hard_state && rd->snapshot == NULL &&
        r->msgs_after_append.n == 0)
        return;
    rr_message m;
    memset(&m, 0, sizeof(m));
    m.type = RR_MSG_STORAGE_APPEND;
    m.to = RR_LOCAL_APPEND_THREAD;
    m.from = r->id;
    m.entries = copy_entries(rd->entries, rd->n_entries);
    m.n_entries = rd->n_entries;
    if (rd->has_hard_state) {
        m.term = rd->hard_state.term;
        m.vote = rd->hard_state.vote;
        m.commit = rd->hard_state.commit;
    }
    if (rd->snapshot != NULL)
        m.snapshot = copy_snapshot(rd->snapshot);

    size_t n = r->msgs_after_append.n + 1;
    m.responses = xcalloc(n, sizeof(rr_message));
    for (size_t i = 0; i < r->msgs_after_append.n; i++) {
        m.responses[m.n_responses++] = r->msgs_after_append.v[i];
        memset(&r->msgs_after_append.v[i], 0, sizeof(rr_message));
    }
    r->msgs_after_append.n = 0;
    /* After the self MsgAppResp: that one still finds the new entries in the unstable
     * log (a fast term lookup) before stability removes them. */
    if (need_storage_append_resp(r, rd))
        m.responses[m.n_responses++] = storage_append_resp(r, rd);
    if (m.n_responses == 0) {
        free(m.responses);
        m.responses = NULL;
    }
    ready_push_message(rd, cap, &m);
}

static void add_storage_apply(rr_rawnode *rn, rr_ready *rd, size_t *cap)
{
    if (rd->n_committed_entries == 0)
        return;
    rr_raft *r = &rn->raft;
    rr_message m;
    memset(&m, 0, sizeof(m));
    m.type = RR_MSG_STORAGE_APPLY;
    m.to = RR_LOCAL_APPLY_THREAD;
    m.from = r->id;
    m.entries = copy_entries(rd->committed_entries, rd->n_committed_entries);
    m.n_entries = rd->n_committed_entries;
    m.responses = xcalloc(1, sizeof(rr_message));
    m.responses[0] = storage_apply_resp(r, rd);
    m.n_responses = 1;
    ready_push_message(rd, cap, &m);
}

/* Moves r->msgs into the Ready (the array itself changes hands). */
static void take_msgs(rr_raft *r, rr_ready *rd, size_t *cap)
{
    RR_ASSERT(r->msgs.n <= UINT32_MAX);
    rd->messages = r->msgs.v;
    rd->n_messages = (uint32_t)r->msgs.n;
    *cap = r->msgs.cap;
    memset(&r->msgs, 0, sizeof(r->msgs));
}

/* Sync mode: acknowledgements to other nodes go out with the Ready (after the caller has
 * persisted it); self-addressed ones are stepped on advance. */
static void take_msgs_after_append_sync(rr_rawnode *rn, rr_ready *rd, size_t *cap)
{
    rr_raft *r = &rn->raft;
    for (size_t i = 0; i < r->msgs_after_append.n; i++) {
        rr_message *m = &r->msgs_after_append.v[i];
        if (m->to == r->id)
            rr_msg_vec_push(&rn->steps_on_advance, m);
        else
            ready_push_message(rd, cap, m);
    }
    r->msgs_after_append.n = 0;
}

int rr_rawnode_ready(rr_rawnode *rn, rr_ready *rd)
{
    rr_raft *r = &rn->raft;
    bool allow_unstable = !rn->async_storage_writes;
    memset(rd, 0, sizeof(*rd));

    const rr_entry *unstable;
    size_t n_unstable;
    rr_log_next_unstable_ents(&r->log, &unstable, &n_unstable);
    RR_ASSERT(n_unstable <= UINT32_MAX);
    rd->entries = copy_entries(unstable, n_unstable);
    rd->n_entries = (uint32_t)n_unstable;

    rr_entry_vec committed = {0};
    int err = rr_log_next_committed_ents(&r->log, allow_unstable, &committed);
    RR_ASSERT(err == 0);
    rd->committed_entries = committed.n > 0 ? committed.v : NULL;
    rd->n_committed_entries = (uint32_t)committed.n;
    if (committed.n == 0)
        free(committed.v);

    rr_soft_state ss = rr_raft_soft_state(r);
    if (!soft_equal(ss, rn->prev_soft)) {
        rd->has_soft_state = true;
        rd->soft_state = ss;
    }
    rr_hard_state hs = rr_raft_hard_state(r);
    if (!hard_equal(hs, rn->prev_hard)) {
        rd->has_hard_state = true;
        rd->hard_state = hs;
    }
    const rr_snapshot *snap = rr_log_next_unstable_snapshot(&r->log);
    if (snap != NULL)
        rd->snapshot = copy_snapshot(snap);
    if (r->read_states.n > 0) {
        rd->read_states = r->read_states.v;
        rd->n_read_states = (uint32_t)r->read_states.n;
        memset(&r->read_states, 0, sizeof(r->read_states));
    }
    /* Raft paper Figure 2: term, vote and log entries are persisted before responding. */
    rd->must_sync =
        rd->n_entries != 0 || hs.vote != rn->prev_hard.vote || hs.term != rn->prev_hard.term;

    size_t cap = 0;
    take_msgs(r, rd, &cap);

    /* Accept: this Ready is now being handled. */
    if (rd->has_soft_state)
        rn->prev_soft = rd->soft_state;
    if (rd->has_hard_state && !hard_empty(rd->hard_state))
        rn->prev_hard = rd->hard_state;

    if (rn->async_storage_writes) {
        add_storage_append(rn, rd, &cap);
        add_storage_apply(rn, rd, &cap);
    } else {
        RR_ASSERT(rn->steps_on_advance.n == 0); /* two Readys without advance */
        take_msgs_after_append_sync(rn, rd, &cap);
        if (need_storage_append_resp(r, rd)) {
            rr_message m = storage_append_resp(r, rd);
            rr_msg_vec_push(&rn->steps_on_advance, &m);
        }
        if (rd->n_committed_entries > 0) {
            rr_message m = storage_apply_resp(r, rd);
            rr_msg_vec_push(&rn->steps_on_advance, &m);
        }
    }
    rr_log_accept_unstable(&r->log);
    if (rd->n_committed_entries > 0) {
        rr_index_t last = rd->committed_entries[rd->n_committed_entries - 1].index;
        uint64_t bytes =
            rr_log_applying_bytes(&r->log, rd->committed_entries, rd->n_committed_entries);
        rr_log_accept_applying(&r->log, last, bytes, allow_unstable);
    }
    return 0;
}

bool rr_rawnode_has_ready(const rr_rawnode *rn)
{
    const rr_raft *r = &rn->raft;
    if (!soft_equal(rr_raft_soft_state(r), rn->prev_soft))
        return true;
    rr_hard_state hs = rr_raft_hard_state(r);
    if (!hard_empty(hs) && !hard_equal(hs, rn->prev_hard))
        return true;
    if (rr_log_has_next_unstable_snapshot(&r->log))
        return true;
    if (r->msgs.n > 0 || r->msgs_after_append.n > 0)
        return true;
    if (rr_log_has_next_unstable_ents(&r->log) ||
        rr_log_has_next_committed_ents(&r->log, !rn->async_storage_writes))
        return true;
    return r->read_states.n > 0;
}

void rr_rawnode_advance(rr_rawnode *rn)
{
    RR_ASSERT(!rn->async_storage_writes); /* async mode: storage responses take its place */
    rr_msg_vec steps = rn->steps_on_advance;
    memset(&rn->steps_on_advance, 0, sizeof(rn->steps_on_advance));
    for (size_t i = 0; i < steps.n; i++)
        (void)rr_raft_step(&rn->raft, &steps.v[i]);
    rr_msg_vec_free(&steps);
}

/* ---- requests ----------------------------------------------------------------------- */

int rr_rawnode_read_index(rr_rawnode *rn, const uint8_t *ctx, uint32_t ctx_len)
{
    if (ctx_len > RR_READ_CONTEXT_BYTES_MAX)
        return -EINVAL;
    heap_buf *h = heap_buf_new(ctx_len);
    if (h == NULL)
        return -ENOMEM;
    if (ctx_len > 0)
        memcpy(h->data, ctx, ctx_len);
    rr_entry e;
    memset(&e, 0, sizeof(e));
    e.data = h->data;
    e.data_len = ctx_len;
    e.buf = &h->buf;
    rr_message m;
    memset(&m, 0, sizeof(m));
    m.type = RR_MSG_READ_INDEX;
    m.entries = &e;
    m.n_entries = 1;
    int rc = rr_raft_step(&rn->raft, &m);
    rr_buf_unref(&h->buf);
    return rc;
}

void rr_rawnode_transfer_leader(rr_rawnode *rn, rr_node_id_t transferee)
{
    (void)step_local_type(rn, RR_MSG_TRANSFER_LEADER, transferee, false);
}

void rr_rawnode_forget_leader(rr_rawnode *rn)
{
    (void)step_local_type(rn, RR_MSG_FORGET_LEADER, RR_NODE_ID_NONE, false);
}

void rr_rawnode_report_unreachable(rr_rawnode *rn, rr_node_id_t id)
{
    (void)step_local_type(rn, RR_MSG_UNREACHABLE, id, false);
}

void rr_rawnode_report_snapshot(rr_rawnode *rn, rr_node_id_t id, bool failed)
{
    (void)step_local_type(rn, RR_MSG_SNAP_STATUS, id, failed);
}

void rr_rawnode_status(const rr_rawnode *rn, rr_status *out)
{
    const rr_raft *r = &rn->raft;
    memset(out, 0, sizeof(*out));
    out->id = r->id;
    out->hard_state = rr_raft_hard_state(r);
    out->soft_state = rr_raft_soft_state(r);
    out->applied = r->log.applied;
    out->lead_transferee = r->lead_transferee;
    rr_tracker_conf_state(&r->trk, &out->config);
    if (r->state != RR_STATE_LEADER)
        return;
    for (uint32_t i = 0; i < r->trk.n_progress; i++) {
        const rr_progress *pr = &r->trk.progress[i];
        rr_progress_status *ps = &out->progress[out->n_progress++];
        ps->id = pr->id;
        ps->match = pr->match;
        ps->next = pr->next;
        ps->pending_snapshot = pr->pending_snapshot;
        ps->inflight_count = pr->inflights.count;
        ps->inflight_capacity = pr->inflights.size;
        ps->inflight_bytes = pr->inflights.bytes;
        ps->state = pr->state;
        ps->paused = rr_progress_is_paused(pr);
        ps->msg_app_flow_paused = pr->msg_app_flow_paused;
        ps->recent_active = pr->recent_active;
        ps->is_learner = pr->is_learner;
    }
}
