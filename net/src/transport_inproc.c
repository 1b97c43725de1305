/*
 * transport_inproc.c: the in-process transport. Each transport owns one SPSC ring per
 * peer (its raft thread produces, the peer's raft thread consumes); messages move by value,
 * payloads by reference, nothing is encoded. Same rules as TCP: only wire-sendable
 * messages, queues bounded in bytes and messages, drops reported as unreachable.
 *
 * Set-up order: create every transport on the hub before any thread uses them; the hub's
 * endpoint table is read-only afterwards. Peers may be added and removed at any time by
 * the transport's raft thread: the consumer finds its ring in the sender's peer slots
 * (published with release, see transport_internal.h); a removed slot is no longer found,
 * so what was queued in it is dropped (freed with the transport).
 */
#include "transport_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ringraft/assert.h"

typedef struct inproc inproc;

struct rr_transport_hub {
    inproc *eps[RR_NODES_MAX];
};

typedef struct out_ring {
    msg_ring ring;
    _Atomic uint64_t queued_bytes; /* added by the sender, subtracted by the receiver */
} out_ring;

struct inproc {
    rr_transport base; /* first: rr_transport * and inproc * convert */
    rr_transport_hub *hub;
    out_ring out[RR_NODES_MAX]; /* by peer slot */
    uint64_t flush_mask;        /* peer slots sent to since the last flush */
    uint32_t recv_next;         /* round-robin start over hub endpoints */
};

int rr_transport_hub_new(rr_transport_hub **out)
{
    *out = calloc(1, sizeof(rr_transport_hub));
    return *out == NULL ? -ENOMEM : 0;
}

void rr_transport_hub_free(rr_transport_hub *hub)
{
    free(hub);
}

static inproc *hub_find(const rr_transport_hub *hub, rr_node_id_t id)
{
    for (int i = 0; i < RR_NODES_MAX; i++)
        if (hub->eps[i] != NULL && hub->eps[i]->base.cfg.self == id)
            return hub->eps[i];
    return NULL;
}

static int inproc_add_peer(rr_transport *t, rr_node_id_t id, const char *host, uint16_t port)
{
    (void)id;
    (void)host;
    (void)port;
    inproc *p = (inproc *)t;
    out_ring *o = &p->out[t->n_peers];
    atomic_init(&o->queued_bytes, 0);
    return msg_ring_init(&o->ring, RR_TRANSPORT_QUEUE_MSGS_MAX);
}

static void inproc_remove_peer(rr_transport *t, int slot)
{
    (void)t;
    (void)slot; /* the consumer stops finding the slot; its ring is freed with t */
}

static int inproc_start(rr_transport *t)
{
    (void)t;
    return 0;
}

static int inproc_send(rr_transport *t, rr_message *m)
{
    inproc *p = (inproc *)t;
    int slot = transport_peer_slot(t, m->to);
    if (slot < 0 || !rr_codec_message_sendable(m)) {
        rr_message_free(m);
        stat_add(&t->stats.msgs_dropped_send, 1);
        return -EINVAL;
    }
    out_ring *o = &p->out[slot];
    uint64_t bytes = msg_account_bytes(m);
    bool snap = m->type == RR_MSG_SNAP; /* read now: the push moves m into the ring */
    uint64_t queued = atomic_load_explicit(&o->queued_bytes, memory_order_relaxed);
    if (queued + bytes > t->cfg.send_queue_bytes_max || !msg_ring_push(&o->ring, m)) {
        rr_message_free(m);
        stat_add(&t->stats.msgs_dropped_send, 1);
        transport_report(t, slot, RR_TRANSPORT_UNREACHABLE);
        return -ENOBUFS;
    }
    /* relaxed: a bound, not a synchronisation; the ring orders the message itself. */
    atomic_fetch_add_explicit(&o->queued_bytes, bytes, memory_order_relaxed);
    stat_add(&t->stats.msgs_sent, 1);
    if (snap) /* handed over whole, as TCP reports once it has streamed one */
        transport_report(t, slot, RR_TRANSPORT_SNAPSHOT_DONE);
    p->flush_mask |= 1ull << slot;
    return 0;
}

static void inproc_flush(rr_transport *t)
{
    inproc *p = (inproc *)t;
    for (int slot = 0; p->flush_mask != 0; slot++) {
        if ((p->flush_mask & (1ull << slot)) == 0)
            continue;
        p->flush_mask &= ~(1ull << slot);
        inproc *dst = hub_find(p->hub, t->peer_ids[slot]);
        if (dst != NULL)
            transport_wake(&dst->base);
    }
}

/* src's slot for self, read from src's raft thread's writes (transport_internal.h). */
static int remote_slot(const inproc *src, rr_node_id_t self)
{
    /* acquire: pairs with rr_transport_add_peer's release; the slot's ring is set up. */
    uint32_t n = __atomic_load_n(&src->base.n_peers, __ATOMIC_ACQUIRE);
    for (uint32_t i = 0; i < n; i++)
        if (__atomic_load_n(&src->base.peer_ids[i], __ATOMIC_ACQUIRE) == self)
            return (int)i;
    return -1;
}

/* Pops up to max messages that src queued for self. */
static uint32_t ring_drain(inproc *src, rr_node_id_t self, rr_message *out, uint32_t max)
{
    int slot = remote_slot(src, self);
    if (slot < 0)
        return 0;
    out_ring *o = &src->out[slot];
    uint32_t n = 0;
    while (n < max && msg_ring_pop(&o->ring, &out[n])) {
        atomic_fetch_sub_explicit(&o->queued_bytes, msg_account_bytes(&out[n]),
                                  memory_order_relaxed);
        n++;
    }
    return n;
}

static uint32_t inproc_recv(rr_transport *t, rr_message *out, uint32_t max)
{
    inproc *p = (inproc *)t;
    uint32_t n = 0;
    for (uint32_t k = 0; k < RR_NODES_MAX && n < max; k++) {
        inproc *src = p->hub->eps[(p->recv_next + k) % RR_NODES_MAX];
        if (src != NULL && src != p)
            n += ring_drain(src, t->cfg.self, out + n, max - n);
    }
    p->recv_next = (p->recv_next + 1) % RR_NODES_MAX;
    stat_add(&t->stats.msgs_received, n);
    return n;
}

static void inproc_destroy(rr_transport *t)
{
    inproc *p = (inproc *)t;
    for (int i = 0; i < RR_NODES_MAX; i++)
        if (p->hub->eps[i] == p)
            p->hub->eps[i] = NULL;
    for (uint32_t s = 0; s < t->n_peers; s++)
        msg_ring_destroy(&p->out[s].ring);
    transport_base_destroy(t);
    free(p);
}

static const struct transport_ops inproc_ops = {
    .add_peer = inproc_add_peer,
    .remove_peer = inproc_remove_peer,
    .start = inproc_start,
    .send = inproc_send,
    .flush = inproc_flush,
    .recv = inproc_recv,
    .destroy = inproc_destroy,
};

int rr_transport_inproc_new(rr_transport_hub *hub, const rr_transport_config *cfg,
                            rr_transport **out)
{
    if (!transport_config_valid(cfg) || hub_find(hub, cfg->self) != NULL)
        return -EINVAL;
    int free_slot = -1;
    for (int i = RR_NODES_MAX - 1; i >= 0; i--)
        if (hub->eps[i] == NULL)
            free_slot = i;
    if (free_slot < 0)
        return -EINVAL;
    inproc *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    int rc = transport_base_init(&p->base, &inproc_ops, cfg);
    if (rc != 0) {
        free(p);
        return rc;
    }
    p->hub = hub;
    hub->eps[free_slot] = p;
    *out = &p->base;
    return 0;
}
