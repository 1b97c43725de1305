/*
 * check.c: the invariants, checked as the events happen, and the trace of the last events.
 *
 *   election-safety      at most one leader per term (Raft §5.2)
 *   log-matching         an (index, term) names one entry, with one predecessor term
 *                        (§5.3): checked on every write a node makes
 *   leader-completeness  a leader of term T holds every entry committed in a term < T
 *                        (§5.4); commit terms are observed, so only ever overestimated
 *   state-machine-safety no two nodes commit or apply different entries at one index,
 *                        and equal prefixes give equal state machines (§5.4.3)
 *   persistence-order    an append acknowledgement or vote grant leaves a node only once
 *                        what it acknowledges is durable (etcd's async storage contract)
 *   durability           a restarted node still holds every entry it acknowledged and
 *                        the vote it granted; acknowledged writes are never lost
 *   read-linearizability a ReadIndex read is served at an index no older than any write
 *                        acknowledged before the read began (§6.4)
 *   monotonic-commit     a node's commit index never goes back while it runs
 *   monotonic-apply      a node applies index i + 1 after i, and never goes back
 *   liveness             after faults stop, the cluster settles within a bound (sim.c)
 */
#include "sim.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rr_sim_fail(rr_sim *s, const char *invariant, const char *fmt, ...)
{
    if (s->failed)
        return;
    s->failed = true;
    snprintf(s->violation, sizeof(s->violation), "%s", invariant);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->detail, sizeof(s->detail), fmt, ap);
    va_end(ap);
}

/* ---- trace ---------------------------------------------------------------------------- */

static const char *action_name(uint8_t what)
{
    switch (what) {
    case 'p':
        return "propose, proposal";
    case 'r':
        return "read index, read";
    case 'c':
        return "conf change, 10*node+type";
    case 't':
        return "transfer leadership to";
    case 'S':
        return "snapshot, compacted to";
    case 'C':
        return "crash, epoch";
    case 'L':
        return "becomes leader, term";
    default:
        return "?";
    }
}

static void trace_print(const rr_sim_trace_rec *t)
{
    const rr_message *m = &t->hdr;
    printf("  [%6llu] t=%-9llu ", (unsigned long long)t->step, (unsigned long long)t->at_us);
    switch (t->kind) {
    case EV_MSG:
        printf("%s %s %llu->%llu term=%llu logterm=%llu index=%llu commit=%llu ents=%u%s\n",
               t->aux == 'D' ? "drop" : "recv", rr_msg_type_name(t->what),
               (unsigned long long)m->from, (unsigned long long)m->to, (unsigned long long)m->term,
               (unsigned long long)m->log_term, (unsigned long long)m->index,
               (unsigned long long)m->commit, m->n_entries, m->reject ? " reject" : "");
        if (t->snap_index != 0)
            printf("             snapshot index=%llu\n", (unsigned long long)t->snap_index);
        break;
    case EV_WORKLOAD:
        printf("node %u: %s %llu\n", t->node, action_name(t->what), (unsigned long long)t->aux);
        break;
    case EV_RESTART:
        printf("node %u: restart (epoch %llu)\n", t->node, (unsigned long long)t->aux);
        break;
    default:
        printf("net: %c node %u mask %llx\n", t->what, t->node, (unsigned long long)t->aux);
        break;
    }
}

/* Workload codes in the trace, with their number: p propose (proposal id), r read (read
 * id), c conf change (10 * node + rr_conf_change_type of the first change, 0 to leave a
 * joint config), t transfer (target), S snapshot (compacted to), C crash and R restart
 * (epoch), P/O partition (symmetric: mask of one side; one-way: mask of unreachable
 * peers), H heal, L becomes leader (term). */
void rr_sim_trace(rr_sim *s, uint8_t kind, uint8_t what, uint32_t node, const rr_message *m,
                  uint64_t aux)
{
    rr_sim_trace_rec *t = &s->trace[s->n_trace++ % RR_SIM_TRACE_EVENTS];
    memset(t, 0, sizeof(*t));
    t->step = s->step;
    t->at_us = s->now_us;
    t->kind = kind;
    t->what = what;
    t->node = node;
    t->aux = aux;
    if (m != NULL) {
        t->hdr = *m;
        t->snap_index = m->snapshot != NULL ? m->snapshot->meta.index : 0;
        t->hdr.entries = NULL;
        t->hdr.snapshot = NULL;
        t->hdr.context = NULL;
        t->hdr.responses = NULL;
    }
    if (s->opt.verbose)
        trace_print(t);
}

void rr_sim_trace_dump(const rr_sim *s, uint64_t last)
{
    uint64_t n = s->n_trace < last ? s->n_trace : last;
    if (s->opt.verbose)
        return; /* already printed as it happened */
    printf("  last %llu events:\n", (unsigned long long)n);
    for (uint64_t i = s->n_trace - n; i < s->n_trace; i++)
        trace_print(&s->trace[i % RR_SIM_TRACE_EVENTS]);
}

/* ---- registries --------------------------------------------------------------------- */

void rr_sim_check_free(rr_sim *s)
{
    for (size_t i = 0; i < s->cap_idx; i++)
        free(s->idx[i].ents);
    free(s->idx);
    free(s->leader_of_term);
}

static rr_sim_index_rec *rec_at(rr_sim *s, rr_index_t i)
{
    if (i >= s->cap_idx) {
        size_t cap = s->cap_idx > 0 ? s->cap_idx : 256;
        while (cap <= i)
            cap *= 2;
        s->idx = rr_sim_xrealloc(s->idx, cap * sizeof(*s->idx));
        memset(s->idx + s->cap_idx, 0, (cap - s->cap_idx) * sizeof(*s->idx));
        s->cap_idx = cap;
    }
    return &s->idx[i];
}

uint64_t rr_sim_entry_hash(const rr_entry *e)
{
    uint64_t h = 1469598103934665603ull;
    uint64_t head[3] = {e->term, e->index, e->type};
    for (int k = 0; k < 3; k++) {
        h ^= head[k];
        h *= 1099511628211ull;
    }
    for (uint32_t k = 0; k < e->data_len; k++) {
        h ^= e->data[k];
        h *= 1099511628211ull;
    }
    return h;
}

/* ---- election safety, leader completeness ----------------------------------------- */

void rr_sim_check_leader(rr_sim *s, rr_sim_node *n)
{
    rr_term_t term = n->term;
    if (term >= s->cap_terms) {
        size_t cap = s->cap_terms > 0 ? s->cap_terms : 64;
        while (cap <= term)
            cap *= 2;
        s->leader_of_term = rr_sim_xrealloc(s->leader_of_term, cap * sizeof(rr_node_id_t));
        memset(s->leader_of_term + s->cap_terms, 0, (cap - s->cap_terms) * sizeof(rr_node_id_t));
        s->cap_terms = cap;
    }
    rr_node_id_t prev = s->leader_of_term[term];
    if (prev != 0 && prev != n->id) {
        rr_sim_fail(s, "election-safety", "nodes %llu and %llu both lead term %llu",
                    (unsigned long long)prev, (unsigned long long)n->id, (unsigned long long)term);
        return;
    }
    s->leader_of_term[term] = n->id;
    rr_index_t snap = rr_sim_storage_snap_index(n->cache);
    for (rr_index_t i = snap + 1; i <= s->committed_max && i < s->cap_idx; i++) {
        const rr_sim_index_rec *r = &s->idx[i];
        if (!r->committed || r->commit_term >= term)
            continue;
        rr_term_t have = rr_sim_storage_term(n->cache, i);
        if (have != r->committed_term) {
            rr_sim_fail(s, "leader-completeness",
                        "node %llu leads term %llu without entry %llu (term %llu, committed "
                        "by term %llu); it holds term %llu there",
                        (unsigned long long)n->id, (unsigned long long)term, (unsigned long long)i,
                        (unsigned long long)r->committed_term, (unsigned long long)r->commit_term,
                        (unsigned long long)have);
            return;
        }
    }
}

/* ---- log matching ----------------------------------------------------------------------- */

static void check_entry(rr_sim *s, rr_sim_node *n, const rr_entry *e, rr_term_t prev)
{
    rr_sim_index_rec *r = rec_at(s, e->index);
    uint64_t h = rr_sim_entry_hash(e);
    for (uint32_t k = 0; k < r->n_ents; k++) {
        rr_sim_ent_rec *x = &r->ents[k];
        if (x->term != e->term)
            continue;
        if (x->hash != h)
            rr_sim_fail(s, "log-matching", "node %llu writes a different entry at (%llu, %llu)",
                        (unsigned long long)n->id, (unsigned long long)e->index,
                        (unsigned long long)e->term);
        else if (prev != UINT64_MAX && x->prev_term != UINT64_MAX && x->prev_term != prev)
            rr_sim_fail(s, "log-matching",
                        "node %llu: entry (%llu, %llu) follows term %llu, elsewhere %llu",
                        (unsigned long long)n->id, (unsigned long long)e->index,
                        (unsigned long long)e->term, (unsigned long long)prev,
                        (unsigned long long)x->prev_term);
        else if (x->prev_term == UINT64_MAX)
            x->prev_term = prev;
        return;
    }
    if (r->n_ents == r->cap_ents) {
        r->cap_ents = r->cap_ents > 0 ? r->cap_ents * 2 : 2;
        r->ents = rr_sim_xrealloc(r->ents, r->cap_ents * sizeof(*r->ents));
    }
    r->ents[r->n_ents++] = (rr_sim_ent_rec){.term = e->term, .prev_term = prev, .hash = h};
}

void rr_sim_check_append(rr_sim *s, rr_sim_node *n, const rr_entry *ents, uint32_t n_ents)
{
    if (n_ents == 0)
        return;
    rr_index_t first = ents[0].index;
    rr_term_t prev = UINT64_MAX;
    if (first == 1)
        prev = 0;
    else if (first - 1 >= rr_sim_storage_snap_index(n->cache))
        prev = rr_sim_storage_term(n->cache, first - 1);
    if (prev == 0 && first > 1)
        prev = UINT64_MAX; /* unknown (beyond the log: the write would fail) */
    for (uint32_t k = 0; k < n_ents && !s->failed; k++) {
        check_entry(s, n, &ents[k], prev);
        prev = ents[k].term;
    }
}

/* ---- commit and apply ----------------------------------------------------------------------- */

static void mark_committed(rr_sim *s, rr_sim_node *n, rr_index_t i, rr_term_t t)
{
    rr_sim_index_rec *r = rec_at(s, i);
    if (r->committed && r->committed_term != t) {
        rr_sim_fail(s, "state-machine-safety",
                    "index %llu committed at term %llu, node %llu says term %llu",
                    (unsigned long long)i, (unsigned long long)r->committed_term,
                    (unsigned long long)n->id, (unsigned long long)t);
        return;
    }
    if (!r->committed || n->term < r->commit_term)
        r->commit_term = n->term;
    r->committed = true;
    r->committed_term = t;
    if (i > s->committed_max)
        s->committed_max = i;
}

void rr_sim_check_snapshot(rr_sim *s, const rr_snapshot *snap)
{
    rr_sim_index_rec *r = rec_at(s, snap->meta.index);
    if (r->committed && r->committed_term != snap->meta.term)
        rr_sim_fail(s, "state-machine-safety", "snapshot (%llu, %llu) but term %llu committed",
                    (unsigned long long)snap->meta.index, (unsigned long long)snap->meta.term,
                    (unsigned long long)r->committed_term);
    if (snap->data_len == 16) {
        uint64_t h = 0;
        for (int k = 0; k < 8; k++)
            h |= (uint64_t)snap->data[8 + k] << (8 * k);
        if (r->sm_set && r->sm_hash != h)
            rr_sim_fail(s, "state-machine-safety", "snapshot at %llu holds another state",
                        (unsigned long long)snap->meta.index);
    }
}

void rr_sim_check_commit(rr_sim *s, rr_sim_node *n, rr_index_t commit)
{
    if (commit < n->commit) {
        rr_sim_fail(s, "monotonic-commit", "node %llu commit %llu -> %llu",
                    (unsigned long long)n->id, (unsigned long long)n->commit,
                    (unsigned long long)commit);
        return;
    }
    rr_index_t snap = rr_sim_storage_snap_index(n->cache);
    for (rr_index_t i = n->commit + 1; i <= commit && !s->failed; i++) {
        if (i <= snap)
            continue;
        rr_term_t t = rr_sim_storage_term(n->cache, i);
        if (t != 0)
            mark_committed(s, n, i, t);
    }
    n->commit = commit;
}

void rr_sim_check_applied(rr_sim *s, rr_sim_node *n, const rr_entry *e)
{
    rr_sim_index_rec *r = rec_at(s, e->index);
    uint64_t h = rr_sim_entry_hash(e);
    if (r->applied && r->applied_hash != h) {
        rr_sim_fail(s, "state-machine-safety", "node %llu applies another entry at %llu",
                    (unsigned long long)n->id, (unsigned long long)e->index);
        return;
    }
    r->applied = true;
    r->applied_hash = h;
    mark_committed(s, n, e->index, e->term);
    if (r->sm_set && r->sm_hash != n->sm_hash) {
        rr_sim_fail(s, "state-machine-safety", "node %llu state differs after %llu",
                    (unsigned long long)n->id, (unsigned long long)e->index);
        return;
    }
    r->sm_set = true;
    r->sm_hash = n->sm_hash;
}

/* ---- persistence order and durability ----------------------------------------------------- */

void rr_sim_check_send(rr_sim *s, rr_sim_node *n, const rr_message *m)
{
    if (m->reject || s->opt.protocol_checks_only)
        return;
    if (m->type == RR_MSG_APP_RESP) {
        rr_index_t snap = rr_sim_storage_snap_index(n->durable);
        if (m->index <= snap)
            return; /* covered by a durable snapshot */
        /* The acknowledgement carries no term; a newer write may already have replaced
         * the entry in the cache, so only presence in the durable image is checked. */
        rr_term_t durable = rr_sim_storage_term(n->durable, m->index);
        if (durable == 0) {
            rr_sim_fail(s, "persistence-order",
                        "node %llu acknowledges index %llu to %llu before it is durable",
                        (unsigned long long)n->id, (unsigned long long)m->index,
                        (unsigned long long)m->to);
            return;
        }
        if (m->index >= n->promise_index) {
            n->promise_index = m->index;
            n->promise_term = durable;
        }
    } else if (m->type == RR_MSG_VOTE_RESP) {
        rr_storage st = rr_memstorage_storage(n->durable);
        rr_hard_state hs;
        rr_conf_state cs;
        (void)st.ops->initial_state(st.ctx, &hs, &cs);
        if (hs.term < m->term || (hs.term == m->term && hs.vote != m->to)) {
            rr_sim_fail(s, "persistence-order",
                        "node %llu grants its term-%llu vote to %llu before it is durable",
                        (unsigned long long)n->id, (unsigned long long)m->term,
                        (unsigned long long)m->to);
            return;
        }
        n->vote_term = m->term;
        n->vote_for = m->to;
    }
}

/* A durable write that legitimately replaces entries a node acknowledged (a new leader
 * overwriting an uncommitted tail) withdraws that part of the promise. */
void rr_sim_check_truncate(rr_sim *s, rr_sim_node *n, const rr_message *op)
{
    (void)s;
    if (op->snapshot != NULL && n->promise_index > op->snapshot->meta.index) {
        n->promise_index = op->snapshot->meta.index;
        n->promise_term = op->snapshot->meta.term;
    }
    for (uint32_t k = 0; k < op->n_entries; k++) {
        const rr_entry *e = &op->entries[k];
        if (e->index > n->promise_index)
            break;
        rr_term_t t = rr_sim_storage_term(n->durable, e->index);
        if (t != 0 && t != e->term) {
            n->promise_index = e->index - 1;
            n->promise_term = rr_sim_storage_term(n->durable, e->index - 1);
            break;
        }
    }
}

void rr_sim_check_promises(rr_sim *s, rr_sim_node *n)
{
    if (s->opt.protocol_checks_only)
        return;
    rr_storage st = rr_memstorage_storage(n->durable);
    rr_hard_state hs;
    rr_conf_state cs;
    (void)st.ops->initial_state(st.ctx, &hs, &cs);
    if (hs.term < n->vote_term || (hs.term == n->vote_term && hs.vote != n->vote_for)) {
        rr_sim_fail(s, "durability",
                    "node %llu restarts with vote %llu in term %llu; it granted term %llu to %llu",
                    (unsigned long long)n->id, (unsigned long long)hs.vote,
                    (unsigned long long)hs.term, (unsigned long long)n->vote_term,
                    (unsigned long long)n->vote_for);
        return;
    }
    if (n->promise_index <= rr_sim_storage_snap_index(n->durable))
        return;
    rr_term_t t = rr_sim_storage_term(n->durable, n->promise_index);
    if (t != n->promise_term)
        rr_sim_fail(s, "durability",
                    "node %llu restarts without entry (%llu, %llu) it acknowledged (has term "
                    "%llu, last index %llu)",
                    (unsigned long long)n->id, (unsigned long long)n->promise_index,
                    (unsigned long long)n->promise_term, (unsigned long long)t,
                    (unsigned long long)rr_sim_storage_last(n->durable));
}
