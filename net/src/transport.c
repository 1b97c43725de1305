/* transport.c: the parts of ringraft/transport.h both transports share. */
#include "transport_internal.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ringraft/assert.h"

_Static_assert((RR_TRANSPORT_QUEUE_MSGS_MAX & (RR_TRANSPORT_QUEUE_MSGS_MAX - 1)) == 0,
               "ring capacities are powers of two");
_Static_assert((RR_TRANSPORT_RECV_MSGS_DEFAULT & (RR_TRANSPORT_RECV_MSGS_DEFAULT - 1)) == 0,
               "ring capacities are powers of two");
_Static_assert(RR_TRANSPORT_SNAP_CHUNK_BYTES <= RR_CODEC_CHUNK_BYTES_MAX, "chunks fit frames");
_Static_assert(RR_TRANSPORT_SNAPSHOT_BYTES_DEFAULT <= RR_CODEC_SNAPSHOT_BYTES_MAX,
               "within the wire bound");
_Static_assert(RR_TRANSPORT_RECONNECT_MIN_MS <= RR_TRANSPORT_RECONNECT_MAX_MS, "backoff range");
_Static_assert(RR_NODES_MAX <= 64, "report masks have one bit per peer");

void rr_transport_config_init(rr_transport_config *cfg, uint64_t cluster_id, rr_node_id_t self)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->cluster_id = cluster_id;
    cfg->self = self;
    snprintf(cfg->listen_host, sizeof cfg->listen_host, "127.0.0.1");
    cfg->send_queue_bytes_max = RR_TRANSPORT_SEND_QUEUE_BYTES_DEFAULT;
    cfg->recv_queue_msgs = RR_TRANSPORT_RECV_MSGS_DEFAULT;
    cfg->zc_min_bytes = RR_TRANSPORT_ZC_MIN_BYTES_DEFAULT;
    cfg->reconnect_min_ms = RR_TRANSPORT_RECONNECT_MIN_MS;
    cfg->reconnect_max_ms = RR_TRANSPORT_RECONNECT_MAX_MS;
    cfg->snap_chunk_bytes = RR_TRANSPORT_SNAP_CHUNK_BYTES;
    cfg->snapshot_bytes_max = RR_TRANSPORT_SNAPSHOT_BYTES_DEFAULT;
    cfg->log_refusals = true;
}

bool transport_config_valid(const rr_transport_config *cfg)
{
    if (cfg->self == RR_NODE_ID_NONE || cfg->send_queue_bytes_max == 0)
        return false;
    if (cfg->recv_queue_msgs == 0 || (cfg->recv_queue_msgs & (cfg->recv_queue_msgs - 1)) != 0)
        return false;
    if (cfg->reconnect_min_ms == 0 || cfg->reconnect_min_ms > cfg->reconnect_max_ms)
        return false;
    if (cfg->snap_chunk_bytes == 0 || cfg->snap_chunk_bytes > RR_CODEC_CHUNK_BYTES_MAX)
        return false;
    return cfg->snapshot_bytes_max <= RR_CODEC_SNAPSHOT_BYTES_MAX;
}

int msg_ring_init(msg_ring *r, uint32_t capacity)
{
    RR_ASSERT(capacity > 0);
    RR_ASSERT((capacity & (capacity - 1)) == 0);
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    r->mask = capacity - 1;
    r->slots = calloc(capacity, sizeof(rr_message));
    return r->slots == NULL ? -ENOMEM : 0;
}

void msg_ring_destroy(msg_ring *r)
{
    if (r->slots == NULL)
        return;
    rr_message m;
    while (msg_ring_pop(r, &m))
        rr_message_free(&m);
    free(r->slots);
    r->slots = NULL;
}

int transport_base_init(rr_transport *t, const struct transport_ops *ops,
                        const rr_transport_config *cfg)
{
    t->ops = ops;
    t->cfg = *cfg;
    t->n_peers = 0;
    for (int k = 0; k < 4; k++)
        atomic_init(&t->report_mask[k], 0);
    atomic_init(&t->on_receive, NULL);
    atomic_init(&t->on_receive_ctx, NULL);
    t->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return t->wake_fd < 0 ? -errno : 0;
}

void transport_base_destroy(rr_transport *t)
{
    if (t->wake_fd >= 0)
        close(t->wake_fd);
    t->wake_fd = -1;
}

int transport_peer_slot(const rr_transport *t, rr_node_id_t id)
{
    if (id == RR_NODE_ID_NONE) /* removed slots hold NONE */
        return -1;
    for (uint32_t i = 0; i < t->n_peers; i++)
        if (t->peer_ids[i] == id)
            return (int)i;
    return -1;
}

void transport_wake(rr_transport *t)
{
    /* Always a write, no "already pending" flag: the raft thread may consume the eventfd
     * itself (read() on rr_transport_wait_fd), and a flag it does not reset would lose every
     * later wake-up. Producers call this once per batch (a net-thread turn, a flush), not
     * per message. The eventfd write orders our ring pushes before the reader's drain. */
    uint64_t one = 1;
    ssize_t n = write(t->wake_fd, &one, sizeof one);
    (void)n; /* EAGAIN: the counter is saturated, which already means readable */
}

void transport_report(rr_transport *t, int slot, rr_transport_report_kind kind)
{
    RR_ASSERT(slot >= 0);
    RR_ASSERT((unsigned)kind < 4);
    /* release: whatever led to the report is visible to the raft thread that takes it. */
    atomic_fetch_or_explicit(&t->report_mask[kind], 1ull << slot, memory_order_release);
    transport_wake(t);
}

/* ---- dispatch ---- */

int rr_transport_add_peer(rr_transport *t, rr_node_id_t id, const char *host, uint16_t port)
{
    if (id == RR_NODE_ID_NONE || id == t->cfg.self)
        return -EINVAL;
    if (transport_peer_slot(t, id) >= 0)
        return -EEXIST;
    if (t->n_peers >= RR_NODES_MAX)
        return -ENOSPC;
    uint32_t slot = t->n_peers;
    int rc = t->ops->add_peer(t, id, host, port);
    if (rc != 0)
        return rc;
    __atomic_store_n(&t->peer_ids[slot], id, __ATOMIC_RELAXED);
    /* release: the slot (its id, its ring) is set up before another thread sees the count. */
    __atomic_store_n(&t->n_peers, slot + 1, __ATOMIC_RELEASE);
    return 0;
}

int rr_transport_remove_peer(rr_transport *t, rr_node_id_t id)
{
    int slot = transport_peer_slot(t, id);
    if (slot < 0)
        return -ENOENT;
    /* release: sends to the slot stopped before whoever drains it learns it is gone. */
    __atomic_store_n(&t->peer_ids[slot], RR_NODE_ID_NONE, __ATOMIC_RELEASE);
    t->ops->remove_peer(t, slot);
    return 0;
}

int rr_transport_start(rr_transport *t)
{
    return t->ops->start(t);
}

void rr_transport_free(rr_transport *t)
{
    if (t != NULL)
        t->ops->destroy(t);
}

int rr_transport_send(rr_transport *t, rr_message *m)
{
    return t->ops->send(t, m);
}

void rr_transport_flush(rr_transport *t)
{
    t->ops->flush(t);
}

uint32_t rr_transport_recv(rr_transport *t, rr_message *out, uint32_t max)
{
    return t->ops->recv(t, out, max);
}

uint32_t rr_transport_reports(rr_transport *t, rr_transport_report *out, uint32_t max)
{
    uint32_t n = 0;
    for (uint8_t kind = RR_TRANSPORT_UNREACHABLE; kind <= RR_TRANSPORT_SNAPSHOT_FAILED; kind++) {
        if (n == max)
            break;
        /* acquire: pairs with transport_report's release. */
        uint64_t bits = atomic_exchange_explicit(&t->report_mask[kind], 0, memory_order_acquire);
        for (int slot = 0; bits != 0; slot++, bits >>= 1) {
            if ((bits & 1) == 0)
                continue;
            if (n == max) { /* put back what does not fit */
                atomic_fetch_or_explicit(&t->report_mask[kind], bits << slot, memory_order_relaxed);
                break;
            }
            if (t->peer_ids[slot] != RR_NODE_ID_NONE) /* not about a removed peer */
                out[n++] = (rr_transport_report){.peer = t->peer_ids[slot], .kind = kind};
        }
    }
    return n;
}

int rr_transport_wait_fd(const rr_transport *t)
{
    return t->wake_fd;
}

int rr_transport_wait(rr_transport *t, int timeout_ms)
{
    struct pollfd p = {.fd = t->wake_fd, .events = POLLIN};
    int rc = poll(&p, 1, timeout_ms);
    if (rc < 0)
        return -errno;
    if (rc == 0)
        return 0;
    uint64_t v;
    ssize_t n = read(t->wake_fd, &v, sizeof v);
    (void)n; /* EAGAIN: another reader took it; the caller drains either way */
    return 1;
}

void rr_transport_on_receive(rr_transport *t, rr_transport_receive_fn fn, void *ctx)
{
    atomic_store_explicit(&t->on_receive_ctx, ctx, memory_order_relaxed);
    /* release: the net thread that sees fn sees its ctx. */
    atomic_store_explicit(&t->on_receive, fn, memory_order_release);
}

void rr_transport_stats_get(const rr_transport *t, rr_transport_stats *out)
{
    const stats_atomic *s = &t->stats;
    out->msgs_sent = atomic_load_explicit(&s->msgs_sent, memory_order_relaxed);
    out->frames_sent = atomic_load_explicit(&s->frames_sent, memory_order_relaxed);
    out->frames_zc = atomic_load_explicit(&s->frames_zc, memory_order_relaxed);
    out->frames_zc_copied = atomic_load_explicit(&s->frames_zc_copied, memory_order_relaxed);
    out->bytes_sent = atomic_load_explicit(&s->bytes_sent, memory_order_relaxed);
    out->msgs_received = atomic_load_explicit(&s->msgs_received, memory_order_relaxed);
    out->msgs_dropped_send = atomic_load_explicit(&s->msgs_dropped_send, memory_order_relaxed);
    out->msgs_dropped_recv = atomic_load_explicit(&s->msgs_dropped_recv, memory_order_relaxed);
    out->conns_refused = atomic_load_explicit(&s->conns_refused, memory_order_relaxed);
    out->conns_closed = atomic_load_explicit(&s->conns_closed, memory_order_relaxed);
    out->dials = atomic_load_explicit(&s->dials, memory_order_relaxed);
}
