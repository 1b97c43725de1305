/*
 * raftbench-canonical: rrbench's workload on canonical raft (Debian's libraft, the C library
 * now maintained as cowsql/raft), so that ringraft and a peer run side by side.
 *
 * Process layout: the program started by the user is the coordinator. It picks one free
 * loopback port per node, creates one data directory per node, and re-executes itself once
 * per node (--node-id, an internal mode). Every node is its own process with its own libuv
 * loop, libraft's uv backend on disk (raft_uv_init) and its TCP transport on 127.0.0.1
 * (raft_uv_tcp_init). All nodes bootstrap the same configuration of --nodes voters.
 *
 * The first node to become leader runs the client inside its own loop: --clients x --window
 * raft_apply requests outstanding (closed loop: an apply callback proposes again), each
 * request one entry of --size bytes, or --batch entries in one raft_apply. Commit latency is
 * raft_apply -> its apply callback on the leader, i.e. committed and applied to the leader's
 * FSM. After --warmup the leader measures for --duration and reports through a pipe (fd 3) to
 * the coordinator, which samples every node's CPU time around the measured window, kills the
 * nodes, removes their data, and prints the same fields as rrbench (text or --json).
 *
 * Children die with the coordinator (PR_SET_PDEATHSIG) and the coordinator kills them on
 * every exit path: normal end, error, timeout, SIGINT/SIGTERM/SIGHUP.
 *
 *   raftbench-canonical [--nodes 3] [--size 128] [--clients 1] [--window 256] [--batch 1]
 *                       [--duration 10] [--warmup 2] [--dir PATH] [--snapshot-threshold N]
 *                       [--election-timeout-ms 1000]
 *                       [--json]
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "histogram.h"
#include "../cli.h"

#define PROG "raftbench-canonical"

#define NODES_MAX       7
#define BATCH_MAX       1024
#define PAYLOAD_MAX     (1u << 20)
#define OUTSTANDING_MAX 60000u
#define REPORT_FD       3   /* node -> coordinator pipe, one line per write */
#define LINE_MAX_BYTES  512 /* one report line */
#define POLL_MS         5
#define ELECTION_WAIT_S 30

/* A write of at most PIPE_BUF bytes to a pipe is atomic: lines of different nodes never mix. */
_Static_assert(LINE_MAX_BYTES <= PIPE_BUF, "a report line must fit one atomic pipe write");

typedef struct opts {
    uint32_t nodes;
    uint32_t size_bytes;
    uint32_t clients;
    uint32_t window;
    uint32_t batch;
    double duration_s;
    double warmup_s;
    const char *dir;
    uint32_t snapshot_threshold;
    uint32_t election_timeout_ms; /* libraft's default 1000; heartbeats every tenth of it */
    bool json;
    /* Internal node mode. */
    uint32_t node_id;
    uint16_t ports[NODES_MAX + 1];
} opts;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- options ------------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: raftbench-canonical [--nodes N] [--size BYTES] [--clients C] [--window W]\n"
            "                           [--batch N] [--duration S] [--warmup S] [--dir PATH]\n"
            "                           [--snapshot-threshold N] [--election-timeout-ms MS]\n"
            "                           [--json]\n");
    exit(2);
}

static void parse(int argc, char **argv, opts *o)
{
    *o = (opts){.nodes = 3,
                .size_bytes = 128,
                .clients = 1,
                .window = 256,
                .batch = 1,
                .duration_s = 10,
                .warmup_s = 2,
                .snapshot_threshold = 65536,
                .election_timeout_ms = 1000};
    static const struct option longs[] = {
        {"nodes", required_argument, NULL, 'n'},
        {"size", required_argument, NULL, 's'},
        {"clients", required_argument, NULL, 'c'},
        {"window", required_argument, NULL, 'w'},
        {"batch", required_argument, NULL, 'b'},
        {"duration", required_argument, NULL, 'd'},
        {"warmup", required_argument, NULL, 'W'},
        {"dir", required_argument, NULL, 'D'},
        {"snapshot-threshold", required_argument, NULL, 'S'},
        {"election-timeout-ms", required_argument, NULL, 'E'},
        {"json", no_argument, NULL, 'j'},
        {"node-id", required_argument, NULL, 'I'},
        {"ports", required_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
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
        case 'b':
            o->batch = cli_parse_u32(PROG, optarg, 1, BATCH_MAX, "--batch");
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
        case 'S':
            o->snapshot_threshold =
                cli_parse_u32(PROG, optarg, 16, 1u << 30, "--snapshot-threshold");
            break;
        case 'E':
            o->election_timeout_ms =
                cli_parse_u32(PROG, optarg, 100, 60000, "--election-timeout-ms");
            break;
        case 'j':
            o->json = true;
            break;
        case 'I':
            o->node_id = cli_parse_u32(PROG, optarg, 1, NODES_MAX, "--node-id");
            break;
        case 'P':
            cli_parse_ports(PROG, optarg, o->ports, NODES_MAX);
            break;
        default:
            usage();
        }
    }
    if (optind != argc)
        usage();
    if ((uint64_t)o->clients * o->window > OUTSTANDING_MAX) {
        fprintf(stderr, "raftbench-canonical: --clients x --window must stay under %u\n",
                OUTSTANDING_MAX);
        exit(2);
    }
}

/* ---- node mode: one libraft server, and the client when it leads ----------------------- */

typedef struct node node;

typedef struct slot {
    struct raft_apply req; /* req.data points back at the slot */
    struct slot *next;     /* on the node's again list */
    node *n;
    uint64_t start_ns;
} slot;

struct node {
    opts o;
    uv_loop_t loop;
    struct raft_uv_transport transport;
    struct raft_io io;
    struct raft_fsm fsm;
    struct raft raft;
    uv_timer_t poll_timer;  /* leadership watch */
    uv_timer_t phase_timer; /* warm-up end, then measurement end */
    uv_check_t again_check; /* proposes the again list after each loop iteration's I/O */
    slot *again;            /* completed slots to propose again */
    uint64_t fsm_applied;   /* the state machine: a counter */
    bool leading;           /* this node runs the client */
    bool measuring;
    bool stopping;
    uint64_t t0_ns;
    uint64_t committed_reqs; /* completed with status 0 in the measured window */
    uint64_t failed_reqs;
    slot *slots;
    rr_hist lat;
    struct raft_buffer bufs[BATCH_MAX];
    uint8_t payload[PAYLOAD_MAX];
};

/* One line to the coordinator, in one write (see LINE_MAX_BYTES). */
static void tell(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void tell(const char *fmt, ...)
{
    char line[LINE_MAX_BYTES];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (len > 0 && (size_t)len < sizeof line && write(REPORT_FD, line, (size_t)len) != len)
        _exit(1); /* the coordinator is gone */
}

static void node_fail(node *n, const char *what, int rv)
{
    tell("error node %u: %s: %s (%s)\n", n->o.node_id, what, raft_strerror(rv),
         raft_errmsg(&n->raft));
    _exit(1);
}

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    node *n = fsm->data;
    (void)buf;
    n->fsm_applied++;
    *result = NULL;
    return 0;
}

/* libraft takes ownership of the array and of each buffer (FSM version 1). */
static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    node *n = fsm->data;
    *bufs = raft_malloc(sizeof(**bufs));
    if (*bufs == NULL)
        return RAFT_NOMEM;
    (*bufs)[0].len = sizeof(n->fsm_applied);
    (*bufs)[0].base = raft_malloc(sizeof(n->fsm_applied));
    if ((*bufs)[0].base == NULL) {
        raft_free(*bufs);
        return RAFT_NOMEM;
    }
    memcpy((*bufs)[0].base, &n->fsm_applied, sizeof(n->fsm_applied));
    *n_bufs = 1;
    return 0;
}

/* The FSM owns buf->base once restore returns 0. */
static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    node *n = fsm->data;
    if (buf->len != sizeof(n->fsm_applied))
        return RAFT_MALFORMED;
    memcpy(&n->fsm_applied, buf->base, sizeof(n->fsm_applied));
    raft_free(buf->base);
    return 0;
}

static void propose(slot *s);

/* Completes propose(): the request's entries are committed and applied on this leader. With
 * --batch, libraft 0.15 calls back when the first entry of the call is applied (req->index is
 * the first entry's); by then the whole call is committed (checked: commit_index covered the
 * last entry in every callback of a test run) and the rest are applied in the same pass. */
static void propose_done(struct raft_apply *req, int status, void *result)
{
    slot *s = req->data;
    node *n = s->n;
    (void)result;
    if (n->measuring) {
        if (status == 0) {
            rr_hist_record(&n->lat, now_ns() - s->start_ns);
            n->committed_reqs++;
        } else {
            n->failed_reqs++;
        }
    }
    /* Not raft_apply from inside libraft's apply path: doing so crashed nodes (SIGSEGV in
     * raft_apply, libraft 0.15.0) in runs with 4 KiB entries, also with the request struct
     * not reused. Proposing from a check handle, after the iteration's I/O callbacks,
     * keeps the closed loop without re-entering libraft. */
    if (!n->stopping) {
        s->next = n->again;
        n->again = s;
    }
}

static void propose_again(uv_check_t *h)
{
    node *n = h->data;
    slot *s = n->again;
    n->again = NULL;
    while (s != NULL) {
        slot *next = s->next;
        propose(s);
        s = next;
    }
}

static void propose(slot *s)
{
    node *n = s->n;
    /* raft_apply takes ownership of each entry's memory: one raft_malloc per entry is part of
     * libraft's API, so it is part of what we measure. */
    for (uint32_t i = 0; i < n->o.batch; i++) {
        n->bufs[i].len = n->o.size_bytes;
        n->bufs[i].base = raft_malloc(n->o.size_bytes);
        if (n->bufs[i].base == NULL)
            node_fail(n, "raft_malloc", RAFT_NOMEM);
        memcpy(n->bufs[i].base, n->payload, n->o.size_bytes);
    }
    s->req.data = s;
    s->start_ns = now_ns();
    int rv = raft_apply(&n->raft, &s->req, n->bufs, n->o.batch, propose_done);
    if (rv != 0) {
        for (uint32_t i = 0; i < n->o.batch; i++)
            raft_free(n->bufs[i].base);
        node_fail(n, "raft_apply (leadership lost?)", rv);
    }
}

/* Which write mode libraft chose, read back from /proc: the status flags of its open segments.
 * Spare segments are opened O_DSYNC and get O_DIRECT only when a writer takes them over
 * (libraft's UvWriterInit), so the strongest mode seen is the one in use. */
static const char *io_mode(void)
{
    static const char *const names[4] = {"buffered", "O_DSYNC", "O_DIRECT", "O_DIRECT|O_DSYNC"};
    unsigned best = 0;
    bool seen = false;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        char target[PATH_MAX], info[64], key[32];
        ssize_t len = readlinkat(dirfd(d), e->d_name, target, sizeof target - 1);
        if (len <= 0)
            continue;
        target[len] = '\0';
        const char *base = strrchr(target, '/');
        if (base == NULL || strncmp(base, "/open-", 6) != 0)
            continue;
        snprintf(info, sizeof info, "/proc/self/fdinfo/%d", atoi(e->d_name));
        FILE *f = fopen(info, "r");
        unsigned flags = 0;
        while (f != NULL && fscanf(f, "%31s", key) == 1) {
            if (strcmp(key, "flags:") == 0 && fscanf(f, "%o", &flags) == 1)
                break;
        }
        if (f != NULL)
            fclose(f);
        unsigned mode = ((flags & O_DIRECT) != 0 ? 2u : 0u) | ((flags & O_DSYNC) != 0 ? 1u : 0u);
        best = mode > best ? mode : best;
        seen = true;
    }
    if (d != NULL)
        closedir(d);
    return seen ? names[best] : "unknown";
}

static void measure_done(uv_timer_t *t)
{
    node *n = t->data;
    uint64_t t1 = now_ns();
    n->measuring = false;
    n->stopping = true;
    double secs = (double)(t1 - n->t0_ns) / 1e9;
    tell("result %u %.6f %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
         " %" PRIu64 " %s\n",
         n->o.node_id, secs, n->committed_reqs, n->failed_reqs, rr_hist_quantile(&n->lat, 0.50),
         rr_hist_quantile(&n->lat, 0.90), rr_hist_quantile(&n->lat, 0.99),
         rr_hist_quantile(&n->lat, 0.999), n->lat.max, io_mode());
    /* Stay up: the coordinator kills every node once it has the result. */
}

static void warmup_done(uv_timer_t *t)
{
    node *n = t->data;
    rr_hist_reset(&n->lat);
    n->t0_ns = now_ns();
    n->measuring = true;
    tell("start %u\n", n->o.node_id);
    uv_timer_start(&n->phase_timer, measure_done, (uint64_t)(n->o.duration_s * 1000), 0);
}

static void start_client(node *n)
{
    uint32_t n_slots = n->o.clients * n->o.window;
    n->slots = calloc(n_slots, sizeof(*n->slots));
    if (n->slots == NULL)
        node_fail(n, "calloc", RAFT_NOMEM);
    n->leading = true;
    tell("leader %u\n", n->o.node_id);
    for (uint32_t i = 0; i < n_slots; i++) {
        n->slots[i].n = n;
        propose(&n->slots[i]);
    }
    uv_timer_start(&n->phase_timer, warmup_done, (uint64_t)(n->o.warmup_s * 1000), 0);
}

static void poll_leadership(uv_timer_t *t)
{
    node *n = t->data;
    bool leader = raft_state(&n->raft) == RAFT_LEADER;
    if (!n->leading && leader) {
        start_client(n);
        return;
    }
    if (n->leading && !leader && !n->stopping)
        node_fail(n, "leadership lost during the run", RAFT_NOTLEADER);
}

static int node_main(const opts *o)
{
    node *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return 1;
    n->o = *o;
    for (uint32_t i = 0; i < o->size_bytes; i++)
        n->payload[i] = (uint8_t)(i * 131u);
    char dir[PATH_MAX], addr[32];
    snprintf(dir, sizeof dir, "%s/node-%u", o->dir, o->node_id);
    snprintf(addr, sizeof addr, "127.0.0.1:%u", o->ports[o->node_id]);

    int rv = uv_loop_init(&n->loop);
    if (rv != 0)
        node_fail(n, "uv_loop_init", RAFT_IOERR);
    rv = raft_uv_tcp_init(&n->transport, &n->loop);
    if (rv != 0)
        node_fail(n, "raft_uv_tcp_init", rv);
    rv = raft_uv_init(&n->io, &n->loop, dir, &n->transport);
    if (rv != 0)
        node_fail(n, "raft_uv_init", rv);
    /* Peers started a few ms apart: retry a refused connection soon, not after 1 s. */
    raft_uv_set_connect_retry_delay(&n->io, 50);
    n->fsm = (struct raft_fsm){.version = 1,
                               .data = n,
                               .apply = fsm_apply,
                               .snapshot = fsm_snapshot,
                               .restore = fsm_restore};
    rv = raft_init(&n->raft, &n->io, &n->fsm, o->node_id, addr);
    if (rv != 0)
        node_fail(n, "raft_init", rv);
    raft_set_snapshot_threshold(&n->raft, o->snapshot_threshold);
    raft_set_snapshot_trailing(&n->raft, o->snapshot_threshold / 4);
    raft_set_election_timeout(&n->raft, o->election_timeout_ms);
    raft_set_heartbeat_timeout(&n->raft, o->election_timeout_ms / 10);

    struct raft_configuration conf;
    raft_configuration_init(&conf);
    for (uint32_t id = 1; id <= o->nodes; id++) {
        char peer[32];
        snprintf(peer, sizeof peer, "127.0.0.1:%u", o->ports[id]);
        rv = raft_configuration_add(&conf, id, peer, RAFT_VOTER);
        if (rv != 0)
            node_fail(n, "raft_configuration_add", rv);
    }
    rv = raft_bootstrap(&n->raft, &conf);
    if (rv != 0)
        node_fail(n, "raft_bootstrap", rv);
    raft_configuration_close(&conf);
    rv = raft_start(&n->raft);
    if (rv != 0)
        node_fail(n, "raft_start", rv);

    uv_timer_init(&n->loop, &n->poll_timer);
    uv_timer_init(&n->loop, &n->phase_timer);
    uv_check_init(&n->loop, &n->again_check);
    n->poll_timer.data = n;
    n->phase_timer.data = n;
    n->again_check.data = n;
    uv_check_start(&n->again_check, propose_again);
    uv_timer_start(&n->poll_timer, poll_leadership, POLL_MS, POLL_MS);
    uv_run(&n->loop, UV_RUN_DEFAULT);
    return 0;
}

/* ---- coordinator mode ---------------------------------------------------------------- */

typedef struct cluster {
    opts o;
    char root[PATH_MAX];               /* the nodes' data live in root/node-<id> */
    bool root_owned;                   /* created by us (mkdtemp): removed at exit */
    bool node_dir_made[NODES_MAX + 1]; /* only what we created is removed */
    pid_t pids[NODES_MAX + 1];
    int pipe_rd;
} cluster;

/* Global so that every exit path, including a signal, can kill the nodes. */
static cluster g_cl;
static volatile sig_atomic_t g_signalled;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void cleanup(void)
{
    for (uint32_t id = 1; id <= NODES_MAX; id++) {
        if (g_cl.pids[id] > 0) {
            kill(g_cl.pids[id], SIGKILL);
            waitpid(g_cl.pids[id], NULL, 0);
            g_cl.pids[id] = 0;
        }
    }
    for (uint32_t id = 1; id <= NODES_MAX; id++) {
        if (g_cl.node_dir_made[id]) {
            char path[PATH_MAX + 16];
            snprintf(path, sizeof path, "%s/node-%u", g_cl.root, id);
            nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
            g_cl.node_dir_made[id] = false;
        }
    }
    if (g_cl.root_owned) {
        rmdir(g_cl.root);
        g_cl.root_owned = false;
    }
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "raftbench-canonical: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    cleanup();
    exit(1);
}

static void on_signal(int sig)
{
    g_signalled = sig;
}

/* A free loopback port: bind port 0, read it back, release it for the node to bind. */
static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        die("picking a loopback port: %s", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

static void make_dirs(cluster *c)
{
    if (c->o.dir == NULL) {
        snprintf(c->root, sizeof c->root, "/tmp/raftbench-canonical.XXXXXX");
        if (mkdtemp(c->root) == NULL)
            die("mkdtemp: %s", strerror(errno));
        c->root_owned = true;
    } else {
        snprintf(c->root, sizeof c->root, "%s", c->o.dir);
        if (mkdir(c->root, 0755) != 0 && errno != EEXIST)
            die("%s: %s", c->root, strerror(errno));
    }
    for (uint32_t id = 1; id <= c->o.nodes; id++) {
        char path[PATH_MAX + 16];
        snprintf(path, sizeof path, "%s/node-%u", c->root, id);
        /* libraft bootstraps only a pristine directory: refuse leftovers, do not delete them. */
        if (mkdir(path, 0755) != 0)
            die("%s: %s (must not exist yet)", path, strerror(errno));
        c->node_dir_made[id] = true;
    }
}

static void spawn(cluster *c, uint32_t id, const char *ports, int pipe_wr)
{
    char a[10][32];
    snprintf(a[0], sizeof a[0], "%u", id);
    snprintf(a[1], sizeof a[1], "%u", c->o.nodes);
    snprintf(a[2], sizeof a[2], "%u", c->o.size_bytes);
    snprintf(a[3], sizeof a[3], "%u", c->o.clients);
    snprintf(a[4], sizeof a[4], "%u", c->o.window);
    snprintf(a[5], sizeof a[5], "%u", c->o.batch);
    snprintf(a[6], sizeof a[6], "%.3f", c->o.duration_s);
    snprintf(a[7], sizeof a[7], "%.3f", c->o.warmup_s);
    snprintf(a[8], sizeof a[8], "%u", c->o.snapshot_threshold);
    snprintf(a[9], sizeof a[9], "%u", c->o.election_timeout_ms);
    const char *pairs[][2] = {
        {"--node-id", a[0]},
        {"--nodes", a[1]},
        {"--size", a[2]},
        {"--clients", a[3]},
        {"--window", a[4]},
        {"--batch", a[5]},
        {"--duration", a[6]},
        {"--warmup", a[7]},
        {"--snapshot-threshold", a[8]},
        {"--election-timeout-ms", a[9]},
        {"--ports", ports},
        {"--dir", c->root},
    };
    enum { N_PAIRS = sizeof(pairs) / sizeof(pairs[0]) };
    char *argv[2 + 2 * N_PAIRS];
    size_t k = 0;
    argv[k++] = "raftbench-canonical";
    for (size_t i = 0; i < N_PAIRS; i++) {
        argv[k++] = (char *)pairs[i][0]; /* execv's argv is char *const[]: never written */
        argv[k++] = (char *)pairs[i][1];
    }
    argv[k] = NULL;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        /* A node must not outlive the coordinator, whatever kills it. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(1);
        /* dup2 clears FD_CLOEXEC on the copy, unless there is no copy to make. Every other
         * descriptor of ours (the read end included) is O_CLOEXEC. */
        if (pipe_wr == REPORT_FD ? fcntl(pipe_wr, F_SETFD, 0) != 0
                                 : dup2(pipe_wr, REPORT_FD) != REPORT_FD)
            _exit(1);
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    c->pids[id] = pid;
}

/* utime + stime of a process, in seconds, from /proc/<pid>/stat. */
static double proc_cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long long ut = 0, st = 0;
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double cluster_cpu_s(const cluster *c)
{
    double sum = 0;
    for (uint32_t id = 1; id <= c->o.nodes; id++)
        sum += proc_cpu_s(c->pids[id]);
    return sum;
}

typedef struct result {
    uint32_t leader;
    double secs;
    uint64_t committed_reqs, failed_reqs;
    uint64_t q[5]; /* p50 p90 p99 p99.9 max, ns */
    char io_mode[32];
    double cpu_s;
} result;

/* Handles one line from a node; returns true once the result is in. */
static bool on_line(cluster *c, const char *line, result *r, double *cpu0)
{
    uint32_t id;
    if (strncmp(line, "error ", 6) == 0)
        die("%s", line + 6);
    if (sscanf(line, "leader %u", &id) == 1) {
        if (r->leader == 0)
            r->leader = id;
        else if (id != r->leader)
            die("node %u became leader after node %u", id, r->leader);
        return false;
    }
    if (sscanf(line, "start %u", &id) == 1) {
        *cpu0 = cluster_cpu_s(c);
        return false;
    }
    if (sscanf(line,
               "result %u %lf %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
               " %" SCNu64 " %31s",
               &id, &r->secs, &r->committed_reqs, &r->failed_reqs, &r->q[0], &r->q[1], &r->q[2],
               &r->q[3], &r->q[4], r->io_mode) == 10) {
        r->cpu_s = cluster_cpu_s(c) - *cpu0;
        return true;
    }
    die("unexpected line from a node: %s", line);
}

static void check_children(cluster *c)
{
    for (uint32_t id = 1; id <= c->o.nodes; id++) {
        int st;
        if (waitpid(c->pids[id], &st, WNOHANG) == c->pids[id]) {
            c->pids[id] = 0;
            die("node %u exited early (%s %d)", id, WIFSIGNALED(st) ? "signal" : "status",
                WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
        }
    }
}

static void wait_result(cluster *c, result *r)
{
    char buf[4096];
    size_t have = 0;
    double cpu0 = 0;
    uint64_t deadline =
        now_ns() + (uint64_t)((ELECTION_WAIT_S + 15 + c->o.warmup_s + c->o.duration_s) * 1e9);
    for (;;) {
        if (g_signalled)
            die("interrupted by signal %d", (int)g_signalled);
        if (now_ns() > deadline)
            die("no result before the deadline (no leader, or a stuck node)");
        check_children(c);
        struct pollfd p = {.fd = c->pipe_rd, .events = POLLIN};
        int rc = poll(&p, 1, 100);
        if (rc < 0 && errno != EINTR)
            die("poll: %s", strerror(errno));
        if (rc <= 0)
            continue;
        ssize_t got = read(c->pipe_rd, buf + have, sizeof buf - 1 - have);
        if (got <= 0)
            die("every node closed the report pipe");
        have += (size_t)got;
        buf[have] = '\0';
        char *nl;
        while ((nl = strchr(buf, '\n')) != NULL) {
            *nl = '\0';
            if (on_line(c, buf, r, &cpu0))
                return;
            have -= (size_t)(nl + 1 - buf);
            memmove(buf, nl + 1, have + 1);
        }
        if (have == sizeof buf - 1)
            die("overlong line from a node");
    }
}

static void report(const opts *o, const result *r)
{
    double entries = (double)r->committed_reqs * o->batch;
    double eps = entries / r->secs;
    double mbps = eps * o->size_bytes / 1e6;
    const uint64_t *q = r->q;
    if (o->json) {
        printf("{\"impl\":\"canonical-raft\",\"nodes\":%u,\"size_bytes\":%u,\"clients\":%u,"
               "\"window\":%u,\"batch\":%u,\"transport\":\"tcp\",\"fsync\":true,"
               "\"io_mode\":\"%s\",\"duration_s\":%.3f,\"entries_per_s\":%.0f,"
               "\"mb_per_s\":%.2f,\"committed\":%.0f,\"requests\":%" PRIu64 ",\"failed\":%" PRIu64
               ",\"latency_ns\":{\"p50\":%" PRIu64 ",\"p90\":%" PRIu64 ",\"p99\":%" PRIu64
               ",\"p999\":%" PRIu64 ",\"max\":%" PRIu64 "},"
               "\"leader\":%u,\"cpu_cores\":%.2f}\n",
               o->nodes, o->size_bytes, o->clients, o->window, o->batch, r->io_mode, r->secs, eps,
               mbps, entries, r->committed_reqs, r->failed_reqs, q[0], q[1], q[2], q[3], q[4],
               r->leader, r->cpu_s / r->secs);
        return;
    }
    printf("raftbench-canonical: %u nodes (one process each), %u B entries, %u clients x %u "
           "outstanding requests of %u entr%s, TCP on loopback, libraft uv backend (%s), "
           "%.1f s\n",
           o->nodes, o->size_bytes, o->clients, o->window, o->batch, o->batch == 1 ? "y" : "ies",
           r->io_mode, r->secs);
    printf("  throughput   %.0f entries/s, %.2f MB/s (%.0f entries in %" PRIu64
           " requests committed, %" PRIu64 " failed)\n",
           eps, mbps, entries, r->committed_reqs, r->failed_reqs);
    printf("  commit latency per request (raft_apply -> apply callback on the leader)\n");
    printf("    p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms\n",
           (double)q[0] / 1e6, (double)q[1] / 1e6, (double)q[2] / 1e6, (double)q[3] / 1e6,
           (double)q[4] / 1e6);
    printf("  CPU: %.2f cores for the whole cluster (%u node processes; leader is node %u)\n",
           r->cpu_s / r->secs, o->nodes, r->leader);
}

static int coordinator_main(const opts *o)
{
    cluster *c = &g_cl;
    c->o = *o;
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    atexit(cleanup);

    make_dirs(c);
    char ports[NODES_MAX * 8] = "";
    for (uint32_t id = 1; id <= o->nodes; id++) {
        size_t len = strlen(ports);
        snprintf(ports + len, sizeof ports - len, "%s%u", id > 1 ? "," : "", free_port());
    }
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        die("pipe: %s", strerror(errno));
    c->pipe_rd = fds[0];
    for (uint32_t id = 1; id <= o->nodes; id++)
        spawn(c, id, ports, fds[1]);
    close(fds[1]);

    result r = {0};
    wait_result(c, &r);
    cleanup();
    report(o, &r);
    return r.failed_reqs == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    opts o;
    parse(argc, argv, &o);
    if (o.node_id != 0) {
        if (o.dir == NULL || o.ports[o.node_id] == 0)
            usage();
        return node_main(&o);
    }
    return coordinator_main(&o);
}
