/*
 * bench_core.c: experiment. What does the pure core cost per entry, with nothing else in
 * the way? Three voters in one thread over rr_memstorage, synchronous Ready/Advance,
 * messages delivered in memory at once: propose -> replicate -> commit -> apply on all
 * three, for batches of 1 and 64 entries of 128 B per proposal call.
 *
 * The time covers every Ready of every node (entries handed to storage, messages stepped
 * into peers, committed entries walked) until the whole batch is applied everywhere. The
 * payload is one shared, reference-counted buffer: no copying, as in engine/node. Storage
 * is compacted behind the applied index every 4096 entries so memory stays flat.
 *
 * Reports items/s (entries) and time_per_entry (seconds, SI-prefixed: "450n" = 450 ns).
 */
#include "rr_bench.h"

#include <stdlib.h>
#include <string.h>

#include "ringraft/assert.h"
#include "ringraft/core.h"

#define VOTERS        3
#define PAYLOAD_BYTES 128
#define QUEUE_MAX     1024

static const int64_t core_batches[] = {1, 64};
static const char *const core_arg_names[] = {"batch"};

typedef struct core_cluster {
    rr_rawnode *rn[VOTERS];
    rr_memstorage *ms[VOTERS];
    uint64_t applied_entries[VOTERS]; /* normal entries with a payload */
    rr_index_t applied_index[VOTERS];
    rr_message queue[QUEUE_MAX];
    uint32_t n_queue;
} core_cluster;

/* The payload buffer lives for the whole program: its release is never reached. */
static uint8_t payload[PAYLOAD_BYTES];
static void payload_release(rr_buf *b)
{
    (void)b;
    RR_ASSERT(0 && "static payload released");
}
static rr_buf payload_buf = {.refs = 1, .release = payload_release};

static void handle_ready(core_cluster *c, uint32_t i)
{
    rr_ready rd;
    RR_ASSERT(rr_rawnode_ready(c->rn[i], &rd) == 0);
    if (rd.has_hard_state)
        rr_memstorage_set_hard_state(c->ms[i], &rd.hard_state);
    RR_ASSERT(rr_memstorage_append(c->ms[i], rd.entries, rd.n_entries) == 0);
    for (uint32_t k = 0; k < rd.n_messages; k++) {
        RR_ASSERT(c->n_queue < QUEUE_MAX);
        c->queue[c->n_queue++] = rd.messages[k];
        memset(&rd.messages[k], 0, sizeof(rd.messages[k]));
    }
    for (uint32_t k = 0; k < rd.n_committed_entries; k++) {
        if (rd.committed_entries[k].data_len > 0)
            c->applied_entries[i]++;
        c->applied_index[i] = rd.committed_entries[k].index;
    }
    rr_ready_free(&rd);
    rr_rawnode_advance(c->rn[i]);
}

/* Runs Readys and deliveries until nothing is left to do. */
static void stabilize(core_cluster *c)
{
    for (;;) {
        bool busy = false;
        for (uint32_t i = 0; i < VOTERS; i++) {
            if (rr_rawnode_has_ready(c->rn[i])) {
                handle_ready(c, i);
                busy = true;
            }
        }
        for (uint32_t k = 0; k < c->n_queue; k++) {
            rr_message *m = &c->queue[k];
            (void)rr_rawnode_step(c->rn[m->to - 1], m);
            rr_message_free(m);
            busy = true;
        }
        c->n_queue = 0;
        if (!busy)
            return;
    }
}

static void cluster_start(core_cluster *c)
{
    memset(c, 0, sizeof(*c));
    for (uint32_t i = 0; i < VOTERS; i++) {
        c->ms[i] = rr_memstorage_new();
        RR_ASSERT(c->ms[i] != NULL);
        rr_snapshot boot;
        memset(&boot, 0, sizeof(boot));
        for (rr_node_id_t id = 1; id <= VOTERS; id++)
            RR_ASSERT(rr_id_set_insert(&boot.meta.conf_state.voters, id));
        RR_ASSERT(rr_memstorage_apply_snapshot(c->ms[i], &boot) == 0);
        rr_config cfg;
        rr_config_init(&cfg, i + 1, rr_memstorage_storage(c->ms[i]));
        cfg.max_size_per_msg_bytes = 1u << 20;
        /* As engine/node runs it: the apply ring bounds what is applying, not a byte
         * count (etcd's default would reuse the 1 MiB message limit). */
        cfg.max_committed_size_per_ready_bytes = RR_NO_LIMIT;
        RR_ASSERT(rr_rawnode_new(&cfg, &c->rn[i]) == 0);
    }
    RR_ASSERT(rr_rawnode_campaign(c->rn[0]) == 0);
    stabilize(c);
}

static void cluster_stop(core_cluster *c)
{
    for (uint32_t i = 0; i < VOTERS; i++) {
        rr_rawnode_free(c->rn[i]);
        rr_memstorage_free(c->ms[i]);
    }
}

static void compact(core_cluster *c)
{
    for (uint32_t i = 0; i < VOTERS; i++)
        RR_ASSERT(rr_memstorage_compact(c->ms[i], c->applied_index[i]) == 0);
}

static void bench_core_propose_commit_apply(rr_bench_state *st, void *arg)
{
    (void)arg;
    uint32_t batch = (uint32_t)rr_bench_arg(st, 0);
    core_cluster *c = malloc(sizeof(*c));
    RR_ASSERT(c != NULL);
    cluster_start(c);
    rr_entry ents[64];
    RR_ASSERT(batch <= 64);
    for (uint32_t k = 0; k < batch; k++) {
        memset(&ents[k], 0, sizeof(ents[k]));
        ents[k].data = payload;
        ents[k].data_len = PAYLOAD_BYTES;
        ents[k].buf = &payload_buf;
    }

    uint64_t proposed = 0, since_compact = 0;
    while (rr_bench_keep_running(st)) {
        RR_ASSERT(rr_rawnode_propose_batch(c->rn[0], ents, batch) == 0);
        proposed += batch;
        stabilize(c);
        since_compact += batch;
        if (since_compact >= 4096) {
            compact(c);
            since_compact = 0;
        }
    }
    for (uint32_t i = 0; i < VOTERS; i++) {
        if (c->applied_entries[i] != proposed) {
            rr_bench_skip_with_error(st, "not every proposed entry was applied on every node");
            break;
        }
    }
    cluster_stop(c);
    free(c);
    int64_t entries = rr_bench_iterations(st) * (int64_t)batch;
    rr_bench_set_items_processed(st, entries);
    rr_bench_counter(st, "time_per_entry", (double)entries,
                     RR_BENCH_COUNTER_RATE | RR_BENCH_COUNTER_INVERT);
}

static const struct rr_bench_def core_propose_commit_apply = {
    .name = "core_propose_commit_apply",
    .fn = bench_core_propose_commit_apply,
    .args = core_batches,
    .args_per_set = 1,
    .arg_sets_count = sizeof core_batches / sizeof core_batches[0],
    .arg_names = core_arg_names,
};
RR_BENCH_REGISTER(core_propose_commit_apply);
