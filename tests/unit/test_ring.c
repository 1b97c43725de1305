/* test_ring.c: rings and sleeping consumers (engine/node/src/ring.c): every item arrives,
 * in order per producer, through a consumer that really sleeps between bursts — a lost
 * wake-up would hang the test (bounded by a timeout that fails it instead). */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <cmocka.h>

#include "ring.h"

#define PRODUCERS 3
/* ThreadSanitizer runs this ~50x slower; it needs interleavings, not volume. */
#if defined(__SANITIZE_THREAD__)
#define PER_PRODUCER 20000u
#else
#define PER_PRODUCER 200000u
#endif

typedef struct shared {
    rr_ring ring;
    rr_wake wake;
    uint32_t producer_id_base;
} shared;

typedef struct producer {
    shared *s;
    uintptr_t id;
    bool mpsc;
} producer;

static void *produce(void *arg)
{
    producer *p = arg;
    for (uintptr_t seq = 1; seq <= PER_PRODUCER; seq++) {
        /* Item: producer id in the top byte, sequence below (never NULL). */
        void *item = (void *)((p->id << 56) | seq);
        while (!(p->mpsc ? rr_ring_push_mpsc(&p->s->ring, item)
                         : rr_ring_push_spsc(&p->s->ring, item)))
            sched_yield(); /* full: the consumer is behind */
        rr_wake_signal(&p->s->wake);
        if (seq % 50000 == 0) {
            struct timespec ts = {0, 2000000}; /* pause: let the consumer fall asleep */
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

static void run(uint32_t producers, bool mpsc)
{
    shared s;
    assert_int_equal(rr_ring_init(&s.ring, 1024), 0);
    assert_int_equal(rr_wake_init(&s.wake), 0);
    producer ps[PRODUCERS];
    pthread_t th[PRODUCERS];
    for (uint32_t i = 0; i < producers; i++) {
        ps[i] = (producer){.s = &s, .id = i + 1, .mpsc = mpsc};
        assert_int_equal(pthread_create(&th[i], NULL, produce, &ps[i]), 0);
    }
    uint64_t next[PRODUCERS + 1] = {0};
    uint64_t got = 0, total = (uint64_t)producers * PER_PRODUCER, sleeps = 0;
    while (got < total) {
        void *item;
        bool ok = mpsc ? rr_ring_pop_mpsc(&s.ring, &item) : rr_ring_pop_spsc(&s.ring, &item);
        if (ok) {
            uintptr_t v = (uintptr_t)item;
            uintptr_t id = v >> 56, seq = v & ((1ull << 56) - 1);
            assert_true(id >= 1 && id <= producers);
            assert_int_equal(seq, next[id] + 1); /* in order, nothing lost or repeated */
            next[id] = seq;
            got++;
            continue;
        }
        rr_wake_prepare(&s.wake);
        if (rr_ring_size(&s.ring) > 0) {
            rr_wake_done(&s.wake);
            continue;
        }
        sleeps++;
        /* 5 s without a wake-up while items are still due would be a lost wake-up. */
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        assert_int_equal(rr_wake_block(&s.wake, 5000), 0);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        assert_true(t1.tv_sec - t0.tv_sec < 5);
    }
    for (uint32_t i = 0; i < producers; i++)
        pthread_join(th[i], NULL);
    assert_true(sleeps > 0); /* the consumer did sleep, so the protocol was exercised */
    rr_wake_destroy(&s.wake);
    rr_ring_destroy(&s.ring);
}

static void test_spsc_with_sleeping_consumer(void **state)
{
    (void)state;
    run(1, false);
}

static void test_mpsc_with_sleeping_consumer(void **state)
{
    (void)state;
    run(PRODUCERS, true);
}

static void test_ring_bounds(void **state)
{
    (void)state;
    rr_ring r;
    assert_int_equal(rr_ring_init(&r, 3), -EINVAL);
    assert_int_equal(rr_ring_init(&r, 8), 0);
    uint32_t pushed = 0;
    while (rr_ring_push_spsc(&r, (void *)(uintptr_t)(pushed + 1)))
        pushed++;
    assert_int_equal(pushed, 7); /* a full ring refuses, it does not grow */
    rr_ring_destroy(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spsc_with_sleeping_consumer),
        cmocka_unit_test(test_mpsc_with_sleeping_consumer),
        cmocka_unit_test(test_ring_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
