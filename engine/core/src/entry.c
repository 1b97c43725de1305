/* entry.c: entries, entry arrays, snapshots, messages, Readys and config defaults.
 * See ringraft/core.h and entry_internal.h. */
#include "ringraft/core.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "entry_internal.h"
#include "ringraft/assert.h"

/* ---- entries ---- */

void rr_entry_clear(rr_entry *e)
{
    rr_buf_unref(e->buf);
    memset(e, 0, sizeof(*e));
}

void rr_entry_copy(rr_entry *dst, const rr_entry *src)
{
    *dst = *src;
    rr_buf_ref(dst->buf);
}

/* Length of the run of entries from ents[0] sharing ents[0].buf (at most n, capped so the
 * count fits the reference counter's width). */
static uint32_t run_length(const rr_entry *ents, size_t n)
{
    size_t k = 1;
    while (k < n && k < UINT32_MAX / 2 && ents[k].buf == ents[0].buf)
        k++;
    return (uint32_t)k;
}

void rr_entries_ref(const rr_entry *ents, size_t n)
{
    while (n > 0) {
        uint32_t k = run_length(ents, n);
        rr_buf_ref_n(ents[0].buf, k);
        ents += k;
        n -= k;
    }
}

void rr_entries_unref(const rr_entry *ents, size_t n)
{
    while (n > 0) {
        uint32_t k = run_length(ents, n);
        rr_buf_unref_n(ents[0].buf, k);
        ents += k;
        n -= k;
    }
}

/* Bytes of x as a protobuf varint: 7 bits per byte, at least one byte. */
static uint64_t varint_bytes(uint64_t x)
{
    uint64_t bits = 64 - (uint64_t)__builtin_clzll(x | 1);
    return (bits + 6) / 7;
}

/* etcd sizes its limits with raftpb.Entry.Size(), the gogoproto encoding in which Type
 * (field 1), Term (2) and Index (3) are non-nullable and always written as tag + varint,
 * and Data (4) is written as tag + varint length + bytes whenever it is non-nil — even
 * when empty. A NULL data pointer is our nil; each tag of these fields is one byte. */
uint64_t rr_entry_size_bytes(const rr_entry *e)
{
    if (e->data == NULL)
        RR_ASSERT(e->data_len == 0);
    uint64_t n = 1 + varint_bytes(e->type);
    n += 1 + varint_bytes(e->term);
    n += 1 + varint_bytes(e->index);
    if (e->data != NULL)
        n += 1 + varint_bytes(e->data_len) + e->data_len;
    return n;
}

uint64_t rr_entries_size_bytes(const rr_entry *ents, size_t n)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += rr_entry_size_bytes(&ents[i]);
    return total;
}

uint64_t rr_entries_payload_bytes(const rr_entry *ents, size_t n)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += ents[i].data_len;
    return total;
}

size_t rr_entries_within(const rr_entry *ents, size_t n, size_t taken, uint64_t *size_bytes,
                         uint64_t max_bytes)
{
    if (max_bytes == RR_NO_LIMIT)
        return n;
    /* Most reads fit their limit whole: one pass over the lengths decides that. */
    uint64_t bound = *size_bytes + (uint64_t)n * RR_ENTRY_SIZE_OVERHEAD_MAX;
    for (size_t i = 0; i < n; i++)
        bound += ents[i].data_len;
    if (bound <= max_bytes) {
        *size_bytes += rr_entries_size_bytes(ents, n);
        return n;
    }
    size_t take = 0;
    uint64_t size = *size_bytes;
    while (take < n) {
        uint64_t e_bytes = rr_entry_size_bytes(&ents[take]);
        if (taken + take > 0 && (size > max_bytes || e_bytes > max_bytes - size))
            break;
        size += e_bytes;
        take++;
    }
    *size_bytes = size;
    return take;
}

/* ---- entry arrays ---- */

int rr_entry_vec_reserve(rr_entry_vec *vec, size_t cap)
{
    if (cap <= vec->cap)
        return 0;
    size_t want = vec->cap < 8 ? 8 : vec->cap;
    while (want < cap) {
        if (want > SIZE_MAX / 2 / sizeof(rr_entry))
            return -ENOMEM;
        want *= 2;
    }
    rr_entry *v = realloc(vec->v, want * sizeof(rr_entry));
    if (v == NULL)
        return -ENOMEM;
    vec->v = v;
    vec->cap = want;
    return 0;
}

int rr_entry_vec_push(rr_entry_vec *vec, const rr_entry *e)
{
    return rr_entry_vec_push_n(vec, e, 1);
}

int rr_entry_vec_push_n(rr_entry_vec *vec, const rr_entry *ents, size_t n)
{
    if (n == 0)
        return 0;
    if (n > SIZE_MAX - vec->n)
        return -ENOMEM;
    int rc = rr_entry_vec_reserve(vec, vec->n + n);
    if (rc != 0)
        return rc;
    memcpy(&vec->v[vec->n], ents, n * sizeof(rr_entry));
    rr_entries_ref(ents, n);
    vec->n += n;
    return 0;
}

void rr_entry_vec_truncate(rr_entry_vec *vec, size_t n)
{
    RR_ASSERT(n <= vec->n);
    rr_entries_unref(vec->v + n, vec->n - n);
    vec->n = n;
}

void rr_entry_vec_drop_front(rr_entry_vec *vec, size_t k)
{
    RR_ASSERT(k <= vec->n);
    if (k == 0)
        return;
    rr_entries_unref(vec->v, k);
    memmove(vec->v, vec->v + k, (vec->n - k) * sizeof(rr_entry));
    vec->n -= k;
}

void rr_entry_vec_clear(rr_entry_vec *vec)
{
    rr_entry_vec_truncate(vec, 0);
}

void rr_entry_vec_free(rr_entry_vec *vec)
{
    rr_entry_vec_clear(vec);
    free(vec->v);
    memset(vec, 0, sizeof(*vec));
}

/* ---- snapshots ---- */

void rr_snapshot_clear(rr_snapshot *snap)
{
    rr_buf_unref(snap->buf);
    memset(snap, 0, sizeof(*snap));
}

void rr_snapshot_copy(rr_snapshot *dst, const rr_snapshot *src)
{
    *dst = *src;
    rr_buf_ref(dst->buf);
}

/* ---- messages ---- */

static void entries_free(rr_entry *ents, uint32_t n)
{
    rr_entries_unref(ents, n);
    free(ents);
}

/* Frees what one message owns except its responses. */
static void message_parts_free(rr_message *m)
{
    entries_free(m->entries, m->n_entries);
    m->entries = NULL;
    m->n_entries = 0;
    if (m->snapshot != NULL) {
        rr_snapshot_clear(m->snapshot);
        free(m->snapshot);
        m->snapshot = NULL;
    }
    free(m->context);
    m->context = NULL;
    m->context_len = 0;
}

void rr_message_free(rr_message *m)
{
    message_parts_free(m);
    /* Responses are one level deep (etcd's MsgStorageAppend/Apply carry plain messages). */
    for (uint32_t i = 0; i < m->n_responses; i++) {
        RR_ASSERT(m->responses[i].n_responses == 0);
        message_parts_free(&m->responses[i]);
    }
    free(m->responses);
    memset(m, 0, sizeof(*m));
}

/* dst = src's scalars plus its own copies of entries, snapshot and context; responses are
 * left to the caller. On -ENOMEM dst owns nothing. */
static int message_parts_copy(rr_message *dst, const rr_message *src)
{
    *dst = *src;
    dst->entries = NULL;
    dst->n_entries = 0;
    dst->snapshot = NULL;
    dst->context = NULL;
    dst->context_len = 0;
    dst->responses = NULL;
    dst->n_responses = 0;

    if (src->n_entries > 0) {
        dst->entries = malloc((size_t)src->n_entries * sizeof(rr_entry));
        if (dst->entries == NULL)
            goto nomem;
        memcpy(dst->entries, src->entries, (size_t)src->n_entries * sizeof(rr_entry));
        rr_entries_ref(src->entries, src->n_entries);
        dst->n_entries = src->n_entries;
    }
    if (src->snapshot != NULL) {
        dst->snapshot = malloc(sizeof(rr_snapshot));
        if (dst->snapshot == NULL)
            goto nomem;
        rr_snapshot_copy(dst->snapshot, src->snapshot);
    }
    if (src->context_len > 0) {
        dst->context = malloc(src->context_len);
        if (dst->context == NULL)
            goto nomem;
        memcpy(dst->context, src->context, src->context_len);
        dst->context_len = src->context_len;
    }
    return 0;
nomem:
    message_parts_free(dst);
    return -ENOMEM;
}

int rr_message_copy(rr_message *dst, const rr_message *src)
{
    int rc = message_parts_copy(dst, src);
    if (rc != 0)
        return rc;
    if (src->n_responses == 0)
        return 0;
    dst->responses = calloc(src->n_responses, sizeof(rr_message));
    if (dst->responses == NULL) {
        rr_message_free(dst);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < src->n_responses; i++) {
        RR_ASSERT(src->responses[i].n_responses == 0);
        rc = message_parts_copy(&dst->responses[i], &src->responses[i]);
        if (rc != 0) {
            dst->n_responses = i; /* the copies made so far are freed with dst */
            rr_message_free(dst);
            return rc;
        }
    }
    dst->n_responses = src->n_responses;
    return 0;
}

/* ---- Ready ---- */

void rr_ready_free(rr_ready *rd)
{
    for (uint32_t i = 0; i < rd->n_read_states; i++)
        free(rd->read_states[i].request_ctx);
    free(rd->read_states);
    entries_free(rd->entries, rd->n_entries);
    if (rd->snapshot != NULL) {
        rr_snapshot_clear(rd->snapshot);
        free(rd->snapshot);
    }
    entries_free(rd->committed_entries, rd->n_committed_entries);
    /* A message moved out by the caller left a zeroed slot: freeing it is a no-op. */
    for (uint32_t i = 0; i < rd->n_messages; i++)
        rr_message_free(&rd->messages[i]);
    free(rd->messages);
    memset(rd, 0, sizeof(*rd));
}

/* ---- message types ---- */

/* etcd's util.go isLocalMsg: never sent to a peer. MsgProp, MsgReadIndex, MsgTransferLeader
 * and MsgForgetLeader are stepped locally but may be forwarded, so they are not local. */
bool rr_msg_is_local(uint8_t type)
{
    switch (type) {
    case RR_MSG_HUP:
    case RR_MSG_BEAT:
    case RR_MSG_UNREACHABLE:
    case RR_MSG_SNAP_STATUS:
    case RR_MSG_CHECK_QUORUM:
    case RR_MSG_STORAGE_APPEND:
    case RR_MSG_STORAGE_APPEND_RESP:
    case RR_MSG_STORAGE_APPLY:
    case RR_MSG_STORAGE_APPLY_RESP:
        return true;
    default:
        return false;
    }
}

/* etcd's util.go isResponseMsg (MsgUnreachable counts: it reports on a sent message). */
bool rr_msg_is_response(uint8_t type)
{
    switch (type) {
    case RR_MSG_APP_RESP:
    case RR_MSG_VOTE_RESP:
    case RR_MSG_HEARTBEAT_RESP:
    case RR_MSG_UNREACHABLE:
    case RR_MSG_READ_INDEX_RESP:
    case RR_MSG_PRE_VOTE_RESP:
    case RR_MSG_STORAGE_APPEND_RESP:
    case RR_MSG_STORAGE_APPLY_RESP:
        return true;
    default:
        return false;
    }
}

static const char *const msg_type_names[RR_MSG_TYPE_COUNT] = {
    [RR_MSG_HUP] = "MsgHup",
    [RR_MSG_BEAT] = "MsgBeat",
    [RR_MSG_PROP] = "MsgProp",
    [RR_MSG_APP] = "MsgApp",
    [RR_MSG_APP_RESP] = "MsgAppResp",
    [RR_MSG_VOTE] = "MsgVote",
    [RR_MSG_VOTE_RESP] = "MsgVoteResp",
    [RR_MSG_SNAP] = "MsgSnap",
    [RR_MSG_HEARTBEAT] = "MsgHeartbeat",
    [RR_MSG_HEARTBEAT_RESP] = "MsgHeartbeatResp",
    [RR_MSG_UNREACHABLE] = "MsgUnreachable",
    [RR_MSG_SNAP_STATUS] = "MsgSnapStatus",
    [RR_MSG_CHECK_QUORUM] = "MsgCheckQuorum",
    [RR_MSG_TRANSFER_LEADER] = "MsgTransferLeader",
    [RR_MSG_TIMEOUT_NOW] = "MsgTimeoutNow",
    [RR_MSG_READ_INDEX] = "MsgReadIndex",
    [RR_MSG_READ_INDEX_RESP] = "MsgReadIndexResp",
    [RR_MSG_PRE_VOTE] = "MsgPreVote",
    [RR_MSG_PRE_VOTE_RESP] = "MsgPreVoteResp",
    [RR_MSG_STORAGE_APPEND] = "MsgStorageAppend",
    [RR_MSG_STORAGE_APPEND_RESP] = "MsgStorageAppendResp",
    [RR_MSG_STORAGE_APPLY] = "MsgStorageApply",
    [RR_MSG_STORAGE_APPLY_RESP] = "MsgStorageApplyResp",
    [RR_MSG_FORGET_LEADER] = "MsgForgetLeader",
};

const char *rr_msg_type_name(uint8_t type)
{
    /* etcd prints an unknown enum value as its number; without stdio we cannot. */
    if (type >= RR_MSG_TYPE_COUNT || msg_type_names[type] == NULL)
        return "MsgUnknown";
    return msg_type_names[type];
}

/* ---- configuration ---- */

void rr_config_init(rr_config *cfg, rr_node_id_t id, rr_storage storage)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->id = id;
    cfg->election_ticks = RR_ELECTION_TICKS_DEFAULT;
    cfg->heartbeat_ticks = RR_HEARTBEAT_TICKS_DEFAULT;
    cfg->storage = storage;
    /* Distinct per node by default so that a cluster built from defaults does not draw
     * identical election timeouts and split every vote. */
    cfg->rand_seed = id;
    cfg->max_size_per_msg_bytes = RR_NO_LIMIT;
    cfg->max_committed_size_per_ready_bytes = 0; /* RR_NO_LIMIT */
    cfg->max_uncommitted_entries_size_bytes = 0; /* RR_NO_LIMIT */
    cfg->max_inflight_msgs = RR_INFLIGHT_MSGS_DEFAULT;
    cfg->max_inflight_bytes = 0; /* RR_NO_LIMIT */
    /* DESIGN.md "Defaults and limits": PreVote and CheckQuorum on, as etcd server runs. */
    cfg->check_quorum = true;
    cfg->pre_vote = true;
    cfg->read_only_option = RR_READ_ONLY_SAFE;
}
