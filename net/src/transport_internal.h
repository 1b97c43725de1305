/*
 * transport_internal.h: what the TCP and in-process transports share — the base struct
 * and its vtable, the SPSC message ring, reports and wake-ups. Internal to net/.
 */
#ifndef RINGRAFT_NET_TRANSPORT_INTERNAL_H
#define RINGRAFT_NET_TRANSPORT_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ringraft/transport.h"

/* ---- SPSC ring of messages, stored by value ----
 * One producer thread, one consumer thread. head and tail are free-running counters on
 * separate cache lines (false sharing between producer and consumer is the cost of
 * a ring). */
typedef struct msg_ring {
    _Alignas(64) _Atomic uint32_t head; /* next slot to pop; written by the consumer */
    _Alignas(64) _Atomic uint32_t tail; /* next slot to fill; written by the producer */
    _Alignas(64) uint32_t mask;
    rr_message *slots;
} msg_ring;

/* Returns 0 or -ENOMEM; capacity a power of two. */
int msg_ring_init(msg_ring *r, uint32_t capacity);
/* Frees the messages left in the ring, then the ring. */
void msg_ring_destroy(msg_ring *r);

/* Producer: moves *m in (and zeroes *m). Returns false when full (m untouched). */
static inline bool msg_ring_push(msg_ring *r, rr_message *m)
{
    uint32_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    /* acquire: the consumer finished reading the slot it freed before we overwrite it. */
    uint32_t h = atomic_load_explicit(&r->head, memory_order_acquire);
    if (t - h > r->mask)
        return false;
    r->slots[t & r->mask] = *m;
    /* release: the slot's contents are visible before the consumer sees the new tail. */
    atomic_store_explicit(&r->tail, t + 1, memory_order_release);
    *m = (rr_message){0};
    return true;
}

/* Consumer: moves the oldest message into *m. Returns false when empty. */
static inline bool msg_ring_pop(msg_ring *r, rr_message *m)
{
    uint32_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    /* acquire: pairs with the producer's release of tail; the slot is fully written. */
    uint32_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (h == t)
        return false;
    *m = r->slots[h & r->mask];
    /* release: our read of the slot happens before the producer reuses it. */
    atomic_store_explicit(&r->head, h + 1, memory_order_release);
    return true;
}

/* ---- the base every transport embeds first ---- */

struct transport_ops {
    /* Prepares slot t->n_peers for id; the base publishes it after. */
    int (*add_peer)(rr_transport *t, rr_node_id_t id, const char *host, uint16_t port);
    /* Retires slot (its id is already RR_NODE_ID_NONE in peer_ids). */
    void (*remove_peer)(rr_transport *t, int slot);
    int (*start)(rr_transport *t);
    int (*send)(rr_transport *t, rr_message *m);
    void (*flush)(rr_transport *t);
    uint32_t (*recv)(rr_transport *t, rr_message *out, uint32_t max);
    void (*destroy)(rr_transport *t);
};

typedef struct stats_atomic {
    _Atomic uint64_t msgs_sent, frames_sent, frames_zc, frames_zc_copied, bytes_sent, msgs_received;
    _Atomic uint64_t msgs_dropped_send, msgs_dropped_recv, conns_refused, conns_closed, dials;
} stats_atomic;

struct rr_transport {
    const struct transport_ops *ops;
    rr_transport_config cfg;
    int wake_fd; /* eventfd the raft thread sleeps on (non-blocking) */
    /* Peer slots, written by the raft thread only (rr_transport_add_peer/remove_peer). A
     * slot is never reused: a removed peer's id becomes RR_NODE_ID_NONE. Other threads
     * (the in-process peers' raft threads) read n_peers with acquire, after the slot's
     * id was stored, and each id with __atomic loads. */
    uint32_t n_peers;
    rr_node_id_t peer_ids[RR_NODES_MAX];
    /* One bit per peer slot and report kind; set by any thread, taken by the raft thread. */
    _Atomic uint64_t report_mask[4];
    /* rr_transport_on_receive: ctx stored before fn (release), read by the net thread. */
    _Atomic(rr_transport_receive_fn) on_receive;
    void *_Atomic on_receive_ctx;
    stats_atomic stats;
};

/* Initialises the base (eventfd included). Returns 0 or -errno. */
int transport_base_init(rr_transport *t, const struct transport_ops *ops,
                        const rr_transport_config *cfg);
void transport_base_destroy(rr_transport *t);
/* Peer slot of id, or -1. */
int transport_peer_slot(const rr_transport *t, rr_node_id_t id);
/* Records a report for slot and wakes the raft thread. Any thread. */
void transport_report(rr_transport *t, int slot, rr_transport_report_kind kind);
/* Wakes the raft thread (one eventfd write). Any thread. */
void transport_wake(rr_transport *t);
bool transport_config_valid(const rr_transport_config *cfg);

static inline void stat_add(_Atomic uint64_t *c, uint64_t n)
{
    /* relaxed: a counter read for statistics orders nothing. */
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* Bytes a queued message counts against its peer's send queue bound: its encoding (inline
 * snapshot data included). The data of a snapshot that streams does not count: it is
 * referenced, never copied, and leaves one chunk frame at a time as the socket drains, so
 * it holds no queue memory of its own; the core sends a follower one snapshot at a time.
 * Counting it made every snapshot larger than the bound unsendable (dropped, the follower
 * reported unreachable, over and over). */
static inline uint64_t msg_account_bytes(const rr_message *m)
{
    return rr_codec_message_bytes(m);
}

#endif
