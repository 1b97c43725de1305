/*
 * test_transport.c: both transports (net/src/transport_*.c) on 127.0.0.1 only: delivery in
 * order per peer (three transports, across a forced reconnect), hostile connections
 * (garbage, truncated frames, bad CRCs, oversized lengths, wrong cluster, unknown ids)
 * while good peers keep talking, bounded send queues, snapshot streaming, zero-copy on and
 * off, peers added and removed after start. Every wait is bounded; a test fails rather than hangs.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "ringraft/crc32c.h"
#include "ringraft/transport.h"

#define CLUSTER 0xC0FFEEull

typedef struct test_buf {
    rr_buf hdr;
    uint8_t data[];
} test_buf;

static void test_buf_release(rr_buf *b)
{
    free(b);
}

static test_buf *test_buf_new(size_t len, uint8_t seed)
{
    test_buf *b = malloc(sizeof(*b) + len);
    assert_non_null(b);
    b->hdr.refs = 1;
    b->hdr.release = test_buf_release;
    for (size_t i = 0; i < len; i++)
        b->data[i] = (uint8_t)(seed + i * 13u);
    return b;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A MsgApp from -> to numbered seq (in index), with n_ents entries of len bytes from pay. */
static void msg_make(rr_message *m, rr_node_id_t from, rr_node_id_t to, uint64_t seq,
                     uint32_t n_ents, uint32_t len, test_buf *pay)
{
    memset(m, 0, sizeof(*m));
    m->type = n_ents > 0 ? RR_MSG_APP : RR_MSG_HEARTBEAT;
    m->from = from;
    m->to = to;
    m->term = 3;
    m->index = seq;
    m->commit = seq / 2;
    if (n_ents == 0)
        return;
    m->entries = calloc(n_ents, sizeof(rr_entry));
    m->n_entries = n_ents;
    for (uint32_t i = 0; i < n_ents; i++) {
        m->entries[i] = (rr_entry){.term = 3,
                                   .index = seq * 1000 + i + 1,
                                   .data = pay->data,
                                   .data_len = len,
                                   .buf = &pay->hdr};
        rr_buf_ref(&pay->hdr);
    }
}

/* A MsgSnap from 1 to 2 (voters 1 and 2) whose snapshot data is len bytes of data; the
 * message takes its own reference. */
static void snap_msg_make(rr_message *m, uint64_t seq, rr_index_t index, rr_term_t term,
                          test_buf *data, size_t len)
{
    msg_make(m, 1, 2, seq, 0, 0, NULL);
    m->type = RR_MSG_SNAP;
    m->snapshot = calloc(1, sizeof(rr_snapshot));
    m->snapshot->meta.index = index;
    m->snapshot->meta.term = term;
    rr_id_set_insert(&m->snapshot->meta.conf_state.voters, 1);
    rr_id_set_insert(&m->snapshot->meta.conf_state.voters, 2);
    m->snapshot->data = data->data;
    m->snapshot->data_len = len;
    m->snapshot->buf = &data->hdr;
    rr_buf_ref(&data->hdr);
}

static rr_transport *tcp_new(rr_node_id_t self, uint64_t cluster, rr_transport_config *cfg_out)
{
    rr_transport_config cfg;
    if (cfg_out != NULL)
        cfg = *cfg_out;
    else
        rr_transport_config_init(&cfg, cluster, self);
    rr_transport *t = NULL;
    assert_int_equal(rr_transport_tcp_new(&cfg, &t), 0);
    return t;
}

/* Receives on t until pred says done or timeout_ms passes; frees what it gets. seen[from]
 * tracks the last sequence number per sender and checks strict order. */
typedef struct rx_state {
    uint64_t last[8];
    uint64_t count[8];
    uint64_t snap_bytes;
    uint64_t snap_crc;
} rx_state;

static void rx_take(rx_state *rx, rr_message *m)
{
    assert_true(m->from < 8);
    if (m->type == RR_MSG_SNAP) {
        rx->snap_bytes = m->snapshot->data_len;
        rx->snap_crc = rr_crc32c(0, m->snapshot->data, (size_t)m->snapshot->data_len);
    } else {
        /* In order, no duplicates: strictly increasing per sender. */
        if (m->index <= rx->last[m->from])
            fail_msg("from %llu: %llu after %llu", (unsigned long long)m->from,
                     (unsigned long long)m->index, (unsigned long long)rx->last[m->from]);
        rx->last[m->from] = m->index;
        rx->count[m->from]++;
        for (uint32_t i = 0; i < m->n_entries; i++)
            assert_true(m->entries[i].index == m->index * 1000 + i + 1);
    }
    rr_message_free(m);
}

/* Sleeps on t's wait fd, half the time through rr_transport_wait and half the time as an
 * embedder with its own poll loop would (poll, read, drain): both must keep waking. */
static void rx_wait(rr_transport *t, int wait_ms)
{
    static unsigned turn;
    if (turn++ % 2 == 0) {
        rr_transport_wait(t, wait_ms);
        return;
    }
    struct pollfd p = {.fd = rr_transport_wait_fd(t), .events = POLLIN};
    if (poll(&p, 1, wait_ms) == 1) {
        uint64_t v;
        assert_true(read(p.fd, &v, sizeof v) == (ssize_t)sizeof v);
    }
}

static void rx_poll(rr_transport *t, rx_state *rx, int wait_ms)
{
    static rr_message in[256];
    rx_wait(t, wait_ms);
    uint32_t n;
    while ((n = rr_transport_recv(t, in, 256)) > 0)
        for (uint32_t i = 0; i < n; i++)
            rx_take(rx, &in[i]);
}

/* ---- in-process ---- */

static void test_inproc_delivers_and_bounds(void **state)
{
    (void)state;
    rr_transport_hub *hub;
    assert_int_equal(rr_transport_hub_new(&hub), 0);
    rr_transport *t[3];
    for (int i = 0; i < 3; i++) {
        rr_transport_config cfg;
        rr_transport_config_init(&cfg, CLUSTER, (rr_node_id_t)i + 1);
        cfg.send_queue_bytes_max = 64 * 1024;
        assert_int_equal(rr_transport_inproc_new(hub, &cfg, &t[i]), 0);
    }
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            if (i != j)
                assert_int_equal(rr_transport_add_peer(t[i], (rr_node_id_t)j + 1, NULL, 0), 0);
    test_buf *pay = test_buf_new(4096, 1);
    rx_state rx[3];
    memset(rx, 0, sizeof rx);
    for (uint64_t seq = 1; seq <= 50; seq++) {
        for (int i = 0; i < 3; i++) {
            for (int j = 0; j < 3; j++) {
                if (i == j)
                    continue;
                rr_message m;
                msg_make(&m, (rr_node_id_t)i + 1, (rr_node_id_t)j + 1, seq, 2, 100, pay);
                assert_int_equal(rr_transport_send(t[i], &m), 0);
            }
            rr_transport_flush(t[i]);
        }
        for (int j = 0; j < 3; j++)
            rx_poll(t[j], &rx[j], 0);
    }
    for (int j = 0; j < 3; j++)
        for (int i = 0; i < 3; i++)
            if (i != j)
                assert_int_equal(rx[j].count[i + 1], 50);
    /* Nobody drains node 3: 4 KiB entries fill its 64 KiB queue from node 1. */
    int dropped = 0;
    for (uint64_t seq = 100; seq < 200; seq++) {
        rr_message m;
        msg_make(&m, 1, 3, seq, 1, 4096, pay);
        int rc = rr_transport_send(t[0], &m);
        assert_true(rc == 0 || rc == -ENOBUFS);
        dropped += rc == -ENOBUFS;
    }
    assert_true(dropped > 50);
    rr_transport_report rep[8];
    uint32_t n = rr_transport_reports(t[0], rep, 8);
    assert_int_equal(n, 1);
    assert_true(rep[0].peer == 3 && rep[0].kind == RR_TRANSPORT_UNREACHABLE);
    /* A snapshot handed over is reported done to the sender's core, as TCP reports one
     * streamed (without it the leader would wait in snapshot state for an append response). */
    rr_message sm;
    test_buf *sdata = test_buf_new(100, 7);
    snap_msg_make(&sm, 300, 77, 2, sdata, 100);
    rr_buf_unref(&sdata->hdr); /* the message holds its own */
    assert_int_equal(rr_transport_send(t[0], &sm), 0);
    rr_transport_flush(t[0]);
    n = rr_transport_reports(t[0], rep, 8);
    assert_int_equal(n, 1);
    assert_true(rep[0].peer == 2 && rep[0].kind == RR_TRANSPORT_SNAPSHOT_DONE);
    rx_poll(t[1], &rx[1], 0);
    assert_int_equal(rx[1].snap_bytes, 100); /* and it arrived */
    /* Local and unknown-peer messages are refused. */
    rr_message m;
    msg_make(&m, 1, 9, 1, 0, 0, pay);
    assert_int_equal(rr_transport_send(t[0], &m), -EINVAL);
    msg_make(&m, 1, 2, 1, 0, 0, pay);
    m.type = RR_MSG_STORAGE_APPEND;
    assert_int_equal(rr_transport_send(t[0], &m), -EINVAL);
    for (int i = 0; i < 3; i++)
        rr_transport_free(t[i]);
    rr_transport_hub_free(hub);
    assert_int_equal(pay->hdr.refs, 1); /* every reference came back */
    rr_buf_unref(&pay->hdr);
}

/* ---- TCP ---- */

typedef struct cluster3 {
    rr_transport *t[3];
    rx_state rx[3];
} cluster3;

static void cluster3_start(cluster3 *c, uint32_t zc_min_bytes, bool zc_keep_when_copied)
{
    memset(c, 0, sizeof(*c));
    for (int i = 0; i < 3; i++) {
        rr_transport_config cfg;
        rr_transport_config_init(&cfg, CLUSTER, (rr_node_id_t)i + 1);
        cfg.zc_min_bytes = zc_min_bytes;
        cfg.zc_on_loopback = true;
        cfg.zc_keep_when_copied = zc_keep_when_copied;
        c->t[i] = tcp_new(0, 0, &cfg);
    }
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            if (i != j)
                assert_int_equal(rr_transport_add_peer(c->t[i], (rr_node_id_t)j + 1, "127.0.0.1",
                                                       rr_transport_port(c->t[j])),
                                 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(rr_transport_start(c->t[i]), 0);
}

static void cluster3_free(cluster3 *c)
{
    for (int i = 0; i < 3; i++)
        rr_transport_free(c->t[i]);
}

/* True when every node saw at least sequence number seq from every other. */
static bool cluster3_saw(const cluster3 *c, uint64_t seq)
{
    for (int j = 0; j < 3; j++)
        for (int i = 0; i < 3; i++)
            if (i != j && c->rx[j].last[i + 1] < seq)
                return false;
    return true;
}

static void cluster3_poll(cluster3 *c, int wait_ms)
{
    for (int j = 0; j < 3; j++)
        rx_poll(c->t[j], &c->rx[j], wait_ms);
}

/* Every node sends sequence number seq to every other. */
static void cluster3_send_seq(cluster3 *c, uint64_t seq, uint32_t ent_len, test_buf *pay)
{
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++) {
            if (i == j)
                continue;
            rr_message m;
            msg_make(&m, (rr_node_id_t)i + 1, (rr_node_id_t)j + 1, seq, seq % 4, ent_len, pay);
            int rc = rr_transport_send(c->t[i], &m);
            assert_true(rc == 0 || rc == -ENOBUFS);
        }
        rr_transport_flush(c->t[i]);
    }
}

/* Keeps sending fresh sequence numbers (from *seq on) until every node saw one at least
 * `want` from every other, for at most 5 s: a frame lost with a broken connection is not
 * retransmitted (Raft does that), so the test moves the stream on until it is through. */
static void cluster3_until_saw(cluster3 *c, uint64_t want, uint64_t *seq, uint32_t ent_len,
                               test_buf *pay)
{
    uint64_t deadline = now_ms() + 5000;
    while (!cluster3_saw(c, want) && now_ms() < deadline) {
        cluster3_poll(c, 5);
        if (!cluster3_saw(c, want))
            cluster3_send_seq(c, ++*seq, ent_len, pay);
    }
}

static bool reported(rr_transport *t, rr_node_id_t peer, uint8_t kind)
{
    rr_transport_report rep[8];
    uint32_t n = rr_transport_reports(t, rep, 8);
    bool found = false;
    for (uint32_t i = 0; i < n; i++)
        found |= rep[i].peer == peer && rep[i].kind == kind;
    return found;
}

/* Every node streams numbered messages to every other; node 1 drops its connection to
 * node 3 in the middle. Each receiver sees each sender's stream strictly in order (no
 * duplicates, no reordering), the stream continues over the new connection, and pairs
 * untouched by the disconnect lose nothing. */
static void stream_with_reconnect(uint32_t zc_min_bytes, bool zc_keep_when_copied, uint32_t ent_len)
{
    cluster3 c;
    cluster3_start(&c, zc_min_bytes, zc_keep_when_copied);
    test_buf *pay = test_buf_new(ent_len, 7);
    const uint64_t N = 400;
    uint64_t seq = 1;
    cluster3_send_seq(&c, seq, ent_len, pay);
    uint64_t deadline = now_ms() + 5000;
    while (!cluster3_saw(&c, 1) && now_ms() < deadline)
        cluster3_poll(&c, 2); /* every connection is up */
    assert_true(cluster3_saw(&c, 1));
    while (seq < N / 2) {
        cluster3_send_seq(&c, ++seq, ent_len, pay);
        cluster3_poll(&c, 0);
    }
    assert_int_equal(rr_transport_tcp_disconnect(c.t[0], 3), 0);
    deadline = now_ms() + 2000;
    bool down = false;
    while (!down && now_ms() < deadline) {
        rr_transport_wait(c.t[0], 2);
        down = reported(c.t[0], 3, RR_TRANSPORT_UNREACHABLE);
        cluster3_poll(&c, 0);
    }
    assert_true(down);
    while (seq < N) {
        cluster3_send_seq(&c, ++seq, ent_len, pay);
        cluster3_poll(&c, 0);
    }
    cluster3_until_saw(&c, N, &seq, ent_len, pay);
    for (int j = 0; j < 3; j++)
        for (int i = 0; i < 3; i++)
            if (i != j && c.rx[j].last[i + 1] < N)
                fail_msg("node %d saw up to %llu of %llu from node %d", j + 1,
                         (unsigned long long)c.rx[j].last[i + 1], (unsigned long long)N, i + 1);
    /* Let the last ones land, then count the pairs the disconnect did not touch. */
    deadline = now_ms() + 2000;
    while (c.rx[1].last[1] < seq && now_ms() < deadline)
        cluster3_poll(&c, 2);
    assert_int_equal(c.rx[1].count[1], c.rx[1].last[1]);
    assert_int_equal(c.rx[0].count[2], c.rx[0].last[2]);
    assert_int_equal(c.rx[2].count[2], c.rx[2].last[2]);
    rr_transport_stats st;
    rr_transport_stats_get(c.t[0], &st);
    assert_true(st.conns_closed >= 1);
    assert_true(st.dials >= 3); /* two first dials and at least one redial */
    if (zc_min_bytes == 0 && zc_keep_when_copied) {
        assert_true(st.frames_zc == st.frames_sent);
        /* Loopback: the kernel copies zero-copy sends (msg_zerocopy.rst) and says so. */
        assert_true(st.frames_zc_copied > 0);
        assert_true(st.frames_zc_copied <= st.frames_zc);
    } else {
        assert_int_equal(st.frames_zc, 0);
        assert_int_equal(st.frames_zc_copied, 0);
    }
    cluster3_free(&c);
    assert_int_equal(pay->hdr.refs, 1);
    rr_buf_unref(&pay->hdr);
}

static void test_tcp_three_nodes_in_order_across_reconnect(void **state)
{
    (void)state;
    stream_with_reconnect(RR_TRANSPORT_ZC_OFF, false, 600);
}

static void test_tcp_zero_copy_everything(void **state)
{
    (void)state;
    stream_with_reconnect(0, true, 4096);
}

/* Where the kernel copies zero-copy sends anyway (here: loopback), a connection stops
 * asking for zero-copy after 16 copied frames in a row. One message at a time: one frame
 * each. */
static void test_tcp_zero_copy_given_up_when_copied(void **state)
{
    (void)state;
    cluster3 c;
    cluster3_start(&c, 0, false);
    test_buf *pay = test_buf_new(4096, 7);
    const uint64_t N = 100;
    for (uint64_t seq = 1; seq <= N; seq++) {
        cluster3_send_seq(&c, seq, 4096, pay);
        uint64_t deadline = now_ms() + 5000;
        while (!cluster3_saw(&c, seq) && now_ms() < deadline)
            cluster3_poll(&c, 2);
        assert_true(cluster3_saw(&c, seq));
    }
    /* A frame counts when its send completes, which the sender's net thread may see after
     * the receiver saw the frame: wait (bounded) for the last ones. */
    rr_transport_stats st;
    uint64_t deadline = now_ms() + 2000;
    do {
        rr_transport_stats_get(c.t[0], &st);
    } while (st.frames_sent < 2 * N && now_ms() < deadline && usleep(1000) == 0);
    /* Two connections, each: 16 copied, plus at most the frames built meanwhile. */
    assert_true(st.frames_sent >= 2 * N);
    assert_true(st.frames_zc_copied >= 2 * 16);
    assert_true(st.frames_zc <= 2 * (16 + 4));
    cluster3_free(&c);
    rr_buf_unref(&pay->hdr);
}

/* A raw client: connects to port, writes bytes, reports whether the server closed the
 * connection within 2 s (it must, for every bad input). */
static bool raw_refused(uint16_t port, const void *bytes, size_t len, bool close_after)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    if (len > 0)
        assert_true(send(fd, bytes, len, MSG_NOSIGNAL) == (ssize_t)len);
    if (close_after) { /* truncated frame then gone: the server must simply clean up */
        close(fd);
        return true;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    bool closed = false;
    uint64_t deadline = now_ms() + 2000;
    while (!closed && now_ms() < deadline) {
        if (poll(&p, 1, 50) <= 0)
            continue;
        char b[64];
        ssize_t n = recv(fd, b, sizeof b, 0);
        closed = n <= 0;
    }
    close(fd);
    return closed;
}

static size_t hello_bytes(uint8_t *out, uint64_t cluster, rr_node_id_t from, rr_node_id_t to)
{
    rr_codec_hello h = {.cluster_id = cluster, .from = from, .to = to};
    return rr_codec_hello_encode(&h, out);
}

static void test_tcp_hostile_peers_refused_good_peer_served(void **state)
{
    (void)state;
    /* Node 5 listens; node 1 (good) dials it. Node 3 is configured but never connects
     * honestly: the hostile client claims to be it. */
    rr_transport_config cfg;
    rr_transport_config_init(&cfg, CLUSTER, 5);
    cfg.log_refusals = false; /* the refusals below are expected; keep the log readable */
    rr_transport *srv = tcp_new(0, 0, &cfg);
    rr_transport *good = tcp_new(1, CLUSTER, NULL);
    uint16_t port = rr_transport_port(srv);
    assert_int_equal(rr_transport_add_peer(srv, 1, "127.0.0.1", rr_transport_port(good)), 0);
    assert_int_equal(rr_transport_add_peer(srv, 3, "127.0.0.1", 9), 0);
    assert_int_equal(rr_transport_add_peer(srv, 7, "127.0.0.1", 9), 0);
    assert_int_equal(rr_transport_add_peer(good, 5, "127.0.0.1", port), 0);
    assert_int_equal(rr_transport_start(srv), 0);
    assert_int_equal(rr_transport_start(good), 0);

    /* The good peer is connected and talking before the strangers arrive. */
    test_buf *pay = test_buf_new(1000, 3);
    rx_state rx;
    memset(&rx, 0, sizeof rx);
    rr_message m;
    msg_make(&m, 1, 5, 1, 1, 1000, pay);
    assert_int_equal(rr_transport_send(good, &m), 0);
    rr_transport_flush(good);
    uint64_t deadline = now_ms() + 3000;
    while (rx.last[1] != 1 && now_ms() < deadline)
        rx_poll(srv, &rx, 10);
    assert_int_equal(rx.last[1], 1);

    uint8_t b[4096];
    int refused = 0;
    /* Random bytes. */
    uint64_t x = 0x243F6A8885A308D3ull;
    for (size_t i = 0; i < sizeof b; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b[i] = (uint8_t)x;
    }
    assert_true(raw_refused(port, b, sizeof b, false));
    refused++;
    /* Wrong cluster id; an unknown id; a known id that must not dial us (5 dials 7); a
     * HELLO meant for another node. */
    size_t n = hello_bytes(b, CLUSTER + 1, 3, 5);
    assert_true(raw_refused(port, b, n, false));
    n = hello_bytes(b, CLUSTER, 4, 5);
    assert_true(raw_refused(port, b, n, false));
    n = hello_bytes(b, CLUSTER, 7, 5);
    assert_true(raw_refused(port, b, n, false));
    n = hello_bytes(b, CLUSTER, 3, 6);
    assert_true(raw_refused(port, b, n, false));
    refused += 4;
    /* A good HELLO with a bad CRC. */
    n = hello_bytes(b, CLUSTER, 3, 5);
    b[n - 1] ^= 1;
    assert_true(raw_refused(port, b, n, false));
    refused++;
    /* A MSGS frame before any HELLO. */
    msg_make(&m, 3, 5, 1, 0, 0, NULL);
    int fl = rr_codec_frame_encode(&m, 1, b, sizeof b);
    assert_true(fl > 0);
    assert_true(raw_refused(port, b, (size_t)fl, false));
    refused++;
    /* A good HELLO, then a header announcing a body beyond the bound (header CRC valid). */
    n = hello_bytes(b, CLUSTER, 3, 5);
    rr_codec_header_encode(RR_CODEC_KIND_MSGS, 0xFFFFFFF0u, 1, 0, b + n);
    assert_true(raw_refused(port, b, n + RR_CODEC_FRAME_HEADER_BYTES, false));
    refused++;
    /* A good HELLO, then a frame whose body CRC is wrong. */
    n = hello_bytes(b, CLUSTER, 3, 5);
    fl = rr_codec_frame_encode(&m, 1, b + n, sizeof b - n);
    b[n + (size_t)fl - 1] ^= 0x40;
    assert_true(raw_refused(port, b, n + (size_t)fl, false));
    refused++;
    /* Truncated frames, the client then gone. */
    for (size_t cut = 1; cut < n + (size_t)fl; cut += 7)
        raw_refused(port, b, cut, true);

    /* The good peer is served throughout, on the same connection. */
    for (uint64_t seq = 2; seq <= 100; seq++) {
        msg_make(&m, 1, 5, seq, 1, 1000, pay);
        assert_int_equal(rr_transport_send(good, &m), 0);
        rr_transport_flush(good);
    }
    deadline = now_ms() + 3000;
    while (rx.last[1] != 100 && now_ms() < deadline)
        rx_poll(srv, &rx, 10);
    rr_transport_stats st, gs;
    rr_transport_stats_get(srv, &st);
    rr_transport_stats_get(good, &gs);
    if (rx.count[1] != 100)
        fail_msg("got %llu of 100; good: dials %llu closed %llu dropped %llu sent %llu; server: "
                 "refused %llu closed %llu dropped %llu",
                 (unsigned long long)rx.count[1], (unsigned long long)gs.dials,
                 (unsigned long long)gs.conns_closed, (unsigned long long)gs.msgs_dropped_send,
                 (unsigned long long)gs.msgs_sent, (unsigned long long)st.conns_refused,
                 (unsigned long long)st.conns_closed, (unsigned long long)st.msgs_dropped_recv);
    assert_true(st.conns_refused >= (uint64_t)refused);
    assert_int_equal(gs.conns_closed, 0);
    rr_transport_free(good);
    rr_transport_free(srv);
    rr_buf_unref(&pay->hdr);
}

/* A peer nobody listens for: its queue fills to the byte bound, then sends are refused
 * and the peer is reported unreachable; memory stays bounded. */
static void test_tcp_send_queue_bounded(void **state)
{
    (void)state;
    int hole = socket(AF_INET, SOCK_STREAM, 0); /* bound, never listening: connects fail */
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(bind(hole, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(hole, (struct sockaddr *)&a, &len);
    rr_transport_config cfg;
    rr_transport_config_init(&cfg, CLUSTER, 1);
    cfg.send_queue_bytes_max = 256 * 1024;
    rr_transport *t = tcp_new(0, 0, &cfg);
    assert_int_equal(rr_transport_add_peer(t, 2, "127.0.0.1", ntohs(a.sin_port)), 0);
    assert_int_equal(rr_transport_start(t), 0);
    test_buf *pay = test_buf_new(4096, 3);
    int ok = 0, dropped = 0;
    for (uint64_t seq = 1; seq <= 1000; seq++) {
        rr_message m;
        msg_make(&m, 1, 2, seq, 1, 4096, pay);
        int rc = rr_transport_send(t, &m);
        ok += rc == 0;
        dropped += rc == -ENOBUFS;
    }
    rr_transport_flush(t);
    assert_true(ok <= 256 * 1024 / 4096);
    assert_int_equal(ok + dropped, 1000);
    rr_transport_report rep[4];
    uint64_t deadline = now_ms() + 2000;
    uint32_t n = 0;
    while (n == 0 && now_ms() < deadline) {
        rr_transport_wait(t, 10);
        n = rr_transport_reports(t, rep, 4);
    }
    assert_true(n >= 1);
    assert_true(rep[0].peer == 2 && rep[0].kind == RR_TRANSPORT_UNREACHABLE);
    /* Redials back off exponentially from reconnect_min_ms: dials at 0, 20, 60, 140, 300 ms
     * from the start, so at most 6 in these 400 ms (a fixed 20 ms retry would make 20). */
    rr_transport_stats s0, s1;
    rr_transport_stats_get(t, &s0);
    usleep(400 * 1000);
    rr_transport_stats_get(t, &s1);
    assert_true(s1.dials - s0.dials >= 1);
    if (s1.dials - s0.dials > 6)
        fail_msg("%llu dials in 400 ms", (unsigned long long)(s1.dials - s0.dials));
    rr_transport_free(t);
    close(hole);
    assert_int_equal(pay->hdr.refs, 1);
    rr_buf_unref(&pay->hdr);
}

/* A 3 MiB snapshot streams in chunks and arrives whole; heartbeats flow meanwhile. The
 * sender's send-queue bound is 1 MiB: a streamed snapshot's data is referenced and goes a
 * chunk at a time, so it does not count against the bound (else no snapshot larger than
 * the bound could ever be sent). */
static void test_tcp_snapshot_streams(void **state)
{
    (void)state;
    rr_transport_config small;
    rr_transport_config_init(&small, CLUSTER, 1);
    small.send_queue_bytes_max = 1u << 20;
    rr_transport *a = tcp_new(1, CLUSTER, &small), *b = tcp_new(2, CLUSTER, NULL);
    assert_int_equal(rr_transport_add_peer(a, 2, "127.0.0.1", rr_transport_port(b)), 0);
    assert_int_equal(rr_transport_add_peer(b, 1, "127.0.0.1", rr_transport_port(a)), 0);
    assert_int_equal(rr_transport_start(a), 0);
    assert_int_equal(rr_transport_start(b), 0);
    size_t big = 3u << 20;
    test_buf *data = test_buf_new(big, 42);
    rr_message m;
    snap_msg_make(&m, 1, 500, 3, data, big);
    assert_int_equal(rr_transport_send(a, &m), 0);
    for (uint64_t seq = 2; seq <= 20; seq++) {
        msg_make(&m, 1, 2, seq, 0, 0, NULL);
        assert_int_equal(rr_transport_send(a, &m), 0);
    }
    rr_transport_flush(a);
    rx_state rx;
    memset(&rx, 0, sizeof rx);
    uint64_t deadline = now_ms() + 4000;
    while ((rx.snap_bytes == 0 || rx.last[1] != 20) && now_ms() < deadline)
        rx_poll(b, &rx, 10);
    assert_int_equal(rx.snap_bytes, big);
    assert_int_equal(rx.snap_crc, rr_crc32c(0, data->data, big));
    assert_int_equal(rx.last[1], 20);
    rr_transport_report rep[4];
    uint32_t n = 0;
    deadline = now_ms() + 2000;
    while (n == 0 && now_ms() < deadline) {
        rr_transport_wait(a, 10);
        n = rr_transport_reports(a, rep, 4);
    }
    assert_int_equal(n, 1);
    assert_true(rep[0].peer == 2 && rep[0].kind == RR_TRANSPORT_SNAPSHOT_DONE);
    rr_transport_free(a);
    rr_transport_free(b);
    assert_int_equal(data->hdr.refs, 1);
    rr_buf_unref(&data->hdr);
}

/* Sends seq 1..n from -> to on t, flushes, and waits (bounded) until rx has them all. */
static void send_and_see(rr_transport *t, rr_transport *dst, rx_state *rx, rr_node_id_t from,
                         rr_node_id_t to, uint64_t first, uint64_t last)
{
    rr_message m;
    for (uint64_t seq = first; seq <= last; seq++) {
        msg_make(&m, from, to, seq, 0, 0, NULL);
        assert_int_equal(rr_transport_send(t, &m), 0);
    }
    rr_transport_flush(t);
    uint64_t deadline = now_ms() + 3000;
    while (rx->last[from] != last && now_ms() < deadline)
        rx_poll(dst, rx, 10);
    assert_int_equal(rx->last[from], last);
}

/* Peers join and leave after start (membership changes): a third transport is added to
 * two running ones, both dial directions work, a duplicate is -EEXIST; a removed peer gets
 * nothing more (sends refused) and its connection is closed. Both transports. */
static void test_peers_added_and_removed_after_start(void **state)
{
    (void)state;
    rr_transport *t[4];
    for (rr_node_id_t id = 1; id <= 3; id++)
        t[id] = tcp_new(id, CLUSTER, NULL);
    assert_int_equal(rr_transport_add_peer(t[1], 2, "127.0.0.1", rr_transport_port(t[2])), 0);
    assert_int_equal(rr_transport_add_peer(t[2], 1, "127.0.0.1", rr_transport_port(t[1])), 0);
    for (rr_node_id_t id = 1; id <= 3; id++)
        assert_int_equal(rr_transport_start(t[id]), 0);
    rx_state rx1, rx2, rx3;
    memset(&rx1, 0, sizeof rx1);
    memset(&rx2, 0, sizeof rx2);
    memset(&rx3, 0, sizeof rx3);
    send_and_see(t[1], t[2], &rx2, 1, 2, 1, 5);
    /* Node 3 joins: 3 dials nothing and accepts 1 and 2, which dial it. The acceptor learns
     * its peers first: a HELLO from a peer it does not know yet is refused, and whatever
     * the dialer had put on that connection is lost (Raft resends; this test would not). */
    for (rr_node_id_t id = 1; id <= 2; id++)
        assert_int_equal(rr_transport_add_peer(t[3], id, "127.0.0.1", rr_transport_port(t[id])), 0);
    for (rr_node_id_t id = 1; id <= 2; id++)
        assert_int_equal(rr_transport_add_peer(t[id], 3, "127.0.0.1", rr_transport_port(t[3])), 0);
    assert_int_equal(rr_transport_add_peer(t[1], 3, "127.0.0.1", rr_transport_port(t[3])), -EEXIST);
    send_and_see(t[1], t[3], &rx3, 1, 3, 1, 10);
    send_and_see(t[2], t[3], &rx3, 2, 3, 1, 10);
    send_and_see(t[3], t[1], &rx1, 3, 1, 1, 10);
    /* Node 2 leaves node 1's view: sends refused, its connection goes away. */
    rr_transport_stats s0, s1;
    rr_transport_stats_get(t[1], &s0);
    assert_int_equal(rr_transport_remove_peer(t[1], 2), 0);
    assert_int_equal(rr_transport_remove_peer(t[1], 2), -ENOENT);
    rr_message m;
    msg_make(&m, 1, 2, 6, 0, 0, NULL);
    assert_int_equal(rr_transport_send(t[1], &m), -EINVAL);
    rr_transport_flush(t[1]);
    uint64_t deadline = now_ms() + 2000;
    do {
        rr_transport_wait(t[1], 10);
        rr_transport_stats_get(t[1], &s1);
    } while (s1.conns_closed == s0.conns_closed && now_ms() < deadline);
    assert_true(s1.conns_closed > s0.conns_closed);
    /* The others still talk; and 2 may come back (a new slot). */
    send_and_see(t[1], t[3], &rx3, 1, 3, 11, 20);
    assert_int_equal(rr_transport_add_peer(t[1], 2, "127.0.0.1", rr_transport_port(t[2])), 0);
    send_and_see(t[1], t[2], &rx2, 1, 2, 7, 12);
    for (rr_node_id_t id = 1; id <= 3; id++)
        rr_transport_free(t[id]);

    /* In-process: same rules. */
    rr_transport_hub *hub;
    assert_int_equal(rr_transport_hub_new(&hub), 0);
    rr_transport_config cfg;
    for (rr_node_id_t id = 1; id <= 2; id++) {
        rr_transport_config_init(&cfg, CLUSTER, id);
        assert_int_equal(rr_transport_inproc_new(hub, &cfg, &t[id]), 0);
        assert_int_equal(rr_transport_start(t[id]), 0);
    }
    assert_int_equal(rr_transport_add_peer(t[1], 2, NULL, 0), 0);
    assert_int_equal(rr_transport_add_peer(t[2], 1, NULL, 0), 0);
    assert_int_equal(rr_transport_add_peer(t[2], 1, NULL, 0), -EEXIST);
    memset(&rx2, 0, sizeof rx2);
    send_and_see(t[1], t[2], &rx2, 1, 2, 1, 5);
    assert_int_equal(rr_transport_remove_peer(t[1], 2), 0);
    msg_make(&m, 1, 2, 6, 0, 0, NULL);
    assert_int_equal(rr_transport_send(t[1], &m), -EINVAL);
    rr_transport_free(t[1]);
    rr_transport_free(t[2]);
    rr_transport_hub_free(hub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inproc_delivers_and_bounds),
        cmocka_unit_test(test_tcp_three_nodes_in_order_across_reconnect),
        cmocka_unit_test(test_tcp_zero_copy_everything),
        cmocka_unit_test(test_tcp_zero_copy_given_up_when_copied),
        cmocka_unit_test(test_tcp_hostile_peers_refused_good_peer_served),
        cmocka_unit_test(test_tcp_send_queue_bounded),
        cmocka_unit_test(test_tcp_snapshot_streams),
        cmocka_unit_test(test_peers_added_and_removed_after_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
