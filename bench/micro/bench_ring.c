/*
 * bench_ring.c: experiment. What does it cost to hand a pointer to another thread through a
 * ck_ring SPSC ring, per item, one at a time and in batches?
 *
 * The benchmark thread is the producer; each run starts one consumer pthread that dequeues,
 * checks FIFO order and reads the item behind every pointer. Two shapes:
 *
 *   ring_spsc_burst/capacity:C/batch:B   An iteration enqueues B items, then waits until the
 *       consumer has taken all B: a handoff that waits for its reply, as a thread handing a
 *       batch to a worker and waiting for completion. B = 1 pays a cache-line trip there and
 *       one back per item; B = 64 spreads those trips over the batch. The consumer
 *       acknowledges with one store each time it catches up with the ring, not per item.
 *   ring_spsc_stream/capacity:C          The producer never waits except on a full ring: the
 *       throughput ceiling. The timed loop ends only once the consumer has drained the ring,
 *       so every item counted was consumed.
 *
 * A ring of C slots holds C - 1 items (ck_ring tells full from empty by one free slot).
 * Time is wall clock because two threads work. items_per_second counts items handed over;
 * time_per_item is its reciprocal, in seconds (shown as ns).
 *
 * Waiting is bounded spinning: up to SPIN_STALLS_MAX ck_pr_stall() calls, then sched_yield(),
 * so that on a loaded 2-core machine a waiting thread lets the thread it waits for run. The
 * consumer exits once told to stop and is joined before the run returns: nothing polls
 * between runs or after the benchmark.
 */
#include "rr_bench.h"

#include "ringraft/assert.h"

#include <ck_pr.h>
#include <ck_ring.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>

#define CACHELINE_BYTES 64
/* PAUSE took ~15 ns on the benchmark VM (~140 cycles on bare-metal Intel since Skylake), so
 * this spins ~15 us, far longer than a handoff, before giving the core away. */
#define SPIN_STALLS_MAX   1024
#define RING_CAPACITY_MAX (1u << 20)

struct item {
    uint64_t seq;
};

struct handoff {
    /* ck_ring pads producer and consumer indices onto separate cache lines itself. */
    struct ck_ring ring;
    ck_ring_buffer_t *slots;
    /* items[i].seq == i, written before the consumer starts and never again: the producer
     * hands out items[seq mod capacity], and a late read of one is never a race. */
    struct item *items;
    uint64_t items_mask;
    pthread_t consumer;

    /* Written by the consumer, polled by the producer: a line of its own. */
    _Alignas(CACHELINE_BYTES) uint64_t consumed_count;
    /* Written once by the producer, polled by the consumer only when the ring is empty. */
    _Alignas(CACHELINE_BYTES) int stop;

    /* Consumer results, read by the producer only after pthread_join(). */
    _Alignas(CACHELINE_BYTES) uint64_t order_errors_count;
    uint64_t seq_sum;
};

static void backoff(unsigned *spins)
{
    if (*spins < SPIN_STALLS_MAX) {
        (*spins)++;
        ck_pr_stall();
        return;
    }
    *spins = 0;
    sched_yield();
}

static void *consume(void *arg)
{
    struct handoff *h = arg;
    uint64_t expected_seq = 0;
    uint64_t order_errors_count = 0;
    uint64_t seq_sum = 0;
    uint64_t published_count = 0;
    unsigned spins = 0;
    for (;;) {
        void *p;
        if (ck_ring_dequeue_spsc(&h->ring, h->slots, &p)) {
            const struct item *it = p;
            if (it != &h->items[expected_seq & h->items_mask])
                order_errors_count++;
            seq_sum += it->seq;
            expected_seq++;
            spins = 0;
            continue;
        }
        /* Caught up: acknowledge everything taken so far in one store rather than one per
         * item, so a producer polling the count does not pull the line away per item. No
         * fence: items are immutable, so the store publishes nothing but its own value. */
        if (published_count != expected_seq) {
            ck_pr_store_64(&h->consumed_count, expected_seq);
            published_count = expected_seq;
        }
        /* Checked only on an empty ring: the producer sets stop after everything it
         * enqueued was consumed, so nothing is left behind. */
        if (ck_pr_load_int(&h->stop))
            break;
        backoff(&spins);
    }
    h->order_errors_count = order_errors_count;
    h->seq_sum = seq_sum;
    return NULL;
}

/* aligned_alloc wants a multiple of the alignment. */
static size_t lines_bytes(size_t bytes)
{
    return (bytes + CACHELINE_BYTES - 1) / CACHELINE_BYTES * CACHELINE_BYTES;
}

static void handoff_free(struct handoff *h)
{
    free(h->slots);
    free(h->items);
    free(h);
}

/* Returns NULL if memory or the thread cannot be had. */
static struct handoff *handoff_start(unsigned capacity)
{
    struct handoff *h = aligned_alloc(CACHELINE_BYTES, sizeof *h);
    if (h == NULL)
        return NULL;
    *h = (struct handoff){0};
    h->slots = aligned_alloc(CACHELINE_BYTES, lines_bytes(capacity * sizeof *h->slots));
    h->items = aligned_alloc(CACHELINE_BYTES, lines_bytes(capacity * sizeof *h->items));
    if (h->slots == NULL || h->items == NULL) {
        handoff_free(h);
        return NULL;
    }
    for (unsigned i = 0; i < capacity; i++)
        h->items[i].seq = i;
    h->items_mask = capacity - 1;
    ck_ring_init(&h->ring, capacity);
    /* pthread_create orders everything above before the consumer's first instruction. */
    if (pthread_create(&h->consumer, NULL, consume, h) != 0) {
        handoff_free(h);
        return NULL;
    }
    return h;
}

/* Stops and joins the consumer; returns NULL, or what the consumer found wrong. */
static const char *handoff_stop(struct handoff *h, uint64_t produced_count)
{
    ck_pr_store_int(&h->stop, 1);
    int rc = pthread_join(h->consumer, NULL);
    RR_ASSERT(rc == 0);
    /* Items carry seq mod capacity, in order, so the sum is known in closed form. */
    uint64_t c = h->items_mask + 1;
    uint64_t full_rounds = produced_count / c;
    uint64_t rest = produced_count % c;
    uint64_t want_sum = full_rounds * (c * (c - 1) / 2) + rest * (rest - 1) / 2;
    if (h->order_errors_count != 0)
        return "consumer saw items out of FIFO order";
    if (h->seq_sum != want_sum)
        return "consumer read different items than were produced";
    return NULL;
}

static void produce(struct handoff *h, uint64_t seq)
{
    const struct item *it = &h->items[seq & h->items_mask];
    unsigned spins = 0;
    while (!ck_ring_enqueue_spsc(&h->ring, h->slots, it))
        backoff(&spins);
}

static void wait_consumed(struct handoff *h, uint64_t count)
{
    unsigned spins = 0;
    while (ck_pr_load_64(&h->consumed_count) < count)
        backoff(&spins);
}

/* Checks the arguments and starts the consumer; on failure fails the run, returns NULL. */
static struct handoff *ring_setup(rr_bench_state *st, int64_t capacity, int64_t batch)
{
    if (capacity < 2 || capacity > RING_CAPACITY_MAX || (capacity & (capacity - 1)) != 0) {
        rr_bench_skip_with_error(st, "capacity must be a power of two in [2, 2^20]");
        return NULL;
    }
    if (batch < 1 || batch > capacity - 1) {
        rr_bench_skip_with_error(st, "batch must be in [1, capacity - 1]");
        return NULL;
    }
    struct handoff *h = handoff_start((unsigned)capacity);
    if (h == NULL)
        rr_bench_skip_with_error(st, "out of memory or threads");
    return h;
}

static void ring_report(rr_bench_state *st, struct handoff *h, uint64_t produced_count)
{
    const char *err = handoff_stop(h, produced_count);
    handoff_free(h);
    if (err != NULL) {
        rr_bench_skip_with_error(st, err);
        return;
    }
    rr_bench_set_items_processed(st, (int64_t)produced_count);
    rr_bench_counter(st, "time_per_item", (double)produced_count,
                     RR_BENCH_COUNTER_RATE | RR_BENCH_COUNTER_INVERT);
}

static void bench_ring_burst(rr_bench_state *st, void *arg)
{
    (void)arg;
    int64_t batch = rr_bench_arg(st, 1);
    struct handoff *h = ring_setup(st, rr_bench_arg(st, 0), batch);
    if (h == NULL)
        return;

    uint64_t seq = 0;
    int64_t n = rr_bench_iterations_max(st);
    while (rr_bench_keep_running_batch(st, n)) {
        for (int64_t i = 0; i < n; i++) {
            for (int64_t b = 0; b < batch; b++)
                produce(h, seq++);
            wait_consumed(h, seq);
        }
    }
    ring_report(st, h, seq);
}

static void bench_ring_stream(rr_bench_state *st, void *arg)
{
    (void)arg;
    struct handoff *h = ring_setup(st, rr_bench_arg(st, 0), 1);
    if (h == NULL)
        return;

    uint64_t seq = 0;
    int64_t n = rr_bench_iterations_max(st);
    while (rr_bench_keep_running_batch(st, n)) {
        for (int64_t i = 0; i < n; i++)
            produce(h, seq++);
        /* Inside the timed batch: the run ends when the last item is consumed. */
        wait_consumed(h, seq);
    }
    ring_report(st, h, seq);
}

static const int64_t burst_args[] = {
    1024, 1,  /* one item per handoff */
    1024, 64, /* a batch per handoff */
};
static const char *const burst_arg_names[] = {"capacity", "batch"};

static const struct rr_bench_def ring_spsc_burst = {
    .name = "ring_spsc_burst",
    .fn = bench_ring_burst,
    .args = burst_args,
    .args_per_set = 2,
    .arg_sets_count = sizeof burst_args / sizeof burst_args[0] / 2,
    .arg_names = burst_arg_names,
    .options = RR_BENCH_REAL_TIME,
};
RR_BENCH_REGISTER(ring_spsc_burst);

static const int64_t stream_args[] = {1024};
static const char *const stream_arg_names[] = {"capacity"};

static const struct rr_bench_def ring_spsc_stream = {
    .name = "ring_spsc_stream",
    .fn = bench_ring_stream,
    .args = stream_args,
    .args_per_set = 1,
    .arg_sets_count = 1,
    .arg_names = stream_arg_names,
    .options = RR_BENCH_REAL_TIME,
};
RR_BENCH_REGISTER(ring_spsc_stream);
