/*
 * workload.c: what clients and the environment do to the cluster, and when it is settled.
 *
 * Clients propose writes at any live node (a 16-byte payload: proposal id, node, epoch),
 * issue ReadIndex reads, and ask the leader for conf changes (add or remove voters and
 * learners, promote, demote, joint changes left explicitly or automatically) and
 * leadership transfers; nodes snapshot and compact. A write is acknowledged to its client
 * when the node it was proposed at applies it in the same incarnation. Faults: crashes
 * (restarted later) and partitions (healed later), at the rates of the options.
 */
#include "sim.h"

#include <stdlib.h>
#include <string.h>

typedef struct prop_buf {
    rr_buf hdr; /* first: the rr_buf pointer is the allocation */
    uint8_t data[16];
} prop_buf;

static void prop_buf_release(rr_buf *b)
{
    free(b);
}

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint32_t pick_up(rr_sim *s)
{
    uint32_t start = 1 + (uint32_t)rr_sim_below(s, s->n);
    for (uint32_t k = 0; k < s->n; k++) {
        uint32_t id = 1 + (start - 1 + k) % s->n;
        if (s->nodes[id].up)
            return id;
    }
    return 0;
}

/* The live node that believes it leads the highest term, or NULL. */
static rr_sim_node *leader(rr_sim *s)
{
    rr_sim_node *best = NULL;
    for (uint32_t id = 1; id <= s->n; id++) {
        rr_sim_node *n = &s->nodes[id];
        if (n->up && n->state == RR_STATE_LEADER && (best == NULL || n->term > best->term))
            best = n;
    }
    return best;
}

/* ---- writes ---------------------------------------------------------------------------- */

static void propose(rr_sim *s)
{
    uint32_t id = pick_up(s);
    if (id == 0)
        return;
    rr_sim_node *n = &s->nodes[id];
    if (s->n_props == s->cap_props) {
        s->cap_props = s->cap_props > 0 ? s->cap_props * 2 : 256;
        s->props = rr_sim_xrealloc(s->props, s->cap_props * sizeof(*s->props));
    }
    uint64_t pid = s->n_props++;
    rr_sim_prop *p = &s->props[pid];
    p->node = id;
    p->epoch = n->epoch;
    p->status = PROP_PENDING;
    prop_buf *b = rr_sim_xcalloc(1, sizeof(*b));
    b->hdr.refs = 1;
    b->hdr.release = prop_buf_release;
    put_le(b->data, pid, 8);
    put_le(b->data + 8, id, 4);
    put_le(b->data + 12, n->epoch, 4);
    int rc = rr_rawnode_propose(n->rn, b->data, 16, &b->hdr);
    rr_buf_unref(&b->hdr); /* the core took its own reference if it kept the entry */
    if (rc != 0)
        p->status = PROP_REJECTED;
    rr_sim_trace(s, EV_WORKLOAD, 'p', id, NULL, pid);
}

void rr_sim_prop_applied(rr_sim *s, rr_sim_node *n, const rr_entry *e)
{
    if (e->type != RR_ENTRY_NORMAL || e->data_len != 16)
        return;
    uint64_t pid = get_le(e->data, 8);
    if (pid >= s->n_props) {
        rr_sim_fail(s, "sim", "unknown proposal %llu applied", (unsigned long long)pid);
        return;
    }
    rr_sim_prop *p = &s->props[pid];
    if (p->status == PROP_REJECTED) {
        rr_sim_fail(s, "state-machine-safety", "proposal %llu was refused, yet applied at %llu",
                    (unsigned long long)pid, (unsigned long long)e->index);
        return;
    }
    p->status = PROP_COMMITTED;
    if (p->node == n->id && p->epoch == n->epoch) {
        /* The client is answered: from now on a read must observe this write. */
        s->writes_acked++;
        if (e->index > s->acked_index_max)
            s->acked_index_max = e->index;
        p->epoch = UINT32_MAX; /* acknowledged once */
    }
}

/* ---- reads ------------------------------------------------------------------------------- */

static void read_begin(rr_sim *s)
{
    uint32_t id = pick_up(s);
    if (id == 0)
        return;
    uint64_t rid = s->reads_started++;
    uint8_t ctx[8];
    put_le(ctx, rid, 8);
    if (rr_rawnode_read_index(s->nodes[id].rn, ctx, 8) != 0)
        return;
    rr_sim_read *r = &s->reads[rid % RR_SIM_READS_MAX]; /* the oldest read is abandoned */
    r->id = rid;
    r->node = id;
    r->used = true;
    r->ready = false;
    r->index = 0;
    r->acked_index_at_start = s->acked_index_max;
    rr_sim_trace(s, EV_WORKLOAD, 'r', id, NULL, rid);
}

void rr_sim_read_state(rr_sim *s, rr_sim_node *n, const rr_read_state *rs)
{
    if (rs->request_ctx_len != 8)
        return;
    uint64_t rid = get_le(rs->request_ctx, 8);
    rr_sim_read *r = &s->reads[rid % RR_SIM_READS_MAX];
    if (!r->used || r->id != rid || r->ready)
        return;
    if (rs->index < r->acked_index_at_start) {
        rr_sim_fail(s, "read-linearizability",
                    "read %llu at node %llu gets index %llu, but write at %llu was "
                    "acknowledged before it began",
                    (unsigned long long)rid, (unsigned long long)n->id,
                    (unsigned long long)rs->index, (unsigned long long)r->acked_index_at_start);
        return;
    }
    r->ready = true;
    r->index = rs->index;
    r->node = (uint32_t)n->id;
    rr_sim_reads_serve(s, n);
}

void rr_sim_reads_serve(rr_sim *s, rr_sim_node *n)
{
    for (uint32_t i = 0; i < RR_SIM_READS_MAX; i++) {
        rr_sim_read *r = &s->reads[i];
        if (!r->used || !r->ready || r->node != n->id || n->sm_index < r->index)
            continue;
        /* Served from the state machine at sm_index >= the read index. */
        r->used = false;
        s->reads_served++;
    }
}

/* ---- membership and leadership ---------------------------------------------------------- */

static bool member(const rr_conf_state *c, rr_node_id_t id, bool *voter)
{
    *voter = rr_id_set_contains(&c->voters, id);
    return *voter || rr_id_set_contains(&c->learners, id);
}

static void add_change(rr_conf_change *cc, uint8_t type, rr_node_id_t id)
{
    cc->changes[cc->n_changes].type = type;
    cc->changes[cc->n_changes].node_id = id;
    cc->n_changes++;
}

/* A change valid against configuration c (never removing the last voter). Returns false
 * when the drawn change does not apply. */
static bool draw_change(rr_sim *s, const rr_conf_state *c, rr_conf_change *cc)
{
    memset(cc, 0, sizeof(*cc));
    if (c->voters_outgoing.n > 0) {
        /* Joint: only leaving is allowed, and only when not left automatically. */
        return !c->auto_leave;
    }
    rr_node_id_t id = 1 + rr_sim_below(s, s->n);
    bool voter;
    bool in = member(c, id, &voter);
    /* Any change, the leader removing itself and removals from even or single-voter
     * sets included: the ones operators avoid (etcd-io/etcd#12359) are where the core's
     * departures from etcd were found (README, "Where the core differs from etcd"). */
    uint64_t kind = rr_sim_below(s, 5);
    switch (kind) {
    case 0: /* add a voter, or promote a learner */
        if (voter)
            return false;
        add_change(cc, RR_CONF_ADD_NODE, id);
        break;
    case 1: /* add a learner, or demote a voter */
        if ((voter && c->voters.n < 2) || (in && !voter))
            return false;
        add_change(cc, RR_CONF_ADD_LEARNER_NODE, id);
        break;
    case 2:
        if (!in || (voter && c->voters.n < 2))
            return false;
        add_change(cc, RR_CONF_REMOVE_NODE, id);
        break;
    default: { /* joint: one node in, another voter out */
        rr_node_id_t out = c->voters.ids[rr_sim_below(s, c->voters.n)];
        if (voter || out == id)
            return false;
        add_change(cc, RR_CONF_ADD_NODE, id);
        add_change(cc, RR_CONF_REMOVE_NODE, out);
        cc->transition =
            rr_sim_chance(s, 0.5) ? RR_TRANSITION_JOINT_EXPLICIT : RR_TRANSITION_JOINT_IMPLICIT;
        return true;
    }
    }
    cc->v1 = rr_sim_chance(s, 0.5);
    return true;
}

static void conf_change(rr_sim *s)
{
    rr_sim_node *l = leader(s);
    if (l == NULL)
        return;
    rr_status st;
    rr_rawnode_status(l->rn, &st);
    rr_conf_change cc;
    if (!draw_change(s, &st.config, &cc))
        return;
    if (rr_rawnode_propose_conf_change(l->rn, &cc) == 0) {
        s->conf_changes++;
        rr_sim_trace(s, EV_WORKLOAD, 'c', (uint32_t)l->id, NULL,
                     cc.n_changes > 0 ? cc.changes[0].node_id * 10 + cc.changes[0].type : 0);
    }
}

static void transfer(rr_sim *s)
{
    rr_sim_node *l = leader(s);
    if (l == NULL)
        return;
    rr_status st;
    rr_rawnode_status(l->rn, &st);
    if (st.config.voters.n == 0)
        return;
    rr_node_id_t to = st.config.voters.ids[rr_sim_below(s, st.config.voters.n)];
    rr_rawnode_transfer_leader(l->rn, to);
    rr_sim_trace(s, EV_WORKLOAD, 't', (uint32_t)l->id, NULL, to);
}

/* ---- the workload event ---------------------------------------------------------------- */

static void faults(rr_sim *s)
{
    if (rr_sim_chance(s, s->opt.crash_rate)) {
        uint32_t id = pick_up(s);
        if (id != 0) {
            rr_sim_crash(s, id);
            uint64_t down_us = (2 + rr_sim_below(s, 40)) * (uint64_t)RR_SIM_TICK_US;
            rr_sim_push_event(s, s->now_us + down_us, EV_RESTART, id, NULL);
        }
    }
    if (rr_sim_chance(s, s->opt.partition_rate)) {
        rr_sim_net_partition(s);
        uint64_t heal_us = (3 + rr_sim_below(s, 50)) * (uint64_t)RR_SIM_TICK_US;
        rr_sim_push_event(s, s->now_us + heal_us, EV_HEAL, 0, NULL);
    }
}

void rr_sim_workload(rr_sim *s)
{
    if (!s->faults_on)
        return;
    rr_sim_push_event(s, s->now_us + 100 + rr_sim_below(s, 900), EV_WORKLOAD, 0, NULL);
    uint64_t r = rr_sim_below(s, 100);
    if (r < 50) {
        propose(s);
    } else if (r < 65) {
        read_begin(s);
    } else if (r < 72) {
        conf_change(s);
    } else if (r < 75) {
        transfer(s);
    } else if (r < 83) {
        uint32_t id = pick_up(s);
        if (id != 0)
            rr_sim_snapshot_create(s, &s->nodes[id]);
    }
    faults(s);
}

/* ---- liveness ----------------------------------------------------------------------------- */

static bool in_config(const rr_conf_state *c, rr_node_id_t id)
{
    return rr_id_set_contains(&c->voters, id) || rr_id_set_contains(&c->voters_outgoing, id) ||
           rr_id_set_contains(&c->learners, id) || rr_id_set_contains(&c->learners_next, id);
}

static bool proposals_in_flight(const rr_sim *s)
{
    for (size_t i = 0; i < s->heap.n; i++) {
        if (s->heap.v[i].kind == EV_MSG && s->heap.v[i].msg.type == RR_MSG_PROP)
            return true;
    }
    return false;
}

bool rr_sim_live(rr_sim *s)
{
    rr_sim_node *l = leader(s);
    if (l == NULL)
        return false;
    rr_status st;
    rr_rawnode_status(l->rn, &st);
    rr_index_t commit = st.hard_state.commit;
    if (commit != rr_sim_storage_last(l->cache) || l->sm_index != commit)
        return false;
    for (uint32_t id = 1; id <= s->n; id++) {
        const rr_sim_node *n = &s->nodes[id];
        if (!in_config(&st.config, id))
            continue;
        if (!n->up || n->term != l->term || n->lead != l->id || n->sm_index != commit)
            return false;
    }
    if (proposals_in_flight(s))
        return false;
    /* Settled: a write still pending is in no log that can commit; it was lost. */
    for (size_t i = 0; i < s->n_props; i++) {
        if (s->props[i].status == PROP_PENDING)
            s->props[i].status = PROP_REJECTED;
    }
    if (s->acked_index_max > commit)
        rr_sim_fail(s, "durability", "write acknowledged at %llu, settled commit is %llu",
                    (unsigned long long)s->acked_index_max, (unsigned long long)commit);
    return true;
}
