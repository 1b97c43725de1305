/*
 * sim.c: the simulated cluster and its event loop (see sim.h).
 *
 * Each event runs to completion, then every live node's Ready is handled until none has
 * one, then the checkers have seen everything the event caused. A node in async mode
 * hands its writes to its disk (MsgStorageAppend) and its committed entries to its apply
 * queue (MsgStorageApply); the responses go back only once the disk or the apply thread
 * has done the work. A node in sync mode persists, sends, applies, then advances.
 */
#include "sim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *rr_sim_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL) {
        fprintf(stderr, "rr-sim: out of memory\n");
        abort();
    }
    return p;
}

void *rr_sim_xrealloc(void *p, size_t size)
{
    p = realloc(p, size);
    if (p == NULL) {
        fprintf(stderr, "rr-sim: out of memory\n");
        abort();
    }
    return p;
}

/* ---- event heap, ordered by (time, sequence): ties replay in push order ------------ */

static bool ev_before(const rr_sim_event *a, const rr_sim_event *b)
{
    return a->at_us < b->at_us || (a->at_us == b->at_us && a->seq < b->seq);
}

static void ev_swap(rr_sim_event *a, rr_sim_event *b)
{
    rr_sim_event t = *a;
    *a = *b;
    *b = t;
}

void rr_sim_push_event(rr_sim *s, uint64_t at_us, uint8_t kind, uint32_t node, rr_message *m)
{
    rr_sim_heap *h = &s->heap;
    if (h->n == h->cap) {
        h->cap = h->cap > 0 ? h->cap * 2 : 256;
        h->v = rr_sim_xrealloc(h->v, h->cap * sizeof(*h->v));
    }
    rr_sim_event *ev = &h->v[h->n];
    memset(ev, 0, sizeof(*ev));
    ev->at_us = at_us;
    ev->seq = s->seq++;
    ev->kind = kind;
    ev->node = node;
    ev->epoch = node != 0 ? s->nodes[node].epoch : 0;
    if (m != NULL) {
        ev->msg = *m;
        memset(m, 0, sizeof(*m));
    }
    for (size_t i = h->n++; i > 0;) {
        size_t parent = (i - 1) / 2;
        if (!ev_before(&h->v[i], &h->v[parent]))
            break;
        ev_swap(&h->v[i], &h->v[parent]);
        i = parent;
    }
}

static void heap_pop(rr_sim_heap *h, rr_sim_event *out)
{
    *out = h->v[0];
    h->v[0] = h->v[--h->n];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && ev_before(&h->v[l], &h->v[m]))
            m = l;
        if (r < h->n && ev_before(&h->v[r], &h->v[m]))
            m = r;
        if (m == i)
            break;
        ev_swap(&h->v[i], &h->v[m]);
        i = m;
    }
}

/* ---- nodes ------------------------------------------------------------------------ */

void rr_sim_step(rr_sim *s, uint32_t node, const rr_message *m)
{
    rr_sim_node *n = &s->nodes[node];
    if (!n->up)
        return;
    int rc = rr_rawnode_step(n->rn, m);
    if (rc == -EINVAL)
        rr_sim_fail(s, "sim", "node %u refused a %s", node, rr_msg_type_name(m->type));
}

/* Delivers a finished write's or apply's responses: local ones are stepped, the rest
 * (acknowledgements to peers) only now leave the node. */
static void apply_done(rr_sim *s, rr_sim_node *n);

void rr_sim_deliver_responses(rr_sim *s, rr_sim_node *n, rr_message *op)
{
    if (n->async && op->snapshot != NULL && op->type == RR_MSG_STORAGE_APPEND) {
        /* The snapshot replaces the state machine: finish the apply work queued before
         * it first (its entries are skipped, its responses stepped), so the state machine
         * sees apply work and snapshot in log order. */
        while (n->apply_queue.n > 0 && !s->failed)
            apply_done(s, n);
        rr_sim_sm_restore(s, n, op->snapshot);
    }
    for (uint32_t i = 0; i < op->n_responses; i++) {
        rr_message r = op->responses[i];
        memset(&op->responses[i], 0, sizeof(r));
        if (r.to == n->id || r.to == RR_LOCAL_APPEND_THREAD || r.to == RR_LOCAL_APPLY_THREAD) {
            rr_sim_step(s, (uint32_t)n->id, &r);
            rr_message_free(&r);
        } else {
            rr_sim_net_send(s, (uint32_t)n->id, &r);
        }
    }
}

/* The state machine's snapshot: applied index and hash chain, little-endian. */
typedef struct sm_buf {
    rr_buf hdr; /* first: the rr_buf pointer is the allocation */
    uint8_t data[16];
} sm_buf;

static void sm_buf_release(rr_buf *b)
{
    free(b);
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Writes a snapshot of the state machine to both images (the application writes and
 * syncs its snapshots itself). */
void rr_sim_snapshot_take(rr_sim_node *n)
{
    rr_index_t i = n->sm_index;
    if (i <= rr_sim_storage_snap_index(n->cache))
        return;
    sm_buf *b = rr_sim_xcalloc(1, sizeof(*b));
    b->hdr.refs = 1;
    b->hdr.release = sm_buf_release;
    put_u64(b->data, n->sm_index);
    put_u64(b->data + 8, n->sm_hash);
    /* The snapshot is written and synced by the application itself: both images. */
    if (rr_memstorage_create_snapshot(n->cache, i, &n->sm_conf, b->data, 16, &b->hdr) == 0)
        (void)rr_memstorage_create_snapshot(n->durable, i, &n->sm_conf, b->data, 16, &b->hdr);
    rr_buf_unref(&b->hdr);
    /* In async mode the snapshot may be ahead of the durable commit index (entries apply
     * before the hard state that commits them is written); the core starts from the
     * snapshot then (test_restart_with_commit_below_snapshot). */
}

void rr_sim_snapshot_create(rr_sim *s, rr_sim_node *n)
{
    rr_sim_snapshot_take(n);
    /* Compact up to the snapshot (entry `to` becomes the log's dummy head), keeping a
     * random tail for slow followers. */
    rr_index_t snap = rr_sim_storage_snap_index(n->cache);
    rr_index_t keep = rr_sim_below(s, 20);
    if (snap <= keep)
        return;
    rr_index_t to = snap - keep;
    (void)rr_memstorage_compact(n->cache, to);
    rr_index_t durable_snap = rr_sim_storage_snap_index(n->durable);
    (void)rr_memstorage_compact(n->durable, to < durable_snap ? to : durable_snap);
    rr_sim_trace(s, EV_WORKLOAD, 'S', (uint32_t)n->id, NULL, to);
}

void rr_sim_sm_restore(rr_sim *s, rr_sim_node *n, const rr_snapshot *snap)
{
    if (snap->meta.index < n->sm_index)
        rr_sim_fail(s, "monotonic-apply", "node %u restores snapshot %llu below applied %llu",
                    (unsigned)n->id, (unsigned long long)snap->meta.index,
                    (unsigned long long)n->sm_index);
    n->sm_index = snap->meta.index;
    n->sm_hash = snap->data_len == 16 ? get_u64(snap->data + 8) : 0;
    n->sm_conf = snap->meta.conf_state;
    if (snap->data_len == 16 && get_u64(snap->data) != snap->meta.index)
        rr_sim_fail(s, "sim", "snapshot data at %llu says %llu",
                    (unsigned long long)snap->meta.index, (unsigned long long)get_u64(snap->data));
    if (snap->meta.index > 0)
        rr_sim_check_snapshot(s, snap);
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdull;
}

static void apply_conf_change(rr_sim *s, rr_sim_node *n, const rr_entry *e)
{
    rr_conf_change cc;
    int rc = rr_conf_change_decode(e->data, e->data_len, e->type == RR_ENTRY_CONF_CHANGE, &cc);
    if (rc != 0) {
        rr_sim_fail(s, "sim", "node %u cannot decode conf change at %llu", (unsigned)n->id,
                    (unsigned long long)e->index);
        return;
    }
    /* The core's configuration is the one the state machine has applied; a difference
     * would make the change below apply to the wrong configuration. Apply work queued
     * before the core restored a snapshot (async mode) is the exception: the core already
     * has the snapshot's configuration and declines changes it covers, and the state
     * machine is restored from that snapshot next. */
    rr_status st;
    rr_rawnode_status(n->rn, &st);
    bool same = rr_conf_state_equal(&st.config, &n->sm_conf);
    rr_conf_state cs;
    if (!rr_rawnode_apply_conf_change(n->rn, e->index, &cc, &cs)) {
        if (e->index > n->restored_snap_index)
            rr_sim_fail(s, "state-machine-safety",
                        "node %llu: core declined the conf change at %llu, above its restored "
                        "snapshot %llu",
                        (unsigned long long)n->id, (unsigned long long)e->index,
                        (unsigned long long)n->restored_snap_index);
        return;
    }
    if (!same) {
        rr_sim_fail(s, "state-machine-safety",
                    "node %llu: core configuration differs from the applied one at %llu",
                    (unsigned long long)n->id, (unsigned long long)e->index);
        return;
    }
    n->sm_conf = cs;
}

void rr_sim_apply(rr_sim *s, rr_sim_node *n, const rr_entry *ents, uint32_t n_ents)
{
    for (uint32_t k = 0; k < n_ents && !s->failed; k++) {
        const rr_entry *e = &ents[k];
        if (e->index <= n->sm_index)
            continue; /* in the snapshot the state machine was restored from */
        if (e->index != n->sm_index + 1) {
            rr_sim_fail(s, "monotonic-apply", "node %u applies %llu after %llu", (unsigned)n->id,
                        (unsigned long long)e->index, (unsigned long long)n->sm_index);
            return;
        }
        if (e->type != RR_ENTRY_NORMAL)
            apply_conf_change(s, n, e);
        n->sm_hash = mix(n->sm_hash, rr_sim_entry_hash(e));
        n->sm_index = e->index;
        rr_sim_check_applied(s, n, e);
        rr_sim_prop_applied(s, n, e);
    }
    rr_sim_reads_serve(s, n);
}

static void apply_done(rr_sim *s, rr_sim_node *n)
{
    rr_message op;
    if (!rr_sim_msgq_pop(&n->apply_queue, &op))
        return;
    rr_sim_apply(s, n, op.entries, op.n_entries);
    rr_sim_deliver_responses(s, n, &op);
    rr_message_free(&op);
}

static void schedule_apply(rr_sim *s, rr_sim_node *n)
{
    uint64_t at = s->now_us + 10 + rr_sim_below(s, 200);
    if (at <= n->apply_last_us)
        at = n->apply_last_us; /* in order, batched behind the one in progress */
    n->apply_last_us = at;
    rr_sim_push_event(s, at, EV_APPLY, (uint32_t)n->id, NULL);
}

/* Moves a message out of a Ready to where it goes. */
static void route(rr_sim *s, rr_sim_node *n, rr_message *m)
{
    if (m->to == RR_LOCAL_APPEND_THREAD) {
        /* The core has restored this snapshot (the checkers' record, see sim.h). */
        if (m->snapshot != NULL && m->snapshot->meta.index > n->restored_snap_index)
            n->restored_snap_index = m->snapshot->meta.index;
        rr_sim_disk_write(s, n, m, false);
    } else if (m->to == RR_LOCAL_APPLY_THREAD) {
        rr_sim_msgq_push(&n->apply_queue, m);
        schedule_apply(s, n);
    } else if (m->to == n->id) {
        rr_sim_step(s, (uint32_t)n->id, m);
        rr_message_free(m);
    } else {
        rr_sim_net_send(s, (uint32_t)n->id, m);
    }
}

/* Sync mode: the Ready's hard state, snapshot and entries as one write. */
static void persist_sync(rr_sim *s, rr_sim_node *n, rr_ready *rd)
{
    if (!rd->has_hard_state && rd->snapshot == NULL && rd->n_entries == 0)
        return;
    rr_message op;
    memset(&op, 0, sizeof(op));
    op.type = RR_MSG_STORAGE_APPEND;
    op.from = n->id;
    op.to = RR_LOCAL_APPEND_THREAD;
    if (rd->has_hard_state) {
        op.term = rd->hard_state.term;
        op.vote = rd->hard_state.vote;
        op.commit = rd->hard_state.commit;
    }
    op.entries = rd->entries; /* moved: the Ready no longer owns them */
    op.n_entries = rd->n_entries;
    rd->entries = NULL;
    rd->n_entries = 0;
    op.snapshot = rd->snapshot;
    rd->snapshot = NULL;
    if (op.snapshot != NULL)
        rr_sim_sm_restore(s, n, op.snapshot);
    rr_sim_disk_write(s, n, &op, true);
}

static void handle_ready(rr_sim *s, rr_sim_node *n)
{
    rr_ready rd;
    if (rr_rawnode_ready(n->rn, &rd) != 0) {
        rr_sim_fail(s, "sim", "node %u: rr_rawnode_ready failed", (unsigned)n->id);
        return;
    }
    if (rd.has_hard_state)
        n->term = rd.hard_state.term;
    bool became_leader = false;
    if (rd.has_soft_state) {
        became_leader = rd.soft_state.raft_state == RR_STATE_LEADER && n->state != RR_STATE_LEADER;
        n->state = rd.soft_state.raft_state;
        n->lead = rd.soft_state.lead;
    }
    if (!n->async)
        persist_sync(s, n, &rd);
    for (uint32_t i = 0; i < rd.n_messages && n->up; i++)
        route(s, n, &rd.messages[i]);
    for (uint32_t i = 0; i < rd.n_read_states; i++)
        rr_sim_read_state(s, n, &rd.read_states[i]);
    if (rd.has_hard_state)
        rr_sim_check_commit(s, n, rd.hard_state.commit);
    if (!n->async)
        rr_sim_apply(s, n, rd.committed_entries, rd.n_committed_entries);
    if (became_leader) {
        rr_sim_trace(s, EV_WORKLOAD, 'L', (uint32_t)n->id, NULL, n->term);
        rr_sim_check_leader(s, n);
    }
    rr_ready_free(&rd);
    if (!n->async)
        rr_rawnode_advance(n->rn);
}

static void process_readies(rr_sim *s)
{
    for (uint32_t id = 1; id <= s->n && !s->failed; id++) {
        rr_sim_node *n = &s->nodes[id];
        for (int round = 0; n->up && rr_rawnode_has_ready(n->rn) && !s->failed; round++) {
            if (round == 1000) {
                rr_sim_fail(s, "sim", "node %u: Ready does not settle", id);
                return;
            }
            handle_ready(s, n);
        }
    }
}

/* ---- crash and restart ---------------------------------------------------------------- */

void rr_sim_crash(rr_sim *s, uint32_t node)
{
    rr_sim_node *n = &s->nodes[node];
    if (!n->up)
        return;
    rr_sim_trace(s, EV_WORKLOAD, 'C', node, NULL, n->epoch);
    rr_rawnode_free(n->rn);
    n->rn = NULL;
    rr_sim_disk_crash(s, n);
    rr_sim_msgq_free(&n->apply_queue);
    n->up = false;
    n->restored_snap_index = 0;
    n->epoch++;
    n->state = RR_STATE_FOLLOWER;
    n->lead = 0;
    for (uint32_t i = 0; i < RR_SIM_READS_MAX; i++) {
        if (s->reads[i].node == node)
            s->reads[i].used = false;
    }
    s->crashes++;
}

static int start_node(rr_sim *s, rr_sim_node *n)
{
    rr_storage cache = rr_memstorage_storage(n->cache);
    rr_snapshot snap;
    if (cache.ops->snapshot(cache.ctx, &snap) != 0)
        return -1;
    n->sm_index = 0;
    rr_sim_sm_restore(s, n, &snap);
    rr_snapshot_clear(&snap);
    rr_hard_state hs;
    rr_conf_state cs;
    (void)cache.ops->initial_state(cache.ctx, &hs, &cs);
    rr_config cfg = s->tmpl;
    cfg.id = n->id;
    cfg.storage = rr_sim_disk_storage(n);
    cfg.applied = n->sm_index;
    cfg.rand_seed = rr_sim_rand(s);
    cfg.async_storage_writes = n->async;
    int rc = rr_rawnode_new(&cfg, &n->rn);
    if (rc != 0) {
        rr_sim_fail(
            s, "sim", "node %llu: rr_rawnode_new: %d (commit %llu, applied %llu, last %llu)",
            (unsigned long long)n->id, rc, (unsigned long long)hs.commit,
            (unsigned long long)cfg.applied, (unsigned long long)rr_sim_storage_last(n->cache));
        return -1;
    }
    n->up = true;
    n->term = hs.term;
    n->commit = hs.commit;
    n->state = RR_STATE_FOLLOWER;
    n->lead = 0;
    return 0;
}

void rr_sim_restart(rr_sim *s, uint32_t node)
{
    rr_sim_node *n = &s->nodes[node];
    if (n->up)
        return;
    rr_sim_trace(s, EV_RESTART, 'R', node, NULL, n->epoch);
    if (rr_sim_disk_recover(s, n) != 0 || start_node(s, n) != 0)
        rr_sim_fail(s, "sim", "node %u cannot restart", node);
}

/* ---- the run of one seed ------------------------------------------------------------ */

static void run_event(rr_sim *s, rr_sim_event *ev)
{
    s->now_us = ev->at_us;
    s->step++;
    rr_sim_node *n = ev->node != 0 ? &s->nodes[ev->node] : NULL;
    bool current = n != NULL && n->up && n->epoch == ev->epoch;
    switch (ev->kind) {
    case EV_TICK:
        if (n->up)
            rr_rawnode_tick(n->rn);
        rr_sim_push_event(s, s->now_us + n->tick_us, EV_TICK, ev->node, NULL);
        break;
    case EV_MSG:
        rr_sim_net_deliver(s, &ev->msg);
        break;
    case EV_FSYNC:
        if (current)
            rr_sim_disk_fsync_done(s, n);
        break;
    case EV_APPLY:
        if (current)
            apply_done(s, n);
        break;
    case EV_WORKLOAD:
        rr_sim_workload(s);
        break;
    case EV_RESTART:
        rr_sim_restart(s, ev->node);
        break;
    case EV_HEAL:
        rr_sim_net_heal(s);
        break;
    default:
        break;
    }
    rr_message_free(&ev->msg);
    process_readies(s);
}

static void init_config(rr_sim *s)
{
    rr_config *c = &s->tmpl;
    rr_config_init(c, 1, (rr_storage){0});
    c->pre_vote = rr_sim_chance(s, 0.8);
    c->check_quorum = rr_sim_chance(s, 0.8);
    c->step_down_on_removal = rr_sim_chance(s, 0.5);
    static const uint64_t msg_bytes[] = {0, 200, RR_NO_LIMIT};
    c->max_size_per_msg_bytes = msg_bytes[rr_sim_below(s, 3)];
    c->max_inflight_msgs = rr_sim_chance(s, 0.5) ? 4 : 256;
    c->max_committed_size_per_ready_bytes = rr_sim_chance(s, 0.3) ? 300 : 0;
    c->max_uncommitted_entries_size_bytes = rr_sim_chance(s, 0.2) ? 2000 : 0;
}

static void init_cluster(rr_sim *s)
{
    s->n =
        s->opt.nodes != 0
            ? s->opt.nodes
            : RR_SIM_NODES_MIN + (uint32_t)rr_sim_below(s, RR_SIM_NODES_MAX - RR_SIM_NODES_MIN + 1);
    init_config(s);
    /* Most clusters start with every node a voter; some with one or two learners. */
    uint32_t voters = s->n > 3 ? s->n - (uint32_t)rr_sim_below(s, 3) : s->n;
    rr_snapshot boot;
    memset(&boot, 0, sizeof(boot));
    for (uint32_t id = 1; id <= s->n; id++) {
        if (id <= voters)
            rr_id_set_insert(&boot.meta.conf_state.voters, id);
        else
            rr_id_set_insert(&boot.meta.conf_state.learners, id);
    }
    for (uint32_t id = 1; id <= s->n; id++) {
        rr_sim_node *n = &s->nodes[id];
        n->id = id;
        n->async = s->opt.teeth.ack_early || rr_sim_chance(s, 0.75);
        n->tick_us = (uint32_t)(RR_SIM_TICK_US * (90 + rr_sim_below(s, 21)) / 100);
        rr_sim_disk_init(n, &boot);
        if (start_node(s, n) != 0)
            rr_sim_fail(s, "sim", "node %u cannot start", id);
        rr_sim_push_event(s, rr_sim_below(s, n->tick_us), EV_TICK, id, NULL);
    }
    rr_sim_push_event(s, RR_SIM_TICK_US, EV_WORKLOAD, 0, NULL);
}

static void free_cluster(rr_sim *s)
{
    for (uint32_t id = 1; id <= s->n; id++) {
        rr_sim_node *n = &s->nodes[id];
        if (n->rn != NULL)
            rr_rawnode_free(n->rn);
        rr_sim_msgq_free(&n->apply_queue);
        rr_sim_disk_free(n);
    }
    for (size_t i = 0; i < s->heap.n; i++)
        rr_message_free(&s->heap.v[i].msg);
    free(s->heap.v);
    free(s->props);
    rr_sim_check_free(s);
}

static void stop_faults(rr_sim *s)
{
    s->faults_on = false;
    rr_sim_net_heal(s);
    for (uint32_t id = 1; id <= s->n; id++)
        rr_sim_restart(s, id);
    process_readies(s);
}

/* Liveness: once faults stop, the cluster must settle within the bound. */
static void run_liveness(rr_sim *s, uint32_t *liveness_ticks)
{
    stop_faults(s);
    uint64_t start_us = s->now_us;
    uint64_t limit_us = start_us + (uint64_t)s->opt.liveness_ticks_max * RR_SIM_TICK_US;
    while (!s->failed && s->heap.n > 0) {
        rr_sim_event ev;
        heap_pop(&s->heap, &ev);
        bool tick = ev.kind == EV_TICK;
        run_event(s, &ev);
        if (s->failed || !tick)
            continue;
        if (rr_sim_live(s)) {
            *liveness_ticks = (uint32_t)((s->now_us - start_us) / RR_SIM_TICK_US);
            return;
        }
        if (s->now_us > limit_us) {
            rr_sim_fail(s, "liveness", "no settled leader %u ticks after faults stopped",
                        s->opt.liveness_ticks_max);
            return;
        }
    }
}

static void print_set(const char *name, const rr_id_set *set)
{
    if (set->n == 0)
        return;
    printf(" %s=", name);
    for (uint32_t i = 0; i < set->n; i++)
        printf("%s%llu", i > 0 ? "," : "", (unsigned long long)set->ids[i]);
}

static void print_nodes(const rr_sim *s)
{
    for (uint32_t id = 1; id <= s->n; id++) {
        const rr_sim_node *n = &s->nodes[id];
        if (!n->up) {
            printf("  node %u: down\n", id);
            continue;
        }
        rr_status st;
        rr_rawnode_status(n->rn, &st);
        printf("  node %u: %s term=%llu vote=%llu lead=%llu commit=%llu applied=%llu last=%llu "
               "%s",
               id, n->async ? "async" : "sync", (unsigned long long)st.hard_state.term,
               (unsigned long long)st.hard_state.vote, (unsigned long long)st.soft_state.lead,
               (unsigned long long)st.hard_state.commit, (unsigned long long)n->sm_index,
               (unsigned long long)rr_sim_storage_last(n->cache),
               st.soft_state.raft_state == RR_STATE_LEADER ? "leader" : "");
        print_set("voters", &st.config.voters);
        print_set("outgoing", &st.config.voters_outgoing);
        print_set("learners", &st.config.learners);
        print_set("learners_next", &st.config.learners_next);
        printf("\n");
        for (uint32_t i = 0; i < st.n_progress; i++) {
            const rr_progress_status *p = &st.progress[i];
            printf("    progress %llu: match=%llu next=%llu state=%u paused=%d inflight=%u "
                   "active=%d\n",
                   (unsigned long long)p->id, (unsigned long long)p->match,
                   (unsigned long long)p->next, p->state, p->paused, p->inflight_count,
                   p->recent_active);
        }
    }
}

static void print_failure(const rr_sim *s)
{
    printf("rr-sim: seed %llu FAILED: invariant %s: %s\n", (unsigned long long)s->seed,
           s->violation, s->detail);
    printf("  at step %llu, time %llu us, %u nodes\n", (unsigned long long)s->step,
           (unsigned long long)s->now_us, s->n);
    print_nodes(s);
    rr_sim_trace_dump(s, RR_SIM_TRACE_EVENTS);
}

/* True when name is one of the comma-separated invariants of list. */
static bool listed(const char *list, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = list; p != NULL && *p != '\0';) {
        const char *end = strchr(p, ',');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        if (n == len && strncmp(p, name, len) == 0)
            return true;
        p = end != NULL ? end + 1 : NULL;
    }
    return false;
}

/* Runs one seed. Returns 0; 1 on a violation (printed); 2 on a violation --expect lists. */
int rr_sim_run_seed(const rr_sim_opts *opt, uint64_t seed, uint32_t *liveness_ticks)
{
    rr_sim *s = rr_sim_xcalloc(1, sizeof(*s));
    s->opt = *opt;
    s->seed = seed;
    s->rng = seed * 0x2545f4914f6cdd1dull + 1;
    s->faults_on = true;
    *liveness_ticks = 0;
    init_cluster(s);
    while (!s->failed && s->step < opt->steps && s->heap.n > 0) {
        rr_sim_event ev;
        heap_pop(&s->heap, &ev);
        run_event(s, &ev);
    }
    if (!s->failed)
        run_liveness(s, liveness_ticks);
    int rc = 0;
    if (s->failed) {
        print_failure(s);
        rc = 1;
    } else if (opt->verbose) {
        printf("seed %llu ok: %u nodes, %llu events, commit %llu, %llu writes acked, "
               "%llu reads, %llu conf changes, %llu crashes, settled in %u ticks\n",
               (unsigned long long)seed, s->n, (unsigned long long)s->step,
               (unsigned long long)s->committed_max, (unsigned long long)s->writes_acked,
               (unsigned long long)s->reads_served, (unsigned long long)s->conf_changes,
               (unsigned long long)s->crashes, *liveness_ticks);
    }
    free_cluster(s);
    if (s->failed && opt->expect != NULL && listed(opt->expect, s->violation))
        rc = 2;
    free(s);
    return rc;
}
