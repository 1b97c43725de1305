/*
 * ring.h: the queues between engine/node's threads — Concurrency Kit rings of pointers with
 * a consumer that sleeps when idle (DESIGN.md: nothing busy-polls forever).
 *
 * Names state the contract (Concurrency Kit's habit): _spsc one producer thread and one
 * consumer thread; _mpsc any number of producers, one consumer.
 *
 * Sleeping without losing a wake-up (the consumer and a producer race as in Dekker's
 * algorithm): the consumer announces rr_wake_prepare (sleeping = 1), then looks at its
 * queues once more, and only then blocks on the eventfd; a producer publishes its item,
 * then checks `sleeping` and writes the eventfd only if it is set. A sequentially
 * consistent fence on each side, between its store and its load, guarantees that at
 * least one of them sees the other's store: either the consumer finds the item, or the
 * producer finds the consumer asleep. Producers therefore pay one locked instruction per
 * signal, and a syscall only when the consumer sleeps.
 */
#ifndef RR_NODE_RING_H
#define RR_NODE_RING_H

#include <ck_ring.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct rr_wake {
    int fd;            /* eventfd, nonblocking: readable while a wake-up is pending */
    uint32_t sleeping; /* set by the consumer between rr_wake_prepare and rr_wake_done */
    uint64_t wakeups;  /* eventfd writes by producers (statistics) */
} rr_wake;

/* Returns 0 or -errno (eventfd). */
int rr_wake_init(rr_wake *w);
void rr_wake_destroy(rr_wake *w);
/* Producer side, after publishing: wakes the consumer if it sleeps. Any thread. */
void rr_wake_signal(rr_wake *w);
/* Wakes the consumer whether or not it announced that it sleeps: for work no queue shows
 * (a stop, a Ready left pending), which its re-check before sleeping would not see. */
void rr_wake_force(rr_wake *w);
/* Consumer side: announce the intent to sleep; then re-check every queue; then either
 * rr_wake_done (work found) or block until w->fd is readable (poll) and call rr_wake_done,
 * which also consumes the pending wake-up. */
void rr_wake_prepare(rr_wake *w);
void rr_wake_done(rr_wake *w);
/* Convenience for a consumer with one source: block until signalled or timeout_ms passes
 * (-1: no timeout). Returns 0, or -errno from poll. Call after rr_wake_prepare and an
 * empty re-check. */
int rr_wake_block(rr_wake *w, int timeout_ms);

typedef struct rr_ring {
    /* Producer and consumer fields of ck_ring sit on separate cache lines already (its
     * struct pads them); the buffer is separate. */
    ck_ring_t ring;
    ck_ring_buffer_t *buf;
    uint32_t capacity;
} rr_ring;

/* capacity: a power of two >= 4 (ck_ring keeps one slot free: capacity - 1 usable).
 * Returns 0, -EINVAL or -ENOMEM. */
int rr_ring_init(rr_ring *r, uint32_t capacity);
void rr_ring_destroy(rr_ring *r);

/* ck_ring orders a producer's writes before the consumer's reads with ck_pr fences that
 * ThreadSanitizer cannot see; in TSan builds the wrappers state that edge explicitly, so
 * items handed through a ring are not reported as races. */
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define RR_RING_RELEASE(r) __tsan_release(r)
#define RR_RING_ACQUIRE(r) __tsan_acquire(r)
#else
#define RR_RING_RELEASE(r) ((void)(r))
#define RR_RING_ACQUIRE(r) ((void)(r))
#endif

/* Returns false when full (the caller decides: retry, drop, or report -EAGAIN). */
static inline bool rr_ring_push_spsc(rr_ring *r, void *p)
{
    RR_RING_RELEASE(r);
    return ck_ring_enqueue_spsc(&r->ring, r->buf, p);
}

static inline bool rr_ring_pop_spsc(rr_ring *r, void **p)
{
    bool ok = ck_ring_dequeue_spsc(&r->ring, r->buf, p);
    if (ok)
        RR_RING_ACQUIRE(r);
    return ok;
}

static inline bool rr_ring_push_mpsc(rr_ring *r, void *p)
{
    RR_RING_RELEASE(r);
    return ck_ring_enqueue_mpsc(&r->ring, r->buf, p);
}

static inline bool rr_ring_pop_mpsc(rr_ring *r, void **p)
{
    bool ok = ck_ring_dequeue_mpsc(&r->ring, r->buf, p);
    if (ok)
        RR_RING_ACQUIRE(r);
    return ok;
}

static inline uint32_t rr_ring_size(const rr_ring *r)
{
    return ck_ring_size(&r->ring);
}

#endif
