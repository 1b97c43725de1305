/*
 * transport.h: moving Raft messages between nodes — contract of the net/ module.
 *
 * Two transports share this interface:
 * - TCP on io_uring (rr_transport_tcp_new): one connection per peer pair (the node with
 *   the smaller id dials, the other accepts), TCP_NODELAY, messages encoded by the wire
 *   codec (ringraft/codec.h). Frames of zc_min_bytes and more go out with
 *   IORING_OP_SENDMSG_ZC (not to loopback peers unless zc_on_loopback), others with a plain
 *   IORING_OP_SENDMSG; receives are one multishot IORING_OP_RECV per connection into a
 *   provided buffer ring.
 * - In-process (rr_transport_inproc_new): nodes of one process joined by SPSC rings, one
 *   per ordered pair, for tests and benchmarks. Messages move without encoding.
 *
 * Threads. Every function below is called by one thread per transport, the raft thread
 * (the one driving the rawnode), except rr_transport_*_new and _start (before the transport
 * is shared) and rr_transport_free (after the raft thread stopped using it). Peers may be
 * added and removed before or after start (membership changes, in log order).
 * The TCP transport runs its own net thread, which owns the io_uring, the sockets, the
 * frames and the receive buffers. When idle the net thread sleeps in io_uring_submit_and_
 * wait_timeout (woken by an eventfd read or a reconnect timer), and the raft thread sleeps
 * on rr_transport_wait_fd(): nothing busy-polls.
 *
 * Ownership.
 * - rr_transport_send() takes the message: its struct is moved (the caller's copy is
 *   zeroed), and from then on the transport owns its arrays and buffer references,
 *   whatever the return value. Payloads are not copied: the net thread encodes headers
 *   into its own frames and sends entry and snapshot bytes from their rr_bufs (payloads
 *   under 512 B are copied into the frame, cheaper than an iovec). A buffer under a
 *   zero-copy send keeps its reference until the send's notification completion.
 * - rr_transport_recv() hands over received messages: the caller owns them and frees them
 *   with rr_message_free(). Their entries and snapshot bytes point into the frame's
 *   receive buffer (one rr_buf per frame, holding the bytes copied once out of the
 *   io_uring provided buffer, which goes straight back to the kernel), each with one
 *   reference, so a follower can persist the received entry encoding without a copy.
 *
 * Limits: each peer's send queue is bounded in bytes (send_queue_bytes_max, counting
 * messages queued and frames not yet released by the kernel, but not the data of a
 * snapshot that streams in chunks: any snapshot up to RR_CODEC_SNAPSHOT_BYTES_MAX can be
 * sent whatever the bound) and in messages
 * (RR_TRANSPORT_QUEUE_MSGS_MAX); a message that does not fit is dropped, the send returns
 * -ENOBUFS, and the peer is reported unreachable. Received messages wait in a bounded
 * ring; when the raft thread falls behind, the net thread drops (counted in stats).
 *
 * Reports: the core learns about peers through rr_transport_reports(): UNREACHABLE (a
 * connection went away, a dial failed, a message was dropped), and SNAPSHOT_DONE /
 * SNAPSHOT_FAILED for every MsgSnap sent over TCP, streamed or inline (in-process: none);
 * feed them to rr_rawnode_report_unreachable() and rr_rawnode_report_snapshot().
 *
 * Errors are 0 or negative (-errno or RR_ERR_*), as stated per function.
 */
#ifndef RINGRAFT_TRANSPORT_H
#define RINGRAFT_TRANSPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "ringraft/codec.h"
#include "ringraft/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- limits and defaults (tied to the codec's in transport.c) ---- */

#define RR_TRANSPORT_QUEUE_MSGS_MAX           4096u       /* per peer send ring, power of two */
#define RR_TRANSPORT_RECV_MSGS_DEFAULT        8192u       /* receive ring, power of two */
#define RR_TRANSPORT_SEND_QUEUE_BYTES_DEFAULT (64u << 20) /* per peer */
/* Frames of this many bytes and more use SENDMSG_ZC, to peers not on loopback. On loopback
 * and over a veth pair into another network namespace the kernel copies zero-copy sends
 * anyway (delivery to a local socket, Documentation/networking/msg_zerocopy.rst) and says
 * so for every frame (IORING_NOTIF_USAGE_ZC_COPIED); bench/micro/bench_net.c measured
 * SENDMSG_ZC below SENDMSG at every frame size tried on both (BENCHMARKS.md, net), so
 * loopback peers never use it unless zc_on_loopback is set. No path to another host exists
 * on the machine we measure on: for real interfaces this default is not measured — run
 * bench_net between two hosts. A wrong guess is bounded: a connection whose zero-copy
 * frames the kernel copies gives zero-copy up (zc_keep_when_copied). */
#define RR_TRANSPORT_ZC_MIN_BYTES_DEFAULT   (256u << 10)
#define RR_TRANSPORT_ZC_OFF                 UINT32_MAX
#define RR_TRANSPORT_RECONNECT_MIN_MS       20u
#define RR_TRANSPORT_RECONNECT_MAX_MS       2000u
#define RR_TRANSPORT_SNAP_CHUNK_BYTES       (256u << 10)
#define RR_TRANSPORT_SNAPSHOT_BYTES_DEFAULT (1ull << 30) /* reassembly bound on receive */

typedef struct rr_transport rr_transport;

typedef struct rr_transport_config {
    uint64_t cluster_id; /* both sides of a connection must agree */
    rr_node_id_t self;   /* nonzero */
    /* TCP only: IPv4 address and port to listen on; port 0 picks one (rr_transport_port). */
    char listen_host[64];
    uint16_t listen_port;
    uint64_t send_queue_bytes_max; /* per peer */
    uint32_t recv_queue_msgs;      /* power of two */
    uint32_t zc_min_bytes;         /* RR_TRANSPORT_ZC_OFF: never zero-copy */
    bool zc_on_loopback;           /* apply zc_min_bytes to 127.0.0.0/8 peers too (benchmarks) */
    /* A connection whose zero-copy frames the kernel reports copied (Linux 6.2+) 16 times
     * in a row sends plainly until it reconnects; true keeps zero-copy (benchmarks). */
    bool zc_keep_when_copied;
    uint32_t reconnect_min_ms;
    uint32_t reconnect_max_ms;
    uint32_t snap_chunk_bytes;   /* <= RR_CODEC_CHUNK_BYTES_MAX */
    uint64_t snapshot_bytes_max; /* largest streamed snapshot accepted */
    bool log_refusals;           /* print refused connections to stderr */
} rr_transport_config;

/* Fills the defaults above. */
void rr_transport_config_init(rr_transport_config *cfg, uint64_t cluster_id, rr_node_id_t self);

typedef enum rr_transport_report_kind {
    RR_TRANSPORT_UNREACHABLE = 1,
    RR_TRANSPORT_SNAPSHOT_DONE = 2,
    RR_TRANSPORT_SNAPSHOT_FAILED = 3,
} rr_transport_report_kind;

typedef struct rr_transport_report {
    rr_node_id_t peer;
    uint8_t kind; /* rr_transport_report_kind */
} rr_transport_report;

typedef struct rr_transport_stats {
    uint64_t msgs_sent; /* messages handed to the kernel */
    uint64_t frames_sent;
    uint64_t frames_zc; /* of which zero-copy */
    /* Zero-copy frames the kernel copied anyway (loopback, a device without scatter-gather
     * or checksum offload; Linux 6.2+ reports it, older kernels count none): if most are,
     * zero-copy costs more than it saves here, so raise zc_min_bytes. */
    uint64_t frames_zc_copied;
    uint64_t bytes_sent;
    uint64_t msgs_received;
    uint64_t msgs_dropped_send; /* send queue full or peer gone */
    uint64_t msgs_dropped_recv; /* receive ring full or misaddressed */
    uint64_t conns_refused;     /* bad handshake, garbage, wrong cluster */
    uint64_t conns_closed;
    uint64_t dials;
} rr_transport_stats;

/* ---- TCP on io_uring ---- */

/* Creates the transport and binds its listening socket (nothing runs yet). Returns 0,
 * -EINVAL (bad config), -ENOMEM, or the -errno of socket/bind/listen/io_uring setup. */
int rr_transport_tcp_new(const rr_transport_config *cfg, rr_transport **out);
/* The bound listening port (useful with listen_port 0). */
uint16_t rr_transport_port(const rr_transport *t);
/* Closes the connection to peer id as if it had failed (reported unreachable; a dialer
 * redials after its backoff). For membership changes and tests. Raft thread. Returns 0 or
 * -EINVAL (unknown peer, not a TCP transport). */
int rr_transport_tcp_disconnect(rr_transport *t, rr_node_id_t id);

/* ---- in-process ---- */

typedef struct rr_transport_hub rr_transport_hub;

/* A hub joins up to RR_NODES_MAX in-process transports. Returns 0 or -ENOMEM. Free it
 * after every transport on it. */
int rr_transport_hub_new(rr_transport_hub **out);
void rr_transport_hub_free(rr_transport_hub *hub);
/* Creates an in-process transport for cfg->self on hub. Returns 0, -EINVAL (id 0 or
 * taken, hub full), -ENOMEM, or the -errno of eventfd(). */
int rr_transport_inproc_new(rr_transport_hub *hub, const rr_transport_config *cfg,
                            rr_transport **out);

/* ---- common to both ---- */

/* Declares a peer (TCP: where it listens), before or after rr_transport_start (after: the
 * raft thread; the TCP net thread learns it through its command masks and dials or accepts
 * it from its next turn). Returns 0, -EINVAL (id 0, self, a bad address), -EEXIST (a
 * present peer) or -ENOSPC (RR_NODES_MAX peer slots used: a removed peer's slot is not
 * reused, so adds plus removes over the transport's life are bounded by RR_NODES_MAX). */
int rr_transport_add_peer(rr_transport *t, rr_node_id_t id, const char *host, uint16_t port);
/* Forgets a peer: no more sends to it (-EINVAL), its connection closed, its queued
 * messages dropped, no more reports about it, and its connections refused. Raft thread (or
 * before start). Returns 0 or -ENOENT (not a present peer). */
int rr_transport_remove_peer(rr_transport *t, rr_node_id_t id);
/* Starts the net thread (TCP; a no-op in-process). Returns 0 or -errno. */
int rr_transport_start(rr_transport *t);
/* Stops, joins the net thread, releases every message and buffer. NULL is a no-op. */
void rr_transport_free(rr_transport *t);

/* Queues m for m->to, taking it (see Ownership). Returns 0; -ENOBUFS when the peer's queue
 * is full (dropped, peer reported unreachable); -EINVAL for an unknown peer or a message
 * that may not go on the wire (dropped). Raft thread. */
int rr_transport_send(rr_transport *t, rr_message *m);
/* Makes the messages queued so far go out (wakes the net thread once for a batch, so that
 * several messages share a frame). Raft thread. */
void rr_transport_flush(rr_transport *t);
/* Moves up to max received messages into out; returns how many. Raft thread. */
uint32_t rr_transport_recv(rr_transport *t, rr_message *out, uint32_t max);
/* Moves up to max pending reports into out; returns how many. Raft thread. */
uint32_t rr_transport_reports(rr_transport *t, rr_transport_report *out, uint32_t max);
/* A non-blocking eventfd that becomes readable when messages or reports arrive. The raft
 * thread polls it, reads it (8 bytes; EAGAIN is harmless) and then drains recv and reports
 * until empty: a wake-up covers everything that arrived before it. */
int rr_transport_wait_fd(const rr_transport *t);
/* Sleeps until the wait fd is readable or timeout_ms passes, then consumes it. Returns 1
 * if woken, 0 on timeout, or -errno. Raft thread. */
int rr_transport_wait(rr_transport *t, int timeout_ms);
/* Optional: receive on the net thread without a hand-off. After a turn that queued
 * received messages, the TCP net thread calls fn(ctx, bytes) instead of waking the raft
 * thread; bytes is the size of what they came in (frame bodies, streamed snapshot data),
 * so fn can leave large receives to the raft thread, which processes them while the net
 * thread receives the next.
 * fn returns true when it did the raft thread's part itself — drained rr_transport_recv
 * (and reports), sent, flushed — and false to have the raft thread woken as usual. While
 * fn runs, the net thread acts as the raft thread: the caller guarantees the two never
 * call the transport at once (ringraft's node runs its raft turn there only while its raft
 * thread sleeps, under the lock of the raft role). What fn sends goes out in the same
 * net-thread turn, without a wake-up. At low load this saves two thread hand-offs per
 * received message (net -> raft, raft -> net: BENCHMARKS.md, window 1). Set it once,
 * before or after start; ctx must outlive the transport. In-process transports, which
 * have no net thread, never call it. */
typedef bool (*rr_transport_receive_fn)(void *ctx, uint64_t bytes);
void rr_transport_on_receive(rr_transport *t, rr_transport_receive_fn fn, void *ctx);
/* Counters (relaxed snapshots of the net thread's). Any thread. */
void rr_transport_stats_get(const rr_transport *t, rr_transport_stats *out);

#ifdef __cplusplus
}
#endif
#endif
