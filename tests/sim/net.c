/*
 * net.c: the simulated network.
 *
 * Every message gets a random latency; a link delivers in order (a slow message holds up
 * those behind it). While faults are on, a message may be dropped, duplicated or take
 * another path (overtaking earlier ones), and partitions (symmetric: two groups; one-way:
 * a node cannot reach some peers) block delivery until they heal. The
 * transport's duties to the core are kept: a MsgSnap that is dropped is reported failed,
 * one that is delivered is reported done, and a dropped MsgApp reports its peer
 * unreachable — as etcd's rafthttp does.
 */
#include "sim.h"

#include <string.h>

static void report_snapshot(rr_sim *s, const rr_message *m, bool failed)
{
    if (m->type != RR_MSG_SNAP || m->from == 0 || m->from > s->n)
        return;
    rr_sim_node *from = &s->nodes[m->from];
    if (from->up)
        rr_rawnode_report_snapshot(from->rn, m->to, failed);
}

static void drop(rr_sim *s, rr_message *m)
{
    rr_sim_trace(s, EV_MSG, m->type, (uint32_t)m->to, m, 'D');
    report_snapshot(s, m, true);
    if (m->type == RR_MSG_APP && m->from >= 1 && m->from <= s->n && s->nodes[m->from].up &&
        rr_sim_chance(s, 0.5))
        rr_rawnode_report_unreachable(s->nodes[m->from].rn, m->to);
    rr_message_free(m);
}

static uint64_t latency_us(rr_sim *s)
{
    uint64_t us = 50 + rr_sim_below(s, 600);
    if (rr_sim_chance(s, 0.05))
        us += rr_sim_below(s, 4000); /* a slow path: reorders past many later messages */
    return us;
}

/* Links are FIFO, as a TCP stream is; while faults are on, a message may take another
 * path and overtake those sent before it. */
static uint64_t arrival_us(rr_sim *s, uint32_t from, uint32_t to)
{
    uint64_t at = s->now_us + latency_us(s);
    if (to == 0 || to > s->n)
        return at;
    if (s->faults_on && rr_sim_chance(s, s->opt.reorder_rate))
        return at;
    uint64_t *last = &s->link_last_us[from][to];
    if (at <= *last)
        at = *last + 1;
    *last = at;
    return at;
}

void rr_sim_net_send(rr_sim *s, uint32_t from, rr_message *m)
{
    rr_sim_check_send(s, &s->nodes[from], m);
    if (s->faults_on && rr_sim_chance(s, s->opt.drop_rate)) {
        drop(s, m);
        return;
    }
    if (s->faults_on && rr_sim_chance(s, s->opt.dup_rate)) {
        rr_message copy;
        if (rr_message_copy(&copy, m) == 0)
            rr_sim_push_event(s, arrival_us(s, from, (uint32_t)copy.to), EV_MSG, 0, &copy);
    }
    rr_sim_push_event(s, arrival_us(s, from, (uint32_t)m->to), EV_MSG, 0, m);
}

void rr_sim_net_deliver(rr_sim *s, rr_message *m)
{
    if (m->to == 0 || m->to > s->n || !s->nodes[m->to].up ||
        (m->from >= 1 && m->from <= s->n && s->blocked[m->from][m->to])) {
        drop(s, m);
        return;
    }
    rr_sim_trace(s, EV_MSG, m->type, (uint32_t)m->to, m, 0);
    rr_sim_step(s, (uint32_t)m->to, m);
    report_snapshot(s, m, false);
    rr_message_free(m);
}

void rr_sim_net_partition(rr_sim *s)
{
    if (rr_sim_chance(s, 0.5)) {
        /* Symmetric: a random nonempty proper subset against the rest. */
        uint32_t mask = (uint32_t)(1 + rr_sim_below(s, (1u << s->n) - 2));
        for (uint32_t a = 1; a <= s->n; a++) {
            for (uint32_t b = 1; b <= s->n; b++) {
                if (((mask >> (a - 1)) & 1) != ((mask >> (b - 1)) & 1))
                    s->blocked[a][b] = true;
            }
        }
        rr_sim_trace(s, EV_HEAL, 'P', 0, NULL, mask);
        return;
    }
    /* One-way: a node's messages to some peers vanish, theirs still arrive. */
    uint32_t a = 1 + (uint32_t)rr_sim_below(s, s->n);
    uint32_t mask = 0;
    for (uint32_t b = 1; b <= s->n; b++) {
        if (b != a && rr_sim_chance(s, 0.6)) {
            s->blocked[a][b] = true;
            mask |= 1u << (b - 1);
        }
    }
    rr_sim_trace(s, EV_HEAL, 'O', a, NULL, mask);
}

void rr_sim_net_heal(rr_sim *s)
{
    memset(s->blocked, 0, sizeof(s->blocked));
    rr_sim_trace(s, EV_HEAL, 'H', 0, NULL, 0);
}
