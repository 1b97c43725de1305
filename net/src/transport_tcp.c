/*
 * transport_tcp.c: the TCP transport on io_uring (contract in ringraft/transport.h, wire
 * format in codec.c).
 *
 * The net thread owns the ring, the sockets, the frames and the receive state. It loops:
 * take the wake-up, hand what it received to the on-receive function (which may do the
 * raft thread's part right here) or wake the raft thread, dial peers whose backoff
 * expired, turn queued messages into frames and submit them, then sleep in
 * io_uring_submit_and_wait_timeout until a completion (a recv, a send, a notification, an
 * accept, the raft thread's eventfd write) or the next dial.
 *
 * Connections: the node with the smaller id dials (so a pair has one connection) and
 * sends a HELLO first; the acceptor checks cluster id, its own id and the dialer's id
 * before anything else is read. Bad frames, a bad HELLO, or anything but a HELLO first,
 * close the connection (logged). Dials back off exponentially between reconnect_min_ms
 * and reconnect_max_ms.
 *
 * Sends: one frame in flight per peer (frames stay in order on the stream), others
 * gathering messages meanwhile, so a busy peer gets large frames. A frame of zc_min_bytes
 * or more goes with SENDMSG_ZC; its buffers (frame staging and the payload references)
 * are released only when every notification of it has completed (IORING_CQE_F_NOTIF).
 *
 * Receives: one multishot recv per connection, buffers picked by the kernel from one
 * provided buffer ring. Bytes are copied out at once into a buffer the size of the
 * frame's body (bounded by the header, whose CRC was checked first), and the provided
 * buffer goes back to the ring: holding it until the raft thread released the messages
 * would let a slow consumer starve every connection's receives.
 */
#include "transport_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ringraft/assert.h"

#define RING_ENTRIES      256u
#define RECV_BUF_BYTES    (64u << 10)
#define RECV_BUFS         64u /* power of two: the provided buffer ring's size */
#define RECV_BGID         1
#define FRAMES_PER_PEER   4u
#define FRAME_STAGE_BYTES (64u << 10) /* grows for one large message, up to a frame */
#define FRAME_IOVS        256u
#define FRAME_IOVS_MAX    1024u /* IOV_MAX */
#define REF_MIN_BYTES     512u  /* shorter payloads are copied into the frame */
#define PENDING_CONNS_MAX 8u    /* accepted connections still waiting for their HELLO */
#define CONNS_MAX         (RR_NODES_MAX + PENDING_CONNS_MAX)
#define STOP_DRAIN_ROUNDS 200 /* x 5 ms: bound on waiting for sends at stop */
#define ACCEPT_RETRY_NS   (100u * 1000000u)
/* Zero-copy frames in a row the kernel reports it copied before a connection gives up
 * zero-copy (it then costs a notification and a page pin for nothing). */
#define ZC_COPIED_GIVE_UP 16u

/* Linux 6.2 uapi; Debian 12's liburing 2.3 headers predate them. */
#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1u << 3)
#endif
#ifndef IORING_NOTIF_USAGE_ZC_COPIED
#define IORING_NOTIF_USAGE_ZC_COPIED (1u << 31)
#endif

_Static_assert((RECV_BUFS & (RECV_BUFS - 1)) == 0, "buffer ring size is a power of two");
_Static_assert(RECV_BUFS <= 32768, "buffer ids are 16-bit");
_Static_assert(FRAME_IOVS >= 4, "a chunk frame needs header, chunk header and payload");
_Static_assert(FRAME_IOVS <= FRAME_IOVS_MAX, "sendmsg limit");

#define container_of(p, type, member) ((type *)(void *)((char *)(p)-offsetof(type, member)))

enum op_kind { OP_ACCEPT = 1, OP_RECV, OP_SEND, OP_CONNECT, OP_WAKE };

/* Every submission's user_data points at one of these, embedded in its owner. */
typedef struct op {
    uint8_t kind;
} op;

/* A received frame body or a reassembled snapshot: refcounted, freed by the last holder. */
typedef struct rxbuf {
    rr_buf hdr;
    uint64_t cap;
    uint8_t data[];
} rxbuf;

struct peer;

typedef struct conn {
    op recv_op;
    op connect_op;
    int fd;
    struct peer *peer; /* NULL on an accepted connection until its HELLO */
    bool ready;        /* handshake done: frames may flow */
    bool closing;
    uint32_t inflight;  /* submissions naming this connection; freed when 0 and closing */
    uint64_t opened_ns; /* when the handshake completed (0: never) */
    struct sockaddr_in addr;
    /* frame assembly */
    uint8_t hdr[RR_CODEC_FRAME_HEADER_BYTES];
    uint32_t hdr_got;
    rr_codec_frame_header h;
    rxbuf *body;
    uint32_t body_got;
    /* snapshot reassembly from SNAP_CHUNK frames */
    rxbuf *snap;
    rr_index_t snap_index;
    rr_term_t snap_term;
    uint64_t snap_total;
    uint64_t snap_got;
} conn;

enum frame_state { FRAME_FREE = 0, FRAME_SENDING, FRAME_NOTIF_WAIT };

typedef struct frame {
    op op;
    struct peer *peer;
    conn *conn;
    uint8_t state;
    bool zc;
    bool failed;
    bool carries_snap; /* a MsgSnap (record of a streamed one, or inline): report done/failed
                        * at release */
    uint32_t notifs;   /* zero-copy notifications still to come */
    bool zc_copied;    /* a notification said the kernel copied the data after all */
    uint32_t n_msgs;
    uint64_t acct_bytes; /* released from the peer's queue bound with the frame */
    size_t total;
    size_t sent;
    rr_codec_writer w;
    struct msghdr mh;
} frame;

typedef struct peer {
    rr_node_id_t id;
    int slot;
    bool active;   /* net thread: taken from added_mask, not yet from removed_mask */
    bool dialer;   /* self < id: we dial */
    bool loopback; /* 127.0.0.0/8: zero-copy only copies there (see transport.h) */
    struct sockaddr_in addr;
    msg_ring outbox;               /* raft thread -> net thread */
    _Atomic uint64_t queued_bytes; /* raft thread adds, net thread subtracts */
    conn *conn;                    /* the established connection */
    conn *dialing;
    uint64_t next_dial_ns;
    uint32_t backoff_ms;
    bool sending;
    bool chunk_turn;
    /* Net thread, per connection: zero-copy frames in a row the kernel copied anyway, and
     * whether this connection gave zero-copy up (ZC_COPIED_GIVE_UP). */
    uint32_t zc_copied_run;
    bool zc_gave_up;
    rr_message carry; /* popped, did not fit the last frame */
    bool has_carry;
    rr_message snap; /* MsgSnap whose data is streaming */
    bool snapping;
    uint64_t snap_off;
    frame frames[FRAMES_PER_PEER];
} peer;

typedef struct tcp {
    rr_transport base; /* first: rr_transport * and tcp * convert */
    struct io_uring ring;
    bool ring_ok;
    int listen_fd;
    uint16_t port;
    struct io_uring_buf_ring *br;
    size_t br_bytes;
    uint8_t *bufs;
    op accept_op;
    uint64_t accept_retry_ns; /* nonzero: re-arm the accept then (it failed) */
    op wake_op;
    uint64_t wake_val;
    int net_wake_fd;
    _Atomic uint32_t net_wake_pending;
    _Atomic bool stopping;
    _Atomic uint64_t disconnect_mask; /* peer slots whose connection the raft thread drops */
    /* The raft thread's commands about peer slots (a slot is set up before its bit is set,
     * and never reused): added_mask publishes a new slot to the net thread, removed_mask
     * retires one (close its connection, drop its queue). */
    _Atomic uint64_t added_mask;
    _Atomic uint64_t removed_mask;
    /* Net thread: slots below this were taken from added_mask; it reads no slot above
     * (the raft thread may be setting one up). Slots are added in order. */
    uint32_t net_n_peers;
    pthread_t thread;
    bool started;
    bool inbox_pushed;
    uint64_t inbox_bytes; /* what the messages pushed since inbox_deliver came in */
    /* Ask zero-copy sends to report whether the kernel copied (IORING_SEND_ZC_REPORT_USAGE,
     * Linux 6.2); cleared if the kernel refuses the flag. */
    bool zc_report_usage;
    peer peers[RR_NODES_MAX];
    conn *conns[CONNS_MAX];
    msg_ring inbox; /* net thread -> raft thread */
    rr_message decoded[RR_CODEC_FRAME_MSGS_MAX];
} tcp;

/* A new connection may take another route: try zero-copy on it afresh. */
static void peer_zc_reset(peer *p)
{
    p->zc_copied_run = 0;
    p->zc_gave_up = false;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct io_uring_sqe *sqe_get(tcp *t)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&t->ring);
    if (sqe == NULL) { /* full: hand what we have to the kernel, then there is room */
        io_uring_submit(&t->ring);
        sqe = io_uring_get_sqe(&t->ring);
    }
    RR_ASSERT(sqe != NULL);
    return sqe;
}

static void refuse_log(tcp *t, const conn *c, const char *why, int err)
{
    stat_add(&t->base.stats.conns_refused, 1);
    if (!t->base.cfg.log_refusals)
        return;
    fprintf(stderr, "ringraft net: node %llu closes connection from %s (peer %llu): %s: %s\n",
            (unsigned long long)t->base.cfg.self, inet_ntoa(c->addr.sin_addr),
            c->peer != NULL ? (unsigned long long)c->peer->id : 0ull, why, rr_strerror(err));
}

static void rxbuf_release(rr_buf *b)
{
    free(b);
}

static rxbuf *rxbuf_new(uint64_t cap)
{
    rxbuf *b = malloc(sizeof(rxbuf) + cap);
    if (b == NULL)
        return NULL;
    b->hdr.refs = 1;
    b->hdr.release = rxbuf_release;
    b->cap = cap;
    return b;
}

/* ---- connections ---- */

static conn *conn_new(tcp *t, int fd)
{
    int slot = -1;
    for (int i = 0; i < (int)CONNS_MAX && slot < 0; i++)
        if (t->conns[i] == NULL)
            slot = i;
    if (slot < 0)
        return NULL;
    conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->recv_op.kind = OP_RECV;
    c->connect_op.kind = OP_CONNECT;
    c->fd = fd;
    int one = 1;
    /* Raft's messages are latency-bound: never wait to coalesce (Nagle). */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    t->conns[slot] = c;
    return c;
}

static void conn_free(tcp *t, conn *c)
{
    RR_ASSERT(c->inflight == 0);
    for (int i = 0; i < (int)CONNS_MAX; i++)
        if (t->conns[i] == c)
            t->conns[i] = NULL;
    close(c->fd);
    if (c->body != NULL)
        rr_buf_unref(&c->body->hdr);
    if (c->snap != NULL)
        rr_buf_unref(&c->snap->hdr);
    free(c);
}

static void peer_snap_abort(tcp *t, peer *p)
{
    if (!p->snapping)
        return;
    atomic_fetch_sub_explicit(&p->queued_bytes, msg_account_bytes(&p->snap), memory_order_relaxed);
    rr_message_free(&p->snap);
    p->snapping = false;
    transport_report(&t->base, p->slot, RR_TRANSPORT_SNAPSHOT_FAILED);
}

static void dial_backoff(tcp *t, peer *p)
{
    uint32_t ms = p->backoff_ms == 0 ? t->base.cfg.reconnect_min_ms : p->backoff_ms;
    p->next_dial_ns = now_ns() + (uint64_t)ms * 1000000u;
    p->backoff_ms = ms * 2 > t->base.cfg.reconnect_max_ms ? t->base.cfg.reconnect_max_ms : ms * 2;
}

/* Closes c: shutdown makes its pending recv and sends complete; it is freed when the last
 * of them has. The peer is told unreachable, and a dialer schedules the next dial. */
static void conn_fail(tcp *t, conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    stat_add(&t->base.stats.conns_closed, 1);
    shutdown(c->fd, SHUT_RDWR);
    peer *p = c->peer;
    if (p != NULL && (p->conn == c || p->dialing == c)) {
        if (p->conn == c)
            p->conn = NULL;
        if (p->dialing == c)
            p->dialing = NULL;
        peer_snap_abort(t, p);
        transport_report(&t->base, p->slot, RR_TRANSPORT_UNREACHABLE);
        /* The backoff starts over only after a connection that lasted: a peer that accepts
         * and then refuses us is redialled ever more slowly, not every reconnect_min_ms. */
        uint64_t lived_ns = c->opened_ns == 0 ? 0 : now_ns() - c->opened_ns;
        if (lived_ns >= (uint64_t)t->base.cfg.reconnect_max_ms * 1000000u)
            p->backoff_ms = 0;
        if (p->dialer)
            dial_backoff(t, p);
    }
    if (c->inflight == 0)
        conn_free(t, c);
}

static void conn_op_done(tcp *t, conn *c)
{
    RR_ASSERT(c->inflight > 0);
    c->inflight--;
    if (c->closing && c->inflight == 0)
        conn_free(t, c);
}

static void recv_arm(tcp *t, conn *c)
{
    struct io_uring_sqe *sqe = sqe_get(t);
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = RECV_BGID;
    io_uring_sqe_set_data(sqe, &c->recv_op);
    c->inflight++;
}

/* ---- received frames ---- */

static void inbox_push(tcp *t, rr_message *m)
{
    if (!msg_ring_push(&t->inbox, m)) {
        rr_message_free(m);
        stat_add(&t->base.stats.msgs_dropped_recv, 1);
        return;
    }
    stat_add(&t->base.stats.msgs_received, 1);
    t->inbox_pushed = true;
}

static void peers_take(tcp *t);

/* The active peer named id (net thread's view: base.peer_ids belongs to the raft thread). */
static peer *peer_find(tcp *t, rr_node_id_t id)
{
    for (uint32_t i = 0; i < t->net_n_peers; i++)
        if (t->peers[i].active && t->peers[i].id == id)
            return &t->peers[i];
    return NULL;
}

static int hello_done(tcp *t, conn *c, const uint8_t *body)
{
    rr_codec_hello h;
    int rc = rr_codec_hello_decode(body, c->h.body_len, &h);
    if (rc != 0)
        return rc;
    if (c->peer != NULL || h.cluster_id != t->base.cfg.cluster_id || h.to != t->base.cfg.self)
        return RR_ERR_CORRUPT;
    /* A peer the raft thread added a moment ago is known, even if the HELLO is handled in
     * the same batch of completions as the wake-up that announced it. */
    peers_take(t);
    peer *p = peer_find(t, h.from);
    /* Only peers we know, and only those that dial us (smaller ids). */
    if (p == NULL || p->dialer)
        return RR_ERR_CORRUPT;
    if (p->conn != NULL) /* the peer restarted or lost the old one: the new one wins */
        conn_fail(t, p->conn);
    c->peer = p;
    c->ready = true;
    c->opened_ns = now_ns();
    p->conn = c;
    peer_zc_reset(p);
    return 0;
}

static int chunk_done(tcp *t, conn *c, const uint8_t *body)
{
    rr_codec_chunk ch;
    int rc = rr_codec_chunk_decode(body, c->h.body_len, &ch);
    if (rc != 0)
        return rc;
    if (ch.offset == 0) { /* a new snapshot starts; an unfinished one is abandoned */
        if (ch.total_len > t->base.cfg.snapshot_bytes_max)
            return RR_ERR_TOO_LARGE;
        if (c->snap != NULL)
            rr_buf_unref(&c->snap->hdr);
        c->snap = NULL;
        c->snap_index = ch.snap_index;
        c->snap_term = ch.snap_term;
        c->snap_total = ch.total_len;
        c->snap_got = 0;
    } else if (ch.snap_index != c->snap_index || ch.snap_term != c->snap_term ||
               ch.total_len != c->snap_total || ch.offset != c->snap_got) {
        return RR_ERR_CORRUPT;
    }
    uint64_t need = c->snap_got + ch.len;
    if (c->snap == NULL || c->snap->cap < need) {
        /* Doubling, capped at the announced total (itself bounded): no quadratic copying. */
        uint64_t cap = c->snap == NULL ? need : c->snap->cap * 2;
        cap = cap < need ? need : cap > c->snap_total ? c->snap_total : cap;
        rxbuf *nb = realloc(c->snap, sizeof(rxbuf) + cap);
        if (nb == NULL)
            return -ENOMEM;
        if (c->snap == NULL) {
            nb->hdr.refs = 1;
            nb->hdr.release = rxbuf_release;
        }
        nb->cap = cap;
        c->snap = nb;
    }
    memcpy(c->snap->data + c->snap_got, ch.data, ch.len);
    c->snap_got = need;
    return 0;
}

static int msgs_done(tcp *t, conn *c, const uint8_t *body)
{
    rr_codec_streamed st, *stp = NULL;
    if (c->snap != NULL && c->snap_got == c->snap_total) {
        st = (rr_codec_streamed){.snap_index = c->snap_index,
                                 .snap_term = c->snap_term,
                                 .data = c->snap->data,
                                 .len = c->snap_total,
                                 .buf = &c->snap->hdr};
        stp = &st;
    }
    uint32_t n = c->h.count;
    uint64_t bytes = c->h.body_len;
    int rc = rr_codec_messages_decode(body, c->h.body_len, n, &c->body->hdr, stp, t->decoded);
    if (rc != 0)
        return rc;
    for (uint32_t i = 0; i < n; i++) {
        rr_message *m = &t->decoded[i];
        if (m->snapshot != NULL && stp != NULL && m->snapshot->buf == &c->snap->hdr) {
            rr_buf_unref(&c->snap->hdr); /* the message holds it now */
            bytes += c->snap_total;
            c->snap = NULL;
            stp = NULL;
        }
        /* A peer speaks only for itself and only to us. */
        if (m->from != c->peer->id || m->to != t->base.cfg.self) {
            rr_message_free(m);
            stat_add(&t->base.stats.msgs_dropped_recv, 1);
            continue;
        }
        inbox_push(t, m);
    }
    t->inbox_bytes += bytes;
    return 0;
}

/* A whole frame is in c->hdr / c->body. Returns 0 or the error that closes c. */
static int frame_done(tcp *t, conn *c)
{
    const uint8_t *body = c->body->data;
    int rc = rr_codec_body_check(&c->h, body, c->body_got);
    if (rc != 0)
        return rc;
    if (c->h.kind == RR_CODEC_KIND_HELLO)
        return hello_done(t, c, body);
    if (!c->ready) /* the first frame of an accepted connection must be its HELLO */
        return RR_ERR_CORRUPT;
    if (c->h.kind == RR_CODEC_KIND_SNAP_CHUNK)
        return chunk_done(t, c, body);
    return msgs_done(t, c, body);
}

/* Feeds received bytes to c's frame assembly. Returns 0 or the error that closes c. */
static int bytes_received(tcp *t, conn *c, const uint8_t *p, size_t len)
{
    while (len > 0) {
        if (c->hdr_got < RR_CODEC_FRAME_HEADER_BYTES) {
            size_t n = RR_CODEC_FRAME_HEADER_BYTES - c->hdr_got;
            n = n < len ? n : len;
            memcpy(c->hdr + c->hdr_got, p, n);
            c->hdr_got += (uint32_t)n;
            p += n;
            len -= n;
            if (c->hdr_got < RR_CODEC_FRAME_HEADER_BYTES)
                return 0;
            int rc = rr_codec_header_decode(c->hdr, sizeof c->hdr, &c->h);
            if (rc != 0)
                return rc;
            /* Before the handshake, only a HELLO-sized body is worth memory. */
            if (!c->ready && c->h.kind != RR_CODEC_KIND_HELLO)
                return RR_ERR_CORRUPT;
            if (c->h.kind == RR_CODEC_KIND_HELLO && c->h.body_len != RR_CODEC_HELLO_BYTES)
                return RR_ERR_CORRUPT;
            c->body = rxbuf_new(c->h.body_len);
            if (c->body == NULL)
                return -ENOMEM;
            c->body_got = 0;
        }
        size_t n = c->h.body_len - c->body_got;
        n = n < len ? n : len;
        memcpy(c->body->data + c->body_got, p, n);
        c->body_got += (uint32_t)n;
        p += n;
        len -= n;
        if (c->body_got < c->h.body_len)
            return 0;
        int rc = frame_done(t, c);
        rr_buf_unref(&c->body->hdr); /* decoded messages hold their own references */
        c->body = NULL;
        c->hdr_got = 0;
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void buf_recycle(tcp *t, uint16_t bid)
{
    io_uring_buf_ring_add(t->br, t->bufs + (size_t)bid * RECV_BUF_BYTES, RECV_BUF_BYTES, bid,
                          io_uring_buf_ring_mask(RECV_BUFS), 0);
    io_uring_buf_ring_advance(t->br, 1);
}

static void recv_done(tcp *t, conn *c, const struct io_uring_cqe *cqe)
{
    int res = cqe->res;
    if ((cqe->flags & IORING_CQE_F_BUFFER) != 0) {
        uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        if (res > 0 && !c->closing) {
            int rc = bytes_received(t, c, t->bufs + (size_t)bid * RECV_BUF_BYTES, (size_t)res);
            if (rc != 0) {
                refuse_log(t, c, c->ready ? "bad frame" : "bad handshake", rc);
                conn_fail(t, c);
            }
        }
        buf_recycle(t, bid);
    }
    bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
    if (res == 0 || (res < 0 && res != -ENOBUFS))
        conn_fail(t, c); /* EOF or error */
    if (more)
        return;
    /* The multishot ended (no buffers left, or the connection is done): re-arm if alive. */
    if (!c->closing)
        recv_arm(t, c);
    conn_op_done(t, c);
}

/* ---- sends ---- */

static frame *frame_free_get(peer *p)
{
    for (uint32_t i = 0; i < FRAMES_PER_PEER; i++)
        if (p->frames[i].state == FRAME_FREE)
            return &p->frames[i];
    return NULL;
}

static void frame_release(tcp *t, frame *f)
{
    peer *p = f->peer;
    rr_codec_writer_release(&f->w);
    if (f->zc && !f->failed && t->zc_report_usage) {
        if (f->zc_copied)
            stat_add(&t->base.stats.frames_zc_copied, 1);
        p->zc_copied_run = f->zc_copied ? p->zc_copied_run + 1 : 0;
        if (p->zc_copied_run >= ZC_COPIED_GIVE_UP && !t->base.cfg.zc_keep_when_copied)
            p->zc_gave_up = true;
    }
    f->zc_copied = false;
    atomic_fetch_sub_explicit(&p->queued_bytes, f->acct_bytes, memory_order_relaxed);
    if (f->carries_snap)
        transport_report(&t->base, p->slot,
                         f->failed ? RR_TRANSPORT_SNAPSHOT_FAILED : RR_TRANSPORT_SNAPSHOT_DONE);
    if (f->failed)
        stat_add(&t->base.stats.msgs_dropped_send, f->n_msgs);
    f->state = FRAME_FREE;
    f->conn = NULL;
}

static void frame_submit(tcp *t, frame *f)
{
    struct io_uring_sqe *sqe = sqe_get(t);
    /* MSG_WAITALL: io_uring retries a short stream send itself; we still handle one. */
    unsigned flags = MSG_NOSIGNAL | MSG_WAITALL;
    if (f->zc) {
        io_uring_prep_sendmsg_zc(sqe, f->conn->fd, &f->mh, flags);
        if (t->zc_report_usage)
            sqe->ioprio |= IORING_SEND_ZC_REPORT_USAGE;
    } else
        io_uring_prep_sendmsg(sqe, f->conn->fd, &f->mh, flags);
    io_uring_sqe_set_data(sqe, &f->op);
    f->conn->inflight++;
    f->state = FRAME_SENDING;
    f->peer->sending = true;
}

/* Moves the msghdr's iovecs past n sent bytes. */
static void iov_advance(struct msghdr *mh, size_t n)
{
    while (n > 0 && mh->msg_iovlen > 0) {
        struct iovec *v = mh->msg_iov;
        if (n < v->iov_len) {
            v->iov_base = (uint8_t *)v->iov_base + n;
            v->iov_len -= n;
            return;
        }
        n -= v->iov_len;
        mh->msg_iov++;
        mh->msg_iovlen--;
    }
}

static void send_done(tcp *t, frame *f, const struct io_uring_cqe *cqe)
{
    if ((cqe->flags & IORING_CQE_F_NOTIF) != 0) {
        /* The kernel no longer reads this frame's memory. */
        RR_ASSERT(f->notifs > 0);
        f->notifs--;
        if (t->zc_report_usage && ((uint32_t)cqe->res & IORING_NOTIF_USAGE_ZC_COPIED) != 0)
            f->zc_copied = true;
        if (f->notifs == 0 && f->state == FRAME_NOTIF_WAIT)
            frame_release(t, f);
        return;
    }
    conn *c = f->conn;
    if (f->zc && (cqe->flags & IORING_CQE_F_MORE) != 0)
        f->notifs++;
    if (cqe->res == -EINVAL && f->zc && t->zc_report_usage && f->sent == 0 && f->notifs == 0) {
        /* A kernel before 6.2 refuses the usage report: send again without it. */
        t->zc_report_usage = false;
        c->inflight--;
        frame_submit(t, f);
        return;
    }
    if (cqe->res < 0) {
        f->failed = true;
    } else {
        f->sent += (size_t)cqe->res;
        if (f->sent < f->total && !c->closing) {
            iov_advance(&f->mh, (size_t)cqe->res);
            c->inflight--; /* frame_submit counts the next one */
            frame_submit(t, f);
            return;
        }
        f->failed = f->sent < f->total;
    }
    f->peer->sending = false;
    if (!f->failed) {
        stat_add(&t->base.stats.msgs_sent, f->n_msgs);
        stat_add(&t->base.stats.frames_sent, 1);
        stat_add(&t->base.stats.frames_zc, f->zc ? 1 : 0);
        stat_add(&t->base.stats.bytes_sent, f->total);
    }
    f->state = FRAME_NOTIF_WAIT;
    if (f->notifs == 0)
        frame_release(t, f);
    if (f->failed)
        conn_fail(t, c);
    conn_op_done(t, c);
}

/* Makes an empty frame big enough for m: more staging, more iovecs, or, past sendmsg's
 * iovec limit, copying every payload. Returns 0 or -ENOMEM. */
static int frame_fit(frame *f, const rr_message *m)
{
    size_t stage;
    uint32_t iovs;
    rr_codec_writer_needs(&f->w, m, &stage, &iovs);
    if (f->w.n_iov + iovs > FRAME_IOVS_MAX) {
        f->w.ref_min_bytes = UINT32_MAX;
        rr_codec_writer_needs(&f->w, m, &stage, &iovs);
    }
    if (f->w.n_iov + iovs > f->w.iov_cap) {
        struct iovec *iov = realloc(f->w.iov, FRAME_IOVS_MAX * sizeof(struct iovec));
        if (iov == NULL)
            return -ENOMEM;
        f->w.iov = iov;
        rr_buf **refs = realloc(f->w.refs, FRAME_IOVS_MAX * sizeof(rr_buf *));
        if (refs == NULL)
            return -ENOMEM;
        f->w.refs = refs;
        f->w.iov_cap = FRAME_IOVS_MAX;
    }
    if (stage > f->w.stage_cap) {
        uint8_t *s = realloc(f->w.stage, stage);
        if (s == NULL)
            return -ENOMEM;
        f->w.stage = s;
        f->w.stage_cap = stage;
    }
    return 0;
}

static void frame_begin(frame *f, conn *c)
{
    rr_codec_writer_begin(&f->w);
    f->w.ref_min_bytes = REF_MIN_BYTES;
    f->conn = c;
    f->failed = false;
    f->carries_snap = false;
    f->notifs = 0;
    f->n_msgs = 0;
    f->acct_bytes = 0;
}

/* Adds m to f, or leaves it (returns false) when f is full. m is consumed on true. */
static bool frame_take(tcp *t, frame *f, rr_message *m)
{
    int rc = rr_codec_writer_add(&f->w, m);
    if (rc == -ENOBUFS && f->n_msgs == 0 && frame_fit(f, m) == 0)
        rc = rr_codec_writer_add(&f->w, m);
    if (rc == -ENOBUFS && f->n_msgs > 0)
        return false;
    if (rc != 0) { /* cannot be sent at all (validated at rr_transport_send, so -ENOMEM) */
        atomic_fetch_sub_explicit(&f->peer->queued_bytes, msg_account_bytes(m),
                                  memory_order_relaxed);
        rr_message_free(m);
        stat_add(&t->base.stats.msgs_dropped_send, 1);
        return true;
    }
    f->acct_bytes += msg_account_bytes(m);
    f->n_msgs++;
    rr_message_free(m); /* the frame holds references to what it sends */
    return true;
}

/* Next message for p: the carried one, else the outbox's oldest. */
static bool peer_next(peer *p, rr_message *m)
{
    if (p->has_carry) {
        *m = p->carry;
        p->has_carry = false;
        return true;
    }
    return msg_ring_pop(&p->outbox, m);
}

static void peer_carry(peer *p, rr_message *m)
{
    p->carry = *m;
    p->has_carry = true;
}

/* Fills f with queued messages. A streaming MsgSnap is set aside (its chunks go first);
 * its record joins a frame once all chunks are out. */
static void frame_fill_msgs(tcp *t, peer *p, frame *f)
{
    if (p->snapping && p->snap_off == p->snap.snapshot->data_len) {
        /* Its accounted bytes include the chunks' share: released with this frame. */
        if (!frame_take(t, f, &p->snap))
            return;
        p->snapping = false;
        f->carries_snap = true;
    }
    rr_message m;
    while (peer_next(p, &m)) {
        if (rr_codec_snapshot_streams(&m)) {
            if (p->snapping) { /* one stream at a time per peer */
                peer_carry(p, &m);
                return;
            }
            p->snap = m;
            p->snapping = true;
            p->snap_off = 0;
            continue;
        }
        /* An inline MsgSnap is reported like a streamed one when its frame is released:
         * a leader whose follower ignored or lost it must leave StateSnapshot (etcd's
         * rafthttp reports every MsgSnap). */
        bool snap = m.type == RR_MSG_SNAP;
        if (!frame_take(t, f, &m)) {
            peer_carry(p, &m);
            return;
        }
        f->carries_snap = f->carries_snap || snap;
    }
}

/* Puts the next chunk of p's streaming snapshot in f (referenced, not copied). Chunks go
 * one frame at a time, so the stream advances only as fast as the socket drains: TCP's
 * flow control reaches back to the snapshot instead of memory filling up. */
static void frame_fill_chunk(tcp *t, peer *p, frame *f)
{
    const rr_snapshot *s = p->snap.snapshot;
    uint64_t left = s->data_len - p->snap_off;
    uint32_t len = t->base.cfg.snap_chunk_bytes;
    rr_codec_chunk ch = {.snap_index = s->meta.index,
                         .snap_term = s->meta.term,
                         .offset = p->snap_off,
                         .total_len = s->data_len,
                         .data = s->data + p->snap_off,
                         .len = left < len ? (uint32_t)left : len};
    int rc = rr_codec_writer_add_chunk(&f->w, &ch, s->buf);
    RR_ASSERT(rc == 0); /* bounds checked by the config and rr_transport_send */
    p->snap_off += ch.len;
}

/* Sends p's next frame if its connection is up and nothing of p's is in flight. */
static void peer_pump(tcp *t, peer *p)
{
    conn *c = p->conn;
    if (c == NULL || !c->ready || c->closing || p->sending)
        return;
    frame *f = frame_free_get(p);
    if (f == NULL)
        return; /* every frame waits for notifications */
    frame_begin(f, c);
    bool chunk_ready = p->snapping && p->snap_off < p->snap.snapshot->data_len;
    /* Chunks alternate with message frames, so heartbeats and votes are not stuck
     * behind a long snapshot. */
    if (!(chunk_ready && p->chunk_turn))
        frame_fill_msgs(t, p, f);
    chunk_ready = p->snapping && p->snap_off < p->snap.snapshot->data_len;
    if (f->n_msgs == 0 && chunk_ready)
        frame_fill_chunk(t, p, f);
    p->chunk_turn = f->n_msgs > 0;
    if (f->w.body_len == 0)
        return;
    f->total = rr_codec_writer_finish(&f->w);
    f->sent = 0;
    f->zc = f->total >= t->base.cfg.zc_min_bytes && (!p->loopback || t->base.cfg.zc_on_loopback) &&
            !p->zc_gave_up;
    memset(&f->mh, 0, sizeof f->mh);
    f->mh.msg_iov = f->w.iov;
    f->mh.msg_iovlen = f->w.n_iov;
    frame_submit(t, f);
}

/* ---- dialing and accepting ---- */

static void peer_dial(tcp *t, peer *p)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    conn *c = fd < 0 ? NULL : conn_new(t, fd);
    if (c == NULL) {
        if (fd >= 0)
            close(fd);
        dial_backoff(t, p);
        transport_report(&t->base, p->slot, RR_TRANSPORT_UNREACHABLE);
        return;
    }
    stat_add(&t->base.stats.dials, 1);
    c->peer = p;
    c->addr = p->addr;
    p->dialing = c;
    struct io_uring_sqe *sqe = sqe_get(t);
    io_uring_prep_connect(sqe, fd, (struct sockaddr *)&c->addr, sizeof c->addr);
    io_uring_sqe_set_data(sqe, &c->connect_op);
    c->inflight++;
}

/* Connected: the HELLO goes first. It is 48 bytes on an empty socket buffer, so a plain
 * non-blocking send completes it; anything else is a failed dial. */
static void connect_done(tcp *t, conn *c, int res)
{
    peer *p = c->peer;
    if (res == 0 && !c->closing) {
        uint8_t hello[RR_CODEC_FRAME_HEADER_BYTES + RR_CODEC_HELLO_BYTES];
        rr_codec_hello h = {
            .cluster_id = t->base.cfg.cluster_id, .from = t->base.cfg.self, .to = p->id};
        size_t n = rr_codec_hello_encode(&h, hello);
        if (send(c->fd, hello, n, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)n)
            res = -EIO;
    }
    if (res != 0 || c->closing) {
        conn_fail(t, c);
        conn_op_done(t, c);
        return;
    }
    p->dialing = NULL;
    p->conn = c;
    peer_zc_reset(p);
    c->ready = true;
    c->opened_ns = now_ns();
    recv_arm(t, c);
    conn_op_done(t, c);
}

static void accept_arm(tcp *t)
{
    struct io_uring_sqe *sqe = sqe_get(t);
    io_uring_prep_multishot_accept(sqe, t->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data(sqe, &t->accept_op);
}

static uint32_t conns_pending(const tcp *t)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < CONNS_MAX; i++)
        if (t->conns[i] != NULL && t->conns[i]->peer == NULL)
            n++;
    return n;
}

static void accept_done(tcp *t, const struct io_uring_cqe *cqe)
{
    if ((cqe->flags & IORING_CQE_F_MORE) == 0 && !atomic_load(&t->stopping)) {
        /* After a failure (out of fds or memory) accepting again at once would fail again
         * at once: wait a little instead of spinning. */
        if (cqe->res < 0)
            t->accept_retry_ns = now_ns() + ACCEPT_RETRY_NS;
        else
            accept_arm(t);
    }
    if (cqe->res < 0)
        return;
    int fd = cqe->res;
    /* Connections that have not said HELLO are capped: strangers cannot pile them up. */
    conn *c = conns_pending(t) < PENDING_CONNS_MAX ? conn_new(t, fd) : NULL;
    if (c == NULL) {
        close(fd);
        stat_add(&t->base.stats.conns_refused, 1);
        return;
    }
    socklen_t len = sizeof c->addr;
    getpeername(fd, (struct sockaddr *)&c->addr, &len);
    recv_arm(t, c);
}

static void wake_arm(tcp *t)
{
    struct io_uring_sqe *sqe = sqe_get(t);
    io_uring_prep_read(sqe, t->net_wake_fd, &t->wake_val, sizeof t->wake_val, 0);
    io_uring_sqe_set_data(sqe, &t->wake_op);
}

/* ---- the net thread ---- */

static void cqe_dispatch(tcp *t, const struct io_uring_cqe *cqe)
{
    op *o = io_uring_cqe_get_data(cqe);
    switch (o->kind) {
    case OP_ACCEPT:
        accept_done(t, cqe);
        break;
    case OP_RECV:
        recv_done(t, container_of(o, conn, recv_op), cqe);
        break;
    case OP_SEND:
        send_done(t, container_of(o, frame, op), cqe);
        break;
    case OP_CONNECT:
        connect_done(t, container_of(o, conn, connect_op), cqe->res);
        break;
    case OP_WAKE:
        if (!atomic_load(&t->stopping))
            wake_arm(t);
        break;
    default:
        RR_UNREACHABLE();
    }
}

/* Dials whose time came; returns the nearest future dial time (UINT64_MAX: none). */
static uint64_t dials_due(tcp *t)
{
    uint64_t now = now_ns(), next = UINT64_MAX;
    for (uint32_t i = 0; i < t->net_n_peers; i++) {
        peer *p = &t->peers[i];
        if (!p->active || !p->dialer || p->conn != NULL || p->dialing != NULL)
            continue;
        if (p->next_dial_ns <= now)
            peer_dial(t, p);
        else if (p->next_dial_ns < next)
            next = p->next_dial_ns;
    }
    return next;
}

static void cqes_drain(tcp *t)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&t->ring, head, cqe)
    {
        cqe_dispatch(t, cqe);
        n++;
    }
    io_uring_cq_advance(&t->ring, n);
}

/* Closes the connections rr_transport_tcp_disconnect asked for. */
static void disconnects_take(tcp *t)
{
    uint64_t bits = atomic_exchange(&t->disconnect_mask, 0);
    for (uint32_t i = 0; i < t->net_n_peers; i++)
        if ((bits & (1ull << i)) != 0 && t->peers[i].conn != NULL)
            conn_fail(t, t->peers[i].conn);
}

/* Retires p: no more dials or sends; what it had queued is dropped. The raft thread no
 * longer pushes to its outbox (its id is gone from the slots before the bit is set). */
static void peer_retire(tcp *t, peer *p)
{
    p->active = false;
    if (p->dialing != NULL)
        conn_fail(t, p->dialing);
    if (p->conn != NULL)
        conn_fail(t, p->conn);
    peer_snap_abort(t, p);
    rr_message m;
    if (p->has_carry) {
        atomic_fetch_sub_explicit(&p->queued_bytes, msg_account_bytes(&p->carry),
                                  memory_order_relaxed);
        rr_message_free(&p->carry);
        p->has_carry = false;
    }
    while (msg_ring_pop(&p->outbox, &m)) {
        atomic_fetch_sub_explicit(&p->queued_bytes, msg_account_bytes(&m), memory_order_relaxed);
        rr_message_free(&m);
        stat_add(&t->base.stats.msgs_dropped_send, 1);
    }
}

/* Takes the raft thread's peer commands (tcp_add_peer, tcp_remove_peer). */
static void peers_take(tcp *t)
{
    /* acquire: pairs with the raft thread's release; the slot's fields are set up. */
    uint64_t added = atomic_exchange_explicit(&t->added_mask, 0, memory_order_acquire);
    uint64_t removed = atomic_exchange_explicit(&t->removed_mask, 0, memory_order_acquire);
    for (uint32_t i = 0; i < RR_NODES_MAX; i++) {
        if ((added & (1ull << i)) != 0) {
            t->peers[i].active = true;
            if (i + 1 > t->net_n_peers)
                t->net_n_peers = i + 1;
        }
        if ((removed & (1ull << i)) != 0)
            peer_retire(t, &t->peers[i]);
    }
}

/* The transport whose rr_transport_on_receive function this thread is running, if any:
 * its flushes need no wake-up, since the net thread pumps right after. */
static _Thread_local const tcp *tl_receiving;

/* Received messages wait in the inbox: let the on-receive function take them on this
 * thread, or wake the raft thread. */
static void inbox_deliver(tcp *t)
{
    t->inbox_pushed = false;
    uint64_t bytes = t->inbox_bytes;
    t->inbox_bytes = 0;
    /* acquire: pairs with rr_transport_on_receive's release. */
    rr_transport_receive_fn fn = atomic_load_explicit(&t->base.on_receive, memory_order_acquire);
    if (fn != NULL) {
        tl_receiving = t;
        bool took = fn(atomic_load_explicit(&t->base.on_receive_ctx, memory_order_relaxed), bytes);
        tl_receiving = NULL;
        if (took)
            return;
    }
    transport_wake(&t->base);
}

static void net_turn(tcp *t)
{
    /* Exchange before draining the outboxes: a send queued after this sees 0 and writes
     * the eventfd, so it is never left waiting (pairs with tcp_flush). */
    atomic_exchange(&t->net_wake_pending, 0);
    /* Before the commands and the pump: what the on-receive function queues (sends, peers
     * added or removed) is taken in this same turn. */
    if (t->inbox_pushed)
        inbox_deliver(t);
    peers_take(t);
    disconnects_take(t);
    uint64_t next = dials_due(t);
    if (t->accept_retry_ns != 0 && t->accept_retry_ns <= now_ns()) {
        t->accept_retry_ns = 0;
        accept_arm(t);
    }
    if (t->accept_retry_ns != 0 && t->accept_retry_ns < next)
        next = t->accept_retry_ns;
    for (uint32_t i = 0; i < t->net_n_peers; i++)
        if (t->peers[i].active)
            peer_pump(t, &t->peers[i]);
    struct io_uring_cqe *cqe;
    if (next == UINT64_MAX) {
        io_uring_submit_and_wait(&t->ring, 1);
    } else {
        uint64_t now = now_ns(), wait = next > now ? next - now : 0;
        struct __kernel_timespec ts = {.tv_sec = (long long)(wait / 1000000000u),
                                       .tv_nsec = (long long)(wait % 1000000000u)};
        io_uring_submit_and_wait_timeout(&t->ring, &cqe, 1, &ts, NULL);
    }
    cqes_drain(t);
}

static bool sends_settled(const tcp *t)
{
    for (uint32_t i = 0; i < t->net_n_peers; i++)
        for (uint32_t k = 0; k < FRAMES_PER_PEER; k++)
            if (t->peers[i].frames[k].state != FRAME_FREE)
                return false;
    for (uint32_t i = 0; i < CONNS_MAX; i++)
        if (t->conns[i] != NULL)
            return false;
    return true;
}

/* Stop: close every connection and wait (bounded) for the kernel to give back every
 * frame, so no buffer is freed under a zero-copy send. */
static void net_stop(tcp *t)
{
    for (uint32_t i = 0; i < CONNS_MAX; i++)
        if (t->conns[i] != NULL)
            conn_fail(t, t->conns[i]);
    shutdown(t->listen_fd, SHUT_RDWR);
    for (int round = 0; round < STOP_DRAIN_ROUNDS && !sends_settled(t); round++) {
        struct io_uring_cqe *cqe;
        struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 5000000};
        io_uring_submit_and_wait_timeout(&t->ring, &cqe, 1, &ts, NULL);
        cqes_drain(t);
    }
}

static void *net_main(void *arg)
{
    tcp *t = arg;
    char name[16]; /* perf report --sort comm, top -H */
    snprintf(name, sizeof name, "rr-net-%llu", (unsigned long long)t->base.cfg.self);
    (void)pthread_setname_np(pthread_self(), name);
    accept_arm(t);
    wake_arm(t);
    while (!atomic_load(&t->stopping))
        net_turn(t);
    net_stop(t);
    return NULL;
}

/* ---- the raft thread's side ---- */

static int tcp_send(rr_transport *base, rr_message *m)
{
    tcp *t = (tcp *)base;
    int slot = transport_peer_slot(base, m->to);
    if (slot < 0 || !rr_codec_message_sendable(m)) {
        rr_message_free(m);
        stat_add(&base->stats.msgs_dropped_send, 1);
        return -EINVAL;
    }
    peer *p = &t->peers[slot];
    uint64_t bytes = msg_account_bytes(m);
    /* relaxed: the bound is advisory across threads (off by what is in flight right now),
     * and the ring orders the message itself. */
    uint64_t queued = atomic_load_explicit(&p->queued_bytes, memory_order_relaxed);
    if (queued + bytes > base->cfg.send_queue_bytes_max) {
        rr_message_free(m);
        stat_add(&base->stats.msgs_dropped_send, 1);
        transport_report(base, slot, RR_TRANSPORT_UNREACHABLE);
        return -ENOBUFS;
    }
    atomic_fetch_add_explicit(&p->queued_bytes, bytes, memory_order_relaxed);
    if (!msg_ring_push(&p->outbox, m)) {
        atomic_fetch_sub_explicit(&p->queued_bytes, bytes, memory_order_relaxed);
        rr_message_free(m);
        stat_add(&base->stats.msgs_dropped_send, 1);
        transport_report(base, slot, RR_TRANSPORT_UNREACHABLE);
        return -ENOBUFS;
    }
    return 0;
}

static void tcp_flush(rr_transport *base)
{
    tcp *t = (tcp *)base;
    if (tl_receiving == t) /* the net thread itself, in inbox_deliver: it pumps next */
        return;
    /* seq_cst: ordered after the pushes (see net_turn). */
    if (atomic_exchange(&t->net_wake_pending, 1) != 0)
        return;
    uint64_t one = 1;
    ssize_t n = write(t->net_wake_fd, &one, sizeof one);
    (void)n; /* EAGAIN only when the counter is saturated: readable anyway */
}

static uint32_t tcp_recv(rr_transport *base, rr_message *out, uint32_t max)
{
    tcp *t = (tcp *)base;
    uint32_t n = 0;
    while (n < max && msg_ring_pop(&t->inbox, &out[n]))
        n++;
    return n;
}

static int tcp_add_peer(rr_transport *base, rr_node_id_t id, const char *host, uint16_t port)
{
    tcp *t = (tcp *)base;
    peer *p = &t->peers[base->n_peers];
    memset(p, 0, sizeof(*p));
    p->addr.sin_family = AF_INET;
    p->addr.sin_port = htons(port);
    if (host == NULL || inet_pton(AF_INET, host, &p->addr.sin_addr) != 1 || port == 0)
        return -EINVAL;
    p->id = id;
    p->slot = (int)base->n_peers;
    p->dialer = base->cfg.self < id;
    p->loopback = (ntohl(p->addr.sin_addr.s_addr) >> 24) == 127;
    atomic_init(&p->queued_bytes, 0);
    int rc = msg_ring_init(&p->outbox, RR_TRANSPORT_QUEUE_MSGS_MAX);
    for (uint32_t k = 0; k < FRAMES_PER_PEER && rc == 0; k++) {
        frame *f = &p->frames[k];
        f->op.kind = OP_SEND;
        f->peer = p;
        f->w.stage = malloc(FRAME_STAGE_BYTES);
        f->w.stage_cap = FRAME_STAGE_BYTES;
        f->w.iov = calloc(FRAME_IOVS, sizeof(struct iovec));
        f->w.refs = calloc(FRAME_IOVS, sizeof(rr_buf *));
        f->w.iov_cap = FRAME_IOVS;
        if (f->w.stage == NULL || f->w.iov == NULL || f->w.refs == NULL)
            rc = -ENOMEM;
    }
    if (rc != 0)
        return rc; /* tcp_destroy frees what was made (n_peers + 1 slots) */
    /* release: the slot is set up before the net thread takes its bit (peers_take). */
    atomic_fetch_or_explicit(&t->added_mask, 1ull << p->slot, memory_order_release);
    tcp_flush(base);
    return 0;
}

static void tcp_remove_peer(rr_transport *base, int slot)
{
    tcp *t = (tcp *)base;
    /* release: our last push to the slot's outbox is visible to the drain in peer_retire. */
    atomic_fetch_or_explicit(&t->removed_mask, 1ull << slot, memory_order_release);
    tcp_flush(base);
}

static int tcp_start(rr_transport *base)
{
    tcp *t = (tcp *)base;
    int rc = pthread_create(&t->thread, NULL, net_main, t);
    if (rc != 0)
        return -rc;
    t->started = true;
    return 0;
}

static void peer_destroy(peer *p)
{
    if (p->has_carry)
        rr_message_free(&p->carry);
    if (p->snapping)
        rr_message_free(&p->snap);
    msg_ring_destroy(&p->outbox);
    for (uint32_t k = 0; k < FRAMES_PER_PEER; k++) {
        frame *f = &p->frames[k];
        rr_codec_writer_release(&f->w);
        free(f->w.stage);
        free(f->w.iov);
        free(f->w.refs);
    }
}

static void tcp_destroy(rr_transport *base)
{
    tcp *t = (tcp *)base;
    if (t->started) {
        atomic_store(&t->stopping, true);
        uint64_t one = 1;
        ssize_t n = write(t->net_wake_fd, &one, sizeof one);
        (void)n;
        pthread_join(t->thread, NULL);
    }
    if (t->ring_ok)
        io_uring_queue_exit(&t->ring); /* cancels what is left; the kernel lets go of it */
    for (uint32_t i = 0; i < CONNS_MAX; i++) {
        if (t->conns[i] != NULL) {
            t->conns[i]->inflight = 0;
            conn_free(t, t->conns[i]);
        }
    }
    for (uint32_t i = 0; i < base->n_peers + 1 && i < RR_NODES_MAX; i++)
        peer_destroy(&t->peers[i]);
    msg_ring_destroy(&t->inbox);
    if (t->br != NULL)
        munmap(t->br, t->br_bytes);
    free(t->bufs);
    if (t->listen_fd >= 0)
        close(t->listen_fd);
    if (t->net_wake_fd >= 0)
        close(t->net_wake_fd);
    transport_base_destroy(base);
    free(t);
}

static const struct transport_ops tcp_ops = {
    .add_peer = tcp_add_peer,
    .remove_peer = tcp_remove_peer,
    .start = tcp_start,
    .send = tcp_send,
    .flush = tcp_flush,
    .recv = tcp_recv,
    .destroy = tcp_destroy,
};

static int listen_open(tcp *t)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(t->base.cfg.listen_port)};
    if (inet_pton(AF_INET, t->base.cfg.listen_host, &a.sin_addr) != 1)
        return -EINVAL;
    t->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (t->listen_fd < 0)
        return -errno;
    int one = 1;
    setsockopt(t->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(t->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(t->listen_fd, 64) != 0)
        return -errno;
    socklen_t len = sizeof a;
    if (getsockname(t->listen_fd, (struct sockaddr *)&a, &len) != 0)
        return -errno;
    t->port = ntohs(a.sin_port);
    return 0;
}

/* The provided buffer ring: RECV_BUFS buffers of RECV_BUF_BYTES, registered as group
 * RECV_BGID (liburing 2.3 has no io_uring_setup_buf_ring, so by hand). */
static int bufs_setup(tcp *t)
{
    t->br_bytes = RECV_BUFS * sizeof(struct io_uring_buf);
    void *mem = mmap(NULL, t->br_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED)
        return -errno;
    t->br = mem;
    t->bufs = aligned_alloc(4096, (size_t)RECV_BUFS * RECV_BUF_BYTES);
    if (t->bufs == NULL)
        return -ENOMEM;
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)t->br, .ring_entries = RECV_BUFS, .bgid = RECV_BGID};
    int rc = io_uring_register_buf_ring(&t->ring, &reg, 0);
    if (rc != 0)
        return rc;
    io_uring_buf_ring_init(t->br);
    for (uint16_t i = 0; i < RECV_BUFS; i++)
        io_uring_buf_ring_add(t->br, t->bufs + (size_t)i * RECV_BUF_BYTES, RECV_BUF_BYTES, i,
                              io_uring_buf_ring_mask(RECV_BUFS), i);
    io_uring_buf_ring_advance(t->br, RECV_BUFS);
    return 0;
}

static int tcp_setup(tcp *t)
{
    int rc = msg_ring_init(&t->inbox, t->base.cfg.recv_queue_msgs);
    if (rc != 0)
        return rc;
    t->net_wake_fd = eventfd(0, EFD_CLOEXEC);
    if (t->net_wake_fd < 0)
        return -errno;
    rc = listen_open(t);
    if (rc != 0)
        return rc;
    rc = io_uring_queue_init(RING_ENTRIES, &t->ring, 0);
    if (rc != 0)
        return rc;
    t->ring_ok = true;
    t->zc_report_usage = true;
    return bufs_setup(t);
}

int rr_transport_tcp_new(const rr_transport_config *cfg, rr_transport **out)
{
    if (!transport_config_valid(cfg))
        return -EINVAL;
    tcp *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    t->listen_fd = -1;
    t->net_wake_fd = -1;
    t->accept_op.kind = OP_ACCEPT;
    t->wake_op.kind = OP_WAKE;
    atomic_init(&t->net_wake_pending, 0);
    atomic_init(&t->stopping, false);
    atomic_init(&t->disconnect_mask, 0);
    atomic_init(&t->added_mask, 0);
    atomic_init(&t->removed_mask, 0);
    int rc = transport_base_init(&t->base, &tcp_ops, cfg);
    if (rc == 0)
        rc = tcp_setup(t);
    if (rc != 0) {
        tcp_destroy(&t->base);
        return rc;
    }
    *out = &t->base;
    return 0;
}

int rr_transport_tcp_disconnect(rr_transport *base, rr_node_id_t id)
{
    int slot = transport_peer_slot(base, id);
    if (base->ops != &tcp_ops || slot < 0)
        return -EINVAL;
    tcp *t = (tcp *)base;
    atomic_fetch_or(&t->disconnect_mask, 1ull << slot);
    tcp_flush(base);
    return 0;
}

uint16_t rr_transport_port(const rr_transport *base)
{
    const tcp *t = (const tcp *)base;
    return base->ops == &tcp_ops ? t->port : 0;
}
