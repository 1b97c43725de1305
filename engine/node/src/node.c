/*
 * node.c: the pipelined runtime. See ringraft/node.h for the picture and the contract.
 *
 * The raft thread owns the RawNode (async storage writes). Each turn it drains, in order:
 * proposals (batched into one MsgProp), received messages and unreachable reports, disk
 * completions (the responses a MsgStorageAppend carried are released only once the disk
 * says its sequence number is durable — thesis §3.8), applied acknowledgements, and timer
 * ticks; then it handles every Ready: messages to peers go out at once, MsgStorageAppend
 * goes to the disk, MsgStorageApply to the apply thread. When a turn finds nothing to do it
 * sleeps in poll() on its wake eventfd, the timerfd and the disk's and network's fds.
 *
 * Proposals are matched to committed entries by (index, term): the raft thread learns the
 * index of each accepted proposal right after proposing; when the entry at that index is
 * committed with the same term the proposal is COMMITTED, with another term it was LOST.
 */
#include "ringraft/node.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sdt.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "histogram.h"
#include "ring.h"
#include "ringraft/assert.h"
#include "ringraft/errors.h"

#define ACK_WAIT_MAX        64 /* MsgApps timed per follower; older ones are forgotten */
#define APPLY_RING_CAPACITY 4096u
#define RECV_BATCH          256u
#define READY_LOOPS_MAX     64 /* Readys per turn before looking at inputs again */
/* Turns the net thread runs for the raft thread (raft_turn_on_net_thread) before it hands
 * what is left to the raft thread: a window-1 follower needs three (step and write, send
 * the acknowledgement, find nothing), a loaded node keeps finding work. */
#define NET_TURNS_MAX 4
/* Applied acknowledgements a follower lets wait for the raft thread's next turn. */
#define APPLIED_LAZY_MAX 64u
/* Largest receive (frame bytes) the net thread handles itself: about what the disk writes
 * inline (DISK_WAL_INLINE_BYTES_MAX), so a loaded follower's large MsgApps stay with the
 * raft thread, overlapped with the next receive. */
#define NET_TURN_BYTES_MAX (32u << 10)

typedef enum req_kind {
    REQ_PROPOSE,
    REQ_READ,
    REQ_CONF,
    REQ_TRANSFER,
} req_kind;

/* A client request. For copied proposals the request is also the payload's buffer: `life`
 * counts the log/WAL/network holders plus one for the completion. */
typedef struct request {
    rr_buf life;
    uint8_t kind;
    bool learner;
    bool add; /* REQ_CONF: add (context in data/len) or remove */
    rr_node_done_fn done;
    void *ctx;
    uint64_t start_ns;     /* rr_node_propose */
    uint64_t taken_ns;     /* popped by the raft thread */
    uint64_t committed_ns; /* handed to the apply thread */
    rr_index_t index;
    rr_term_t term;
    rr_node_id_t target; /* conf change / transfer */
    uint64_t read_id;
    rr_node_result result;
    const uint8_t *data; /* proposal payload: in payload[] or in an external buffer */
    uint32_t len;
    rr_buf *ext_buf; /* rr_node_propose_buf: the caller's buffer */
    struct request *next;
    uint8_t payload[];
} request;

/* Work for the apply thread, and what comes back from it. */
typedef enum item_kind {
    ITEM_APPLY = 0,    /* entries to apply, requests to complete */
    ITEM_RESTORE = 1,  /* replace the state machine with snap */
    ITEM_SNAPSHOT = 2, /* apply -> raft: the state machine saved at snap_index */
} item_kind;

typedef struct apply_item {
    uint8_t kind;     /* item_kind */
    rr_snapshot snap; /* ITEM_RESTORE: owned copy; ITEM_SNAPSHOT: data and its buffer */
    rr_entry *ents;   /* owned, with references */
    uint32_t n_ents;
    /* Entries at or below this index are already in the state machine (a restored
     * snapshot): they are acknowledged but not applied again. */
    rr_index_t skip_through;
    /* A member was added while we lead: snapshot after applying, whatever the threshold,
     * so the newest snapshot names it (one that predates it is ignored by the new node, as
     * in etcd, which would leave it unable to catch up once the log is compacted). */
    bool force_snapshot;
    /* Wake the raft thread for resp (a leader's, or one with a configuration change); a
     * follower's other acknowledgements wait for its next turn (apply_main). */
    bool resp_urgent;
    rr_message resp; /* MsgStorageApplyResp to step once applied (type 0: none) */
    request *done;   /* requests to complete after the entries, in order */
    struct apply_item *next;
} apply_item;

/* Responses of a MsgStorageAppend, released once seq is durable. */
typedef struct disk_wait {
    int64_t seq;
    uint64_t appended_ns;
    rr_message *responses;
    uint32_t n_responses;
    struct disk_wait *next;
} disk_wait;

typedef struct req_list {
    request *head;
    request *tail;
} req_list;

struct rr_node {
    rr_node_config cfg;
    rr_node_callbacks cb;
    rr_rawnode *rn;
    rr_node_id_t id;

    rr_ring propose_ring; /* MPSC: client threads -> raft thread (request *) */
    rr_ring apply_ring;   /* SPSC: raft -> apply (apply_item *) */
    rr_ring applied_ring; /* SPSC: apply -> raft (apply_item *) */
    rr_wake raft_wake;
    rr_wake apply_wake;
    int timer_fd;

    pthread_t raft_thread;
    pthread_t apply_thread;
    /* The raft role: whoever holds it runs raft turns and owns the "raft thread only"
     * fields below. The raft thread holds it except while it sleeps; the net thread takes
     * it then (trylock) to handle what it received without waking the raft thread. */
    pthread_mutex_t raft_mu;
    bool started;
    uint32_t stopping;       /* atomic: set by rr_node_stop */
    uint32_t snapshot_asked; /* atomic: rr_node_snapshot, taken by the apply thread */
    uint32_t closed;         /* atomic: new requests refused */

    /* raft thread only */
    req_list proposed;    /* accepted proposals and conf changes, by index */
    req_list reads;       /* read barriers waiting for their read state */
    req_list ready_reads; /* read barriers with an index, waiting for apply hand-out */
    disk_wait *disk_head, *disk_tail;
    int64_t disk_last_seq;
    rr_index_t handed_index;   /* highest index handed to the apply thread */
    rr_index_t snapshot_index; /* the newest snapshot the state machine was restored from */
    uint64_t next_read_id;
    rr_soft_state soft;
    rr_term_t term;
    rr_index_t commit;
    rr_entry *batch; /* scratch for proposals, max_batch_entries */
    request **batch_reqs;

    /* statistics (relaxed atomics: several writers, racy readers) */
    uint64_t n_proposals, n_applied, n_readies, n_disk_appends, n_sent, n_received;
    uint64_t n_bytes_proposed;
    uint64_t n_turns_on_net;
    uint64_t batch_max;
    rr_index_t applied_index;
    /* apply thread: entries applied since the last snapshot */
    uint64_t since_snapshot;
    /* raft thread: configurations by the index where they took effect, newest last, so a
     * snapshot at index i records the configuration in force at i. */
    struct {
        rr_index_t index;
        rr_conf_state cs;
    } confs[16];
    uint32_t n_confs;
    pthread_mutex_t conf_mu; /* guards conf_pub, the latest of confs, for rr_node_conf_get */
    rr_conf_state conf_pub;
    uint64_t n_snapshots;
    rr_node_id_t leader; /* published copy of soft.lead for other threads */
    /* Written by the raft and apply threads once per batch (never per entry), read by
     * rr_node_stats_get: the lock keeps quantiles consistent at one uncontended acquisition
     * per batch. */
    pthread_mutex_t hist_mu;
    rr_hist stage_ns[RR_NODE_STAGE_COUNT];
    /* Raft thread: MsgApps in flight per follower, for RR_NODE_STAGE_ACK. */
    struct ack_wait {
        rr_node_id_t peer; /* 0: free */
        uint32_t head, n;
        struct {
            rr_index_t last;
            uint64_t sent_ns;
        } q[ACK_WAIT_MAX];
    } acks[RR_NODES_MAX];
    rr_hist propose_batch; /* proposals per MsgProp */
    rr_hist disk_batch;    /* entries per disk append */
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void stat_add(uint64_t *c, uint64_t v)
{
    __atomic_fetch_add(c, v, __ATOMIC_RELAXED);
}

static void req_list_push(req_list *l, request *r)
{
    r->next = NULL;
    if (l->tail != NULL)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
}

static request *req_list_pop(req_list *l)
{
    request *r = l->head;
    if (r != NULL) {
        l->head = r->next;
        if (l->head == NULL)
            l->tail = NULL;
        r->next = NULL;
    }
    return r;
}

/* ---- configurations by index (for snapshots) -------------------------------------- */

static void record_conf(rr_node *n, rr_index_t index, const rr_conf_state *cs)
{
    if (n->n_confs == sizeof n->confs / sizeof n->confs[0]) {
        /* Forget the oldest: snapshots are taken near the applied index, far past it. */
        memmove(&n->confs[0], &n->confs[1], (n->n_confs - 1) * sizeof(n->confs[0]));
        n->n_confs--;
    }
    n->confs[n->n_confs].index = index;
    n->confs[n->n_confs].cs = *cs;
    n->n_confs++;
    pthread_mutex_lock(&n->conf_mu);
    n->conf_pub = *cs;
    pthread_mutex_unlock(&n->conf_mu);
}

static const rr_conf_state *conf_at(const rr_node *n, rr_index_t index)
{
    const rr_conf_state *cs = NULL;
    for (uint32_t i = 0; i < n->n_confs && n->confs[i].index <= index; i++)
        cs = &n->confs[i].cs;
    return cs;
}

/* ---- requests ------------------------------------------------------------------------- */

static void request_release(rr_buf *b)
{
    request *r = (request *)((char *)b - offsetof(request, life));
    if (r->ext_buf != NULL)
        rr_buf_unref(r->ext_buf);
    free(r);
}

static request *request_new(uint8_t kind, uint32_t payload_len, rr_node_done_fn done, void *ctx)
{
    request *r = malloc(sizeof(*r) + payload_len);
    if (r == NULL)
        return NULL;
    memset(r, 0, sizeof(*r));
    r->life.refs = 1; /* the completion's reference */
    r->life.release = request_release;
    r->kind = kind;
    r->done = done;
    r->ctx = ctx;
    r->start_ns = now_ns();
    return r;
}

static int submit(rr_node *n, request *r)
{
    if (__atomic_load_n(&n->closed, __ATOMIC_ACQUIRE)) {
        rr_buf_unref(&r->life);
        return -ESHUTDOWN;
    }
    if (!rr_ring_push_mpsc(&n->propose_ring, r)) {
        rr_buf_unref(&r->life);
        return -EAGAIN; /* bounded: the caller backs off */
    }
    rr_wake_signal(&n->raft_wake);
    return 0;
}

int rr_node_propose(rr_node *n, const void *data, uint32_t len, rr_node_done_fn done, void *ctx)
{
    if (len > RR_ENTRY_BYTES_MAX)
        return -EINVAL;
    request *r = request_new(REQ_PROPOSE, len, done, ctx);
    if (r == NULL)
        return -ENOMEM;
    if (len > 0)
        memcpy(r->payload, data, len); /* the one copy on the leader's path */
    r->data = r->payload;
    r->len = len;
    stat_add(&n->n_proposals, 1);
    stat_add(&n->n_bytes_proposed, len);
    DTRACE_PROBE2(ringraft, propose, n->id, len);
    return submit(n, r);
}

int rr_node_propose_buf(rr_node *n, const uint8_t *data, uint32_t len, rr_buf *buf,
                        rr_node_done_fn done, void *ctx)
{
    if (len > RR_ENTRY_BYTES_MAX || buf == NULL)
        return -EINVAL;
    request *r = request_new(REQ_PROPOSE, 0, done, ctx);
    if (r == NULL)
        return -ENOMEM;
    rr_buf_ref(buf);
    r->ext_buf = buf;
    r->data = data;
    r->len = len;
    stat_add(&n->n_proposals, 1);
    stat_add(&n->n_bytes_proposed, len);
    return submit(n, r);
}

int rr_node_read_barrier(rr_node *n, rr_node_done_fn done, void *ctx)
{
    request *r = request_new(REQ_READ, 0, done, ctx);
    if (r == NULL)
        return -ENOMEM;
    return submit(n, r);
}

int rr_node_add(rr_node *n, rr_node_id_t id, bool learner, const void *context,
                uint32_t context_len, rr_node_done_fn done, void *ctx)
{
    if (id == RR_NODE_ID_NONE || context_len > RR_NODE_CONTEXT_BYTES_MAX)
        return -EINVAL;
    request *r = request_new(REQ_CONF, context_len, done, ctx);
    if (r == NULL)
        return -ENOMEM;
    r->target = id;
    r->learner = learner;
    r->add = true;
    if (context_len > 0)
        memcpy(r->payload, context, context_len);
    r->data = r->payload;
    r->len = context_len;
    return submit(n, r);
}

int rr_node_remove(rr_node *n, rr_node_id_t id, rr_node_done_fn done, void *ctx)
{
    if (id == RR_NODE_ID_NONE)
        return -EINVAL;
    request *r = request_new(REQ_CONF, 0, done, ctx);
    if (r == NULL)
        return -ENOMEM;
    r->target = id;
    r->add = false;
    return submit(n, r);
}

int rr_node_transfer_leader(rr_node *n, rr_node_id_t to)
{
    request *r = request_new(REQ_TRANSFER, 0, NULL, NULL);
    if (r == NULL)
        return -ENOMEM;
    r->target = to;
    return submit(n, r);
}

/* ---- hand-off to the apply thread ---------------------------------------------------- */

static void apply_push(rr_node *n, apply_item *it)
{
    /* The apply ring is sized so this rarely waits; when it does, the raft thread waits
     * too: backpressure from the state machine reaches the proposers. */
    while (!rr_ring_push_spsc(&n->apply_ring, it)) {
        rr_wake_signal(&n->apply_wake);
        sched_yield();
    }
    rr_wake_signal(&n->apply_wake);
}

/* Completes reqs (a list, results set) on the apply thread, after what is queued before. */
static void complete_later(rr_node *n, request *reqs)
{
    if (reqs == NULL)
        return;
    apply_item *it = calloc(1, sizeof(*it));
    RR_ASSERT(it != NULL);
    it->done = reqs;
    apply_push(n, it);
}

static void fail_request(request *r, uint8_t status, rr_node_id_t lead, request **out_list)
{
    r->result.status = status;
    r->result.leader_hint = lead;
    r->next = *out_list;
    *out_list = r;
}

/* Requests are completed in reverse order of failure within one list; reverse it so
 * completion order follows arrival. */
static request *reverse(request *r)
{
    request *out = NULL;
    while (r != NULL) {
        request *next = r->next;
        r->next = out;
        out = r;
        r = next;
    }
    return out;
}

/* ---- raft thread: inputs ------------------------------------------------------------- */

static bool is_leader(const rr_node *n)
{
    return n->soft.raft_state == RR_STATE_LEADER;
}

/* The voter (not us) with the highest match index, or none. */
static rr_node_id_t best_successor(rr_node *n)
{
    rr_status st;
    rr_rawnode_status(n->rn, &st);
    rr_node_id_t best = RR_NODE_ID_NONE;
    rr_index_t best_match = 0;
    for (uint32_t i = 0; i < st.n_progress; i++) {
        const rr_progress_status *p = &st.progress[i];
        if (p->id == n->id || p->is_learner || p->match < best_match)
            continue;
        best = p->id;
        best_match = p->match;
    }
    return best;
}

static void propose_conf(rr_node *n, request *r, request **failed)
{
    if (!r->add && r->target == n->id) {
        /* Removing the leader: hand leadership over first (thesis §3.10), to the voter
         * with the longest log: the core survives a leader removing itself
         * (etcd-io/etcd#12359, README), but a handover costs no election and loses no
         * proposal in flight. The caller retries on the new one. */
        rr_node_id_t to = best_successor(n);
        if (to != RR_NODE_ID_NONE)
            rr_rawnode_transfer_leader(n->rn, to);
        fail_request(r, RR_NODE_NOT_LEADER, to, failed);
        return;
    }
    rr_conf_change cc;
    memset(&cc, 0, sizeof(cc));
    cc.v1 = true;
    cc.n_changes = 1;
    cc.changes[0].node_id = r->target;
    cc.changes[0].type = !r->add      ? RR_CONF_REMOVE_NODE
                         : r->learner ? RR_CONF_ADD_LEARNER_NODE
                                      : RR_CONF_ADD_NODE;
    cc.context = r->len > 0 ? r->data : NULL;
    cc.context_len = r->len;
    int rc = rr_rawnode_propose_conf_change(n->rn, &cc);
    if (rc != 0) {
        fail_request(r, RR_NODE_DROPPED, n->soft.lead, failed);
        return;
    }
    rr_rawnode_last_entry(n->rn, &r->index, &r->term);
    req_list_push(&n->proposed, r);
}

/* Proposes a batch of copied/external payload proposals as one MsgProp. */
static void propose_batch(rr_node *n, uint32_t count, request **failed)
{
    if (count == 0)
        return;
    for (uint32_t i = 0; i < count; i++) {
        request *r = n->batch_reqs[i];
        memset(&n->batch[i], 0, sizeof(n->batch[i]));
        n->batch[i].data = r->len > 0 ? r->data : NULL;
        n->batch[i].data_len = r->len;
        n->batch[i].buf = r->ext_buf != NULL ? r->ext_buf : &r->life;
    }
    int rc = rr_rawnode_propose_batch(n->rn, n->batch, count);
    if (rc != 0) {
        for (uint32_t i = 0; i < count; i++)
            fail_request(n->batch_reqs[i], RR_NODE_DROPPED, n->soft.lead, failed);
        return;
    }
    rr_index_t last;
    rr_term_t term;
    rr_rawnode_last_entry(n->rn, &last, &term);
    uint64_t t = now_ns();
    pthread_mutex_lock(&n->hist_mu);
    rr_hist_record(&n->propose_batch, count);
    for (uint32_t i = 0; i < count; i++) {
        request *r = n->batch_reqs[i];
        r->index = last - count + 1 + i;
        r->term = term;
        r->taken_ns = t;
        rr_hist_record(&n->stage_ns[RR_NODE_STAGE_QUEUE], t - r->start_ns);
        req_list_push(&n->proposed, r);
    }
    pthread_mutex_unlock(&n->hist_mu);
    DTRACE_PROBE3(ringraft, batch, n->id, count, last);
    if (count > n->batch_max)
        __atomic_store_n(&n->batch_max, count, __ATOMIC_RELAXED);
}

static bool drain_proposals(rr_node *n)
{
    request *failed = NULL;
    uint32_t count = 0;
    bool any = false;
    void *p;
    while (count < n->cfg.max_batch_entries && rr_ring_pop_mpsc(&n->propose_ring, &p)) {
        request *r = p;
        any = true;
        if (r->kind != REQ_TRANSFER && !is_leader(n)) {
            fail_request(r, RR_NODE_NOT_LEADER, n->soft.lead, &failed);
            continue;
        }
        switch (r->kind) {
        case REQ_PROPOSE:
            n->batch_reqs[count++] = r;
            break;
        case REQ_READ: {
            r->read_id = ++n->next_read_id;
            uint8_t ctx[8];
            memcpy(ctx, &r->read_id, sizeof ctx);
            if (rr_rawnode_read_index(n->rn, ctx, sizeof ctx) != 0)
                fail_request(r, RR_NODE_DROPPED, n->soft.lead, &failed);
            else
                req_list_push(&n->reads, r);
            break;
        }
        case REQ_CONF:
            propose_batch(n, count, &failed); /* keep log order with earlier proposals */
            count = 0;
            propose_conf(n, r, &failed);
            break;
        case REQ_TRANSFER:
            rr_rawnode_transfer_leader(n->rn, r->target);
            rr_buf_unref(&r->life); /* nobody waits for a transfer */
            break;
        }
    }
    propose_batch(n, count, &failed);
    complete_later(n, reverse(failed));
    return any;
}

static struct ack_wait *ack_slot(rr_node *n, rr_node_id_t peer, bool make)
{
    struct ack_wait *free_slot = NULL;
    for (uint32_t i = 0; i < RR_NODES_MAX; i++) {
        if (n->acks[i].peer == peer)
            return &n->acks[i];
        if (n->acks[i].peer == RR_NODE_ID_NONE && free_slot == NULL)
            free_slot = &n->acks[i];
    }
    if (make && free_slot != NULL) {
        free_slot->peer = peer;
        free_slot->head = free_slot->n = 0;
    }
    return make ? free_slot : NULL;
}

/* A MsgApp with entries leaves for m->to: start its clock. */
static void ack_sent(rr_node *n, const rr_message *m, uint64_t now)
{
    struct ack_wait *a = ack_slot(n, m->to, true);
    if (a == NULL)
        return;
    if (a->n == ACK_WAIT_MAX) { /* forget the oldest */
        a->head = (a->head + 1) % ACK_WAIT_MAX;
        a->n--;
    }
    uint32_t k = (a->head + a->n) % ACK_WAIT_MAX;
    a->q[k].last = m->entries[m->n_entries - 1].index;
    a->q[k].sent_ns = now;
    a->n++;
}

/* An accepting MsgAppResp: every MsgApp it covers is acknowledged. */
static void ack_received(rr_node *n, const rr_message *m, uint64_t now)
{
    struct ack_wait *a = ack_slot(n, m->from, false);
    if (a == NULL || a->n == 0 || a->q[a->head].last > m->index)
        return; /* nothing covered: no lock taken (a heartbeat's answer, a probe's) */
    pthread_mutex_lock(&n->hist_mu);
    while (a->n > 0 && a->q[a->head].last <= m->index) {
        rr_hist_record(&n->stage_ns[RR_NODE_STAGE_ACK], now - a->q[a->head].sent_ns);
        a->head = (a->head + 1) % ACK_WAIT_MAX;
        a->n--;
    }
    pthread_mutex_unlock(&n->hist_mu);
}

static bool drain_net(rr_node *n)
{
    rr_message msgs[RECV_BATCH];
    bool any = false;
    uint32_t got;
    while ((got = n->cfg.net->recv(n->cfg.net_ctx, msgs, RECV_BATCH)) > 0) {
        any = true;
        stat_add(&n->n_received, got);
        uint64_t now = now_ns();
        for (uint32_t i = 0; i < got; i++) {
            if (msgs[i].type == RR_MSG_APP_RESP && !msgs[i].reject)
                ack_received(n, &msgs[i], now);
            (void)rr_rawnode_step(n->rn, &msgs[i]); /* strays are refused by the core */
            rr_message_free(&msgs[i]);
        }
    }
    rr_node_net_report reps[RR_NODES_MAX];
    while ((got = n->cfg.net->reports(n->cfg.net_ctx, reps, RR_NODES_MAX)) > 0) {
        any = true;
        for (uint32_t i = 0; i < got; i++) {
            if (reps[i].kind == RR_NODE_NET_UNREACHABLE)
                rr_rawnode_report_unreachable(n->rn, reps[i].peer);
            else
                rr_rawnode_report_snapshot(n->rn, reps[i].peer,
                                           reps[i].kind == RR_NODE_NET_SNAPSHOT_FAILED);
        }
    }
    return any;
}

/* A failed write or fsync leaves the log in an unknown state: the replica must stop rather
 * than acknowledge anything (STYLE.md habit 4), and say why. */
static void fatal_disk(const rr_node *n, const char *what, int err)
{
    fprintf(stderr, "ringraft: node %" PRIu64 ": disk %s failed: %s (%d); stopping\n", n->id, what,
            rr_strerror(err), err);
    abort();
}

/* Lets the disk start (or make) the turn's writes. Returns whether some completed during
 * the call, so that the next turn releases what waited on them without sleeping. */
static bool flush_disk(rr_node *n)
{
    if (n->cfg.disk->flush == NULL)
        return false;
    int rc = n->cfg.disk->flush(n->cfg.disk_ctx);
    if (rc < 0)
        fatal_disk(n, "write", rc);
    return rc == 1;
}

/* Releases the responses of every append the disk reports durable. */
static bool drain_disk(rr_node *n)
{
    if (n->disk_head == NULL)
        return false;
    int64_t durable = n->cfg.disk->durable(n->cfg.disk_ctx);
    if (durable < 0)
        fatal_disk(n, "sync", (int)durable);
    bool any = false;
    uint64_t t = now_ns();
    while (n->disk_head != NULL && n->disk_head->seq <= durable) {
        disk_wait *w = n->disk_head;
        pthread_mutex_lock(&n->hist_mu);
        rr_hist_record(&n->stage_ns[RR_NODE_STAGE_DISK], t - w->appended_ns);
        pthread_mutex_unlock(&n->hist_mu);
        DTRACE_PROBE2(ringraft, disk_durable, n->id, w->seq);
        n->disk_head = w->next;
        if (n->disk_head == NULL)
            n->disk_tail = NULL;
        for (uint32_t i = 0; i < w->n_responses; i++) {
            rr_message *m = &w->responses[i];
            if (m->to == n->id) {
                (void)rr_rawnode_step(n->rn, m);
                rr_message_free(m);
            } else {
                n->cfg.net->send(n->cfg.net_ctx, m);
                stat_add(&n->n_sent, 1);
            }
        }
        free(w->responses);
        free(w);
        any = true;
    }
    return any;
}

/* The apply thread saved the state machine at it->snap.meta.index: complete the metadata
 * (term, configuration in force there), persist it and compact the log behind it. */
static void persist_snapshot(rr_node *n, apply_item *it)
{
    rr_snapshot *snap = &it->snap;
    rr_index_t index = snap->meta.index;
    rr_storage s = n->cfg.disk->storage(n->cfg.disk_ctx);
    const rr_conf_state *cs = conf_at(n, index);
    if (s.ops->term(s.ctx, index, &snap->meta.term) != 0 || cs == NULL) {
        rr_snapshot_clear(snap); /* compacted meanwhile by a newer snapshot: skip this one */
        return;
    }
    snap->meta.conf_state = *cs;
    uint64_t keep = n->cfg.snapshot_keep_entries;
    rr_index_t compact = index > keep ? index - keep : 0;
    int rc = n->cfg.disk->save_snapshot(n->cfg.disk_ctx, snap, compact);
    if (rc != 0)
        fatal_disk(n, "snapshot", rc);
    stat_add(&n->n_snapshots, 1);
    rr_snapshot_clear(snap);
}

static bool drain_applied(rr_node *n)
{
    void *p;
    bool any = false;
    while (rr_ring_pop_spsc(&n->applied_ring, &p)) {
        apply_item *it = p;
        if (it->kind == ITEM_SNAPSHOT)
            persist_snapshot(n, it);
        if (it->resp.type == RR_MSG_STORAGE_APPLY_RESP)
            (void)rr_rawnode_step(n->rn, &it->resp);
        rr_message_free(&it->resp);
        free(it);
        any = true;
    }
    return any;
}

static bool drain_timer(rr_node *n)
{
    uint64_t expirations = 0;
    if (read(n->timer_fd, &expirations, sizeof expirations) != (ssize_t)sizeof expirations)
        return false;
    for (uint64_t i = 0; i < expirations; i++)
        rr_rawnode_tick(n->rn);
    return expirations > 0;
}

/* ---- raft thread: Ready -------------------------------------------------------------- */

static void disk_append(rr_node *n, rr_message *m)
{
    rr_hard_state hs = {.term = m->term, .vote = m->vote, .commit = m->commit};
    bool has_hs = hs.term != 0 || hs.vote != 0 || hs.commit != 0;
    int64_t seq = n->disk_last_seq;
    if (m->n_entries > 0 || has_hs || m->snapshot != NULL) {
        seq = n->cfg.disk->append(n->cfg.disk_ctx, m->entries, m->n_entries, has_hs ? &hs : NULL,
                                  m->snapshot);
        if (seq <= 0)
            fatal_disk(n, "append", (int)seq);
        n->disk_last_seq = seq;
        stat_add(&n->n_disk_appends, 1);
        pthread_mutex_lock(&n->hist_mu);
        rr_hist_record(&n->disk_batch, m->n_entries);
        pthread_mutex_unlock(&n->hist_mu);
        DTRACE_PROBE3(ringraft, disk_append, n->id, m->n_entries, seq);
    }
    if (m->n_responses == 0)
        return;
    disk_wait *w = calloc(1, sizeof(*w));
    RR_ASSERT(w != NULL);
    w->seq = seq; /* responses-only: wait for everything written before */
    w->appended_ns = now_ns();
    w->responses = m->responses;
    w->n_responses = m->n_responses;
    m->responses = NULL;
    m->n_responses = 0;
    if (n->disk_tail != NULL)
        n->disk_tail->next = w;
    else
        n->disk_head = w;
    n->disk_tail = w;
}

static bool adds_member(const rr_conf_change *cc, rr_node_id_t self)
{
    for (uint32_t i = 0; i < cc->n_changes; i++) {
        uint8_t t = cc->changes[i].type;
        if ((t == RR_CONF_ADD_NODE || t == RR_CONF_ADD_LEARNER_NODE) &&
            cc->changes[i].node_id != self)
            return true;
    }
    return false;
}

/* The transport learns about members as their changes take effect. */
static void tell_transport(rr_node *n, const rr_conf_change *cc)
{
    for (uint32_t i = 0; i < cc->n_changes; i++) {
        const rr_conf_change_single *c = &cc->changes[i];
        if (c->node_id == n->id)
            continue;
        if (c->type == RR_CONF_REMOVE_NODE && n->cfg.net->remove_peer != NULL) {
            n->cfg.net->remove_peer(n->cfg.net_ctx, c->node_id);
        } else if ((c->type == RR_CONF_ADD_NODE || c->type == RR_CONF_ADD_LEARNER_NODE) &&
                   n->cfg.net->add_peer != NULL && cc->context_len > 0) {
            int rc = n->cfg.net->add_peer(n->cfg.net_ctx, c->node_id, cc->context, cc->context_len);
            if (rc != 0 && rc != -EEXIST)
                fprintf(stderr, "ringraft: node %" PRIu64 ": adding peer %" PRIu64 ": %s\n", n->id,
                        c->node_id, rr_strerror(rc));
        }
    }
}

/* Completes the proposals whose entries are among ents (committed), applies conf changes
 * to the RawNode, and hands everything to the apply thread. */
static void hand_to_apply(rr_node *n, rr_message *m)
{
    apply_item *it = calloc(1, sizeof(*it));
    RR_ASSERT(it != NULL);
    request *done = NULL;
    for (uint32_t i = 0; i < m->n_entries; i++) {
        const rr_entry *e = &m->entries[i];
        while (n->proposed.head != NULL && n->proposed.head->index <= e->index) {
            request *r = req_list_pop(&n->proposed);
            bool ok = r->index == e->index && r->term == e->term;
            r->result.status = ok ? RR_NODE_COMMITTED : RR_NODE_LOST;
            r->result.index = r->index;
            r->result.term = r->term;
            r->result.leader_hint = n->soft.lead;
            r->next = done;
            done = r;
        }
        if (e->type != RR_ENTRY_NORMAL) {
            it->resp_urgent = true;
            /* Configuration changes take effect in the RawNode as they are handed out
             * for application, in log order; one below a restored snapshot is already in
             * the configuration and changes nothing. */
            rr_conf_change cc;
            rr_conf_state cs;
            if (rr_conf_change_decode(e->data, e->data_len, e->type == RR_ENTRY_CONF_CHANGE, &cc) ==
                    0 &&
                rr_rawnode_apply_conf_change(n->rn, e->index, &cc, &cs)) {
                record_conf(n, e->index, &cs);
                tell_transport(n, &cc);
                if (is_leader(n) && adds_member(&cc, n->id))
                    it->force_snapshot = true;
            }
        }
    }
    if (m->n_entries > 0) {
        n->handed_index = m->entries[m->n_entries - 1].index;
        DTRACE_PROBE3(ringraft, commit, n->id, m->entries[0].index, n->handed_index);
    }
    if (done != NULL) {
        uint64_t t = now_ns();
        pthread_mutex_lock(&n->hist_mu);
        for (request *r = done; r != NULL; r = r->next) {
            r->committed_ns = t;
            if (r->kind == REQ_PROPOSE && r->result.status == RR_NODE_COMMITTED)
                rr_hist_record(&n->stage_ns[RR_NODE_STAGE_COMMIT], t - r->taken_ns);
        }
        pthread_mutex_unlock(&n->hist_mu);
    }
    it->ents = m->entries;
    it->n_ents = m->n_entries;
    it->skip_through = n->snapshot_index;
    m->entries = NULL;
    m->n_entries = 0;
    if (m->n_responses == 1) {
        it->resp = m->responses[0];
        memset(&m->responses[0], 0, sizeof(m->responses[0]));
    }
    it->done = reverse(done);
    it->resp_urgent |= is_leader(n);
    apply_push(n, it);

    /* Read barriers whose index is now handed out complete after these entries. */
    request *reads = NULL;
    while (n->ready_reads.head != NULL && n->ready_reads.head->index <= n->handed_index) {
        request *r = req_list_pop(&n->ready_reads);
        r->result.status = RR_NODE_COMMITTED;
        r->result.index = r->index;
        r->next = reads;
        reads = r;
    }
    complete_later(n, reverse(reads));
}

/* The state machine is replaced by snap on the apply thread, after whatever is queued before
 * it and before any entry after it; apply work it covers is not handed out again (the core
 * hands out nothing below it), and the configuration history restarts from it. */
static void restore_later(rr_node *n, const rr_snapshot *snap)
{
    n->n_confs = 0;
    record_conf(n, snap->meta.index, &snap->meta.conf_state);
    if (snap->meta.index > n->snapshot_index)
        n->snapshot_index = snap->meta.index;
    if (snap->meta.index > n->handed_index)
        n->handed_index = snap->meta.index;
    apply_item *it = calloc(1, sizeof(*it));
    RR_ASSERT(it != NULL);
    it->kind = ITEM_RESTORE;
    it->snap = *snap;
    rr_buf_ref(it->snap.buf);
    apply_push(n, it);
}

static void match_read_states(rr_node *n, const rr_ready *rd)
{
    for (uint32_t i = 0; i < rd->n_read_states; i++) {
        const rr_read_state *rs = &rd->read_states[i];
        uint64_t id = 0;
        if (rs->request_ctx_len != sizeof id)
            continue;
        memcpy(&id, rs->request_ctx, sizeof id);
        /* Read states come back in request order: earlier requests without one were
         * dropped (leadership moved) and never will get one. */
        request *failed = NULL;
        while (n->reads.head != NULL && n->reads.head->read_id <= id) {
            request *r = req_list_pop(&n->reads);
            if (r->read_id == id) {
                r->index = rs->index;
                req_list_push(&n->ready_reads, r);
            } else {
                fail_request(r, RR_NODE_NOT_LEADER, n->soft.lead, &failed);
            }
        }
        complete_later(n, reverse(failed));
    }
    /* A read state whose index is already handed out completes at once. */
    if (n->ready_reads.head != NULL && n->ready_reads.head->index <= n->handed_index) {
        rr_message none;
        memset(&none, 0, sizeof(none));
        hand_to_apply(n, &none);
    }
}

static void handle_ready(rr_node *n)
{
    rr_ready rd;
    int rc = rr_rawnode_ready(n->rn, &rd);
    RR_ASSERT(rc == 0);
    stat_add(&n->n_readies, 1);
    if (rd.has_soft_state) {
        n->soft = rd.soft_state;
        __atomic_store_n(&n->leader, rd.soft_state.lead, __ATOMIC_RELAXED);
    }
    for (uint32_t i = 0; i < rd.n_messages; i++) {
        rr_message *m = &rd.messages[i];
        if (m->to == RR_LOCAL_APPEND_THREAD) {
            if (m->snapshot != NULL)
                restore_later(n, m->snapshot);
            disk_append(n, m);
        } else if (m->to == RR_LOCAL_APPLY_THREAD) {
            hand_to_apply(n, m);
        } else {
            DTRACE_PROBE4(ringraft, send, n->id, m->to, m->type, m->n_entries);
            if (m->type == RR_MSG_APP && m->n_entries > 0)
                ack_sent(n, m, now_ns());
            n->cfg.net->send(n->cfg.net_ctx, m); /* takes the message */
            memset(m, 0, sizeof(*m));
            stat_add(&n->n_sent, 1);
        }
    }
    match_read_states(n, &rd);
    rr_ready_free(&rd);
}

/* Leadership lost: pending reads can no longer be confirmed here. */
static void fail_reads_if_not_leader(rr_node *n)
{
    if (is_leader(n) || n->reads.head == NULL)
        return;
    request *failed = NULL;
    request *r;
    while ((r = req_list_pop(&n->reads)) != NULL)
        fail_request(r, RR_NODE_NOT_LEADER, n->soft.lead, &failed);
    complete_later(n, reverse(failed));
}

static void update_status(rr_node *n)
{
    rr_status st;
    rr_rawnode_status(n->rn, &st);
    __atomic_store_n(&n->term, st.hard_state.term, __ATOMIC_RELAXED);
    __atomic_store_n(&n->commit, st.hard_state.commit, __ATOMIC_RELAXED);
}

static bool raft_turn(rr_node *n)
{
    bool any = drain_proposals(n);
    any |= drain_net(n);
    any |= drain_disk(n);
    any |= drain_applied(n);
    any |= drain_timer(n);
    for (int k = 0; k < READY_LOOPS_MAX && rr_rawnode_has_ready(n->rn); k++) {
        handle_ready(n);
        any = true;
    }
    fail_reads_if_not_leader(n);
    n->cfg.net->flush(n->cfg.net_ctx);
    any |= flush_disk(n); /* after the sends: a write made here overlaps them */
    if (any)
        update_status(n);
    return any;
}

static void raft_sleep(rr_node *n)
{
    rr_wake_prepare(&n->raft_wake);
    if (rr_ring_size(&n->propose_ring) > 0 || rr_ring_size(&n->applied_ring) > 0 ||
        __atomic_load_n(&n->stopping, __ATOMIC_ACQUIRE)) {
        rr_wake_done(&n->raft_wake);
        return;
    }
    struct pollfd fds[4] = {
        {.fd = n->raft_wake.fd, .events = POLLIN},
        {.fd = n->timer_fd, .events = POLLIN},
        {.fd = n->cfg.disk->wait_fd(n->cfg.disk_ctx), .events = POLLIN},
        {.fd = n->cfg.net->wait_fd(n->cfg.net_ctx), .events = POLLIN},
    };
    (void)poll(fds, 4, -1);
    rr_wake_done(&n->raft_wake);
}

/* Stopping: refuse and fail everything pending; wait until the disk has everything. */
static void raft_shutdown(rr_node *n)
{
    __atomic_store_n(&n->closed, 1, __ATOMIC_RELEASE);
    request *failed = NULL;
    void *p;
    while (rr_ring_pop_mpsc(&n->propose_ring, &p)) {
        request *r = p;
        if (r->kind == REQ_TRANSFER)
            rr_buf_unref(&r->life);
        else
            fail_request(r, RR_NODE_STOPPED, n->soft.lead, &failed);
    }
    request *r;
    while ((r = req_list_pop(&n->proposed)) != NULL)
        fail_request(r, RR_NODE_STOPPED, n->soft.lead, &failed);
    while ((r = req_list_pop(&n->reads)) != NULL)
        fail_request(r, RR_NODE_STOPPED, n->soft.lead, &failed);
    while ((r = req_list_pop(&n->ready_reads)) != NULL)
        fail_request(r, RR_NODE_STOPPED, n->soft.lead, &failed);
    complete_later(n, reverse(failed));
    /* Writes already queued complete (or fail loudly) before the files close. */
    (void)flush_disk(n);
    while (n->disk_head != NULL) {
        if (!drain_disk(n)) {
            struct pollfd fd = {.fd = n->cfg.disk->wait_fd(n->cfg.disk_ctx), .events = POLLIN};
            (void)poll(&fd, 1, 10);
        }
    }
    n->cfg.net->flush(n->cfg.net_ctx);
}

/* Threads carry their role and node in their name (perf report --sort comm, top -H). */
static void name_thread(const char *role, rr_node_id_t id)
{
    char name[16]; /* the kernel's limit, with the terminator */
    snprintf(name, sizeof name, "rr-%s-%" PRIu64, role, id);
    (void)pthread_setname_np(pthread_self(), name);
}

static void *raft_main(void *arg)
{
    rr_node *n = arg;
    name_thread("raft", n->id);
    pthread_mutex_lock(&n->raft_mu);
    while (!__atomic_load_n(&n->stopping, __ATOMIC_ACQUIRE)) {
        if (!raft_turn(n)) {
            pthread_mutex_unlock(&n->raft_mu);
            raft_sleep(n);
            pthread_mutex_lock(&n->raft_mu);
        }
    }
    raft_shutdown(n);
    pthread_mutex_unlock(&n->raft_mu);
    return NULL;
}

/* The net thread queued received messages (rr_node_net_ops.on_receive), which came in
 * `bytes` bytes. A follower whose raft thread sleeps runs the raft turns here instead of
 * waking it: it receives, writes and acknowledges on one thread, two context switches
 * fewer per message each way (BENCHMARKS.md, window 1). Not
 * - on a leader: its next proposal wakes the raft thread anyway (from the apply thread),
 *   which then waits for the role while the net thread still holds it; measured, no gain;
 * - for large receives (a loaded follower's MsgApps): the raft thread steps them while the
 *   net thread receives the next; a small one the disk writes inline, on this thread
 *   (DISK_WAL_INLINE_BYTES_MAX), a larger one goes to its io thread, whose completion
 *   wakes the raft thread;
 * - while the raft thread is awake, or the node stops: returns false, and the net thread
 *   wakes the raft thread as usual.
 * Anything left after NET_TURNS_MAX turns wakes the raft thread. */
static bool raft_turn_on_net_thread(void *arg, uint64_t bytes)
{
    rr_node *n = arg;
    if (bytes > NET_TURN_BYTES_MAX || pthread_mutex_trylock(&n->raft_mu) != 0)
        return false;
    if (__atomic_load_n(&n->closed, __ATOMIC_ACQUIRE) ||
        __atomic_load_n(&n->stopping, __ATOMIC_ACQUIRE) || is_leader(n)) {
        pthread_mutex_unlock(&n->raft_mu);
        return false;
    }
    bool busy = true;
    int k = 0;
    for (; k < NET_TURNS_MAX && busy; k++)
        busy = raft_turn(n);
    stat_add(&n->n_turns_on_net, (uint64_t)k);
    pthread_mutex_unlock(&n->raft_mu);
    if (busy) /* more may be ready without any descriptor saying so */
        rr_wake_force(&n->raft_wake);
    return true;
}

/* ---- apply thread ---------------------------------------------------------------------- */

static void restore_run(rr_node *n, apply_item *it)
{
    if (n->cb.snapshot_restore != NULL && it->snap.meta.index > 0) {
        int rc = n->cb.snapshot_restore(n->cb.ctx, it->snap.data, it->snap.data_len);
        if (rc != 0) {
            fprintf(stderr,
                    "ringraft: node %" PRIu64 ": restoring the snapshot at %" PRIu64
                    " failed: %s; stopping\n",
                    n->id, it->snap.meta.index, rr_strerror(rc));
            abort();
        }
    }
    __atomic_store_n(&n->applied_index, it->snap.meta.index, __ATOMIC_RELAXED);
    n->since_snapshot = 0;
    rr_snapshot_clear(&it->snap);
}

/* After applying, saves the state machine every snapshot_every_entries entries and sends the
 * bytes to the raft thread, which persists them. */
static void maybe_snapshot(rr_node *n, bool force)
{
    if (n->cb.snapshot_save == NULL || n->cfg.disk->save_snapshot == NULL)
        return;
    if (!force &&
        (n->cfg.snapshot_every_entries == 0 || n->since_snapshot < n->cfg.snapshot_every_entries))
        return;
    apply_item *it = calloc(1, sizeof(*it));
    RR_ASSERT(it != NULL);
    it->kind = ITEM_SNAPSHOT;
    it->snap.meta.index = __atomic_load_n(&n->applied_index, __ATOMIC_RELAXED);
    int rc = n->cb.snapshot_save(n->cb.ctx, &it->snap.buf, &it->snap.data, &it->snap.data_len);
    if (rc != 0) {
        free(it); /* try again after the next batch */
        return;
    }
    n->since_snapshot = 0;
    while (!rr_ring_push_spsc(&n->applied_ring, it))
        sched_yield();
    rr_wake_signal(&n->raft_wake);
}

static void apply_item_run(rr_node *n, apply_item *it)
{
    /* The state machine sees normal entries with a payload; empty entries (a new leader's)
     * and conf changes are the engine's. */
    uint32_t i = 0;
    while (i < it->n_ents && it->ents[i].index <= it->skip_through)
        i++;
    while (i < it->n_ents) {
        uint32_t j = i;
        while (j < it->n_ents && it->ents[j].type == RR_ENTRY_NORMAL && it->ents[j].data_len > 0)
            j++;
        if (j > i)
            n->cb.apply(n->cb.ctx, &it->ents[i], j - i);
        i = j == i ? i + 1 : j;
    }
    if (it->n_ents > 0) {
        n->since_snapshot += it->n_ents;
        stat_add(&n->n_applied, it->n_ents);
        __atomic_store_n(&n->applied_index, it->ents[it->n_ents - 1].index, __ATOMIC_RELAXED);
    }
    uint64_t t = now_ns();
    pthread_mutex_lock(&n->hist_mu);
    for (request *q = it->done; q != NULL; q = q->next) {
        if (q->kind == REQ_PROPOSE && q->result.status == RR_NODE_COMMITTED) {
            rr_hist_record(&n->stage_ns[RR_NODE_STAGE_APPLY], t - q->committed_ns);
            rr_hist_record(&n->stage_ns[RR_NODE_STAGE_TOTAL], t - q->start_ns);
        }
    }
    pthread_mutex_unlock(&n->hist_mu);
    if (it->n_ents > 0)
        DTRACE_PROBE2(ringraft, apply, n->id, it->ents[it->n_ents - 1].index);
    request *r = it->done;
    while (r != NULL) {
        request *next = r->next;
        if (r->done != NULL)
            r->done(r->ctx, &r->result);
        rr_buf_unref(&r->life);
        r = next;
    }
    it->done = NULL;
    rr_entries_unref(it->ents, it->n_ents);
    free(it->ents);
    it->ents = NULL;
    it->n_ents = 0;
}

static void *apply_main(void *arg)
{
    rr_node *n = arg;
    name_thread("apply", n->id);
    for (;;) {
        void *p;
        if (__atomic_exchange_n(&n->snapshot_asked, 0, __ATOMIC_ACQ_REL) &&
            __atomic_load_n(&n->applied_index, __ATOMIC_RELAXED) > 0)
            maybe_snapshot(n, true); /* between two batches: a consistent state */
        if (rr_ring_pop_spsc(&n->apply_ring, &p)) {
            apply_item *it = p;
            if (it->kind == ITEM_RESTORE) {
                restore_run(n, it);
                free(it);
                continue;
            }
            bool force = it->force_snapshot;
            apply_item_run(n, it);
            maybe_snapshot(n, force);
            if (it->resp.type != 0) {
                /* A follower's acknowledgement only moves the core's applied index: it
                 * waits for the raft thread's next turn (the next message from the leader,
                 * a heartbeat, or at the latest the next tick) instead of waking it — two
                 * context switches per commit and follower at window 1. */
                bool wake = it->resp_urgent || rr_ring_size(&n->applied_ring) >= APPLIED_LAZY_MAX;
                while (!rr_ring_push_spsc(&n->applied_ring, it))
                    sched_yield();
                if (wake)
                    rr_wake_signal(&n->raft_wake);
            } else {
                free(it);
            }
            continue;
        }
        /* Stop once the raft thread has exited and everything it queued is done. */
        if (__atomic_load_n(&n->stopping, __ATOMIC_ACQUIRE) == 2)
            break;
        rr_wake_prepare(&n->apply_wake);
        if (rr_ring_size(&n->apply_ring) > 0 ||
            __atomic_load_n(&n->snapshot_asked, __ATOMIC_ACQUIRE) ||
            __atomic_load_n(&n->stopping, __ATOMIC_ACQUIRE) == 2) {
            rr_wake_done(&n->apply_wake);
            continue;
        }
        (void)rr_wake_block(&n->apply_wake, -1);
    }
    return NULL;
}

/* ---- life cycle ------------------------------------------------------------------------- */

void rr_node_config_init(rr_node_config *cfg, rr_node_id_t id)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->id = id;
    cfg->tick_ms = 100;
    cfg->election_ticks = RR_ELECTION_TICKS_DEFAULT;
    cfg->heartbeat_ticks = RR_HEARTBEAT_TICKS_DEFAULT;
    cfg->max_size_per_msg_bytes = 1u << 20;
    cfg->max_inflight_msgs = RR_INFLIGHT_MSGS_DEFAULT;
    cfg->propose_ring_capacity = 1u << 16;
    cfg->max_batch_entries = 4096;
    cfg->read_only = RR_READ_ONLY_SAFE;
    cfg->rand_seed = id;
    cfg->snapshot_every_entries = 0;
    cfg->snapshot_keep_entries = 10000;
}

/* Writes the initial configuration on a first start (empty disk). */
static int bootstrap(const rr_node_config *cfg)
{
    rr_storage s = cfg->disk->storage(cfg->disk_ctx);
    rr_hard_state hs;
    rr_conf_state cs;
    int rc = s.ops->initial_state(s.ctx, &hs, &cs);
    if (rc != 0)
        return rc;
    if (cs.voters.n > 0 || cs.learners.n > 0 || cfg->n_voters == 0)
        return 0; /* restarted, or joining (the configuration arrives by snapshot) */
    rr_snapshot snap;
    memset(&snap, 0, sizeof(snap));
    for (uint32_t i = 0; i < cfg->n_voters; i++) {
        if (!rr_id_set_insert(&snap.meta.conf_state.voters, cfg->voters[i]))
            return -EINVAL;
    }
    /* Like etcd's bootstrap: a snapshot at index 1, term 1, carrying the configuration. */
    snap.meta.index = 1;
    snap.meta.term = 1;
    int64_t seq = cfg->disk->append(cfg->disk_ctx, NULL, 0, NULL, &snap);
    if (seq < 0)
        return (int)seq;
    rc = cfg->disk->flush != NULL ? cfg->disk->flush(cfg->disk_ctx) : 0;
    if (rc < 0)
        return rc;
    while (cfg->disk->durable(cfg->disk_ctx) < seq) {
        struct pollfd fd = {.fd = cfg->disk->wait_fd(cfg->disk_ctx), .events = POLLIN};
        (void)poll(&fd, 1, 10);
    }
    return 0;
}

/* Where application resumes after a restart: the stored snapshot holds everything up to
 * its index (the log may keep entries behind it for slow followers), as far as the persisted
 * commit index vouches for it; what lies between is skipped by the apply thread. */
static rr_index_t stored_applied(const rr_node_config *cfg)
{
    rr_storage s = cfg->disk->storage(cfg->disk_ctx);
    rr_snapshot snap;
    memset(&snap, 0, sizeof(snap));
    rr_hard_state hs;
    rr_conf_state cs;
    if (s.ops->snapshot(s.ctx, &snap) != 0 || s.ops->initial_state(s.ctx, &hs, &cs) != 0)
        return 0;
    rr_index_t applied = snap.meta.index < hs.commit ? snap.meta.index : hs.commit;
    rr_snapshot_clear(&snap);
    return applied;
}

static void stats_hists_reset(rr_node *n)
{
    for (int i = 0; i < RR_NODE_STAGE_COUNT; i++)
        rr_hist_reset(&n->stage_ns[i]);
    rr_hist_reset(&n->propose_batch);
    rr_hist_reset(&n->disk_batch);
}

void rr_node_stats_reset(rr_node *n)
{
    pthread_mutex_lock(&n->hist_mu);
    stats_hists_reset(n);
    pthread_mutex_unlock(&n->hist_mu);
}

int rr_node_create(const rr_node_config *cfg, const rr_node_callbacks *cb, rr_node **out)
{
    if (cfg->disk == NULL || cfg->net == NULL || cb->apply == NULL || cfg->tick_ms == 0 ||
        cfg->max_batch_entries == 0)
        return -EINVAL;
    rr_node *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return -ENOMEM;
    n->cfg = *cfg;
    n->cb = *cb;
    n->id = cfg->id;
    n->timer_fd = -1;
    n->raft_wake.fd = n->apply_wake.fd = -1;
    pthread_mutex_init(&n->hist_mu, NULL);
    pthread_mutex_init(&n->raft_mu, NULL);
    pthread_mutex_init(&n->conf_mu, NULL);
    stats_hists_reset(n);
    int rc = bootstrap(cfg);
    if (rc == 0)
        rc = rr_ring_init(&n->propose_ring, cfg->propose_ring_capacity);
    if (rc == 0)
        rc = rr_ring_init(&n->apply_ring, APPLY_RING_CAPACITY);
    if (rc == 0)
        rc = rr_ring_init(&n->applied_ring, APPLY_RING_CAPACITY);
    if (rc == 0)
        rc = rr_wake_init(&n->raft_wake);
    if (rc == 0)
        rc = rr_wake_init(&n->apply_wake);
    n->batch = calloc(cfg->max_batch_entries, sizeof(*n->batch));
    n->batch_reqs = calloc(cfg->max_batch_entries, sizeof(*n->batch_reqs));
    if (rc == 0 && (n->batch == NULL || n->batch_reqs == NULL))
        rc = -ENOMEM;
    if (rc == 0) {
        rr_config rc_cfg;
        rr_config_init(&rc_cfg, cfg->id, cfg->disk->storage(cfg->disk_ctx));
        rc_cfg.election_ticks = cfg->election_ticks;
        rc_cfg.heartbeat_ticks = cfg->heartbeat_ticks;
        rc_cfg.max_size_per_msg_bytes = cfg->max_size_per_msg_bytes;
        rc_cfg.max_inflight_msgs = cfg->max_inflight_msgs;
        rc_cfg.max_committed_size_per_ready_bytes = RR_NO_LIMIT; /* the apply ring bounds it */
        rc_cfg.read_only_option = cfg->read_only;
        rc_cfg.rand_seed = cfg->rand_seed;
        rc_cfg.async_storage_writes = true;
        rc_cfg.applied = stored_applied(cfg);
        rc = rr_rawnode_new(&rc_cfg, &n->rn);
    }
    if (rc == 0) { /* the configuration at start: bootstrap or storage's; the log may move it */
        rr_status st;
        rr_rawnode_status(n->rn, &st);
        n->conf_pub = st.config;
    }
    if (rc != 0) {
        n->cfg.disk = NULL; /* the caller keeps its contexts when creation fails */
        n->cfg.net = NULL;
        rr_node_free(n);
        return rc;
    }
    *out = n;
    return 0;
}

/* A restarted node rebuilds its state machine from the stored snapshot first; the entries
 * after it are then applied again from the log. */
static int restore_stored(rr_node *n)
{
    rr_storage s = n->cfg.disk->storage(n->cfg.disk_ctx);
    rr_snapshot snap;
    memset(&snap, 0, sizeof(snap));
    int rc = s.ops->snapshot(s.ctx, &snap);
    if (rc == RR_ERR_SNAP_TEMP_UNAVAILABLE)
        return 0;
    if (rc != 0)
        return rc;
    record_conf(n, snap.meta.index, &snap.meta.conf_state);
    n->handed_index = snap.meta.index;
    n->snapshot_index = snap.meta.index;
    if (snap.data_len > 0 && n->cb.snapshot_restore != NULL)
        restore_later(n, &snap);
    rr_snapshot_clear(&snap);
    return 0;
}

int rr_node_start(rr_node *n)
{
    int src = restore_stored(n);
    if (src != 0)
        return src;
    n->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (n->timer_fd < 0)
        return -errno;
    struct itimerspec its;
    memset(&its, 0, sizeof(its));
    its.it_interval.tv_sec = n->cfg.tick_ms / 1000;
    its.it_interval.tv_nsec = (long)(n->cfg.tick_ms % 1000) * 1000000L;
    its.it_value = its.it_interval;
    if (timerfd_settime(n->timer_fd, 0, &its, NULL) != 0)
        return -errno;
    int rc = pthread_create(&n->apply_thread, NULL, apply_main, n);
    if (rc != 0)
        return -rc;
    if (n->cfg.net->on_receive != NULL)
        n->cfg.net->on_receive(n->cfg.net_ctx, raft_turn_on_net_thread, n);
    rc = pthread_create(&n->raft_thread, NULL, raft_main, n);
    if (rc != 0) {
        __atomic_store_n(&n->stopping, 2, __ATOMIC_RELEASE);
        rr_wake_signal(&n->apply_wake);
        pthread_join(n->apply_thread, NULL);
        return -rc;
    }
    n->started = true;
    return 0;
}

void rr_node_stop(rr_node *n)
{
    if (!n->started)
        return;
    __atomic_store_n(&n->stopping, 1, __ATOMIC_RELEASE);
    /* Forced: the raft thread may sleep in poll with `sleeping` unset between turns. */
    rr_wake_force(&n->raft_wake);
    pthread_join(n->raft_thread, NULL);
    __atomic_store_n(&n->stopping, 2, __ATOMIC_RELEASE);
    rr_wake_force(&n->apply_wake);
    pthread_join(n->apply_thread, NULL);
    n->started = false;
}

void rr_node_free(rr_node *n)
{
    if (n == NULL)
        return;
    rr_node_stop(n);
    void *p;
    if (n->propose_ring.buf != NULL) {
        while (rr_ring_pop_mpsc(&n->propose_ring, &p))
            rr_buf_unref(&((request *)p)->life); /* raced with stop: see node.h */
    }
    if (n->applied_ring.buf != NULL) {
        while (rr_ring_pop_spsc(&n->applied_ring, &p)) {
            apply_item *it = p;
            rr_snapshot_clear(&it->snap);
            rr_message_free(&it->resp);
            free(it);
        }
    }
    while (n->disk_head != NULL) {
        disk_wait *w = n->disk_head;
        n->disk_head = w->next;
        for (uint32_t i = 0; i < w->n_responses; i++)
            rr_message_free(&w->responses[i]);
        free(w->responses);
        free(w);
    }
    rr_rawnode_free(n->rn);
    if (n->cfg.net != NULL)
        n->cfg.net->close(n->cfg.net_ctx);
    if (n->cfg.disk != NULL)
        n->cfg.disk->close(n->cfg.disk_ctx);
    rr_ring_destroy(&n->propose_ring);
    rr_ring_destroy(&n->apply_ring);
    rr_ring_destroy(&n->applied_ring);
    rr_wake_destroy(&n->raft_wake);
    rr_wake_destroy(&n->apply_wake);
    if (n->timer_fd >= 0)
        close(n->timer_fd);
    free(n->batch);
    free(n->batch_reqs);
    pthread_mutex_destroy(&n->hist_mu);
    pthread_mutex_destroy(&n->conf_mu);
    pthread_mutex_destroy(&n->raft_mu); /* after net->close: its thread may still try it */
    free(n);
}

int rr_node_snapshot(rr_node *n)
{
    if (n->cb.snapshot_save == NULL || n->cfg.disk->save_snapshot == NULL)
        return -ENOTSUP;
    if (__atomic_load_n(&n->closed, __ATOMIC_ACQUIRE) ||
        __atomic_load_n(&n->stopping, __ATOMIC_ACQUIRE))
        return -ESHUTDOWN;
    __atomic_store_n(&n->snapshot_asked, 1, __ATOMIC_RELEASE);
    rr_wake_signal(&n->apply_wake);
    return 0;
}

void rr_node_conf_get(rr_node *n, rr_conf_state *out)
{
    pthread_mutex_lock(&n->conf_mu);
    *out = n->conf_pub;
    pthread_mutex_unlock(&n->conf_mu);
}

void rr_node_stats_get(rr_node *n, rr_node_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->id = n->id;
    out->leader = __atomic_load_n(&n->leader, __ATOMIC_RELAXED);
    out->term = __atomic_load_n(&n->term, __ATOMIC_RELAXED);
    out->commit = __atomic_load_n(&n->commit, __ATOMIC_RELAXED);
    out->applied = __atomic_load_n(&n->applied_index, __ATOMIC_RELAXED);
    out->proposals = __atomic_load_n(&n->n_proposals, __ATOMIC_RELAXED);
    out->entries_applied = __atomic_load_n(&n->n_applied, __ATOMIC_RELAXED);
    out->readies = __atomic_load_n(&n->n_readies, __ATOMIC_RELAXED);
    out->disk_appends = __atomic_load_n(&n->n_disk_appends, __ATOMIC_RELAXED);
    out->messages_sent = __atomic_load_n(&n->n_sent, __ATOMIC_RELAXED);
    out->messages_received = __atomic_load_n(&n->n_received, __ATOMIC_RELAXED);
    out->bytes_proposed = __atomic_load_n(&n->n_bytes_proposed, __ATOMIC_RELAXED);
    out->turns_on_net = __atomic_load_n(&n->n_turns_on_net, __ATOMIC_RELAXED);
    if (n->cfg.disk->syncs != NULL)
        out->disk_syncs = n->cfg.disk->syncs(n->cfg.disk_ctx);
    if (n->cfg.net->counters != NULL)
        n->cfg.net->counters(n->cfg.net_ctx, &out->net);
    out->batch_entries_max = __atomic_load_n(&n->batch_max, __ATOMIC_RELAXED);
    out->snapshots = __atomic_load_n(&n->n_snapshots, __ATOMIC_RELAXED);
    pthread_mutex_lock(&n->hist_mu);
    for (int i = 0; i < RR_NODE_STAGE_COUNT; i++) {
        const rr_hist *h = &n->stage_ns[i];
        rr_node_latency *l = &out->stage[i];
        l->count = h->count;
        l->p50_ns = rr_hist_quantile(h, 0.50);
        l->p90_ns = rr_hist_quantile(h, 0.90);
        l->p99_ns = rr_hist_quantile(h, 0.99);
        l->p999_ns = rr_hist_quantile(h, 0.999);
        l->max_ns = h->count > 0 ? h->max : 0;
        l->mean_ns = rr_hist_mean(h);
    }
    out->propose_batch_mean = rr_hist_mean(&n->propose_batch);
    out->disk_batch_mean = rr_hist_mean(&n->disk_batch);
    pthread_mutex_unlock(&n->hist_mu);
    out->commit_p50_ns = out->stage[RR_NODE_STAGE_TOTAL].p50_ns;
    out->commit_p99_ns = out->stage[RR_NODE_STAGE_TOTAL].p99_ns;
    out->commit_max_ns = out->stage[RR_NODE_STAGE_TOTAL].max_ns;
}
