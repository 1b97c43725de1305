/*
 * interaction_env.c: the nodes, message queue and Ready handling of etcd's rafttest
 * InteractionEnv, over ringraft's RawNode (see interaction_env.h).
 */
#include "interaction_env.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "describe.h"

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL) {
        fprintf(stderr, "rr-conformance: out of memory\n");
        abort();
    }
    return p;
}

static void *xrealloc(void *p, size_t size)
{
    p = realloc(p, size);
    if (p == NULL) {
        fprintf(stderr, "rr-conformance: out of memory\n");
        abort();
    }
    return p;
}

/* ---- payload buffers ----------------------------------------------------------------- */

typedef struct data_buf {
    rr_buf hdr; /* first: the rr_buf pointer is the allocation */
    uint8_t data[];
} data_buf;

static void data_buf_release(rr_buf *b)
{
    free(b);
}

/* A new buffer (one reference, the caller's) holding a followed by b; NULL when both are
 * empty, as the core accepts for empty payloads. */
static rr_buf *data_buf_new(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
                            const uint8_t **data)
{
    *data = NULL;
    if (a_len + b_len == 0)
        return NULL;
    data_buf *d = xcalloc(1, sizeof(*d) + a_len + b_len);
    d->hdr.refs = 1;
    d->hdr.release = data_buf_release;
    if (a_len > 0)
        memcpy(d->data, a, a_len);
    if (b_len > 0)
        memcpy(d->data + a_len, b, b_len);
    *data = d->data;
    return &d->hdr;
}

/* ---- output ---------------------------------------------------------------------------- */

bool rr_ienv_quiet(const rr_ienv *e)
{
    return e->level == IENV_LEVEL_NONE;
}

rr_dd_out *rr_ienv_sink(rr_ienv *e)
{
    if (!rr_ienv_quiet(e))
        return e->out;
    e->discard.len = 0;
    if (e->discard.buf != NULL)
        e->discard.buf[0] = '\0';
    return &e->discard;
}

void rr_ienv_puts(rr_ienv *e, const char *s)
{
    rr_dd_puts(rr_ienv_sink(e), s);
}

void rr_ienv_printf(rr_ienv *e, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    rr_ienv_puts(e, buf);
}

static int set_err(rr_ienv *e, bool fatal, const char *fmt, va_list ap)
{
    vsnprintf(e->err, sizeof(e->err), fmt, ap);
    e->fatal = fatal;
    return -1;
}

int rr_ienv_fail(rr_ienv *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_err(e, false, fmt, ap);
    va_end(ap);
    return -1;
}

int rr_ienv_fatal(rr_ienv *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_err(e, true, fmt, ap);
    va_end(ap);
    return -1;
}

const char *rr_ienv_strerror(int rc)
{
    switch (rc) {
    case RR_DROPPED:
        return "raft proposal dropped";
    case RR_ERR_COMPACTED:
        return "requested index is unavailable due to compaction";
    case RR_ERR_UNAVAILABLE:
        return "requested entry at index is unavailable";
    case RR_ERR_SNAP_OUT_OF_DATE:
        return "requested index is older than the existing snapshot";
    case RR_ERR_SNAP_TEMP_UNAVAILABLE:
        return "snapshot is temporarily unavailable";
    case -EINVAL:
        return "invalid argument";
    case -ENOMEM:
        return "out of memory";
    default:
        return "unexpected error";
    }
}

rr_dd_out *rr_ienv_indent_begin(rr_ienv *e, rr_dd_out *tmp)
{
    rr_dd_out *saved = e->out;
    *tmp = (rr_dd_out){0};
    e->out = tmp;
    return saved;
}

void rr_ienv_indent_end(rr_ienv *e, rr_dd_out *saved, rr_dd_out *tmp)
{
    e->out = saved;
    size_t start = 0;
    while (start < tmp->len) {
        char *nl = memchr(tmp->buf + start, '\n', tmp->len - start);
        size_t end = nl != NULL ? (size_t)(nl - tmp->buf) : tmp->len;
        tmp->buf[end] = '\0';
        rr_dd_printf(saved, "  %s\n", tmp->buf + start);
        start = end + 1;
    }
    free(tmp->buf);
    *tmp = (rr_dd_out){0};
}

/* ---- message queues ------------------------------------------------------------------- */

/* Moves *m into q (m is zeroed). */
static void msgs_push(rr_ienv_msgs *q, rr_message *m)
{
    if (q->n == q->cap) {
        q->cap = q->cap > 0 ? q->cap * 2 : 16;
        q->v = xrealloc(q->v, q->cap * sizeof(*q->v));
    }
    q->v[q->n++] = *m;
    *m = (rr_message){0};
}

/* Moves the oldest message of q into *m. */
static void msgs_pop_front(rr_ienv_msgs *q, rr_message *m)
{
    *m = q->v[0];
    memmove(q->v, q->v + 1, (q->n - 1) * sizeof(*q->v));
    q->n--;
}

static void msgs_free(rr_ienv_msgs *q)
{
    for (size_t i = 0; i < q->n; i++)
        rr_message_free(&q->v[i]);
    free(q->v);
    *q = (rr_ienv_msgs){0};
}

static bool is_local_target(rr_node_id_t id)
{
    return id == RR_LOCAL_APPEND_THREAD || id == RR_LOCAL_APPLY_THREAD;
}

/* Messages that need reliable delivery and are never dropped (etcd's isLocalMsg in the
 * harness): to oneself, or from or to a local thread. */
static bool never_dropped(const rr_message *m)
{
    return m->from == m->to || is_local_target(m->from) || is_local_target(m->to);
}

static bool selected(const rr_message *m, rr_node_id_t to, int type, bool drop)
{
    return m->to == to && !(drop && never_dropped(m)) && (type < 0 || m->type == type);
}

/* Moves the messages selected for (to, type, drop) from q into out, keeping the order of
 * both. */
static void msgs_split(rr_ienv_msgs *q, rr_node_id_t to, int type, bool drop, rr_ienv_msgs *out)
{
    size_t kept = 0;
    for (size_t i = 0; i < q->n; i++) {
        if (selected(&q->v[i], to, type, drop))
            msgs_push(out, &q->v[i]);
        else
            q->v[kept++] = q->v[i];
    }
    q->n = kept;
}

static bool msgs_has(const rr_ienv_msgs *q, rr_node_id_t to)
{
    for (size_t i = 0; i < q->n; i++) {
        if (q->v[i].to == to)
            return true;
    }
    return false;
}

/* ---- nodes and their storage ------------------------------------------------------------- */

static int st_initial_state(void *ctx, rr_hard_state *hs, rr_conf_state *cs)
{
    rr_ienv_node *n = ctx;
    return n->inner.ops->initial_state(n->inner.ctx, hs, cs);
}

static int st_entries(void *ctx, rr_index_t lo, rr_index_t hi, uint64_t max_bytes,
                      rr_entry_vec *out)
{
    rr_ienv_node *n = ctx;
    return n->inner.ops->entries(n->inner.ctx, lo, hi, max_bytes, out);
}

static int st_term(void *ctx, rr_index_t i, rr_term_t *term)
{
    rr_ienv_node *n = ctx;
    return n->inner.ops->term(n->inner.ctx, i, term);
}

static rr_index_t st_first_index(void *ctx)
{
    rr_ienv_node *n = ctx;
    return n->inner.ops->first_index(n->inner.ctx);
}

static rr_index_t st_last_index(void *ctx)
{
    rr_ienv_node *n = ctx;
    return n->inner.ops->last_index(n->inner.ctx);
}

/* etcd's harness answers the latest state of the appender state machine, whatever the
 * memory storage's own snapshot is. */
static int st_snapshot(void *ctx, rr_snapshot *out)
{
    rr_ienv_node *n = ctx;
    *out = n->history[n->n_history - 1];
    rr_buf_ref(out->buf);
    return 0;
}

static const rr_storage_ops history_storage_ops = {
    .initial_state = st_initial_state,
    .entries = st_entries,
    .term = st_term,
    .first_index = st_first_index,
    .last_index = st_last_index,
    .snapshot = st_snapshot,
};

/* Appends a snapshot to the history; takes over its data reference. */
static void history_push(rr_ienv_node *n, const rr_snapshot *snap)
{
    if (n->n_history == n->cap_history) {
        n->cap_history = n->cap_history > 0 ? n->cap_history * 2 : 16;
        n->history = xrealloc(n->history, n->cap_history * sizeof(*n->history));
    }
    n->history[n->n_history++] = *snap;
}

static void node_free(rr_ienv_node *n)
{
    if (n == NULL)
        return;
    if (n->rn != NULL)
        rr_rawnode_free(n->rn);
    if (n->ms != NULL)
        rr_memstorage_free(n->ms);
    msgs_free(&n->append_work);
    msgs_free(&n->apply_work);
    for (size_t i = 0; i < n->n_history; i++)
        rr_buf_unref(n->history[i].buf);
    free(n->history);
    free(n);
}

rr_ienv *rr_ienv_new(void)
{
    rr_ienv *e = xcalloc(1, sizeof(*e));
    e->sub_cmd = xcalloc(1, sizeof(*e->sub_cmd));
    e->level = IENV_LEVEL_DEBUG; /* etcd's logger starts at DEBUG */
    return e;
}

void rr_ienv_free(rr_ienv *e)
{
    if (e == NULL)
        return;
    for (uint32_t i = 0; i < e->n_nodes; i++)
        node_free(e->nodes[i]);
    msgs_free(&e->msgs);
    free(e->discard.buf);
    free(e->sub_cmd);
    free(e);
}

static int add_node(rr_ienv *e, const rr_config *tmpl, const rr_snapshot *snap, bool bootstrap)
{
    rr_ienv_node *n = xcalloc(1, sizeof(*n));
    n->id = e->n_nodes + 1;
    n->ms = rr_memstorage_new();
    if (n->ms == NULL) {
        free(n);
        return rr_ienv_fail(e, "out of memory");
    }
    n->inner = rr_memstorage_storage(n->ms);
    n->storage = (rr_storage){.ops = &history_storage_ops, .ctx = n};
    rr_snapshot first = *snap;
    rr_buf_ref(first.buf);
    history_push(n, &first);

    if (bootstrap) {
        int rc = rr_memstorage_apply_snapshot(n->ms, snap);
        if (rc != 0) {
            node_free(n);
            return rr_ienv_fail(e, "%s", rr_ienv_strerror(rc));
        }
        rr_index_t fi = n->inner.ops->first_index(n->inner.ctx);
        if (fi != snap->meta.index + 1) {
            node_free(n);
            return rr_ienv_fail(e, "failed to establish first index %" PRIu64 "; got %" PRIu64,
                                snap->meta.index + 1, fi);
        }
    }
    n->cfg = *tmpl;
    n->cfg.id = n->id;
    n->cfg.storage = n->storage;
    n->cfg.rand_seed = n->id;
    int rc = rr_rawnode_new(&n->cfg, &n->rn);
    if (rc != 0) {
        n->rn = NULL;
        node_free(n);
        return rr_ienv_fail(e, "%s", rr_ienv_strerror(rc));
    }
    e->nodes[e->n_nodes++] = n;
    return 0;
}

int rr_ienv_add_nodes(rr_ienv *e, uint32_t n, const rr_config *tmpl, const rr_conf_state *cs,
                      rr_index_t index, const uint8_t *content, size_t content_len)
{
    /* Any of voters, learners, index or content makes a bootstrap snapshot. */
    bool bootstrap = cs->voters.n > 0 || cs->learners.n > 0 || index != 0 || content_len > 0;
    if (bootstrap && index <= 1)
        return rr_ienv_fail(e, "index must be specified as > 1 due to bootstrap");
    if (n > IENV_NODES_MAX - e->n_nodes)
        return rr_ienv_fatal(e, "at most %d nodes", IENV_NODES_MAX);

    rr_snapshot snap = {0};
    snap.meta.conf_state = *cs;
    snap.meta.index = index;
    snap.meta.term = bootstrap ? 1 : 0;
    snap.buf = data_buf_new(content, content_len, NULL, 0, &snap.data);
    snap.data_len = content_len;
    int rc = 0;
    for (uint32_t i = 0; i < n && rc == 0; i++)
        rc = add_node(e, tmpl, &snap, bootstrap);
    rr_buf_unref(snap.buf);
    return rc;
}

int rr_ienv_propose(rr_ienv *e, uint32_t idx, const uint8_t *data, size_t len)
{
    if (len > RR_ENTRY_BYTES_MAX)
        return rr_ienv_fatal(e, "proposal of %zu bytes is too large", len);
    const uint8_t *copy;
    rr_buf *buf = data_buf_new(data, len, NULL, 0, &copy);
    int rc = rr_rawnode_propose(e->nodes[idx]->rn, copy, (uint32_t)len, buf);
    rr_buf_unref(buf); /* the core took its own reference if it kept the entry */
    return rc == 0 ? 0 : rr_ienv_fail(e, "%s", rr_ienv_strerror(rc));
}

/* ---- Ready handling ------------------------------------------------------------------- */

static int process_append(rr_ienv *e, rr_ienv_node *n, const rr_hard_state *hs,
                          const rr_entry *ents, size_t n_ents, const rr_snapshot *snap)
{
    if (hs != NULL && !rr_describe_hard_state_empty(hs))
        rr_memstorage_set_hard_state(n->ms, hs);
    if (snap != NULL && snap->meta.index != 0) {
        if (n_ents > 0)
            return rr_ienv_fail(e, "can't apply snapshot and entries at the same time");
        int rc = rr_memstorage_apply_snapshot(n->ms, snap);
        return rc == 0 ? 0 : rr_ienv_fail(e, "%s", rr_ienv_strerror(rc));
    }
    int rc = rr_memstorage_append(n->ms, ents, n_ents);
    return rc == 0 ? 0 : rr_ienv_fail(e, "%s", rr_ienv_strerror(rc));
}

/* Applies committed entries: conf changes to the rawnode, every payload (a conf change's
 * context) to the appender state machine, recording its state after each entry. */
static int process_apply(rr_ienv *e, rr_ienv_node *n, const rr_entry *ents, size_t n_ents)
{
    for (size_t i = 0; i < n_ents; i++) {
        const rr_entry *ent = &ents[i];
        const uint8_t *update = ent->data;
        size_t update_len = ent->data_len;
        bool have_cs = false;
        rr_conf_state cs;
        if (ent->type == RR_ENTRY_CONF_CHANGE || ent->type == RR_ENTRY_CONF_CHANGE_V2) {
            rr_conf_change cc;
            int rc = rr_describe_decode_conf_change(ent, &cc);
            if (rc != 0)
                return rr_ienv_fail(e, "cannot decode conf change at %" PRIu64 ": error %d",
                                    ent->index, rc);
            rr_rawnode_apply_conf_change(n->rn, ent->index, &cc, &cs);
            have_cs = true;
            update = cc.context;
            update_len = cc.context_len;
        }
        const rr_snapshot *last = &n->history[n->n_history - 1];
        rr_snapshot next = {0};
        next.buf = data_buf_new(last->data, last->data_len, update, update_len, &next.data);
        next.data_len = last->data_len + update_len;
        next.meta.index = ent->index;
        next.meta.term = ent->term;
        next.meta.conf_state = have_cs ? cs : last->meta.conf_state;
        history_push(n, &next);
    }
    return 0;
}

/* Queues a message the rawnode emitted: local storage work, or network traffic. */
static int route_message(rr_ienv *e, rr_ienv_node *n, rr_message *m)
{
    if (!is_local_target(m->to)) {
        msgs_push(&e->msgs, m);
        return 0;
    }
    if (!n->cfg.async_storage_writes) {
        rr_message_free(m);
        return rr_ienv_fatal(e, "unexpected local msg target");
    }
    if (m->type == RR_MSG_STORAGE_APPEND) {
        msgs_push(&n->append_work, m);
    } else if (m->type == RR_MSG_STORAGE_APPLY) {
        msgs_push(&n->apply_work, m);
    } else {
        uint8_t type = m->type;
        rr_message_free(m);
        return rr_ienv_fatal(e, "unexpected message type %u", (unsigned)type);
    }
    return 0;
}

int rr_ienv_process_ready(rr_ienv *e, uint32_t idx)
{
    rr_ienv_node *n = e->nodes[idx];
    rr_ready rd;
    memset(&rd, 0, sizeof(rd));
    int rc = rr_rawnode_ready(n->rn, &rd);
    if (rc != 0)
        return rr_ienv_fail(e, "%s", rr_ienv_strerror(rc));
    rr_describe_ready(rr_ienv_sink(e), &rd);

    bool sync = !n->cfg.async_storage_writes;
    if (sync) {
        rc = process_append(e, n, rd.has_hard_state ? &rd.hard_state : NULL, rd.entries,
                            rd.n_entries, rd.snapshot);
        if (rc == 0)
            rc = process_apply(e, n, rd.committed_entries, rd.n_committed_entries);
    }
    for (uint32_t i = 0; i < rd.n_messages && rc == 0; i++) {
        rr_message m = rd.messages[i];
        memset(&rd.messages[i], 0, sizeof(rd.messages[i])); /* moved out of the Ready */
        rc = route_message(e, n, &m);
    }
    if (rc == 0 && sync)
        rr_rawnode_advance(n->rn);
    rr_ready_free(&rd);
    return rc;
}

/* Describes a storage message being processed, and after the work its responses, which
 * then join the messages in flight. */
static void deliver_responses(rr_ienv *e, const rr_message *m)
{
    rr_ienv_puts(e, "Responses:\n");
    for (uint32_t i = 0; i < m->n_responses; i++) {
        rr_describe_message(rr_ienv_sink(e), &m->responses[i], true);
        rr_ienv_puts(e, "\n");
        rr_message copy;
        if (rr_message_copy(&copy, &m->responses[i]) != 0) {
            fprintf(stderr, "rr-conformance: out of memory\n");
            abort();
        }
        msgs_push(&e->msgs, &copy);
    }
}

int rr_ienv_process_append_thread(rr_ienv *e, uint32_t idx)
{
    rr_ienv_node *n = e->nodes[idx];
    if (n->append_work.n == 0) {
        rr_ienv_puts(e, "no append work to perform");
        return 0;
    }
    rr_message m;
    msgs_pop_front(&n->append_work, &m);
    rr_ienv_puts(e, "Processing:\n");
    rr_describe_message(rr_ienv_sink(e), &m, false);
    rr_ienv_puts(e, "\n");
    rr_hard_state hs = {.term = m.term, .vote = m.vote, .commit = m.commit};
    int rc = process_append(e, n, &hs, m.entries, m.n_entries, m.snapshot);
    if (rc == 0)
        deliver_responses(e, &m);
    rr_message_free(&m);
    return rc;
}

int rr_ienv_process_apply_thread(rr_ienv *e, uint32_t idx)
{
    rr_ienv_node *n = e->nodes[idx];
    if (n->apply_work.n == 0) {
        rr_ienv_puts(e, "no apply work to perform");
        return 0;
    }
    rr_message m;
    msgs_pop_front(&n->apply_work, &m);
    rr_ienv_puts(e, "Processing:\n");
    rr_describe_message(rr_ienv_sink(e), &m, false);
    rr_ienv_puts(e, "\n");
    int rc = process_apply(e, n, m.entries, m.n_entries);
    if (rc == 0)
        deliver_responses(e, &m);
    rr_message_free(&m);
    return rc;
}

/* ---- message delivery --------------------------------------------------------------------- */

/* etcd's wording for a refused Step (RawNode.Step's errors). */
static const char *step_error(int rc)
{
    switch (rc) {
    case -EINVAL:
        return "raft: cannot step raft local message";
    case -ENOENT:
        return "raft: cannot step as peer not found";
    default:
        return rr_ienv_strerror(rc);
    }
}

static void deliver_one(rr_ienv *e, rr_message *m, bool drop)
{
    if (drop)
        rr_ienv_puts(e, "dropped: ");
    rr_describe_message(rr_ienv_sink(e), m, true);
    rr_ienv_puts(e, "\n");
    if (drop)
        return;
    if (m->to == RR_NODE_ID_NONE || m->to > e->n_nodes) {
        rr_ienv_printf(e, "no node %" PRIu64 " to deliver to\n", m->to);
        return;
    }
    rr_ienv_node *n = e->nodes[m->to - 1];
    int rc = rr_rawnode_step(n->rn, m);
    if (rc != 0)
        rr_ienv_printf(e, "%s\n", step_error(rc));
}

size_t rr_ienv_deliver_msgs(rr_ienv *e, int type, const rr_ienv_recipient *rs, size_t n)
{
    size_t count = 0;
    for (size_t r = 0; r < n; r++) {
        rr_ienv_msgs sel = {0};
        msgs_split(&e->msgs, rs[r].id, type, rs[r].drop, &sel);
        count += sel.n;
        for (size_t i = 0; i < sel.n; i++)
            deliver_one(e, &sel.v[i], rs[r].drop);
        msgs_free(&sel);
    }
    return count;
}

/* ---- stabilize ---------------------------------------------------------------------------- */

/* One round over the nodes: Ready handling, message delivery, then append and apply work,
 * each phase over all nodes in order. Sets *progress when anything was done. */
static int stabilize_round(rr_ienv *e, const uint32_t *idxs, size_t n, bool *progress)
{
    rr_dd_out tmp;
    rr_dd_out *saved;
    for (size_t i = 0; i < n; i++) {
        rr_ienv_node *node = e->nodes[idxs[i]];
        if (!rr_rawnode_has_ready(node->rn))
            continue;
        rr_ienv_printf(e, "> %" PRIu64 " handling Ready\n", node->id);
        saved = rr_ienv_indent_begin(e, &tmp);
        int rc = rr_ienv_process_ready(e, idxs[i]);
        rr_ienv_indent_end(e, saved, &tmp);
        if (rc != 0)
            return rc;
        *progress = true;
    }
    for (size_t i = 0; i < n; i++) {
        rr_ienv_node *node = e->nodes[idxs[i]];
        if (!msgs_has(&e->msgs, node->id))
            continue;
        rr_ienv_printf(e, "> %" PRIu64 " receiving messages\n", node->id);
        rr_ienv_recipient r = {.id = node->id, .drop = false};
        saved = rr_ienv_indent_begin(e, &tmp);
        rr_ienv_deliver_msgs(e, -1, &r, 1);
        rr_ienv_indent_end(e, saved, &tmp);
        *progress = true;
    }
    for (size_t i = 0; i < n; i++) {
        rr_ienv_node *node = e->nodes[idxs[i]];
        if (node->append_work.n == 0)
            continue;
        rr_ienv_printf(e, "> %" PRIu64 " processing append thread\n", node->id);
        while (node->append_work.n > 0) {
            saved = rr_ienv_indent_begin(e, &tmp);
            int rc = rr_ienv_process_append_thread(e, idxs[i]);
            rr_ienv_indent_end(e, saved, &tmp);
            if (rc != 0)
                return rc;
        }
        *progress = true;
    }
    for (size_t i = 0; i < n; i++) {
        rr_ienv_node *node = e->nodes[idxs[i]];
        if (node->apply_work.n == 0)
            continue;
        rr_ienv_printf(e, "> %" PRIu64 " processing apply thread\n", node->id);
        while (node->apply_work.n > 0) {
            saved = rr_ienv_indent_begin(e, &tmp);
            (void)rr_ienv_process_apply_thread(e, idxs[i]); /* etcd ignores its errors */
            rr_ienv_indent_end(e, saved, &tmp);
        }
        *progress = true;
    }
    return 0;
}

int rr_ienv_stabilize(rr_ienv *e, const uint32_t *idxs, size_t n)
{
    uint32_t all[IENV_NODES_MAX];
    if (n == 0) {
        for (uint32_t i = 0; i < e->n_nodes; i++)
            all[i] = i;
        idxs = all;
        n = e->n_nodes;
    }
    for (uint32_t round = 0; round < IENV_STABILIZE_ROUNDS_MAX; round++) {
        bool progress = false;
        int rc = stabilize_round(e, idxs, n, &progress);
        if (rc != 0 || !progress)
            return rc;
    }
    return rr_ienv_fatal(e, "stabilize: no fixed point after %d rounds", IENV_STABILIZE_ROUNDS_MAX);
}

/* ---- inspection ------------------------------------------------------------------------- */

int rr_ienv_status(rr_ienv *e, uint32_t idx)
{
    rr_ienv_node *n = e->nodes[idx];
    rr_status st;
    rr_rawnode_status(n->rn, &st);
    for (uint32_t i = 0; i < st.n_progress; i++) {
        rr_ienv_printf(e, "%" PRIu64 ": ", st.progress[i].id);
        rr_describe_progress(rr_ienv_sink(e), &st.progress[i], n->cfg.max_inflight_bytes);
        rr_ienv_puts(e, "\n");
    }
    return 0;
}

int rr_ienv_raft_state(rr_ienv *e)
{
    for (uint32_t i = 0; i < e->n_nodes; i++) {
        rr_status st;
        rr_rawnode_status(e->nodes[i]->rn, &st);
        bool voter = rr_id_set_contains(&st.config.voters, st.id) ||
                     rr_id_set_contains(&st.config.voters_outgoing, st.id);
        const char *state = rr_describe_state_name(st.soft_state.raft_state);
        rr_ienv_printf(e, "%" PRIu64 ": %s %s Term:%" PRIu64 " Lead:%" PRIu64 "\n", st.id,
                       state != NULL ? state : "?", voter ? "(Voter)" : "(Non-Voter)",
                       st.hard_state.term, st.soft_state.lead);
    }
    return 0;
}

int rr_ienv_raft_log(rr_ienv *e, uint32_t idx)
{
    rr_ienv_node *n = e->nodes[idx];
    rr_index_t fi = n->inner.ops->first_index(n->inner.ctx);
    rr_index_t li = n->inner.ops->last_index(n->inner.ctx);
    if (li < fi) {
        rr_ienv_printf(e, "log is empty: first index=%" PRIu64 ", last index=%" PRIu64, fi, li);
        return 0;
    }
    rr_entry_vec ents = {0};
    int rc = n->inner.ops->entries(n->inner.ctx, fi, li + 1, UINT64_MAX, &ents);
    if (rc != 0) {
        rr_entry_vec_free(&ents);
        return rr_ienv_fail(e, "%s", rr_ienv_strerror(rc));
    }
    rr_describe_entries(rr_ienv_sink(e), ents.v, ents.n);
    rr_entry_vec_free(&ents);
    return 0;
}

int rr_ienv_compact(rr_ienv *e, uint32_t idx, rr_index_t new_first_index)
{
    int rc = rr_memstorage_compact(e->nodes[idx]->ms, new_first_index);
    if (rc != 0)
        return rr_ienv_fail(e, "%s", rr_ienv_strerror(rc));
    return rr_ienv_raft_log(e, idx);
}

int rr_ienv_send_snapshot(rr_ienv *e, uint32_t from_idx, uint32_t to_idx)
{
    rr_ienv_node *from = e->nodes[from_idx];
    rr_snapshot snap;
    int rc = from->storage.ops->snapshot(from->storage.ctx, &snap);
    if (rc != 0)
        return rr_ienv_fail(e, "%s", rr_ienv_strerror(rc));
    rr_status st;
    rr_rawnode_status(from->rn, &st);
    rr_message proto = {
        .type = RR_MSG_SNAP,
        .term = st.hard_state.term,
        .from = from->id,
        .to = e->nodes[to_idx]->id,
        .snapshot = &snap,
    };
    rr_message m;
    rc = rr_message_copy(&m, &proto); /* the core's allocation, freed by rr_message_free */
    rr_buf_unref(snap.buf);
    if (rc != 0)
        return rr_ienv_fail(e, "%s", rr_ienv_strerror(rc));
    rr_describe_message(rr_ienv_sink(e), &m, true);
    msgs_push(&e->msgs, &m);
    return 0;
}
