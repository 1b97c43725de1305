/* ring.c: rings and sleeping consumers. See ring.h for the wake-up protocol. */
#include "ring.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ringraft/assert.h"

int rr_wake_init(rr_wake *w)
{
    w->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->fd < 0)
        return -errno;
    w->sleeping = 0;
    w->wakeups = 0;
    return 0;
}

void rr_wake_destroy(rr_wake *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
}

void rr_wake_signal(rr_wake *w)
{
    /* A locked read-modify-write that reads `sleeping`: a full barrier, so the caller's
     * publication (the ring store) is ordered before this load; pairs with the exchange in
     * rr_wake_prepare. (An RMW rather than a fence + load: the same cost on x86, and
     * ThreadSanitizer understands it.) */
    if (__atomic_fetch_or(&w->sleeping, 0, __ATOMIC_SEQ_CST) == 0)
        return;
    uint64_t one = 1;
    ssize_t n = write(w->fd, &one, sizeof one);
    /* EAGAIN only when the counter would overflow: a wake-up is pending anyway. */
    RR_ASSERT(n == (ssize_t)sizeof one || errno == EAGAIN);
    __atomic_fetch_add(&w->wakeups, 1, __ATOMIC_RELAXED);
}

void rr_wake_force(rr_wake *w)
{
    uint64_t one = 1;
    ssize_t n = write(w->fd, &one, sizeof one);
    (void)n; /* EAGAIN only when the counter would overflow: a wake-up is pending anyway */
}

void rr_wake_prepare(rr_wake *w)
{
    /* Exchange: a full barrier, so the store of `sleeping` is ordered before the consumer's
     * re-check of its queues; pairs with the RMW in rr_wake_signal. */
    (void)__atomic_exchange_n(&w->sleeping, 1, __ATOMIC_SEQ_CST);
}

void rr_wake_done(rr_wake *w)
{
    __atomic_store_n(&w->sleeping, 0, __ATOMIC_RELAXED);
    uint64_t v;
    /* Consume a pending wake-up so the next sleep blocks; EAGAIN when none was written. */
    ssize_t n = read(w->fd, &v, sizeof v);
    (void)n;
}

int rr_wake_block(rr_wake *w, int timeout_ms)
{
    struct pollfd p = {.fd = w->fd, .events = POLLIN};
    int rc = poll(&p, 1, timeout_ms);
    rr_wake_done(w);
    if (rc < 0 && errno != EINTR)
        return -errno;
    return 0;
}

int rr_ring_init(rr_ring *r, uint32_t capacity)
{
    if (capacity < 4 || (capacity & (capacity - 1)) != 0)
        return -EINVAL;
    r->buf = calloc(capacity, sizeof(ck_ring_buffer_t));
    if (r->buf == NULL)
        return -ENOMEM;
    ck_ring_init(&r->ring, capacity);
    r->capacity = capacity;
    return 0;
}

void rr_ring_destroy(rr_ring *r)
{
    free(r->buf);
    r->buf = NULL;
}
