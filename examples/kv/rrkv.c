/*
 * rrkv: the replicated key-value server (issue 9), one process per node, built on the
 * public rr_node_* API over the WAL and the TCP transport, serving HTTP with libmicrohttpd.
 *
 *   rrkv --id N --cluster http://H:P1,http://H:P2,... --port HTTP_PORT [--join]
 *        [--data-dir DIR] [--http-cluster URL,URL,...] [--tick-ms 100] [--election-ticks 10]
 *        [--snapshot-every 10000] [--snapshot-keep 10000] [--request-timeout-ms 3000]
 *        [--threads 4] [--verbose]
 *
 * Command line and HTTP API as etcd's raftexample (README.md). Node i's raft address is
 * host:port of the i-th --cluster URL; a node added later (POST) has the address of its
 * POST body. The HTTP URL of node i, for redirects to the leader, is the i-th
 * --http-cluster URL when given, else http://host:(raft port + 1) — raftexample's Procfile
 * layout (raft 12379, HTTP 12380).
 *
 * Request life: an MHD thread checks the request and leadership, suspends the connection
 * (MHD_suspend_connection) and hands the work to the node (propose, read barrier, member
 * change). The completion callback runs on the node's apply thread, records the answer and
 * resumes the connection; MHD calls the handler again, which sends the answer. A reaper
 * thread answers 503 to requests that waited longer than --request-timeout-ms (the outcome
 * is then unknown). No MHD thread blocks on the engine.
 *
 * Membership: POST /id commits an 'M' command (id's address, kept in the state machine and
 * its snapshots, so a node that catches up from a snapshot still learns every address),
 * then rr_node_add with the address as context. DELETE /id commits an 'R' command (the
 * removed node sees it and stops serving: 410), then rr_node_remove.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kvmap.h"
#include "ringraft/node.h"
#include "ringraft/transport.h"
#include "ringraft/wal.h"

#define CLUSTER_ID           0x72726b76ull /* "rrkv" */
#define URL_BYTES_MAX        256u
#define MSG_BYTES_MAX        160u
#define PENDING_MEMBERS_MAX  (2u * KV_MEMBERS_MAX)
#define REAPER_PERIOD_MS     20u
#define REAPER_BATCH_MAX     256u
#define HTTP_CONNECTIONS_MAX 1024u
#define HTTP_IDLE_TIMEOUT_S  60u

enum method { M_GET = 1, M_PUT, M_POST, M_DELETE, M_OTHER };
enum stage { ST_NEW = 0, ST_WAITING, ST_DONE };

typedef struct server server;

/* One HTTP request. Owned by MHD (freed in on_completed) and, while the engine holds it,
 * by the engine too: refs counts both; srv->lock guards refs, stage and the answer. */
typedef struct req {
    server *srv;
    struct MHD_Connection *conn;
    uint8_t method;
    uint8_t stage;
    bool too_big;
    bool serializable;
    uint32_t refs;
    char key[KV_KEY_BYTES_MAX + 1];
    uint32_t key_len;
    uint8_t *body;
    uint32_t body_len, body_cap;
    uint64_t deadline_ns;
    struct req *prev, *next; /* srv->pending while ST_WAITING */
    /* membership: the second step after the 'M' / 'R' command commits */
    rr_node_id_t member_id;
    char member_addr[KV_ADDR_BYTES_MAX];
    /* the answer */
    unsigned code;
    char msg[MSG_BYTES_MAX];
    char location[URL_BYTES_MAX + KV_KEY_BYTES_MAX * 3 + 32];
} req;

typedef struct opts {
    rr_node_id_t id;
    uint32_t n_cluster;
    char cluster[KV_MEMBERS_MAX][KV_ADDR_BYTES_MAX]; /* "host:port" of node i+1 */
    uint32_t n_http;
    char http[KV_MEMBERS_MAX][URL_BYTES_MAX];
    uint16_t port;
    bool join;
    char data_dir[512];
    uint32_t tick_ms;
    uint32_t election_ticks;
    uint64_t snapshot_every;
    uint64_t snapshot_keep;
    uint32_t timeout_ms;
    uint32_t threads;
    bool verbose;
} opts;

struct server {
    opts o;
    rr_node *node;
    kvmap *kv;
    struct MHD_Daemon *httpd;
    pthread_mutex_t lock; /* pending list, request answers, refs */
    req *pending;
    /* Member changes learnt by the apply thread, taken by the raft thread (wrapped net
     * ops: members_take), because only the raft thread may change the transport. */
    pthread_mutex_t members_lock;
    kv_member members[PENDING_MEMBERS_MAX];
    uint32_t n_members;
    _Atomic bool members_dirty;
    _Atomic bool stopping;
    pthread_t reaper;
    uint64_t stats_last_ns; /* reaper thread: --verbose */
};

static server *g_srv; /* the wrapped net ops' way back (one server per process) */
static rr_node_net_ops g_net_ops;
static const rr_node_net_ops *g_base_net;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- addresses ---------------------------------------------------------------------- */

/* "http://host:port[/...]" or "host:port" -> "host:port". Returns 0 or -EINVAL. */
static int url_to_addr(const char *url, size_t url_len, char *addr)
{
    const char *p = url, *end = url + url_len;
    if (url_len >= 7 && strncmp(p, "http://", 7) == 0)
        p += 7;
    const char *stop = memchr(p, '/', (size_t)(end - p));
    if (stop != NULL)
        end = stop;
    while (end > p && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
        end--;
    size_t n = (size_t)(end - p);
    if (n == 0 || n >= KV_ADDR_BYTES_MAX)
        return -EINVAL;
    memcpy(addr, p, n);
    addr[n] = '\0';
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon == addr)
        return -EINVAL;
    char *e;
    unsigned long port = strtoul(colon + 1, &e, 10);
    if (*e != '\0' || port == 0 || port > 65535)
        return -EINVAL;
    for (const char *c = addr; c < colon; c++)
        if ((*c < '0' || *c > '9') && *c != '.')
            return -EINVAL; /* the transport speaks IPv4 dotted quads */
    return 0;
}

/* The raft address of id: the --cluster list, else what the state machine learnt. */
static bool raft_addr(server *s, rr_node_id_t id, char *addr)
{
    if (id >= 1 && id <= s->o.n_cluster) {
        memcpy(addr, s->o.cluster[id - 1], KV_ADDR_BYTES_MAX);
        return true;
    }
    return kvmap_member_addr(s->kv, id, addr);
}

/* The HTTP base URL of id (no trailing slash). */
static bool http_url(server *s, rr_node_id_t id, char *url)
{
    if (id >= 1 && id <= s->o.n_http) {
        snprintf(url, URL_BYTES_MAX, "%s", s->o.http[id - 1]);
        return true;
    }
    char addr[KV_ADDR_BYTES_MAX];
    if (!raft_addr(s, id, addr))
        return false;
    char *colon = strrchr(addr, ':');
    unsigned long port = strtoul(colon + 1, NULL, 10);
    *colon = '\0';
    snprintf(url, URL_BYTES_MAX, "http://%s:%lu", addr, port + 1);
    return true;
}

/* ---- the net seam: the transport's ops, plus member changes from the state machine ---- */

static void on_member(void *ctx, const kv_member *m)
{
    server *s = ctx;
    if (m->id == s->o.id)
        return;
    pthread_mutex_lock(&s->members_lock);
    if (s->n_members < PENDING_MEMBERS_MAX)
        s->members[s->n_members++] = *m;
    else
        fprintf(stderr, "rrkv: too many member changes at once; %" PRIu64 " dropped\n", m->id);
    pthread_mutex_unlock(&s->members_lock);
    atomic_store(&s->members_dirty, true);
}

/* Raft thread: applies member changes the apply thread learnt. Adds are idempotent
 * (-EEXIST); a removed member found in a restored snapshot is forgotten. The conf change
 * itself reaches the transport through add_peer/remove_peer as well. */
static void members_take(void *net_ctx)
{
    server *s = g_srv;
    if (!atomic_exchange(&s->members_dirty, false))
        return;
    kv_member ms[PENDING_MEMBERS_MAX];
    pthread_mutex_lock(&s->members_lock);
    uint32_t n = s->n_members;
    memcpy(ms, s->members, n * sizeof(kv_member));
    s->n_members = 0;
    pthread_mutex_unlock(&s->members_lock);
    for (uint32_t i = 0; i < n; i++) {
        if (ms[i].removed || ms[i].addr[0] == '\0')
            continue; /* removal: the conf change does it, in log order */
        int rc = g_base_net->add_peer(net_ctx, ms[i].id, (const uint8_t *)ms[i].addr,
                                      (uint32_t)strlen(ms[i].addr));
        if (rc != 0 && rc != -EEXIST)
            fprintf(stderr, "rrkv: adding peer %" PRIu64 " at %s: %s\n", ms[i].id, ms[i].addr,
                    strerror(-rc));
    }
}

static uint32_t kv_net_recv(void *ctx, rr_message *out, uint32_t max)
{
    members_take(ctx);
    return g_base_net->recv(ctx, out, max);
}

/* ---- answers --------------------------------------------------------------------------- */

static void req_answer(req *r, unsigned code, const char *msg)
{
    r->code = code;
    size_t n = strlen(msg);
    if (n > sizeof r->msg - 2)
        n = sizeof r->msg - 2;
    memcpy(r->msg, msg, n);
    r->msg[n] = '\n';
    r->msg[n + 1] = '\0';
}

/* Appends path to url, escaping what is not safe in a Location. */
static void url_append_path(char *out, size_t cap, const char *base, const char *path,
                            bool serializable)
{
    size_t n = (size_t)snprintf(out, cap, "%s/", base);
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)path; *p != '\0' && n + 4 < cap; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || strchr("-._~/", *p) != NULL;
        if (plain) {
            out[n++] = (char)*p;
        } else {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        }
    }
    out[n] = '\0';
    if (serializable && n + 20 < cap)
        snprintf(out + n, cap - n, "?serializable=true");
}

/* Not the leader: 307 to the leader's HTTP URL, or 503 when there is none. */
static void answer_not_leader(req *r, rr_node_id_t leader)
{
    char base[URL_BYTES_MAX];
    if (leader == RR_NODE_ID_NONE || leader == r->srv->o.id || !http_url(r->srv, leader, base)) {
        req_answer(r, MHD_HTTP_SERVICE_UNAVAILABLE, "no leader (election in progress): retry");
        return;
    }
    url_append_path(r->location, sizeof r->location, base, r->key, r->serializable);
    char msg[MSG_BYTES_MAX];
    snprintf(msg, sizeof msg, "not the leader: node %" PRIu64 " is", leader);
    req_answer(r, MHD_HTTP_TEMPORARY_REDIRECT, msg);
}

static void answer_status(req *r, const rr_node_result *res)
{
    switch (res->status) {
    case RR_NODE_COMMITTED:
        r->code = r->method == M_GET ? MHD_HTTP_OK : MHD_HTTP_NO_CONTENT;
        r->msg[0] = '\0';
        break;
    case RR_NODE_NOT_LEADER:
        answer_not_leader(r, res->leader_hint);
        break;
    case RR_NODE_DROPPED:
        req_answer(r, MHD_HTTP_SERVICE_UNAVAILABLE,
                   "dropped by the leader (busy or moving): retry");
        break;
    case RR_NODE_LOST:
        req_answer(r, MHD_HTTP_SERVICE_UNAVAILABLE, "overwritten by a new leader: not applied");
        break;
    default:
        req_answer(r, MHD_HTTP_SERVICE_UNAVAILABLE, "server stopping");
        break;
    }
}

/* Lock held. Drops one reference; frees at zero. */
static void req_unref_locked(req *r)
{
    if (--r->refs > 0)
        return;
    free(r->body);
    free(r);
}

static void pending_unlink(server *s, req *r)
{
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        s->pending = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

/* Apply thread (or the reaper, or the handler on a synchronous failure): records the
 * answer once and resumes the connection. */
static void req_finish(req *r, const rr_node_result *res, bool engine_ref)
{
    server *s = r->srv;
    bool resume = false;
    pthread_mutex_lock(&s->lock);
    if (r->stage == ST_WAITING) {
        answer_status(r, res);
        r->stage = ST_DONE;
        pending_unlink(s, r);
        resume = true;
    }
    pthread_mutex_unlock(&s->lock);
    /* Outside our lock (MHD takes its own); r lives on: the engine's reference is ours. */
    if (resume)
        MHD_resume_connection(r->conn);
    if (engine_ref) {
        pthread_mutex_lock(&s->lock);
        req_unref_locked(r);
        pthread_mutex_unlock(&s->lock);
    }
}

static void op_done(void *ctx, const rr_node_result *res)
{
    req_finish(ctx, res, true);
}

static void member_change_done(void *ctx, const rr_node_result *res)
{
    req *r = ctx;
    if (res->status != RR_NODE_COMMITTED) {
        req_finish(r, res, true);
        return;
    }
    /* The command committed: now the change itself (the engine keeps its reference). */
    int rc = r->method == M_POST ? rr_node_add(r->srv->node, r->member_id, false, r->member_addr,
                                               (uint32_t)strlen(r->member_addr), op_done, r)
                                 : rr_node_remove(r->srv->node, r->member_id, op_done, r);
    if (rc != 0) {
        rr_node_result fail = {.status = rc == -ESHUTDOWN ? RR_NODE_STOPPED : RR_NODE_DROPPED};
        req_finish(r, &fail, true);
    }
}

/* ---- requests ------------------------------------------------------------------------- */

static enum MHD_Result send_answer(req *r)
{
    struct MHD_Response *resp;
    uint8_t *val = NULL;
    uint32_t val_len = 0;
    if (r->method == M_GET && r->code == MHD_HTTP_OK) {
        int found = kvmap_get(r->srv->kv, r->key, r->key_len, &val, &val_len);
        if (found == 0)
            req_answer(r, MHD_HTTP_NOT_FOUND, "key not found");
        else if (found < 0)
            req_answer(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    if (val != NULL)
        resp = MHD_create_response_from_buffer(val_len, val, MHD_RESPMEM_MUST_FREE);
    else
        resp = MHD_create_response_from_buffer(strlen(r->msg), r->msg, MHD_RESPMEM_MUST_COPY);
    if (resp == NULL) {
        free(val);
        return MHD_NO;
    }
    if (r->code == MHD_HTTP_TEMPORARY_REDIRECT)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, r->location);
    if (r->code == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, PUT, POST, DELETE");
    enum MHD_Result ret = MHD_queue_response(r->conn, r->code, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result answer_now(req *r, unsigned code, const char *msg)
{
    req_answer(r, code, msg);
    r->stage = ST_DONE;
    return send_answer(r);
}

static uint8_t method_of(const char *m)
{
    if (strcmp(m, MHD_HTTP_METHOD_GET) == 0)
        return M_GET;
    if (strcmp(m, MHD_HTTP_METHOD_PUT) == 0)
        return M_PUT;
    if (strcmp(m, MHD_HTTP_METHOD_POST) == 0)
        return M_POST;
    if (strcmp(m, MHD_HTTP_METHOD_DELETE) == 0)
        return M_DELETE;
    return M_OTHER;
}

/* The body's size limit: a value for PUT, a URL for POST (GET and DELETE ignore theirs). */
static uint64_t body_limit(const req *r)
{
    return r->method == M_PUT    ? KV_VALUE_BYTES_MAX
           : r->method == M_POST ? URL_BYTES_MAX
                                 : UINT64_MAX;
}

static void body_collect(req *r, const char *data, size_t size)
{
    if (r->method == M_GET || r->method == M_DELETE)
        return; /* a body means nothing there: ignored, like raftexample */
    if (r->too_big || size > body_limit(r) - r->body_len) {
        r->too_big = true;
        return;
    }
    if (r->body_len + size > r->body_cap) {
        uint32_t cap = r->body_cap == 0 ? 4096 : r->body_cap;
        while (cap < r->body_len + size)
            cap *= 2;
        uint8_t *nb = realloc(r->body, cap);
        if (nb == NULL) {
            r->too_big = true;
            return;
        }
        r->body = nb;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, size);
    r->body_len += (uint32_t)size;
}

/* First call: the request line and headers are in. Checks what can be checked now. */
static enum MHD_Result req_begin(server *s, struct MHD_Connection *conn, const char *url,
                                 const char *method, void **con_cls)
{
    req *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return MHD_NO;
    r->srv = s;
    r->conn = conn;
    r->refs = 1;
    r->method = method_of(method);
    const char *q = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "serializable");
    r->serializable = q != NULL && strcmp(q, "true") == 0;
    *con_cls = r;
    size_t key_len = url[0] == '/' ? strlen(url + 1) : 0;
    if (key_len <= KV_KEY_BYTES_MAX && url[0] == '/') {
        memcpy(r->key, url + 1, key_len + 1);
        r->key_len = (uint32_t)key_len;
    }
    /* Early refusals, before any body is read. */
    if (r->method == M_OTHER)
        return answer_now(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
    if (url[0] != '/' || key_len == 0)
        return answer_now(r, MHD_HTTP_BAD_REQUEST, "missing key or node id in the path");
    if (key_len > KV_KEY_BYTES_MAX)
        return answer_now(r, MHD_HTTP_URI_TOO_LONG, "key over 1024 bytes");
    const char *cl =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl != NULL && strtoull(cl, NULL, 10) > body_limit(r))
        return answer_now(r, MHD_HTTP_CONTENT_TOO_LARGE,
                          r->method == M_PUT ? "value over 1 MiB" : "body too large");
    return MHD_YES;
}

/* Parses the decimal node id in the path of POST/DELETE. */
static rr_node_id_t path_node_id(const req *r)
{
    char *end;
    unsigned long long v = strtoull(r->key, &end, 10);
    if (r->key[0] < '1' || r->key[0] > '9' || *end != '\0' || v == 0 || v > UINT32_MAX)
        return RR_NODE_ID_NONE;
    return (rr_node_id_t)v;
}

/* Hands r to the engine: suspend first (the callback may run before submit returns), then
 * submit; a synchronous failure answers at once. */
static enum MHD_Result req_submit(req *r)
{
    server *s = r->srv;
    uint8_t small[16 + KV_ADDR_BYTES_MAX];
    uint8_t *cmd = NULL;
    pthread_mutex_lock(&s->lock);
    r->stage = ST_WAITING;
    r->refs++; /* the engine's */
    r->deadline_ns = now_ns() + (uint64_t)s->o.timeout_ms * 1000000u;
    r->next = s->pending;
    if (s->pending != NULL)
        s->pending->prev = r;
    s->pending = r;
    MHD_suspend_connection(r->conn);
    pthread_mutex_unlock(&s->lock);
    int rc = -ENOMEM;
    if (r->method == M_GET) {
        rc = rr_node_read_barrier(s->node, op_done, r);
    } else if (r->method == M_PUT) {
        cmd = malloc(KV_CMD_HEADER_BYTES + r->key_len + r->body_len);
        if (cmd != NULL)
            rc = rr_node_propose(s->node, cmd,
                                 kvmap_encode_put(cmd, r->key, r->key_len, r->body, r->body_len),
                                 op_done, r);
    } else if (r->method == M_POST) {
        rc = rr_node_propose(s->node, small,
                             kvmap_encode_member(small, r->member_id, r->member_addr),
                             member_change_done, r);
    } else if (r->member_id == s->o.id) {
        /* Removing the leader: the engine hands leadership over first and answers
         * NOT_LEADER naming the next one (307 there, where the removal runs in full). No
         * 'R' command yet: this node must keep serving until it is really out. */
        rc = rr_node_remove(s->node, r->member_id, op_done, r);
    } else {
        rc = rr_node_propose(s->node, small, kvmap_encode_remove(small, r->member_id),
                             member_change_done, r);
    }
    free(cmd);
    if (rc != 0) {
        rr_node_result fail = {.status = rc == -ESHUTDOWN ? RR_NODE_STOPPED : RR_NODE_DROPPED};
        req_finish(r, &fail, true);
    }
    return MHD_YES;
}

/* Last call (the whole body is in): decides and answers or submits. */
static enum MHD_Result req_run(req *r)
{
    server *s = r->srv;
    if (r->too_big)
        return answer_now(r, MHD_HTTP_CONTENT_TOO_LARGE,
                          r->method == M_PUT ? "value over 1 MiB" : "body too large");
    if (r->method == M_POST || r->method == M_DELETE) {
        r->member_id = path_node_id(r);
        if (r->member_id == RR_NODE_ID_NONE || r->member_id > RR_NODES_MAX * 1000u)
            return answer_now(r, MHD_HTTP_BAD_REQUEST, "the path must be a node id (1, 2, ...)");
        if (r->method == M_POST &&
            url_to_addr((const char *)r->body, r->body_len, r->member_addr) != 0)
            return answer_now(r, MHD_HTTP_BAD_REQUEST,
                              "the body must be the new node's raft URL (http://IPv4:port)");
    }
    if (kvmap_removed(s->kv, s->o.id))
        return answer_now(r, MHD_HTTP_GONE, "this node was removed from the cluster");
    if (r->method == M_GET && r->serializable) {
        r->code = MHD_HTTP_OK; /* a local read: no barrier, may be stale */
        r->stage = ST_DONE;
        return send_answer(r);
    }
    rr_node_stats st;
    rr_node_stats_get(s->node, &st);
    if (st.leader != s->o.id) {
        answer_not_leader(r, st.leader);
        r->stage = ST_DONE;
        return send_answer(r);
    }
    if (r->method == M_POST || r->method == M_DELETE) {
        /* Against the membership the leader has applied: removing a stranger or adding a
         * member twice would commit a change that changes nothing. */
        rr_conf_state cs;
        rr_node_conf_get(s->node, &cs);
        bool member = rr_id_set_contains(&cs.voters, r->member_id) ||
                      rr_id_set_contains(&cs.voters_outgoing, r->member_id) ||
                      rr_id_set_contains(&cs.learners, r->member_id);
        if (r->method == M_DELETE && !member)
            return answer_now(r, MHD_HTTP_NOT_FOUND, "no such member");
        if (r->method == M_POST && member)
            return answer_now(r, MHD_HTTP_CONFLICT, "already a member (DELETE it first)");
    }
    return req_submit(r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *size, void **con_cls)
{
    (void)version;
    req *r = *con_cls;
    if (r == NULL)
        return req_begin(cls, conn, url, method, con_cls);
    if (*size > 0) {
        if (r->stage == ST_NEW)
            body_collect(r, data, *size);
        *size = 0;
        return MHD_YES;
    }
    switch (r->stage) {
    case ST_NEW:
        return req_run(r);
    case ST_WAITING: /* a spurious call while suspended: nothing to say yet */
        return MHD_YES;
    default:
        return send_answer(r);
    }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    server *s = cls;
    (void)conn;
    (void)toe;
    req *r = *con_cls;
    if (r == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    req_unref_locked(r);
    pthread_mutex_unlock(&s->lock);
    *con_cls = NULL;
}

static void stats_print(server *s)
{
    rr_node_stats st;
    rr_node_stats_get(s->node, &st);
    fprintf(stderr,
            "rrkv: node %" PRIu64 ": leader %" PRIu64 " term %" PRIu64 " commit %" PRIu64
            " applied %" PRIu64 " keys %" PRIu64 " snapshots %" PRIu64 " msgs out %" PRIu64
            " in %" PRIu64 "\n",
            st.id, st.leader, st.term, st.commit, st.applied, kvmap_count(s->kv), st.snapshots,
            st.messages_sent, st.messages_received);
}

/* Answers 503 to requests that waited too long: a stale or cut-off leader must not hang
 * its clients. The engine's late completion then only drops its reference. */
static void *reaper_main(void *arg)
{
    server *s = arg;
    while (!atomic_load(&s->stopping)) {
        struct timespec ts = {0, REAPER_PERIOD_MS * 1000000L};
        nanosleep(&ts, NULL);
        uint64_t now = now_ns();
        if (s->o.verbose && now - s->stats_last_ns >= 1000000000ull) {
            s->stats_last_ns = now;
            stats_print(s);
        }
        struct MHD_Connection *late[REAPER_BATCH_MAX];
        uint32_t n = 0;
        pthread_mutex_lock(&s->lock);
        req *r = s->pending;
        while (r != NULL && n < REAPER_BATCH_MAX) {
            req *next = r->next;
            if (r->deadline_ns <= now) {
                req_answer(r, MHD_HTTP_SERVICE_UNAVAILABLE,
                           "timed out waiting for the cluster: outcome unknown");
                r->stage = ST_DONE;
                pending_unlink(s, r);
                late[n++] = r->conn;
            }
            r = next;
        }
        pthread_mutex_unlock(&s->lock);
        /* A suspended connection is not completed (nor r freed) until it is resumed. */
        for (uint32_t i = 0; i < n; i++)
            MHD_resume_connection(late[i]);
    }
    return NULL;
}

/* ---- the node ------------------------------------------------------------------------ */

static void sm_apply(void *ctx, const rr_entry *ents, size_t n)
{
    kvmap_apply(((server *)ctx)->kv, ents, n);
}

static int sm_save(void *ctx, rr_buf **buf, const uint8_t **data, uint64_t *len)
{
    return kvmap_save(((server *)ctx)->kv, buf, data, len);
}

static int sm_restore(void *ctx, const uint8_t *data, uint64_t len)
{
    return kvmap_restore(((server *)ctx)->kv, data, len);
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "rrkv: %s: %s\n", what, rc < 0 ? strerror(-rc) : "error");
    exit(1);
}

static rr_transport *transport_open(server *s)
{
    rr_transport_config tc;
    rr_transport_config_init(&tc, CLUSTER_ID, s->o.id);
    char addr[KV_ADDR_BYTES_MAX];
    if (!raft_addr(s, s->o.id, addr)) {
        fprintf(stderr, "rrkv: --id %" PRIu64 " has no URL in --cluster\n", s->o.id);
        exit(2);
    }
    char *colon = strrchr(addr, ':');
    *colon = '\0';
    snprintf(tc.listen_host, sizeof tc.listen_host, "%s", addr);
    tc.listen_port = (uint16_t)strtoul(colon + 1, NULL, 10);
    tc.log_refusals = false; /* removed members keep knocking */
    rr_transport *t;
    int rc = rr_transport_tcp_new(&tc, &t);
    if (rc != 0)
        die("raft transport (is the raft port free?)", rc);
    for (rr_node_id_t id = 1; id <= s->o.n_cluster; id++) {
        if (id == s->o.id)
            continue;
        memcpy(addr, s->o.cluster[id - 1], sizeof addr);
        colon = strrchr(addr, ':');
        *colon = '\0';
        rc = rr_transport_add_peer(t, id, addr, (uint16_t)strtoul(colon + 1, NULL, 10));
        if (rc != 0)
            die("add peer", rc);
    }
    rc = rr_transport_start(t);
    if (rc != 0)
        die("transport start", rc);
    return t;
}

static void node_open(server *s)
{
    if (mkdir(s->o.data_dir, 0755) != 0 && errno != EEXIST)
        die(s->o.data_dir, -errno);
    rr_wal_config wc;
    rr_wal_config_init(&wc, s->o.data_dir);
    rr_wal *w;
    rr_wal_error err;
    int rc = rr_wal_open(&wc, &w, &err);
    if (rc != 0) {
        fprintf(stderr, "rrkv: opening %s: %s at offset %" PRIu64 "\n", err.path, err.msg,
                err.offset_bytes);
        exit(1);
    }
    rr_node_config cfg;
    rr_node_config_init(&cfg, s->o.id);
    /* Initial voters (used on the first start only): the --cluster ids. A joining node
     * starts with no configuration, as in raftexample: it learns the cluster from the
     * leader's snapshot, which the leader takes when it applies the node's addition. */
    cfg.n_voters = s->o.join ? 0 : s->o.n_cluster;
    for (uint32_t k = 0; k < cfg.n_voters; k++)
        cfg.voters[k] = k + 1;
    cfg.tick_ms = s->o.tick_ms;
    cfg.election_ticks = s->o.election_ticks;
    cfg.snapshot_every_entries = s->o.snapshot_every;
    cfg.snapshot_keep_entries = s->o.snapshot_keep;
    rc = rr_node_disk_wal(w, &cfg.disk, &cfg.disk_ctx);
    if (rc != 0)
        die("disk", rc);
    g_base_net = rr_node_net_transport();
    g_net_ops = *g_base_net;
    g_net_ops.recv = kv_net_recv;
    cfg.net = &g_net_ops;
    cfg.net_ctx = transport_open(s);
    rr_node_callbacks cb = {
        .ctx = s, .apply = sm_apply, .snapshot_save = sm_save, .snapshot_restore = sm_restore};
    rc = rr_node_create(&cfg, &cb, &s->node);
    if (rc != 0)
        die("node", rc);
    rc = rr_node_start(s->node);
    if (rc != 0)
        die("node start", rc);
}

static void http_open(server *s)
{
    s->httpd = MHD_start_daemon(
        MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, s->o.port,
        NULL, NULL, on_request, s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->o.threads, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)HTTP_CONNECTIONS_MAX, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)HTTP_IDLE_TIMEOUT_S, MHD_OPTION_END);
    if (s->httpd == NULL) {
        fprintf(stderr, "rrkv: cannot serve HTTP on port %u (in use?)\n", s->o.port);
        exit(1);
    }
}

/* ---- command line ---------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: rrkv --id N --cluster URL,URL,... --port HTTP_PORT [--join]\n"
                    "            [--data-dir DIR (./rrkv-N)] [--http-cluster URL,URL,...]\n"
                    "            [--tick-ms 100] [--election-ticks 10] [--snapshot-every 10000]\n"
                    "            [--snapshot-keep 10000]\n"
                    "            [--request-timeout-ms 3000] [--threads 4] [--verbose]\n");
    exit(2);
}

static uint64_t parse_num(const char *s, uint64_t lo, uint64_t hi, const char *what)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "rrkv: %s must be an integer in [%" PRIu64 ", %" PRIu64 "], not '%s'\n",
                what, lo, hi, s);
        exit(2);
    }
    return v;
}

/* Splits a comma list of URLs; as_addr turns each into "host:port". Returns the count. */
static uint32_t parse_list(const char *arg, char (*out)[URL_BYTES_MAX], bool as_addr)
{
    uint32_t n = 0;
    const char *p = arg;
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (n == KV_MEMBERS_MAX || len == 0 || len >= URL_BYTES_MAX)
            usage();
        if (as_addr) {
            if (url_to_addr(p, len, out[n]) != 0) {
                fprintf(stderr, "rrkv: '%.*s' is not http://IPv4:port\n", (int)len, p);
                exit(2);
            }
        } else {
            memcpy(out[n], p, len);
            out[n][len] = '\0';
            while (len > 0 && out[n][len - 1] == '/')
                out[n][--len] = '\0';
        }
        n++;
        p += len + (comma != NULL ? 1 : 0);
        if (comma != NULL && *p == '\0')
            usage();
    }
    return n;
}

static void parse(int argc, char **argv, opts *o)
{
    *o = (opts){.tick_ms = 100,
                .election_ticks = 10,
                .snapshot_every = 10000,
                .snapshot_keep = 10000,
                .timeout_ms = 3000,
                .threads = 4};
    static char urls[KV_MEMBERS_MAX][URL_BYTES_MAX];
    static const struct option longs[] = {
        {"id", required_argument, NULL, 'i'},
        {"cluster", required_argument, NULL, 'c'},
        {"port", required_argument, NULL, 'p'},
        {"join", no_argument, NULL, 'j'},
        {"data-dir", required_argument, NULL, 'd'},
        {"http-cluster", required_argument, NULL, 'H'},
        {"tick-ms", required_argument, NULL, 't'},
        {"election-ticks", required_argument, NULL, 'e'},
        {"snapshot-every", required_argument, NULL, 's'},
        {"snapshot-keep", required_argument, NULL, 'k'},
        {"request-timeout-ms", required_argument, NULL, 'T'},
        {"threads", required_argument, NULL, 'n'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'i':
            o->id = parse_num(optarg, 1, RR_NODES_MAX * 1000u, "--id");
            break;
        case 'c':
            o->n_cluster = parse_list(optarg, urls, true);
            for (uint32_t k = 0; k < o->n_cluster; k++)
                memcpy(o->cluster[k], urls[k], KV_ADDR_BYTES_MAX);
            break;
        case 'p':
            o->port = (uint16_t)parse_num(optarg, 1, 65535, "--port");
            break;
        case 'j':
            o->join = true;
            break;
        case 'd':
            snprintf(o->data_dir, sizeof o->data_dir, "%s", optarg);
            break;
        case 'H':
            o->n_http = parse_list(optarg, o->http, false);
            break;
        case 't':
            o->tick_ms = (uint32_t)parse_num(optarg, 1, 10000, "--tick-ms");
            break;
        case 'e':
            o->election_ticks = (uint32_t)parse_num(optarg, 2, 1000, "--election-ticks");
            break;
        case 's':
            o->snapshot_every = parse_num(optarg, 0, UINT64_MAX / 2, "--snapshot-every");
            break;
        case 'k':
            o->snapshot_keep = parse_num(optarg, 0, UINT64_MAX / 2, "--snapshot-keep");
            break;
        case 'T':
            o->timeout_ms = (uint32_t)parse_num(optarg, 10, 600000, "--request-timeout-ms");
            break;
        case 'v':
            o->verbose = true;
            break;
        case 'n':
            o->threads = (uint32_t)parse_num(optarg, 1, 64, "--threads");
            break;
        default:
            usage();
        }
    }
    if (optind != argc || o->id == 0 || o->n_cluster == 0 || o->port == 0)
        usage();
    if (o->id > o->n_cluster && !o->join) {
        fprintf(stderr, "rrkv: --id %" PRIu64 " is beyond --cluster: add --join\n", o->id);
        exit(2);
    }
    if (o->data_dir[0] == '\0')
        snprintf(o->data_dir, sizeof o->data_dir, "./rrkv-%" PRIu64, o->id);
}

int main(int argc, char **argv)
{
    static server srv;
    server *s = &srv;
    g_srv = s;
    parse(argc, argv, &s->o);
    /* Signals go to sigwait below only: every thread started from here inherits the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->members_lock, NULL);
    if (kvmap_new(&s->kv, on_member, s) != 0)
        die("state machine", -ENOMEM);
    node_open(s);
    http_open(s);
    pthread_create(&s->reaper, NULL, reaper_main, s);
    fprintf(stderr, "rrkv: node %" PRIu64 " serving HTTP on port %u, raft on %s, data in %s\n",
            s->o.id, s->o.port, s->o.cluster[s->o.id <= s->o.n_cluster ? s->o.id - 1 : 0],
            s->o.data_dir);
    int sig;
    sigwait(&set, &sig);
    fprintf(stderr, "rrkv: node %" PRIu64 ": signal %d, stopping\n", s->o.id, sig);
    /* Stop order: the node completes what is pending (STOPPED), resuming those connections,
     * then HTTP stops, then the reaper. */
    uint64_t t0 = now_ns();
    rr_node_stop(s->node);
    uint64_t t1 = now_ns();
    MHD_stop_daemon(s->httpd);
    atomic_store(&s->stopping, true);
    pthread_join(s->reaper, NULL);
    uint64_t t2 = now_ns();
    rr_node_free(s->node);
    kvmap_free(s->kv);
    if (s->o.verbose)
        fprintf(stderr, "rrkv: node %" PRIu64 ": stopped: node %.3f s, http %.3f s, free %.3f s\n",
                s->o.id, (double)(t1 - t0) / 1e9, (double)(t2 - t1) / 1e9,
                (double)(now_ns() - t2) / 1e9);
    return 0;
}
