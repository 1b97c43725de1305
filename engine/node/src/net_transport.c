/* net_transport.c: rr_node_net_ops over a net/ transport (TCP on io_uring or in-process). */
#include "ringraft/node.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ringraft/transport.h"

/* Consumes a pending wake-up of an eventfd before draining what it announced. The fd may
 * be blocking (its owner's own waits rely on that): read only when poll says it is set. */
static void reset_fd(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (fd >= 0 && poll(&p, 1, 0) == 1) {
        uint64_t v;
        (void)!read(fd, &v, sizeof v);
    }
}

static void nt_send(void *ctx, rr_message *m)
{
    /* A refused message is dropped and its peer reported unreachable by the transport. */
    (void)rr_transport_send(ctx, m);
}

static void nt_flush(void *ctx)
{
    rr_transport_flush(ctx);
}

static uint32_t nt_recv(void *ctx, rr_message *out, uint32_t max)
{
    rr_transport *t = ctx;
    reset_fd(rr_transport_wait_fd(t));
    return rr_transport_recv(t, out, max);
}

static uint32_t nt_reports(void *ctx, rr_node_net_report *out, uint32_t max)
{
    rr_transport_report reps[RR_NODES_MAX];
    uint32_t want = max < RR_NODES_MAX ? max : RR_NODES_MAX;
    uint32_t n = rr_transport_reports(ctx, reps, want);
    for (uint32_t i = 0; i < n; i++) {
        out[i].peer = reps[i].peer;
        out[i].kind = reps[i].kind == RR_TRANSPORT_UNREACHABLE     ? RR_NODE_NET_UNREACHABLE
                      : reps[i].kind == RR_TRANSPORT_SNAPSHOT_DONE ? RR_NODE_NET_SNAPSHOT_DONE
                                                                   : RR_NODE_NET_SNAPSHOT_FAILED;
    }
    return n;
}

/* A membership change's context is the new member's transport address, "host:port" (IPv4
 * dotted quad; rrkv passes it). An empty context leaves the peer to whoever declared it. */
static int nt_add_peer(void *ctx, rr_node_id_t id, const uint8_t *context, uint32_t len)
{
    char addr[64];
    if (len == 0 || len >= sizeof addr)
        return -EINVAL;
    memcpy(addr, context, len);
    addr[len] = '\0';
    char *colon = strrchr(addr, ':');
    if (colon == NULL || colon[1] == '\0')
        return -EINVAL;
    *colon = '\0';
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (*end != '\0' || port == 0 || port > 65535)
        return -EINVAL;
    return rr_transport_add_peer(ctx, id, addr, (uint16_t)port);
}

static void nt_remove_peer(void *ctx, rr_node_id_t id)
{
    (void)rr_transport_remove_peer(ctx, id); /* -ENOENT: never known here; nothing to do */
}

static int nt_fd(void *ctx)
{
    return rr_transport_wait_fd(ctx);
}

static void nt_close(void *ctx)
{
    rr_transport_free(ctx);
}

static void nt_counters(void *ctx, rr_node_net_counters *out)
{
    rr_transport_stats st;
    rr_transport_stats_get(ctx, &st);
    *out = (rr_node_net_counters){.bytes_sent = st.bytes_sent,
                                  .frames_sent = st.frames_sent,
                                  .frames_zero_copy = st.frames_zc,
                                  .msgs_dropped = st.msgs_dropped_send + st.msgs_dropped_recv};
}

static void nt_on_receive(void *ctx, bool (*fn)(void *arg, uint64_t bytes), void *arg)
{
    rr_transport_on_receive(ctx, fn, arg);
}

static const rr_node_net_ops net_transport_ops = {
    .send = nt_send,
    .flush = nt_flush,
    .recv = nt_recv,
    .reports = nt_reports,
    .add_peer = nt_add_peer,
    .remove_peer = nt_remove_peer,
    .wait_fd = nt_fd,
    .close = nt_close,
    .counters = nt_counters,
    .on_receive = nt_on_receive,
};

const rr_node_net_ops *rr_node_net_transport(void)
{
    return &net_transport_ops;
}
