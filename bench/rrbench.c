/*
 * rrbench: the end-to-end benchmark. Starts an N-node ringraft cluster on this machine
 * (each node with its own WAL directory on disk, fdatasync on, and a TCP transport on
 * loopback) as threads of this process or, with --procs, as one process per node; drives
 * the leader with closed-loop clients (--clients, each keeping --window proposals of
 * --size bytes outstanding), warms up, measures for --duration, and prints throughput,
 * commit latency percentiles (propose -> applied on the leader), where the time goes
 * stage by stage, batching, and CPU.
 *
 *   rrbench [--nodes 3] [--size 128] [--clients 64] [--window 128] [--duration 10]
 *           [--warmup 2] [--dir ./rrbench-data] [--no-fsync] [--transport tcp|inproc]
 *           [--tick-ms 100] [--wal-sync uring|dsync|syscall|direct] [--json] [--rate N]
 *           [--snapshot-mib 256] [--procs [--verify] [--kill-leader-at S [--restart-after S]]]
 *           [--procs --verify-only --dir DIR]
 *
 * Nodes take a snapshot (of their state machine: a counter) per --snapshot-mib of log and
 * compact behind it, as a deployment does: the WAL then runs in its steady state, reusing
 * compacted segments instead of preallocating new ones.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rrbench.h"
#include "ringraft/le.h"
#include "ringraft/transport.h"
#include "cli.h"

#define PROG "rrbench"

typedef struct bench {
    opts o;
    rr_node *nodes[NODES_MAX + 1];
    rr_transport_hub *hub;
    rr_node_id_t leader; /* where clients propose (atomic) */
    uint32_t stopping;   /* atomic */
    rrbench_tally tally; /* written by the leader's apply thread */
    /* --rate: free slots (the pacer takes, completions give back) and sends missed. */
    pthread_mutex_t free_mu;
    struct slot **free;
    uint32_t n_free;
    uint64_t missed; /* atomic, in the measured window */
    uint8_t payload[PAYLOAD_MAX];
} bench;

typedef struct slot {
    bench *b;
    uint64_t start_ns; /* closed loop: when proposed; open loop: when it was due */
} slot;

uint64_t rrbench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void rrbench_tally_done(rrbench_tally *t, const rr_node_result *res, uint64_t start_ns)
{
    if (!__atomic_load_n(&t->measuring, __ATOMIC_RELAXED))
        return;
    if (res->status == RR_NODE_COMMITTED) {
        rr_hist_record(&t->lat, rrbench_now_ns() - start_ns);
        __atomic_fetch_add(&t->committed, 1, __ATOMIC_RELAXED);
    } else {
        __atomic_fetch_add(&t->failed, 1, __ATOMIC_RELAXED);
    }
}

static void usage(void)
{
    fprintf(stderr,
            "usage: rrbench [--nodes N] [--size BYTES] [--clients C] [--window W]\n"
            "               [--duration S] [--warmup S] [--dir PATH] [--no-fsync]\n"
            "               [--transport tcp|inproc] [--tick-ms MS]\n"
            "               [--wal-sync uring|dsync|syscall|direct] [--json] [--rate N]\n"
            "               [--snapshot-mib M]\n"
            "               [--procs [--verify] [--kill-leader-at S [--restart-after S]]]\n"
            "  --snapshot-mib M    each node snapshots and compacts its log per M MiB of\n"
            "                      records (default 256; 0: never; off with --verify)\n"
            "  --rate N            open loop: N proposals/s on a fixed schedule, at most\n"
            "                      --clients x --window in flight; latency from when\n"
            "                      each was due (threads mode)\n"
            "  --procs             one process per node (TCP), instead of threads\n"
            "  --verify            (--procs) record every acknowledged and applied entry\n"
            "                      and check, after the run, that every node applied\n"
            "                      every acknowledged entry, in one order; exit 1 if not\n"
            "  --verify-only       (--procs) only check the files a --verify run left\n"
            "  --kill-leader-at S  (--procs) SIGKILL the leader S s into the measured\n"
            "                      window, restart it --restart-after S later (default 1)\n");
    exit(2);
}

static void parse(int argc, char **argv, opts *o)
{
    *o = (opts){.nodes = 3,
                .size_bytes = 128,
                .clients = 64,
                .window = 128,
                .duration_s = 10,
                .warmup_s = 2,
                .dir = "./rrbench-data",
                .tick_ms = 100,
                .wal_sync = -1,
                .restart_after = 1,
                .snapshot_mib = 256};
    static const struct option longs[] = {
        {"nodes", required_argument, NULL, 'n'},
        {"size", required_argument, NULL, 's'},
        {"clients", required_argument, NULL, 'c'},
        {"window", required_argument, NULL, 'w'},
        {"duration", required_argument, NULL, 'd'},
        {"warmup", required_argument, NULL, 'W'},
        {"dir", required_argument, NULL, 'D'},
        {"no-fsync", no_argument, NULL, 'F'},
        {"transport", required_argument, NULL, 't'},
        {"tick-ms", required_argument, NULL, 'T'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {"wal-sync", required_argument, NULL, 'S'},
        {"rate", required_argument, NULL, 'r'},
        {"procs", no_argument, NULL, 'P'},
        {"verify", no_argument, NULL, 'V'},
        {"verify-only", no_argument, NULL, 'v'},
        {"kill-leader-at", required_argument, NULL, 'K'},
        {"restart-after", required_argument, NULL, 'R'},
        {"snapshot-mib", required_argument, NULL, 'M'},
        /* Internal: how the --procs parent starts a node process. */
        {"node-id", required_argument, NULL, 'I'},
        {"incarnation", required_argument, NULL, 'N'},
        {"ports", required_argument, NULL, 'p'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'n':
            o->nodes = cli_parse_u32(PROG, optarg, 1, NODES_MAX, "--nodes");
            break;
        case 's':
            o->size_bytes = cli_parse_u32(PROG, optarg, 1, PAYLOAD_MAX, "--size");
            break;
        case 'c':
            o->clients = cli_parse_u32(PROG, optarg, 1, 4096, "--clients");
            break;
        case 'w':
            o->window = cli_parse_u32(PROG, optarg, 1, 4096, "--window");
            break;
        case 'd':
            o->duration_s = cli_parse_seconds(PROG, optarg, "--duration");
            break;
        case 'W':
            o->warmup_s = cli_parse_seconds(PROG, optarg, "--warmup");
            break;
        case 'D':
            o->dir = optarg;
            break;
        case 'F':
            o->no_fsync = true;
            break;
        case 't':
            if (strcmp(optarg, "tcp") != 0 && strcmp(optarg, "inproc") != 0)
                usage();
            o->inproc = strcmp(optarg, "inproc") == 0;
            break;
        case 'T':
            o->tick_ms = cli_parse_u32(PROG, optarg, 1, 10000, "--tick-ms");
            break;
        case 'j':
            o->json = true;
            break;
        case 'S':
            if (strcmp(optarg, "uring") == 0)
                o->wal_sync = RR_WAL_SYNC_FDATASYNC;
            else if (strcmp(optarg, "dsync") == 0)
                o->wal_sync = RR_WAL_SYNC_DSYNC;
            else if (strcmp(optarg, "syscall") == 0)
                o->wal_sync = RR_WAL_SYNC_SYSCALL;
            else if (strcmp(optarg, "direct") == 0)
                o->wal_sync = RR_WAL_SYNC_DIRECT;
            else
                usage();
            break;
        case 'r': {
            char *end;
            o->rate = strtod(optarg, &end);
            if (*optarg == '\0' || *end != '\0' || !(o->rate >= 1) || o->rate > 1e8) {
                fprintf(stderr, "rrbench: --rate must be proposals per second in [1, 1e8]\n");
                exit(2);
            }
            break;
        }
        case 'P':
            o->procs = true;
            break;
        case 'V':
            o->verify = true;
            break;
        case 'v':
            o->verify_only = true;
            break;
        case 'K':
            o->kill_leader_at = cli_parse_seconds(PROG, optarg, "--kill-leader-at");
            break;
        case 'R':
            o->restart_after = cli_parse_seconds(PROG, optarg, "--restart-after");
            break;
        case 'M':
            o->snapshot_mib = cli_parse_u32(PROG, optarg, 0, 1u << 20, "--snapshot-mib");
            break;
        case 'I':
            o->node_id = cli_parse_u32(PROG, optarg, 1, NODES_MAX, "--node-id");
            break;
        case 'N':
            o->incarnation = cli_parse_u32(PROG, optarg, 0, 255, "--incarnation");
            break;
        case 'p':
            cli_parse_ports(PROG, optarg, o->ports, NODES_MAX);
            break;
        default:
            usage();
        }
    }
    if (optind != argc)
        usage();
    if ((o->verify || o->verify_only || o->kill_leader_at > 0) && !o->procs) {
        fprintf(stderr, "rrbench: --verify, --verify-only and --kill-leader-at go with --procs\n");
        exit(2);
    }
    if (o->procs && o->rate > 0) {
        fprintf(stderr, "rrbench: --rate runs in the threads mode only (not with --procs)\n");
        exit(2);
    }
    if (o->procs && (o->inproc || o->no_fsync)) {
        fprintf(stderr, "rrbench: --procs runs TCP between processes with durable WALs\n");
        exit(2);
    }
    if (o->kill_leader_at >= o->duration_s && o->kill_leader_at > 0) {
        fprintf(stderr, "rrbench: --kill-leader-at must fall inside --duration\n");
        exit(2);
    }
    if (o->verify)
        o->snapshot_mib = 0; /* a node restored from a snapshot would skip entries to check */
    if (o->verify && o->size_bytes < 8) {
        fprintf(stderr, "rrbench: --verify needs --size of at least 8 (an entry's id)\n");
        exit(2);
    }
    if ((uint64_t)o->clients * o->window > 60000) {
        fprintf(stderr, "rrbench: --clients x --window must stay under 60000 (ring size)\n");
        exit(2);
    }
}

/* ---- clients: completion callbacks re-propose (closed loop) ---------------------------- */

static void propose_slot(slot *s);

static void on_done(void *ctx, const rr_node_result *res)
{
    slot *s = ctx;
    bench *b = s->b;
    rrbench_tally_done(&b->tally, res, s->start_ns);
    if (res->status == RR_NODE_NOT_LEADER && res->leader_hint != RR_NODE_ID_NONE)
        __atomic_store_n(&b->leader, res->leader_hint, __ATOMIC_RELAXED);
    if (b->o.rate > 0) { /* open loop: the pacer proposes; the slot is free again */
        pthread_mutex_lock(&b->free_mu);
        b->free[b->n_free++] = s;
        pthread_mutex_unlock(&b->free_mu);
        return;
    }
    if (!__atomic_load_n(&b->stopping, __ATOMIC_RELAXED))
        propose_slot(s);
}

static void propose_slot(slot *s)
{
    bench *b = s->b;
    rr_node_id_t lead = __atomic_load_n(&b->leader, __ATOMIC_RELAXED);
    if (b->o.rate == 0)
        s->start_ns = rrbench_now_ns();
    int rc = rr_node_propose(b->nodes[lead], b->payload, b->o.size_bytes, on_done, s);
    if (rc != 0 && rc != -ESHUTDOWN) {
        fprintf(stderr, "rrbench: propose: %s\n", strerror(-rc));
        exit(1);
    }
}

/* --rate: proposals go out on a fixed schedule whatever the completions do, and latency
 * counts from when each was due, not from when it went out, so a stall shows as latency
 * for everything scheduled behind it (no coordinated omission). The pacer wakes every
 * 100 us at most and sends all that are due. A send due while every slot is in flight is
 * missed (counted): the cluster is slower than the offered rate. */
static void *pacer_main(void *arg)
{
    bench *b = arg;
    uint64_t interval_ns = (uint64_t)(1e9 / b->o.rate);
    if (interval_ns == 0)
        interval_ns = 1;
    uint64_t due = rrbench_now_ns();
    while (!__atomic_load_n(&b->stopping, __ATOMIC_RELAXED)) {
        uint64_t now = rrbench_now_ns();
        for (; due <= now; due += interval_ns) {
            pthread_mutex_lock(&b->free_mu);
            slot *s = b->n_free > 0 ? b->free[--b->n_free] : NULL;
            pthread_mutex_unlock(&b->free_mu);
            if (s == NULL) {
                if (__atomic_load_n(&b->tally.measuring, __ATOMIC_RELAXED))
                    __atomic_fetch_add(&b->missed, 1, __ATOMIC_RELAXED);
                continue;
            }
            s->start_ns = due;
            propose_slot(s);
        }
        uint64_t wait = due - now < 100000 ? due - now : 100000;
        struct timespec ts = {0, (long)wait};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

typedef struct sm_ctx {
    uint64_t applied; /* the state machine (first: rrbench_node_new's snapshots) */
    bench *b;
    rr_node_id_t id;
} sm_ctx;

static void sm_apply(void *ctx, const rr_entry *ents, size_t n)
{
    sm_ctx *c = ctx;
    (void)ents;
    c->applied += n; /* a counter is the state machine: the work is elsewhere */
}

/* ---- the cluster -------------------------------------------------------------------- */

void rrbench_die(const char *what, int rc)
{
    fprintf(stderr, "rrbench: %s: %s\n", what, rc < 0 && rc > -4096 ? strerror(-rc) : "error");
    exit(1);
}

rr_wal *rrbench_open_wal(const opts *o, rr_node_id_t id)
{
    char path[512];
    rr_wal_config wc;
    if (o->no_fsync) {
        rr_wal_config_init(&wc, NULL); /* in memory: durable when queued */
    } else {
        snprintf(path, sizeof path, "%s/node-%" PRIu64, o->dir, id);
        rr_wal_config_init(&wc, path);
        if (o->wal_sync >= 0)
            wc.sync_mode = (uint8_t)o->wal_sync;
    }
    rr_wal *w;
    rr_wal_error err;
    int rc = rr_wal_open(&wc, &w, &err);
    if (rc != 0) {
        fprintf(stderr, "rrbench: opening %s: %s at offset %" PRIu64 "\n", err.path, err.msg,
                err.offset_bytes);
        exit(1);
    }
    return w;
}

void rrbench_fresh_dir(const opts *o)
{
    if (mkdir(o->dir, 0755) != 0 && errno != EEXIST)
        rrbench_die(o->dir, -errno);
    for (uint32_t id = 1; id <= o->nodes; id++) {
        char path[600];
        struct stat sb;
        snprintf(path, sizeof path, "%s/node-%u", o->dir, id);
        if (stat(path, &sb) == 0) {
            fprintf(stderr,
                    "rrbench: %s exists (an earlier run's log): remove it or choose "
                    "another --dir\n",
                    path);
            exit(2);
        }
    }
}

/* A snapshot of a counter state machine: its 8 bytes. */
typedef struct counter_snap {
    rr_buf b; /* first: released through it */
    uint8_t bytes[8];
} counter_snap;

static void counter_snap_release(rr_buf *b)
{
    free(b);
}

static int counter_save(void *ctx, rr_buf **buf, const uint8_t **data, uint64_t *len)
{
    counter_snap *s = malloc(sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->b = (rr_buf){.refs = 1, .release = counter_snap_release};
    rr_le_put_u64(s->bytes, *(const uint64_t *)ctx);
    *buf = &s->b;
    *data = s->bytes;
    *len = sizeof s->bytes;
    return 0;
}

static int counter_restore(void *ctx, const uint8_t *data, uint64_t len)
{
    if (len != 8)
        return -EINVAL;
    *(uint64_t *)ctx = rr_le_get_u64(data);
    return 0;
}

rr_node *rrbench_node_new(const opts *o, rr_node_id_t id, rr_transport *t,
                          const rr_node_callbacks *cb_in)
{
    rr_node_callbacks cb = *cb_in;
    rr_node_config cfg;
    rr_node_config_init(&cfg, id);
    if (o->snapshot_mib > 0) {
        uint64_t record_bytes = 16 + RR_ENTRY_HEADER_BYTES + o->size_bytes; /* WAL record */
        cfg.snapshot_every_entries = ((uint64_t)o->snapshot_mib << 20) / record_bytes + 1;
        cfg.snapshot_keep_entries = cfg.snapshot_every_entries / 4;
        cb.snapshot_save = counter_save;
        cb.snapshot_restore = counter_restore;
    }
    cfg.n_voters = o->nodes;
    for (uint32_t k = 0; k < o->nodes; k++)
        cfg.voters[k] = k + 1;
    cfg.tick_ms = o->tick_ms;
    int rc = rr_node_disk_wal(rrbench_open_wal(o, id), &cfg.disk, &cfg.disk_ctx);
    if (rc != 0)
        rrbench_die("disk", rc);
    cfg.net = rr_node_net_transport();
    cfg.net_ctx = t;
    rr_node *n;
    if ((rc = rr_node_create(&cfg, &cb, &n)) != 0)
        rrbench_die("node", rc);
    return n;
}

static void start_cluster(bench *b, sm_ctx *sms)
{
    rr_transport *ts[NODES_MAX + 1];
    if (b->o.inproc && rr_transport_hub_new(&b->hub) != 0)
        rrbench_die("hub", -ENOMEM);
    if (!b->o.no_fsync)
        rrbench_fresh_dir(&b->o);
    for (rr_node_id_t id = 1; id <= b->o.nodes; id++) {
        rr_transport_config tc;
        rr_transport_config_init(&tc, CLUSTER_ID, id);
        snprintf(tc.listen_host, sizeof tc.listen_host, "127.0.0.1");
        tc.listen_port = 0;
        int rc = b->o.inproc ? rr_transport_inproc_new(b->hub, &tc, &ts[id])
                             : rr_transport_tcp_new(&tc, &ts[id]);
        if (rc != 0)
            rrbench_die("transport", rc);
    }
    for (rr_node_id_t id = 1; id <= b->o.nodes; id++) {
        for (rr_node_id_t p = 1; p <= b->o.nodes; p++) {
            if (p == id)
                continue;
            uint16_t port = b->o.inproc ? 0 : rr_transport_port(ts[p]);
            int rc = rr_transport_add_peer(ts[id], p, "127.0.0.1", port);
            if (rc != 0)
                rrbench_die("add peer", rc);
        }
        int rc = rr_transport_start(ts[id]);
        if (rc != 0)
            rrbench_die("transport start", rc);
    }
    for (rr_node_id_t id = 1; id <= b->o.nodes; id++) {
        sms[id] = (sm_ctx){.b = b, .id = id};
        rr_node_callbacks cb = {.ctx = &sms[id], .apply = sm_apply};
        b->nodes[id] = rrbench_node_new(&b->o, id, ts[id], &cb);
    }
    for (rr_node_id_t id = 1; id <= b->o.nodes; id++) {
        int rc = rr_node_start(b->nodes[id]);
        if (rc != 0)
            rrbench_die("node start", rc);
    }
}

static rr_node_id_t wait_leader(bench *b)
{
    for (int t = 0; t < 3000; t++) {
        for (rr_node_id_t id = 1; id <= b->o.nodes; id++) {
            rr_node_stats st;
            rr_node_stats_get(b->nodes[id], &st);
            if (st.leader == id)
                return id;
        }
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "rrbench: no leader elected within 30 s\n");
    exit(1);
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

double rrbench_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---- report ---------------------------------------------------------------------------- */

/* Where a proposal's time goes on the leader, stage by stage (rr_node_stats). */
static void print_stages(const rr_node_stats *st)
{
    static const char *const names[RR_NODE_STAGE_COUNT] = {
        "queue  (propose -> raft thread)",        "commit (raft thread -> committed)",
        "apply  (committed -> callback)",         "total  (propose -> callback)",
        "disk   (append -> durable, per append)", "ack    (MsgApp sent -> follower's ack)"};
    printf("  per-stage latency on the leader (ms): p50 / p90 / p99 / max, mean\n");
    for (int i = 0; i < RR_NODE_STAGE_COUNT; i++) {
        const rr_node_latency *l = &st->stage[i];
        printf("    %-40s %8.3f %8.3f %8.3f %8.3f  %8.3f\n", names[i], (double)l->p50_ns / 1e6,
               (double)l->p90_ns / 1e6, (double)l->p99_ns / 1e6, (double)l->max_ns / 1e6,
               l->mean_ns / 1e6);
    }
    printf("  batching: %.1f proposals per MsgProp, %.1f entries per disk append\n",
           st->propose_batch_mean, st->disk_batch_mean);
}

void rrbench_report(const opts *o, const rrbench_result *r)
{
    double secs = r->secs;
    double eps = (double)r->committed / secs;
    double mbps = eps * o->size_bytes / 1e6;
    uint64_t q[5] = {rr_hist_quantile(&r->lat, 0.50), rr_hist_quantile(&r->lat, 0.90),
                     rr_hist_quantile(&r->lat, 0.99), rr_hist_quantile(&r->lat, 0.999), r->lat.max};
    const rr_node_stats *l1 = &r->leader1, *l0 = &r->leader0;
    double appends = (double)(l1->disk_appends - l0->disk_appends);
    double readies = (double)(l1->readies - l0->readies);
    double applied = (double)(l1->entries_applied - l0->entries_applied);
    double syncs = (double)(l1->disk_syncs - l0->disk_syncs);
    double net_mb = (double)(l1->net.bytes_sent - l0->net.bytes_sent) / 1e6;
    double frames = (double)(l1->net.frames_sent - l0->net.frames_sent);
    double frames_zc = (double)(l1->net.frames_zero_copy - l0->net.frames_zero_copy);
    const char *mode = o->procs ? "procs" : "threads";
    if (o->json) {
        printf("{\"nodes\":%u,\"size_bytes\":%u,\"clients\":%u,\"window\":%u,\"mode\":\"%s\","
               "\"transport\":\"%s\",\"fsync\":%s,\"duration_s\":%.3f,"
               "\"entries_per_s\":%.0f,\"mb_per_s\":%.2f,\"committed\":%" PRIu64
               ",\"failed\":%" PRIu64 ",\"latency_ns\":{\"p50\":%" PRIu64 ",\"p90\":%" PRIu64
               ",\"p99\":%" PRIu64 ",\"p999\":%" PRIu64 ",\"max\":%" PRIu64 "},"
               "\"leader_disk_appends_per_s\":%.0f,\"leader_entries_per_append\":%.1f,"
               "\"leader_readies_per_s\":%.0f,\"leader_syncs_per_s\":%.0f,"
               "\"leader_net_mb_per_s\":%.2f,\"leader_frames_per_s\":%.0f,"
               "\"leader_frames_zero_copy\":%.0f,\"cpu_cores\":%.2f,\"rate_per_s\":%.0f,"
               "\"missed\":%" PRIu64 ",",
               o->nodes, o->size_bytes, o->clients, o->window, mode, o->inproc ? "inproc" : "tcp",
               o->no_fsync ? "false" : "true", secs, eps, mbps, r->committed, r->failed, q[0], q[1],
               q[2], q[3], q[4], appends / secs, appends > 0 ? applied / appends : 0,
               readies / secs, syncs / secs, net_mb / secs, frames / secs, frames_zc,
               r->cpu_s / secs, o->rate, r->missed);
        if (r->per_node_cpu) {
            printf("\"cpu_cores_per_node\":[");
            for (uint32_t id = 1; id <= o->nodes; id++)
                printf("%s%.2f", id > 1 ? "," : "", r->cpu_node_s[id] / secs);
            printf("],");
        }
        printf("\"stage_p50_ns\":{\"queue\":%" PRIu64 ",\"commit\":%" PRIu64 ",\"apply\":%" PRIu64
               ",\"disk\":%" PRIu64 ",\"ack\":%" PRIu64 "},"
               "\"propose_batch_mean\":%.1f,\"disk_batch_mean\":%.1f}\n",
               l1->stage[RR_NODE_STAGE_QUEUE].p50_ns, l1->stage[RR_NODE_STAGE_COMMIT].p50_ns,
               l1->stage[RR_NODE_STAGE_APPLY].p50_ns, l1->stage[RR_NODE_STAGE_DISK].p50_ns,
               l1->stage[RR_NODE_STAGE_ACK].p50_ns, l1->propose_batch_mean, l1->disk_batch_mean);
        return;
    }
    printf("rrbench: %u nodes (%s), %u B entries, %u clients x %u outstanding, %s, %s, %.1f s\n",
           o->nodes, o->procs ? "one process each" : "threads of one process", o->size_bytes,
           o->clients, o->window, o->inproc ? "in-process transport" : "TCP on loopback",
           o->no_fsync ? "NO fsync (in-memory WAL)" : "durable WAL", secs);
    printf("  throughput   %.0f entries/s, %.2f MB/s (%" PRIu64 " committed, %" PRIu64 " failed)\n",
           eps, mbps, r->committed, r->failed);
    if (o->rate > 0)
        printf("  open loop    %.0f proposals/s offered; %" PRIu64 " sends missed (all %u slots in "
               "flight)\n",
               o->rate, r->missed, o->clients * o->window);
    printf("  commit latency (%s -> applied on the leader)\n", o->rate > 0 ? "due" : "propose");
    printf("    p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms\n",
           (double)q[0] / 1e6, (double)q[1] / 1e6, (double)q[2] / 1e6, (double)q[3] / 1e6,
           (double)q[4] / 1e6);
    printf("  leader: %.0f disk appends/s, %.1f entries per append, %.0f Readys/s, "
           "%.0f durable writes/s\n",
           appends / secs, appends > 0 ? applied / appends : 0, readies / secs, syncs / secs);
    printf("  leader's network: %.2f MB/s sent in %.0f frames/s (%.0f zero-copy frames)\n",
           net_mb / secs, frames / secs, frames_zc);
    if (r->per_node_cpu) {
        printf("  CPU: %.2f cores for the whole cluster; per node:", r->cpu_s / secs);
        for (uint32_t id = 1; id <= o->nodes; id++)
            printf(" %u: %.2f", id, r->cpu_node_s[id] / secs);
        printf("\n");
    } else {
        printf("  CPU: %.2f cores for the whole cluster (%u nodes in this process)\n",
               r->cpu_s / secs, o->nodes);
    }
    print_stages(l1);
}

int main(int argc, char **argv)
{
    opts o;
    parse(argc, argv, &o);
    if (o.node_id != 0)
        return rrbench_node_process(&o);
    if (o.procs)
        return rrbench_procs(&o, argc, argv);

    bench *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return 1;
    b->o = o;
    for (uint32_t i = 0; i < b->o.size_bytes; i++)
        b->payload[i] = (uint8_t)(i * 131u);
    rr_hist_reset(&b->tally.lat);
    sm_ctx sms[NODES_MAX + 1];
    start_cluster(b, sms);
    b->leader = wait_leader(b);

    uint32_t n_slots = b->o.clients * b->o.window;
    slot *slots = calloc(n_slots, sizeof(*slots));
    pthread_t pacer;
    pthread_mutex_init(&b->free_mu, NULL);
    b->free = calloc(n_slots, sizeof(*b->free));
    for (uint32_t i = 0; i < n_slots; i++) {
        slots[i].b = b;
        if (b->o.rate > 0)
            b->free[b->n_free++] = &slots[i];
        else
            propose_slot(&slots[i]);
    }
    if (b->o.rate > 0 && pthread_create(&pacer, NULL, pacer_main, b) != 0)
        rrbench_die("pacer thread", -EAGAIN);
    sleep_s(b->o.warmup_s);

    rr_node_stats st0[NODES_MAX + 1], st1[NODES_MAX + 1];
    for (rr_node_id_t id = 1; id <= b->o.nodes; id++) {
        rr_node_stats_reset(b->nodes[id]); /* stage histograms: the measured window only */
        rr_node_stats_get(b->nodes[id], &st0[id]);
    }
    double cpu0 = rrbench_cpu_s();
    uint64_t t0 = rrbench_now_ns();
    __atomic_store_n(&b->tally.measuring, 1, __ATOMIC_RELAXED);
    sleep_s(b->o.duration_s);
    __atomic_store_n(&b->tally.measuring, 0, __ATOMIC_RELAXED);
    uint64_t t1 = rrbench_now_ns();
    double cpu1 = rrbench_cpu_s();
    for (rr_node_id_t id = 1; id <= b->o.nodes; id++)
        rr_node_stats_get(b->nodes[id], &st1[id]);

    __atomic_store_n(&b->stopping, 1, __ATOMIC_RELAXED);
    if (b->o.rate > 0)
        pthread_join(pacer, NULL); /* no proposal may race with rr_node_stop */
    for (rr_node_id_t id = 1; id <= b->o.nodes; id++)
        rr_node_stop(b->nodes[id]);
    rrbench_result *r = calloc(1, sizeof(*r));
    r->missed = b->missed;
    r->secs = (double)(t1 - t0) / 1e9;
    r->cpu_s = cpu1 - cpu0;
    r->committed = b->tally.committed;
    r->failed = b->tally.failed;
    r->lat = b->tally.lat;
    r->leader0 = st0[b->leader];
    r->leader1 = st1[b->leader];
    rrbench_report(&b->o, r);
    free(r);
    for (rr_node_id_t id = 1; id <= b->o.nodes; id++)
        rr_node_free(b->nodes[id]);
    if (b->hub != NULL)
        rr_transport_hub_free(b->hub);
    free(slots);
    free(b->free);
    pthread_mutex_destroy(&b->free_mu);
    free(b);
    return 0;
}
