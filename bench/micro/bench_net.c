/*
 * bench_net.c: experiment. How many Raft messages and bytes per second does the TCP
 * transport on io_uring move between two transports on loopback, with zero-copy send on
 * and off, against a plain blocking send/recv pair doing the same job in the same run? And
 * from which frame size does SENDMSG_ZC pay (RR_TRANSPORT_ZC_MIN_BYTES_DEFAULT)?
 *
 * net_tcp/entries:E/entry_bytes:S/zc:Z — node 1 sends MsgApp messages of E entries of S
 *   bytes to node 2 (the payload is one shared rr_buf: referenced, never copied, as on the
 *   leader's hot path); the benchmark thread is both nodes' raft thread: it sends with a
 *   window of unreceived messages and drains node 2. zc:1 sends every frame with
 *   SENDMSG_ZC, zc:0 none. Each message is built (entry array malloc) and freed after
 *   receipt, as the raft thread would.
 * net_blocking/entries:E/entry_bytes:S — the baseline: the same messages encoded with the
 *   same codec into one contiguous buffer per message (copy + CRC), written with blocking
 *   send() on a TCP_NODELAY loopback socket by the benchmark thread; a receiver thread
 *   read()s each frame whole and decodes it (CRC, entry array) and frees it. One message
 *   per frame, one syscall per frame each side.
 * net_tcp_zc_crossover/entry_bytes:S/zc:Z — one entry per message, sizes around the
 *   crossover, for choosing the threshold.
 *
 * Every run covers send-to-receipt of all its messages inside the timed region (one
 * batch), in wall-clock time (other threads do the work). items_per_second is messages/s;
 * bytes_per_second counts entry payload bytes; "entries" is entries/s. zc_copied_pct is
 * the share of zero-copy frames the kernel reported it copied anyway.
 *
 * Off loopback: with RR_BENCH_NET_NETNS=NAME (a namespace under /run/netns) and
 * RR_BENCH_NET_ADDRS=A,B, node 1 and the baseline's sender stay here on address A and
 * node 2 and the baseline's receiver live in NAME on address B, so every byte crosses a
 * real device (bench/net_veth.sh sets up a veth pair and runs the grid). Zero-copy then
 * applies by zc_min_bytes alone, as it would to a remote peer.
 */
#define _GNU_SOURCE
#include "rr_bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ringraft/assert.h"
#include "ringraft/codec.h"
#include "ringraft/transport.h"

#define WINDOW_MSGS_MAX  256u
#define WINDOW_BYTES_MAX (16u << 20)
#define CLUSTER_ID       0xBE7Cull

typedef struct bench_buf {
    rr_buf hdr;
    uint8_t data[];
} bench_buf;

static void bench_buf_release(rr_buf *b)
{
    free(b);
}

static bench_buf *payload_new(size_t len)
{
    bench_buf *b = malloc(sizeof(*b) + len);
    RR_ASSERT(b != NULL);
    b->hdr.refs = 1;
    b->hdr.release = bench_buf_release;
    for (size_t i = 0; i < len; i++)
        b->data[i] = (uint8_t)(i * 31u + 7u);
    return b;
}

static void msg_build(rr_message *m, uint64_t seq, uint32_t n_ents, uint32_t len, bench_buf *pay)
{
    memset(m, 0, sizeof(*m));
    m->type = RR_MSG_APP;
    m->from = 1;
    m->to = 2;
    m->term = 2;
    m->index = seq * n_ents;
    m->log_term = 2;
    m->commit = m->index;
    m->entries = malloc(n_ents * sizeof(rr_entry));
    RR_ASSERT(m->entries != NULL);
    m->n_entries = n_ents;
    for (uint32_t i = 0; i < n_ents; i++) {
        m->entries[i] = (rr_entry){.term = 2,
                                   .index = m->index + i + 1,
                                   .data = pay->data,
                                   .data_len = len,
                                   .buf = &pay->hdr};
        rr_buf_ref(&pay->hdr);
    }
}

static void report(rr_bench_state *st, int64_t msgs, uint32_t n_ents, uint32_t len)
{
    rr_bench_set_items_processed(st, msgs);
    rr_bench_set_bytes_processed(st, msgs * (int64_t)n_ents * (int64_t)len);
    rr_bench_counter(st, "entries", (double)msgs * n_ents, RR_BENCH_COUNTER_RATE);
}

/* ---- where the two ends live ---- */

typedef struct where {
    char addr[2][64]; /* node 1 (here), node 2 (in the namespace, if any) */
    int ns_fd;        /* node 2's network namespace, or -1: both here */
    int home_fd;      /* this thread's own namespace, to come back to */
} where;

/* Reads RR_BENCH_NET_NETNS / RR_BENCH_NET_ADDRS once. Returns 0 or -errno. */
static int where_get(where *w)
{
    memset(w, 0, sizeof(*w));
    w->ns_fd = w->home_fd = -1;
    snprintf(w->addr[0], sizeof w->addr[0], "127.0.0.1");
    snprintf(w->addr[1], sizeof w->addr[1], "127.0.0.1");
    const char *ns = getenv("RR_BENCH_NET_NETNS");
    if (ns == NULL || ns[0] == '\0')
        return 0;
    const char *addrs = getenv("RR_BENCH_NET_ADDRS");
    const char *comma = addrs != NULL ? strchr(addrs, ',') : NULL;
    if (comma == NULL || (size_t)(comma - addrs) >= sizeof w->addr[0] ||
        strlen(comma + 1) >= sizeof w->addr[1]) {
        fprintf(stderr, "bench_net: RR_BENCH_NET_NETNS needs RR_BENCH_NET_ADDRS=A,B\n");
        return -EINVAL;
    }
    memcpy(w->addr[0], addrs, (size_t)(comma - addrs));
    w->addr[0][comma - addrs] = '\0';
    snprintf(w->addr[1], sizeof w->addr[1], "%s", comma + 1);
    char path[300];
    snprintf(path, sizeof path, "/run/netns/%s", ns);
    w->ns_fd = open(path, O_RDONLY | O_CLOEXEC);
    w->home_fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (w->ns_fd < 0 || w->home_fd < 0) {
        int err = -errno;
        fprintf(stderr, "bench_net: cannot open %s: %s\n", path, strerror(errno));
        return err;
    }
    return 0;
}

static void where_close(where *w)
{
    if (w->ns_fd >= 0)
        close(w->ns_fd);
    if (w->home_fd >= 0)
        close(w->home_fd);
}

/* Moves this thread into node 2's namespace (there = true) or back. Sockets and threads
 * created meanwhile stay in the namespace they were created in. */
static int where_enter(const where *w, bool there)
{
    if (w->ns_fd < 0)
        return 0;
    return setns(there ? w->ns_fd : w->home_fd, CLONE_NEWNET) == 0 ? 0 : -errno;
}

/* ---- the io_uring transport ---- */

typedef struct pair {
    rr_transport *a, *b;
} pair;

static int pair_open(pair *p, const where *w, uint32_t zc_min_bytes)
{
    rr_transport_config ca, cb;
    rr_transport_config_init(&ca, CLUSTER_ID, 1);
    rr_transport_config_init(&cb, CLUSTER_ID, 2);
    snprintf(ca.listen_host, sizeof ca.listen_host, "%s", w->addr[0]);
    snprintf(cb.listen_host, sizeof cb.listen_host, "%s", w->addr[1]);
    ca.zc_min_bytes = cb.zc_min_bytes = zc_min_bytes;
    ca.zc_on_loopback = cb.zc_on_loopback = true; /* measuring it is the point */
    ca.zc_keep_when_copied = cb.zc_keep_when_copied = true;
    int rc = rr_transport_tcp_new(&ca, &p->a);
    if (rc != 0)
        return rc;
    /* Node 2's socket, ring and net thread are created in its namespace. */
    rc = where_enter(w, true);
    if (rc == 0)
        rc = rr_transport_tcp_new(&cb, &p->b);
    if (rc == 0)
        rc = rr_transport_add_peer(p->b, 1, w->addr[0], rr_transport_port(p->a));
    if (rc == 0)
        rc = rr_transport_start(p->b);
    int back = where_enter(w, false);
    RR_ASSERT(back == 0); /* else this thread would stay in the wrong namespace */
    if (rc == 0)
        rc = rr_transport_add_peer(p->a, 2, w->addr[1], rr_transport_port(p->b));
    if (rc == 0)
        rc = rr_transport_start(p->a);
    return rc;
}

static uint32_t drain(rr_transport *t, int wait_ms)
{
    static rr_message in[512];
    rr_transport_wait(t, wait_ms);
    uint32_t got = 0, n;
    while ((n = rr_transport_recv(t, in, 512)) > 0) {
        for (uint32_t i = 0; i < n; i++)
            rr_message_free(&in[i]);
        got += n;
    }
    return got;
}

/* Sends n messages keeping at most a window unreceived; returns 0 or -EIO if the transport
 * dropped a message (it must not within the window) or stalled for a second. */
static int transfer(pair *p, int64_t n, uint32_t n_ents, uint32_t len, bench_buf *pay)
{
    uint64_t msg_bytes = (uint64_t)n_ents * (len + RR_ENTRY_HEADER_BYTES) + 128;
    uint64_t window = WINDOW_BYTES_MAX / msg_bytes;
    window = window < 1 ? 1 : window > WINDOW_MSGS_MAX ? WINDOW_MSGS_MAX : window;
    int64_t sent = 0, received = 0;
    int idle_ms = 0;
    while (received < n) {
        while (sent < n && (uint64_t)(sent - received) < window) {
            rr_message m;
            msg_build(&m, (uint64_t)sent + 1, n_ents, len, pay);
            if (rr_transport_send(p->a, &m) != 0)
                return -EIO;
            sent++;
        }
        rr_transport_flush(p->a);
        uint32_t got = drain(p->b, 100);
        received += got;
        idle_ms = got > 0 ? 0 : idle_ms + 100;
        if (idle_ms >= 1000)
            return -EIO;
    }
    return 0;
}

static void bench_tcp_run(rr_bench_state *st, uint32_t n_ents, uint32_t len, bool zc)
{
    pair p = {0};
    where w;
    int rc = where_get(&w);
    if (rc == 0)
        rc = pair_open(&p, &w, zc ? 0 : RR_TRANSPORT_ZC_OFF);
    bench_buf *pay = payload_new(len);
    /* Warm-up: the connection is up and the frames' staging has grown. */
    if (rc == 0)
        rc = transfer(&p, 64, n_ents, len, pay);
    if (rc != 0) {
        rr_bench_skip_with_error(st, "transport set-up or warm-up failed");
    } else {
        int64_t n = rr_bench_iterations_max(st);
        while (rr_bench_keep_running_batch(st, n))
            if (transfer(&p, n, n_ents, len, pay) != 0)
                rr_bench_skip_with_error(st, "transport dropped or stalled");
        rr_transport_stats s;
        rr_transport_stats_get(p.a, &s);
        rr_bench_counter(st, "msgs_per_frame",
                         s.frames_sent > 0 ? (double)s.msgs_sent / (double)s.frames_sent : 0, 0);
        rr_bench_counter(
            st, "zc_frames_pct",
            s.frames_sent > 0 ? 100.0 * (double)s.frames_zc / (double)s.frames_sent : 0, 0);
        rr_bench_counter(
            st, "zc_copied_pct",
            s.frames_zc > 0 ? 100.0 * (double)s.frames_zc_copied / (double)s.frames_zc : 0, 0);
        report(st, rr_bench_iterations(st), n_ents, len);
    }
    rr_transport_free(p.a);
    rr_transport_free(p.b);
    rr_buf_unref(&pay->hdr);
    where_close(&w);
}

static void bench_net_tcp(rr_bench_state *st, void *arg)
{
    (void)arg;
    bench_tcp_run(st, (uint32_t)rr_bench_arg(st, 0), (uint32_t)rr_bench_arg(st, 1),
                  rr_bench_arg(st, 2) != 0);
}

static void bench_net_tcp_crossover(rr_bench_state *st, void *arg)
{
    (void)arg;
    bench_tcp_run(st, 1, (uint32_t)rr_bench_arg(st, 0), rr_bench_arg(st, 1) != 0);
}

/* ---- the blocking baseline ---- */

typedef struct blocking_rx {
    int fd;
    _Atomic int64_t frames;
    int err;
} blocking_rx;

static int read_full(int fd, uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = recv(fd, p, len, MSG_WAITALL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n == 0 ? -EPIPE : -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int write_full(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void *blocking_rx_main(void *arg)
{
    blocking_rx *rx = arg;
    static rr_message out[RR_CODEC_FRAME_MSGS_MAX];
    size_t cap = 1u << 20;
    uint8_t *buf = malloc(cap);
    for (;;) {
        uint8_t hdr[RR_CODEC_FRAME_HEADER_BYTES];
        if (read_full(rx->fd, hdr, sizeof hdr) != 0)
            break;
        rr_codec_frame_header h;
        if (rr_codec_header_decode(hdr, sizeof hdr, &h) != 0) {
            rx->err = 1;
            break;
        }
        if (h.body_len > cap) {
            cap = h.body_len;
            buf = realloc(buf, cap);
        }
        if (read_full(rx->fd, buf, h.body_len) != 0 || rr_codec_body_check(&h, buf, h.body_len) ||
            rr_codec_messages_decode(buf, h.body_len, h.count, NULL, NULL, out) != 0) {
            rx->err = 1;
            break;
        }
        for (uint32_t i = 0; i < h.count; i++)
            rr_message_free(&out[i]);
        /* release: the count tells the sender the frame was consumed. */
        atomic_fetch_add_explicit(&rx->frames, 1, memory_order_release);
    }
    free(buf);
    return NULL;
}

/* A connected TCP pair: the receiving end (and its listener) in node 2's place. */
static int socket_pair(const where *w, int *tx, int *rxfd)
{
    if (where_enter(w, true) != 0)
        return -errno;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    int back = where_enter(w, false);
    RR_ASSERT(back == 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, w->addr[1], &a.sin_addr);
    socklen_t len = sizeof a;
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 1) != 0 ||
        getsockname(l, (struct sockaddr *)&a, &len) != 0)
        return -errno;
    *tx = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(*tx, (struct sockaddr *)&a, sizeof a) != 0)
        return -errno;
    *rxfd = accept(l, NULL, NULL);
    close(l);
    int one = 1;
    setsockopt(*tx, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(*rxfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return *rxfd < 0 ? -errno : 0;
}

static void bench_net_blocking(rr_bench_state *st, void *arg)
{
    (void)arg;
    uint32_t n_ents = (uint32_t)rr_bench_arg(st, 0), len = (uint32_t)rr_bench_arg(st, 1);
    bench_buf *pay = payload_new(len);
    blocking_rx rx = {.fd = -1};
    int tx = -1;
    atomic_init(&rx.frames, 0);
    pthread_t th;
    where w;
    if (where_get(&w) != 0 || socket_pair(&w, &tx, &rx.fd) != 0 ||
        pthread_create(&th, NULL, blocking_rx_main, &rx) != 0) {
        rr_bench_skip_with_error(st, "socket set-up failed");
        rr_buf_unref(&pay->hdr);
        where_close(&w);
        return;
    }
    where_close(&w);
    size_t cap = (size_t)n_ents * (len + RR_ENTRY_HEADER_BYTES) + 4096;
    uint8_t *frame = malloc(cap);
    int64_t n = rr_bench_iterations_max(st);
    bool failed = false;
    while (rr_bench_keep_running_batch(st, n)) {
        for (int64_t i = 0; i < n; i++) {
            rr_message m;
            msg_build(&m, (uint64_t)i + 1, n_ents, len, pay);
            int fl = rr_codec_frame_encode(&m, 1, frame, cap);
            rr_message_free(&m);
            if (fl <= 0 || write_full(tx, frame, (size_t)fl) != 0) {
                rr_bench_skip_with_error(st, "send failed");
                failed = true;
                break;
            }
        }
        /* acquire: pairs with the receiver's count; the run ends when all were consumed. */
        while (!failed && atomic_load_explicit(&rx.frames, memory_order_acquire) < n && rx.err == 0)
            usleep(50);
    }
    shutdown(tx, SHUT_WR);
    pthread_join(th, NULL);
    if (rx.err != 0)
        rr_bench_skip_with_error(st, "receiver failed to decode");
    report(st, rr_bench_iterations(st), n_ents, len);
    close(tx);
    close(rx.fd);
    free(frame);
    rr_buf_unref(&pay->hdr);
}

/* ---- definitions ---- */

static const int64_t tcp_args[] = {
    1, 128,  0, 1, 128,  1, 16, 128,  0, 16, 128,  1, 256, 128,  0, 256, 128,  1,
    1, 4096, 0, 1, 4096, 1, 16, 4096, 0, 16, 4096, 1, 256, 4096, 0, 256, 4096, 1,
};
static const char *const tcp_arg_names[] = {"entries", "entry_bytes", "zc"};

static const struct rr_bench_def net_tcp = {
    .name = "net_tcp",
    .fn = bench_net_tcp,
    .args = tcp_args,
    .args_per_set = 3,
    .arg_sets_count = sizeof tcp_args / sizeof tcp_args[0] / 3,
    .arg_names = tcp_arg_names,
    .options = RR_BENCH_REAL_TIME,
};
RR_BENCH_REGISTER(net_tcp);

static const int64_t blocking_args[] = {1, 128, 16, 128, 256, 128, 1, 4096, 16, 4096, 256, 4096};
static const char *const blocking_arg_names[] = {"entries", "entry_bytes"};

static const struct rr_bench_def net_blocking = {
    .name = "net_blocking",
    .fn = bench_net_blocking,
    .args = blocking_args,
    .args_per_set = 2,
    .arg_sets_count = sizeof blocking_args / sizeof blocking_args[0] / 2,
    .arg_names = blocking_arg_names,
    .options = RR_BENCH_REAL_TIME,
};
RR_BENCH_REGISTER(net_blocking);

static const int64_t crossover_args[] = {
    8192, 0, 8192, 1, 32768, 0, 32768, 1, 65536, 0, 65536, 1, 262144, 0, 262144, 1,
};
static const char *const crossover_arg_names[] = {"entry_bytes", "zc"};

static const struct rr_bench_def net_tcp_zc_crossover = {
    .name = "net_tcp_zc_crossover",
    .fn = bench_net_tcp_crossover,
    .args = crossover_args,
    .args_per_set = 2,
    .arg_sets_count = sizeof crossover_args / sizeof crossover_args[0] / 2,
    .arg_names = crossover_arg_names,
    .options = RR_BENCH_REAL_TIME,
};
RR_BENCH_REGISTER(net_tcp_zc_crossover);
