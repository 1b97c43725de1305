/*
 * rrbench_procs.c: rrbench --procs, the cluster as one process per node.
 *
 * The parent picks a loopback port per node and starts each node process by running
 * rrbench again with the same options plus --node-id, --incarnation and --ports. Each node
 * process runs one rr_node (its own WAL under --dir, TCP to the others) and its own share of
 * the closed-loop clients, which propose only while that node leads: a client whose
 * proposal is refused parks, and the node's driver re-arms parked clients whenever it finds
 * itself leader. So load follows leadership across a kill.
 *
 * Parent and node talk over two pipes per node:
 *   parent -> node (the node's stdin):  8 bytes, t0 (CLOCK_MONOTONIC ns, shared by every
 *                                        process on the machine): warm-up starts at t0, the
 *                                        measured window at t0 + warmup; then 1 byte 'Q':
 *                                        stop and exit
 *   node -> parent (the node's stdout): 'L' + u32 id when the node becomes leader;
 *                                        'R' + node_report once its window ended and its
 *                                        applied count has settled
 * A node's messages to people go to stderr.
 *
 * --kill-leader-at S: S seconds into the window the parent SIGKILLs the latest node to say
 * 'L' and restarts it (--incarnation + 1) --restart-after seconds later, over the same WAL.
 *
 * --verify: every entry's payload starts with a unique 64-bit id (node << 56 | incarnation
 * << 48 | sequence). Each node process appends, as little-endian u64s, the id of every
 * proposal acknowledged COMMITTED to it to DIR/node-I/acked-K, and the id of every entry it
 * applies to DIR/node-I/applied-K (K: incarnation). After the run the parent checks that
 * every node's last incarnation applied each acknowledged id — from every incarnation,
 * killed ones included — exactly once, and that all nodes applied one sequence (each list a
 * prefix of the longest). Acknowledgements buffered in a killed process never reach its file:
 * nobody outside that process saw them, so they are not owed. --verify-only runs the check
 * alone over an earlier run's files.
 */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ringraft/le.h"
#include "ringraft/transport.h"
#include "rrbench.h"

#define MSG_LEADER  'L'
#define MSG_REPORT  'R'
#define CMD_QUIT    'Q'
#define IDLOG_BATCH 512

/* What a node process reports when its window is over. */
typedef struct node_report {
    uint32_t id;
    uint32_t incarnation;
    double secs;  /* its part of the window (a restarted node joins late) */
    double cpu_s; /* its CPU seconds in that part */
    uint64_t committed, failed;
    rr_node_stats st0, st1;
    rr_hist lat;
} node_report;

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    nanosleep(&ts, NULL);
}

static int write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t r = read(fd, p, len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

/* ---- id logs (--verify): little-endian u64s appended to a file, buffered -------------- */

typedef struct idlog {
    int fd; /* -1: off */
    uint32_t n;
    uint8_t buf[IDLOG_BATCH * 8];
} idlog;

static void idlog_open(idlog *l, const char *dir, rr_node_id_t id, const char *what,
                       uint32_t incarnation)
{
    char path[600];
    snprintf(path, sizeof path, "%s/node-%" PRIu64 "/%s-%u", dir, id, what, incarnation);
    l->n = 0;
    l->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (l->fd < 0)
        rrbench_die(path, -errno);
}

static void idlog_flush(idlog *l)
{
    if (l->fd >= 0 && l->n > 0 && write_all(l->fd, l->buf, (size_t)l->n * 8) != 0)
        rrbench_die("writing an id log", -errno);
    l->n = 0;
}

static void idlog_add(idlog *l, uint64_t id)
{
    if (l->fd < 0)
        return;
    rr_le_put_u64(l->buf + (size_t)l->n * 8, id);
    if (++l->n == IDLOG_BATCH)
        idlog_flush(l);
}

/* ---- a node process ----------------------------------------------------------------- */

typedef struct child child;

typedef struct pslot {
    child *c;
    uint64_t start_ns;
    uint8_t *payload; /* its own with --verify (the id differs per proposal), else shared */
} pslot;

struct child {
    uint64_t applied; /* the state machine (first: rrbench_node_new's snapshots) */
    const opts *o;
    rr_node *node;
    uint32_t stopping;        /* atomic */
    uint64_t next_seq;        /* atomic */
    rrbench_tally tally;      /* apply thread */
    idlog acked, applied_ids; /* apply thread */
    pthread_mutex_t mu;
    pslot **parked; /* slots waiting for this node to lead, under mu */
    uint32_t n_parked;
    uint8_t *payload;
};

static void park(pslot *s)
{
    child *c = s->c;
    pthread_mutex_lock(&c->mu);
    c->parked[c->n_parked++] = s;
    pthread_mutex_unlock(&c->mu);
}

static void propose_pslot(pslot *s);

static void on_done(void *ctx, const rr_node_result *res)
{
    pslot *s = ctx;
    child *c = s->c;
    rrbench_tally_done(&c->tally, res, s->start_ns);
    if (res->status == RR_NODE_COMMITTED && c->o->verify)
        idlog_add(&c->acked, rr_le_get_u64(s->payload));
    if (res->status != RR_NODE_COMMITTED || __atomic_load_n(&c->stopping, __ATOMIC_RELAXED))
        park(s); /* the driver re-arms it when this node leads */
    else
        propose_pslot(s);
}

static void propose_pslot(pslot *s)
{
    child *c = s->c;
    if (c->o->verify) {
        uint64_t seq = __atomic_fetch_add(&c->next_seq, 1, __ATOMIC_RELAXED);
        rr_le_put_u64(s->payload,
                      (uint64_t)c->o->node_id << 56 | (uint64_t)c->o->incarnation << 48 | seq);
    }
    s->start_ns = rrbench_now_ns();
    int rc = rr_node_propose(c->node, s->payload, c->o->size_bytes, on_done, s);
    if (rc == -EAGAIN || rc == -ESHUTDOWN)
        park(s);
    else if (rc != 0)
        rrbench_die("propose", rc);
}

static void child_apply(void *ctx, const rr_entry *ents, size_t n)
{
    child *c = ctx;
    c->applied += n;
    if (c->o->verify)
        for (size_t i = 0; i < n; i++)
            if (ents[i].type == RR_ENTRY_NORMAL && ents[i].data_len >= 8)
                idlog_add(&c->applied_ids, rr_le_get_u64(ents[i].data));
}

static void send_msg(uint8_t type, const void *body, size_t len)
{
    if (write_all(STDOUT_FILENO, &type, 1) != 0 || write_all(STDOUT_FILENO, body, len) != 0) {
        fprintf(stderr, "rrbench: node: the parent went away\n");
        exit(1);
    }
}

static void start_node(child *c)
{
    const opts *o = c->o;
    rr_node_id_t id = o->node_id;
    rr_transport_config tc;
    rr_transport_config_init(&tc, CLUSTER_ID, id);
    snprintf(tc.listen_host, sizeof tc.listen_host, "127.0.0.1");
    tc.listen_port = o->ports[id];
    rr_transport *t;
    int rc = rr_transport_tcp_new(&tc, &t);
    if (rc != 0)
        rrbench_die("transport", rc);
    for (rr_node_id_t p = 1; p <= o->nodes; p++)
        if (p != id && (rc = rr_transport_add_peer(t, p, "127.0.0.1", o->ports[p])) != 0)
            rrbench_die("add peer", rc);
    if ((rc = rr_transport_start(t)) != 0)
        rrbench_die("transport start", rc);

    rr_node_callbacks cb = {.ctx = c, .apply = child_apply};
    c->node = rrbench_node_new(o, id, t, &cb);
    if (c->o->verify) {
        idlog_open(&c->acked, o->dir, id, "acked", o->incarnation);
        idlog_open(&c->applied_ids, o->dir, id, "applied", o->incarnation);
    }
    if ((rc = rr_node_start(c->node)) != 0)
        rrbench_die("node start", rc);
}

/* Tells the parent when this node becomes leader; returns whether it leads. */
static bool say_if_leading(child *c, bool was)
{
    rr_node_stats st;
    rr_node_stats_get(c->node, &st);
    bool lead = st.leader == c->o->node_id;
    if (lead && !was) {
        uint32_t id32 = (uint32_t)c->o->node_id;
        send_msg(MSG_LEADER, &id32, sizeof id32);
    }
    return lead;
}

int rrbench_node_process(const opts *o)
{
    signal(SIGPIPE, SIG_IGN);
    child *c = calloc(1, sizeof(*c));
    c->o = o;
    c->acked.fd = c->applied_ids.fd = -1;
    rr_hist_reset(&c->tally.lat);
    pthread_mutex_init(&c->mu, NULL);
    uint32_t n_slots = o->clients * o->window;
    pslot *slots = calloc(n_slots, sizeof(*slots));
    c->parked = calloc(n_slots, sizeof(*c->parked));
    c->payload = malloc(o->size_bytes);
    for (uint32_t i = 0; i < o->size_bytes; i++)
        c->payload[i] = (uint8_t)(i * 131u);
    for (uint32_t i = 0; i < n_slots; i++) {
        slots[i] = (pslot){.c = c, .payload = c->payload};
        if (o->verify) {
            slots[i].payload = malloc(o->size_bytes);
            memcpy(slots[i].payload, c->payload, o->size_bytes);
        }
        c->parked[c->n_parked++] = &slots[i];
    }
    start_node(c);

    /* Until the parent sends the start time (it waits for a leader): say who leads. */
    bool leading = false;
    for (;;) {
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        if (poll(&pfd, 1, 2) > 0)
            break;
        leading = say_if_leading(c, leading);
    }
    uint64_t t0;
    if (read_all(STDIN_FILENO, &t0, sizeof t0) != 0) {
        fprintf(stderr, "rrbench: node %" PRIu64 ": no start time from the parent\n", o->node_id);
        return 1;
    }
    uint64_t t_start = t0 + (uint64_t)(o->warmup_s * 1e9);
    uint64_t t_end = t_start + (uint64_t)(o->duration_s * 1e9);
    node_report *rep = calloc(1, sizeof(*rep));
    rep->id = (uint32_t)o->node_id;
    rep->incarnation = o->incarnation;
    bool in_window = false;
    uint64_t w0 = 0;
    double cpu0 = 0;
    pslot **arm = calloc(n_slots, sizeof(*arm));
    for (uint64_t now = rrbench_now_ns(); now < t_end; now = rrbench_now_ns()) {
        if (!in_window && now >= t_start) { /* the window opens (late for a restarted node) */
            rr_node_stats_reset(c->node);
            rr_node_stats_get(c->node, &rep->st0);
            cpu0 = rrbench_cpu_s();
            w0 = now;
            in_window = true;
            __atomic_store_n(&c->tally.measuring, 1, __ATOMIC_RELAXED);
        }
        leading = say_if_leading(c, leading);
        if (leading) { /* re-arm the parked clients; outside mu: proposing may park again */
            pthread_mutex_lock(&c->mu);
            uint32_t n = c->n_parked;
            memcpy(arm, c->parked, n * sizeof(*arm));
            c->n_parked = 0;
            pthread_mutex_unlock(&c->mu);
            for (uint32_t i = 0; i < n; i++)
                propose_pslot(arm[i]);
        }
        sleep_ns(2000000);
    }
    __atomic_store_n(&c->tally.measuring, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&c->stopping, 1, __ATOMIC_RELAXED);
    uint64_t w1 = rrbench_now_ns();
    rep->cpu_s = rrbench_cpu_s() - cpu0;
    rep->secs = in_window ? (double)(w1 - w0) / 1e9 : 0;
    rr_node_stats_get(c->node, &rep->st1);

    /* Settle: a leader known, everything it committed applied here, and nothing new for
     * half a second (heartbeats carry the commit index every tick). A restarted node may
     * still be catching up: up to 20 s. */
    rr_index_t last_commit = 0, last_applied = 0;
    uint64_t quiet_since = w1;
    for (uint64_t now = w1; now - w1 < 20000000000ull; now = rrbench_now_ns()) {
        rr_node_stats st;
        rr_node_stats_get(c->node, &st);
        if (st.commit != last_commit || st.applied != last_applied) {
            last_commit = st.commit;
            last_applied = st.applied;
            quiet_since = now;
        } else if (now - quiet_since >= 500000000u && st.leader != RR_NODE_ID_NONE &&
                   st.applied >= st.commit) {
            break;
        }
        sleep_ns(20000000);
    }
    rep->committed = __atomic_load_n(&c->tally.committed, __ATOMIC_RELAXED);
    rep->failed = __atomic_load_n(&c->tally.failed, __ATOMIC_RELAXED);
    /* The histogram and id logs belong to the apply thread: stop the node first. Every
     * node settles while all still run, so the last commit index has reached the followers
     * (a heartbeat a tick) before any leader stops. */
    uint8_t cmd = 0;
    rr_node_stop(c->node);
    rep->lat = c->tally.lat;
    idlog_flush(&c->acked);
    idlog_flush(&c->applied_ids);
    send_msg(MSG_REPORT, rep, sizeof(*rep));
    (void)read_all(STDIN_FILENO, &cmd, 1); /* 'Q', or EOF when the parent is gone */
    rr_node_free(c->node);
    if (c->acked.fd >= 0)
        close(c->acked.fd);
    if (c->applied_ids.fd >= 0)
        close(c->applied_ids.fd);
    for (uint32_t i = 0; o->verify && i < n_slots; i++)
        free(slots[i].payload);
    free(arm);
    free(rep);
    free(slots);
    free(c->parked);
    free(c->payload);
    pthread_mutex_destroy(&c->mu);
    free(c);
    return 0;
}

/* ---- the parent ------------------------------------------------------------------------ */

typedef struct proc {
    pid_t pid; /* 0: not running */
    int to_fd, from_fd;
    uint32_t incarnation;
    bool reported;
    node_report rep;
} proc;

/* Free loopback ports, one per node: bound together (so distinct), then released. */
static void pick_ports(opts *o)
{
    int fds[NODES_MAX + 1];
    for (uint32_t id = 1; id <= o->nodes; id++) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof a;
        fds[id] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fds[id] < 0 || bind(fds[id], (struct sockaddr *)&a, sizeof a) != 0 ||
            getsockname(fds[id], (struct sockaddr *)&a, &len) != 0)
            rrbench_die("picking a port", -errno);
        o->ports[id] = ntohs(a.sin_port);
    }
    for (uint32_t id = 1; id <= o->nodes; id++)
        close(fds[id]);
}

static void spawn(const opts *o, int argc, char **argv, rr_node_id_t id, proc *p)
{
    int to[2], from[2];
    if (pipe2(to, O_CLOEXEC) != 0 || pipe2(from, O_CLOEXEC) != 0)
        rrbench_die("pipe", -errno);
    char ids[16], inc[16], ports[NODES_MAX * 6 + 1] = "";
    snprintf(ids, sizeof ids, "%" PRIu64, id);
    snprintf(inc, sizeof inc, "%u", p->incarnation);
    for (uint32_t k = 1; k <= o->nodes; k++)
        snprintf(ports + strlen(ports), sizeof ports - strlen(ports), "%s%u", k > 1 ? "," : "",
                 o->ports[k]);
    char **args = calloc((size_t)argc + 8, sizeof(char *));
    int n = 0;
    for (int i = 0; i < argc; i++)
        args[n++] = argv[i];
    args[n++] = "--node-id";
    args[n++] = ids;
    args[n++] = "--incarnation";
    args[n++] = inc;
    args[n++] = "--ports";
    args[n++] = ports;
    args[n] = NULL;
    pid_t pid = fork();
    if (pid < 0)
        rrbench_die("fork", -errno);
    if (pid == 0) {
        if (dup2(to[0], STDIN_FILENO) < 0 || dup2(from[1], STDOUT_FILENO) < 0)
            _exit(127);
        execv("/proc/self/exe", args);
        fprintf(stderr, "rrbench: exec /proc/self/exe: %s\n", strerror(errno));
        _exit(127);
    }
    free(args);
    close(to[0]);
    close(from[1]);
    p->pid = pid;
    p->to_fd = to[1];
    p->from_fd = from[0];
    p->reported = false;
}

/* Reads one message from a node; returns its type, or 0 at EOF or on a short message. */
static uint8_t receive(proc *p, rr_node_id_t *leader)
{
    uint8_t type;
    if (read_all(p->from_fd, &type, 1) != 0)
        return 0;
    if (type == MSG_LEADER) {
        uint32_t id;
        if (read_all(p->from_fd, &id, sizeof id) != 0)
            return 0;
        *leader = id;
    } else if (type == MSG_REPORT) {
        if (read_all(p->from_fd, &p->rep, sizeof p->rep) != 0)
            return 0;
        p->reported = true;
    } else {
        return 0;
    }
    return type;
}

static void reap(proc *p, bool expect_clean, rr_node_id_t id)
{
    int status = 0;
    while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (expect_clean && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        fprintf(stderr, "rrbench: node %" PRIu64 " (incarnation %u) exited badly (status 0x%x)\n",
                id, p->incarnation, status);
        exit(1);
    }
    close(p->to_fd);
    close(p->from_fd);
    p->pid = 0;
}

/* ---- --verify ------------------------------------------------------------------------- */

typedef struct idvec {
    uint64_t *v;
    size_t n, cap;
} idvec;

static void idvec_load(idvec *iv, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return;
    uint8_t b[8];
    while (fread(b, 1, 8, f) == 8) {
        if (iv->n == iv->cap) {
            iv->cap = iv->cap ? iv->cap * 2 : 65536;
            iv->v = realloc(iv->v, iv->cap * sizeof(uint64_t));
        }
        iv->v[iv->n++] = rr_le_get_u64(b);
    }
    fclose(f);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void print_id(FILE *f, uint64_t id)
{
    fprintf(f, "node %u incarnation %u #%" PRIu64, (unsigned)(id >> 56),
            (unsigned)(id >> 48 & 0xFF), (uint64_t)(id & 0xFFFFFFFFFFFFull));
}

/* Returns true when every node applied every acknowledged id exactly once, in one order. */
static bool verify(const opts *o, const proc *procs)
{
    char path[600];
    idvec acked = {0};
    for (uint32_t id = 1; id <= o->nodes; id++)
        for (uint32_t k = 0; k <= procs[id].incarnation; k++) {
            snprintf(path, sizeof path, "%s/node-%u/acked-%u", o->dir, id, k);
            idvec_load(&acked, path);
        }
    qsort(acked.v, acked.n, sizeof(uint64_t), cmp_u64);
    idvec applied[NODES_MAX + 1] = {{0}};
    uint32_t longest = 1;
    bool ok = true;
    for (uint32_t id = 1; id <= o->nodes; id++) {
        snprintf(path, sizeof path, "%s/node-%u/applied-%u", o->dir, id, procs[id].incarnation);
        idvec_load(&applied[id], path);
        if (applied[id].n > applied[longest].n)
            longest = id;
    }
    for (uint32_t id = 1; id <= o->nodes && ok; id++) {
        const idvec *a = &applied[id], *l = &applied[longest];
        for (size_t i = 0; i < a->n; i++) {
            if (a->v[i] != l->v[i]) {
                fprintf(stderr,
                        "rrbench: verify: nodes %u and %u applied different entries at "
                        "their %zu-th: ",
                        id, longest, i + 1);
                print_id(stderr, a->v[i]);
                fprintf(stderr, " vs ");
                print_id(stderr, l->v[i]);
                fprintf(stderr, "\n");
                ok = false;
                break;
            }
        }
        uint64_t *sorted = malloc((a->n + 1) * sizeof(uint64_t));
        memcpy(sorted, a->v, a->n * sizeof(uint64_t));
        qsort(sorted, a->n, sizeof(uint64_t), cmp_u64);
        for (size_t i = 1; i < a->n && ok; i++) {
            if (sorted[i] == sorted[i - 1]) {
                fprintf(stderr, "rrbench: verify: node %u applied ", id);
                print_id(stderr, sorted[i]);
                fprintf(stderr, " twice\n");
                ok = false;
            }
        }
        size_t missing = 0;
        for (size_t i = 0; i < acked.n; i++) {
            if (bsearch(&acked.v[i], sorted, a->n, sizeof(uint64_t), cmp_u64) == NULL) {
                if (missing++ == 0) {
                    fprintf(stderr, "rrbench: verify: node %u lacks acknowledged ", id);
                    print_id(stderr, acked.v[i]);
                    fprintf(stderr, "\n");
                }
            }
        }
        if (missing > 0) {
            fprintf(stderr, "rrbench: verify: node %u lacks %zu of %zu acknowledged entries\n", id,
                    missing, acked.n);
            ok = false;
        }
        free(sorted);
    }
    if (ok && acked.n == 0) {
        fprintf(stderr, "rrbench: verify: nothing was acknowledged: nothing was checked\n");
        ok = false;
    }
    if (ok) {
        printf("  verify: every node applied all %zu acknowledged entries exactly once, in one "
               "order (",
               acked.n);
        for (uint32_t id = 1; id <= o->nodes; id++)
            printf("%snode %u: %zu applied", id > 1 ? ", " : "", id, applied[id].n);
        printf(")\n");
    }
    free(acked.v);
    for (uint32_t id = 1; id <= o->nodes; id++)
        free(applied[id].v);
    return ok;
}

int rrbench_procs(const opts *given, int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    opts o = *given;
    if (o.verify_only) { /* the check alone, over an earlier run's files */
        proc seen[NODES_MAX + 1] = {{0}};
        for (uint32_t id = 1; id <= o.nodes; id++) {
            char path[600];
            struct stat sb;
            for (uint32_t k = 1; k < 256; k++) {
                snprintf(path, sizeof path, "%s/node-%u/applied-%u", o.dir, id, k);
                if (stat(path, &sb) == 0)
                    seen[id].incarnation = k;
            }
        }
        return verify(&o, seen) ? 0 : 1;
    }
    rrbench_fresh_dir(&o);
    pick_ports(&o);
    proc procs[NODES_MAX + 1] = {{0}};
    for (uint32_t id = 1; id <= o.nodes; id++)
        spawn(&o, argc, argv, id, &procs[id]);

    /* Warm-up starts when a leader is known. */
    rr_node_id_t leader = RR_NODE_ID_NONE;
    uint64_t deadline = rrbench_now_ns() + 30000000000ull;
    while (leader == RR_NODE_ID_NONE) {
        struct pollfd pfd[NODES_MAX];
        for (uint32_t id = 1; id <= o.nodes; id++)
            pfd[id - 1] = (struct pollfd){.fd = procs[id].from_fd, .events = POLLIN};
        if (rrbench_now_ns() > deadline) {
            fprintf(stderr, "rrbench: no leader elected within 30 s\n");
            return 1;
        }
        if (poll(pfd, o.nodes, 100) <= 0)
            continue;
        for (uint32_t id = 1; id <= o.nodes; id++)
            if (pfd[id - 1].revents != 0 && receive(&procs[id], &leader) != MSG_LEADER) {
                fprintf(stderr, "rrbench: node %u failed to start\n", id);
                return 1;
            }
    }
    uint64_t t0 = rrbench_now_ns();
    for (uint32_t id = 1; id <= o.nodes; id++)
        if (write_all(procs[id].to_fd, &t0, sizeof t0) != 0)
            rrbench_die("starting a node", -EPIPE);

    uint64_t t_start = t0 + (uint64_t)(o.warmup_s * 1e9);
    uint64_t t_end = t_start + (uint64_t)(o.duration_s * 1e9);
    uint64_t kill_at = o.kill_leader_at > 0 ? t_start + (uint64_t)(o.kill_leader_at * 1e9) : 0;
    uint64_t restart_at = 0;
    rr_node_id_t victim = RR_NODE_ID_NONE;
    deadline = t_end + 60000000000ull;
    for (;;) {
        uint32_t reported = 0;
        for (uint32_t id = 1; id <= o.nodes; id++)
            reported += procs[id].reported && procs[id].pid != 0;
        if (reported == o.nodes)
            break;
        uint64_t now = rrbench_now_ns();
        if (now > deadline) {
            fprintf(stderr, "rrbench: the nodes did not report within 60 s of the window's end\n");
            for (uint32_t id = 1; id <= o.nodes; id++)
                if (procs[id].pid != 0)
                    kill(procs[id].pid, SIGKILL);
            return 1;
        }
        if (kill_at != 0 && now >= kill_at && victim == RR_NODE_ID_NONE) {
            victim = leader != RR_NODE_ID_NONE ? leader : 1;
            fprintf(stderr,
                    "rrbench: SIGKILL to node %" PRIu64 " (the leader), %.1f s into the "
                    "window\n",
                    victim, o.kill_leader_at);
            kill(procs[victim].pid, SIGKILL);
            reap(&procs[victim], false, victim);
            restart_at = now + (uint64_t)(o.restart_after * 1e9);
            if (leader == victim)
                leader = RR_NODE_ID_NONE;
        }
        if (restart_at != 0 && now >= restart_at) {
            restart_at = 0;
            procs[victim].incarnation++;
            fprintf(stderr, "rrbench: restarting node %" PRIu64 " over its log\n", victim);
            spawn(&o, argc, argv, victim, &procs[victim]);
            if (write_all(procs[victim].to_fd, &t0, sizeof t0) != 0)
                rrbench_die("restarting a node", -EPIPE);
        }
        struct pollfd pfd[NODES_MAX];
        uint32_t map[NODES_MAX], n = 0;
        for (uint32_t id = 1; id <= o.nodes; id++) {
            if (procs[id].pid != 0 && !procs[id].reported) {
                pfd[n] = (struct pollfd){.fd = procs[id].from_fd, .events = POLLIN};
                map[n++] = id;
            }
        }
        if (poll(pfd, n, 20) <= 0)
            continue;
        for (uint32_t i = 0; i < n; i++) {
            if (pfd[i].revents == 0)
                continue;
            if (receive(&procs[map[i]], &leader) == 0) {
                fprintf(stderr, "rrbench: node %u died\n", map[i]);
                for (uint32_t id = 1; id <= o.nodes; id++)
                    if (procs[id].pid != 0)
                        kill(procs[id].pid, SIGKILL);
                return 1;
            }
        }
    }
    for (uint32_t id = 1; id <= o.nodes; id++) {
        uint8_t q = CMD_QUIT;
        (void)write_all(procs[id].to_fd, &q, 1);
    }
    for (uint32_t id = 1; id <= o.nodes; id++)
        reap(&procs[id], true, id);

    /* One report from the nodes' reports: counts add up; the stages and batching are the
     * leader's, the node that committed the most. A killed incarnation's share is lost with
     * it (it never reported), which a kill run's throughput shows honestly. */
    rrbench_result *r = calloc(1, sizeof(*r));
    rr_hist_reset(&r->lat);
    uint32_t best = 1;
    for (uint32_t id = 1; id <= o.nodes; id++) {
        const node_report *p = &procs[id].rep;
        r->committed += p->committed;
        r->failed += p->failed;
        r->cpu_s += p->cpu_s;
        r->cpu_node_s[id] = p->cpu_s;
        rr_hist_merge(&r->lat, &p->lat);
        if (p->committed > procs[best].rep.committed)
            best = id;
    }
    r->per_node_cpu = true;
    r->secs = procs[best].rep.secs > 0 ? procs[best].rep.secs : o.duration_s;
    r->leader0 = procs[best].rep.st0;
    r->leader1 = procs[best].rep.st1;
    rrbench_report(&o, r);
    free(r);
    if (o.verify && !verify(&o, procs))
        return 1;
    return 0;
}
