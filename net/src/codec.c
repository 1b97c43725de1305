/*
 * codec.c: the wire format. Every integer is fixed-width little-endian; limits are in
 * ringraft/codec.h.
 *
 * A connection carries a sequence of frames. The dialer's first frame is a HELLO; after
 * that either side sends MSGS and SNAP_CHUNK frames in any order.
 *
 * Frame header (RR_CODEC_FRAME_HEADER_BYTES = 24):
 *   offset size field
 *   0      4    magic       0x3146524e ("NRF1")
 *   4      1    version     1
 *   5      1    kind        1 MSGS, 2 HELLO, 3 SNAP_CHUNK
 *   6      2    reserved    zero
 *   8      4    body_len    <= RR_CODEC_FRAME_BODY_BYTES_MAX
 *   12     4    count       messages in a MSGS body (1..RR_CODEC_FRAME_MSGS_MAX), else 0
 *   16     4    body_crc    CRC-32C of the body
 *   20     4    header_crc  CRC-32C of bytes 0..20
 * The header has its own CRC so that a receiver trusts body_len (and allocates for it)
 * only after the header proved intact, before the body has arrived.
 *
 * HELLO body (24): cluster_id u64, from (dialer id) u64, to (acceptor id) u64.
 *
 * MSGS body: `count` message records back to back, nothing after the last. A record
 * (RR_CODEC_MSG_HEADER_BYTES = 80, then variable parts):
 *   0  1 type (rr_msg_type; never a local type)   1  1 flags: bit 0 reject, bit 1 snapshot
 *   2  2 reserved (zero)                          4  4 context_len (<= CONTEXT_BYTES_MAX)
 *   8  4 n_entries (<= MSG_ENTRIES_MAX)           12 4 reserved (zero)
 *   16 8 to    24 8 from    32 8 term    40 8 log_term
 *   48 8 index 56 8 commit  64 8 vote    72 8 reject_hint
 *   80 context_len bytes of context
 *   then n_entries entries in the shared entry encoding (ringraft/entry_codec.h), back to
 *        back: exactly the bytes the WAL stores, so a follower can persist them as they are
 *   then, if flag bit 1, the snapshot (RR_CODEC_SNAP_HEADER_BYTES = 32, then variable):
 *     0 8 index   8 8 term   16 8 data_len
 *     24 1 n_voters  25 1 n_voters_outgoing  26 1 n_learners  27 1 n_learners_next
 *        (each <= RR_NODES_MAX)
 *     28 1 auto_leave (0/1)  29 1 flags: bit 0 data streamed  30 2 reserved (zero)
 *     32 the four id lists, u64 each, each sorted ascending, distinct, nonzero
 *     then data_len bytes of data, unless streamed (then data_len is the total carried by
 *     the SNAP_CHUNK frames that came before on this connection); inline data_len
 *     <= RR_CODEC_SNAP_INLINE_BYTES_MAX
 *
 * SNAP_CHUNK body (RR_CODEC_CHUNK_HEADER_BYTES = 32, then data):
 *   0 8 snap_index  8 8 snap_term  16 8 offset  24 8 total_len (<= SNAPSHOT_BYTES_MAX)
 *   32 body_len - 32 bytes of data (1..RR_CODEC_CHUNK_BYTES_MAX, offset + len <= total)
 */
#include "ringraft/codec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ringraft/assert.h"
#include "ringraft/le.h"
#include "ringraft/crc32c.h"

#define MSG_FLAG_REJECT    0x01u
#define MSG_FLAG_SNAPSHOT  0x02u
#define SNAP_FLAG_STREAMED 0x01u

/* ---- frame header ---- */

void rr_codec_header_encode(uint8_t kind, uint32_t body_len, uint32_t count, uint32_t body_crc,
                            uint8_t out[RR_CODEC_FRAME_HEADER_BYTES])
{
    rr_le_put_u32(out, RR_CODEC_MAGIC);
    out[4] = (uint8_t)RR_CODEC_VERSION;
    out[5] = kind;
    rr_le_put_u16(out + 6, 0);
    rr_le_put_u32(out + 8, body_len);
    rr_le_put_u32(out + 12, count);
    rr_le_put_u32(out + 16, body_crc);
    rr_le_put_u32(out + 20, rr_crc32c(0, out, 20));
}

static bool kind_valid(uint8_t kind, uint32_t count)
{
    if (kind == RR_CODEC_KIND_MSGS)
        return count >= 1 && count <= RR_CODEC_FRAME_MSGS_MAX;
    if (kind == RR_CODEC_KIND_HELLO || kind == RR_CODEC_KIND_SNAP_CHUNK)
        return count == 0;
    return false;
}

int rr_codec_header_decode(const uint8_t *p, size_t len, rr_codec_frame_header *h)
{
    if (len < RR_CODEC_FRAME_HEADER_BYTES)
        return RR_ERR_TRUNCATED;
    if (rr_le_get_u32(p) != RR_CODEC_MAGIC || p[4] != RR_CODEC_VERSION)
        return RR_ERR_BAD_VERSION;
    if (rr_le_get_u32(p + 20) != rr_crc32c(0, p, 20))
        return RR_ERR_CORRUPT;
    uint32_t body_len = rr_le_get_u32(p + 8), count = rr_le_get_u32(p + 12);
    if (p[6] != 0 || p[7] != 0 || !kind_valid(p[5], count))
        return RR_ERR_CORRUPT;
    if (body_len > RR_CODEC_FRAME_BODY_BYTES_MAX)
        return RR_ERR_TOO_LARGE;
    h->kind = p[5];
    h->body_len = body_len;
    h->count = count;
    h->body_crc = rr_le_get_u32(p + 16);
    return 0;
}

int rr_codec_body_check(const rr_codec_frame_header *h, const uint8_t *body, size_t len)
{
    if (len < h->body_len)
        return RR_ERR_TRUNCATED;
    if (rr_crc32c(0, body, h->body_len) != h->body_crc)
        return RR_ERR_CORRUPT;
    return 0;
}

/* ---- encoding ---- */

static uint32_t snapshot_ids(const rr_snapshot *s)
{
    const rr_conf_state *cs = &s->meta.conf_state;
    return cs->voters.n + cs->voters_outgoing.n + cs->learners.n + cs->learners_next.n;
}

bool rr_codec_snapshot_streams(const rr_message *m)
{
    return m->snapshot != NULL && m->snapshot->data_len > RR_CODEC_SNAP_INLINE_BYTES_MAX;
}

bool rr_codec_message_sendable(const rr_message *m)
{
    if (m->type >= RR_MSG_TYPE_COUNT || rr_msg_is_local(m->type))
        return false;
    if (m->n_responses != 0 || m->context_len > RR_CODEC_CONTEXT_BYTES_MAX)
        return false;
    if (m->n_entries > RR_CODEC_MSG_ENTRIES_MAX)
        return false;
    if (m->snapshot != NULL && m->snapshot->data_len > RR_CODEC_SNAPSHOT_BYTES_MAX)
        return false;
    return rr_codec_message_bytes(m) <= RR_CODEC_FRAME_BODY_BYTES_MAX; /* fits one frame */
}

size_t rr_codec_message_bytes(const rr_message *m)
{
    size_t n = RR_CODEC_MSG_HEADER_BYTES + m->context_len;
    for (uint32_t i = 0; i < m->n_entries; i++)
        n += rr_entry_encoded_bytes(&m->entries[i]);
    if (m->snapshot != NULL) {
        n += RR_CODEC_SNAP_HEADER_BYTES + 8u * snapshot_ids(m->snapshot);
        if (!rr_codec_snapshot_streams(m))
            n += (size_t)m->snapshot->data_len;
    }
    return n;
}

/* A payload is referenced (an iovec and a buffer reference) rather than copied when it is
 * long enough that copying costs more than the iovec, and when a buffer keeps it alive. */
static bool payload_referenced(const rr_codec_writer *w, uint64_t len, const rr_buf *buf)
{
    return buf != NULL && len > 0 && len >= w->ref_min_bytes;
}

void rr_codec_writer_needs(const rr_codec_writer *w, const rr_message *m, size_t *stage_bytes,
                           uint32_t *iovs)
{
    size_t stage = RR_CODEC_MSG_HEADER_BYTES + m->context_len;
    uint32_t refs = 0;
    for (uint32_t i = 0; i < m->n_entries; i++) {
        const rr_entry *e = &m->entries[i];
        stage += RR_ENTRY_HEADER_BYTES;
        if (payload_referenced(w, e->data_len, e->buf))
            refs++;
        else
            stage += e->data_len;
    }
    if (m->snapshot != NULL) {
        stage += RR_CODEC_SNAP_HEADER_BYTES + 8u * snapshot_ids(m->snapshot);
        const rr_snapshot *s = m->snapshot;
        if (rr_codec_snapshot_streams(m))
            ; /* data travels in chunks */
        else if (payload_referenced(w, s->data_len, s->buf))
            refs++;
        else
            stage += (size_t)s->data_len;
    }
    *stage_bytes = stage;
    /* Each referenced payload is one iovec and may split the staging bytes in two. */
    *iovs = 2 * refs + 1;
}

void rr_codec_writer_begin(rr_codec_writer *w)
{
    RR_ASSERT(w->iov_cap >= 2);
    w->stage_len = 0;
    w->n_iov = 1; /* iov[0]: the frame header */
    w->n_refs = 0;
    w->kind = RR_CODEC_KIND_MSGS;
    w->count = 0;
    w->body_len = 0;
    w->body_crc = 0;
}

/* Copies bytes into the staging area, extending the last iovec when it ends there. */
static void stage_put(rr_codec_writer *w, const void *src, size_t len)
{
    if (len == 0)
        return;
    RR_ASSERT(w->stage_len + len <= w->stage_cap);
    uint8_t *dst = w->stage + w->stage_len;
    memcpy(dst, src, len);
    w->stage_len += len;
    w->body_len += len;
    struct iovec *last = &w->iov[w->n_iov - 1];
    if (w->n_iov > 1 && (uint8_t *)last->iov_base + last->iov_len == dst) {
        last->iov_len += len;
        return;
    }
    RR_ASSERT(w->n_iov < w->iov_cap);
    w->iov[w->n_iov++] = (struct iovec){.iov_base = dst, .iov_len = len};
}

/* Appends a payload: an iovec on its own buffer (one more reference) or a copy. */
static void payload_put(rr_codec_writer *w, const uint8_t *data, uint64_t len, rr_buf *buf)
{
    if (!payload_referenced(w, len, buf)) {
        stage_put(w, data, (size_t)len);
        return;
    }
    RR_ASSERT(w->n_iov < w->iov_cap);
    w->iov[w->n_iov++] = (struct iovec){.iov_base = (void *)data, .iov_len = (size_t)len};
    rr_buf_ref(buf);
    w->refs[w->n_refs++] = buf;
    w->body_len += len;
}

static void message_header_put(rr_codec_writer *w, const rr_message *m)
{
    uint8_t h[RR_CODEC_MSG_HEADER_BYTES];
    h[0] = m->type;
    h[1] = (uint8_t)((m->reject ? MSG_FLAG_REJECT : 0) |
                     (m->snapshot != NULL ? MSG_FLAG_SNAPSHOT : 0));
    rr_le_put_u16(h + 2, 0);
    rr_le_put_u32(h + 4, m->context_len);
    rr_le_put_u32(h + 8, m->n_entries);
    rr_le_put_u32(h + 12, 0);
    rr_le_put_u64(h + 16, m->to);
    rr_le_put_u64(h + 24, m->from);
    rr_le_put_u64(h + 32, m->term);
    rr_le_put_u64(h + 40, m->log_term);
    rr_le_put_u64(h + 48, m->index);
    rr_le_put_u64(h + 56, m->commit);
    rr_le_put_u64(h + 64, m->vote);
    rr_le_put_u64(h + 72, m->reject_hint);
    stage_put(w, h, sizeof h);
}

static void id_set_put(rr_codec_writer *w, const rr_id_set *s)
{
    uint8_t b[8];
    for (uint32_t i = 0; i < s->n; i++) {
        rr_le_put_u64(b, s->ids[i]);
        stage_put(w, b, sizeof b);
    }
}

static void snapshot_put(rr_codec_writer *w, const rr_message *m)
{
    const rr_snapshot *s = m->snapshot;
    const rr_conf_state *cs = &s->meta.conf_state;
    bool streamed = rr_codec_snapshot_streams(m);
    uint8_t h[RR_CODEC_SNAP_HEADER_BYTES];
    rr_le_put_u64(h, s->meta.index);
    rr_le_put_u64(h + 8, s->meta.term);
    rr_le_put_u64(h + 16, s->data_len);
    h[24] = (uint8_t)cs->voters.n;
    h[25] = (uint8_t)cs->voters_outgoing.n;
    h[26] = (uint8_t)cs->learners.n;
    h[27] = (uint8_t)cs->learners_next.n;
    h[28] = cs->auto_leave ? 1 : 0;
    h[29] = streamed ? SNAP_FLAG_STREAMED : 0;
    rr_le_put_u16(h + 30, 0);
    stage_put(w, h, sizeof h);
    id_set_put(w, &cs->voters);
    id_set_put(w, &cs->voters_outgoing);
    id_set_put(w, &cs->learners);
    id_set_put(w, &cs->learners_next);
    if (!streamed)
        payload_put(w, s->data, s->data_len, s->buf);
}

int rr_codec_writer_add(rr_codec_writer *w, const rr_message *m)
{
    if (!rr_codec_message_sendable(m))
        return -EINVAL;
    RR_ASSERT(w->kind == RR_CODEC_KIND_MSGS);
    size_t stage;
    uint32_t iovs;
    rr_codec_writer_needs(w, m, &stage, &iovs);
    if (w->count >= RR_CODEC_FRAME_MSGS_MAX || w->stage_len + stage > w->stage_cap)
        return -ENOBUFS;
    if (w->n_iov + iovs > w->iov_cap)
        return -ENOBUFS;
    if (w->body_len + rr_codec_message_bytes(m) > RR_CODEC_FRAME_BODY_BYTES_MAX)
        return -ENOBUFS;
    message_header_put(w, m);
    stage_put(w, m->context, m->context_len);
    for (uint32_t i = 0; i < m->n_entries; i++) {
        const rr_entry *e = &m->entries[i];
        uint8_t eh[RR_ENTRY_HEADER_BYTES];
        rr_entry_encode_header(e, eh);
        stage_put(w, eh, sizeof eh);
        payload_put(w, e->data, e->data_len, e->buf);
    }
    if (m->snapshot != NULL)
        snapshot_put(w, m);
    w->count++;
    return 0;
}

int rr_codec_writer_add_chunk(rr_codec_writer *w, const rr_codec_chunk *c, rr_buf *buf)
{
    if (c->len == 0 || c->len > RR_CODEC_CHUNK_BYTES_MAX ||
        c->total_len > RR_CODEC_SNAPSHOT_BYTES_MAX)
        return -EINVAL;
    if (c->offset > c->total_len || c->total_len - c->offset < c->len)
        return -EINVAL;
    RR_ASSERT(w->count == 0);
    RR_ASSERT(w->body_len == 0);
    size_t stage = RR_CODEC_CHUNK_HEADER_BYTES + (payload_referenced(w, c->len, buf) ? 0 : c->len);
    if (stage > w->stage_cap || w->iov_cap < 4)
        return -ENOBUFS;
    uint8_t h[RR_CODEC_CHUNK_HEADER_BYTES];
    rr_le_put_u64(h, c->snap_index);
    rr_le_put_u64(h + 8, c->snap_term);
    rr_le_put_u64(h + 16, c->offset);
    rr_le_put_u64(h + 24, c->total_len);
    stage_put(w, h, sizeof h);
    payload_put(w, c->data, c->len, buf);
    w->kind = RR_CODEC_KIND_SNAP_CHUNK;
    return 0;
}

size_t rr_codec_writer_finish(rr_codec_writer *w)
{
    RR_ASSERT(w->body_len <= RR_CODEC_FRAME_BODY_BYTES_MAX);
    uint32_t crc = 0;
    for (uint32_t i = 1; i < w->n_iov; i++)
        crc = rr_crc32c(crc, w->iov[i].iov_base, w->iov[i].iov_len);
    w->body_crc = crc;
    rr_codec_header_encode(w->kind, (uint32_t)w->body_len, w->count, crc, w->header);
    w->iov[0] = (struct iovec){.iov_base = w->header, .iov_len = RR_CODEC_FRAME_HEADER_BYTES};
    return RR_CODEC_FRAME_HEADER_BYTES + (size_t)w->body_len;
}

void rr_codec_writer_release(rr_codec_writer *w)
{
    for (uint32_t i = 0; i < w->n_refs; i++)
        rr_buf_unref(w->refs[i]);
    w->n_refs = 0;
}

int rr_codec_frame_encode(const rr_message *msgs, uint32_t n, uint8_t *out, size_t cap)
{
    if (n == 0 || n > RR_CODEC_FRAME_MSGS_MAX)
        return -EINVAL;
    if (cap < RR_CODEC_FRAME_HEADER_BYTES || cap > INT32_MAX)
        return -ENOBUFS;
    /* Everything copied (ref_min_bytes above any payload): one contiguous iovec. */
    struct iovec iov[3]; /* header, stage, and the spare rr_codec_writer_needs counts */
    rr_codec_writer w = {.stage = out + RR_CODEC_FRAME_HEADER_BYTES,
                         .stage_cap = cap - RR_CODEC_FRAME_HEADER_BYTES,
                         .iov = iov,
                         .iov_cap = 3,
                         .refs = NULL,
                         .ref_min_bytes = UINT32_MAX};
    rr_codec_writer_begin(&w);
    for (uint32_t i = 0; i < n; i++) {
        int rc = rr_codec_writer_add(&w, &msgs[i]);
        if (rc != 0)
            return rc;
    }
    size_t total = rr_codec_writer_finish(&w);
    memcpy(out, w.header, RR_CODEC_FRAME_HEADER_BYTES);
    return (int)total;
}

size_t rr_codec_hello_encode(const rr_codec_hello *h,
                             uint8_t out[RR_CODEC_FRAME_HEADER_BYTES + RR_CODEC_HELLO_BYTES])
{
    uint8_t *body = out + RR_CODEC_FRAME_HEADER_BYTES;
    rr_le_put_u64(body, h->cluster_id);
    rr_le_put_u64(body + 8, h->from);
    rr_le_put_u64(body + 16, h->to);
    rr_codec_header_encode(RR_CODEC_KIND_HELLO, RR_CODEC_HELLO_BYTES, 0,
                           rr_crc32c(0, body, RR_CODEC_HELLO_BYTES), out);
    return RR_CODEC_FRAME_HEADER_BYTES + RR_CODEC_HELLO_BYTES;
}

/* ---- decoding: p/left is the unread input; every read is checked against left first ---- */

typedef struct reader {
    const uint8_t *p;
    size_t left;
} reader;

static const uint8_t *take(reader *r, size_t n)
{
    if (r->left < n)
        return NULL;
    const uint8_t *at = r->p;
    r->p += n;
    r->left -= n;
    return at;
}

static int id_set_decode(reader *r, uint8_t n, rr_id_set *s)
{
    const uint8_t *p = take(r, 8u * n);
    if (p == NULL)
        return RR_ERR_TRUNCATED;
    s->n = n;
    for (uint32_t i = 0; i < n; i++) {
        s->ids[i] = rr_le_get_u64(p + 8 * i);
        /* rr_id_set is a sorted set of nonzero ids; the core relies on it. */
        if (s->ids[i] == RR_NODE_ID_NONE)
            return RR_ERR_CORRUPT;
        if (i > 0 && s->ids[i] <= s->ids[i - 1])
            return RR_ERR_CORRUPT;
    }
    return 0;
}

static int snapshot_data_attach(reader *r, rr_snapshot *s, uint64_t data_len, bool streamed,
                                rr_buf *owner, const rr_codec_streamed *st)
{
    if (streamed) {
        /* Only data that arrived in chunks on this connection, for this very snapshot. */
        if (st == NULL || st->snap_index != s->meta.index || st->snap_term != s->meta.term)
            return RR_ERR_CORRUPT;
        if (st->len != data_len || data_len <= RR_CODEC_SNAP_INLINE_BYTES_MAX)
            return RR_ERR_CORRUPT;
        s->data = st->data;
        s->data_len = st->len;
        s->buf = st->buf;
        rr_buf_ref(s->buf);
        return 0;
    }
    if (data_len > RR_CODEC_SNAP_INLINE_BYTES_MAX)
        return RR_ERR_TOO_LARGE;
    const uint8_t *p = take(r, (size_t)data_len);
    if (p == NULL)
        return RR_ERR_TRUNCATED;
    s->data = p;
    s->data_len = data_len;
    s->buf = owner;
    rr_buf_ref(owner);
    return 0;
}

static int snapshot_decode(reader *r, rr_buf *owner, const rr_codec_streamed *st, rr_snapshot *s)
{
    const uint8_t *h = take(r, RR_CODEC_SNAP_HEADER_BYTES);
    if (h == NULL)
        return RR_ERR_TRUNCATED;
    for (int i = 24; i < 28; i++)
        if (h[i] > RR_NODES_MAX)
            return RR_ERR_TOO_LARGE;
    if (h[28] > 1 || (h[29] & ~SNAP_FLAG_STREAMED) != 0 || h[30] != 0 || h[31] != 0)
        return RR_ERR_CORRUPT;
    memset(s, 0, sizeof(*s));
    s->meta.index = rr_le_get_u64(h);
    s->meta.term = rr_le_get_u64(h + 8);
    rr_conf_state *cs = &s->meta.conf_state;
    cs->auto_leave = h[28] == 1;
    int rc = id_set_decode(r, h[24], &cs->voters);
    if (rc == 0)
        rc = id_set_decode(r, h[25], &cs->voters_outgoing);
    if (rc == 0)
        rc = id_set_decode(r, h[26], &cs->learners);
    if (rc == 0)
        rc = id_set_decode(r, h[27], &cs->learners_next);
    if (rc != 0)
        return rc;
    return snapshot_data_attach(r, s, rr_le_get_u64(h + 16), (h[29] & SNAP_FLAG_STREAMED) != 0,
                                owner, st);
}

static int entries_decode(reader *r, uint32_t n, rr_buf *owner, rr_message *m)
{
    if (n == 0)
        return 0;
    if (n > RR_CODEC_MSG_ENTRIES_MAX)
        return RR_ERR_TOO_LARGE;
    /* Bound the allocation by the input: each entry takes at least a header. */
    if ((size_t)n * RR_ENTRY_HEADER_BYTES > r->left)
        return RR_ERR_TRUNCATED;
    /* malloc: each is decoded below (a large calloc costs jemalloc a madvise, see rawnode.c) */
    m->entries = malloc((size_t)n * sizeof(rr_entry));
    if (m->entries == NULL)
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        size_t used = 0;
        int rc = rr_entry_decode(r->p, r->left, &m->entries[i], &used);
        if (rc != 0)
            return rc;
        take(r, used);
        m->entries[i].buf = owner;
        rr_buf_ref(owner);
        m->n_entries = i + 1; /* owned so far: freed with m on a later error */
    }
    return 0;
}

static int context_decode(reader *r, uint32_t len, rr_message *m)
{
    if (len == 0)
        return 0;
    if (len > RR_CODEC_CONTEXT_BYTES_MAX)
        return RR_ERR_TOO_LARGE;
    const uint8_t *p = take(r, len);
    if (p == NULL)
        return RR_ERR_TRUNCATED;
    m->context = malloc(len);
    if (m->context == NULL)
        return -ENOMEM;
    memcpy(m->context, p, len);
    m->context_len = len;
    return 0;
}

static int message_decode(reader *r, rr_buf *owner, const rr_codec_streamed *st, rr_message *m)
{
    memset(m, 0, sizeof(*m));
    const uint8_t *h = take(r, RR_CODEC_MSG_HEADER_BYTES);
    if (h == NULL)
        return RR_ERR_TRUNCATED;
    if (h[0] >= RR_MSG_TYPE_COUNT || rr_msg_is_local(h[0]))
        return RR_ERR_CORRUPT;
    if ((h[1] & ~(MSG_FLAG_REJECT | MSG_FLAG_SNAPSHOT)) != 0 || h[2] != 0 || h[3] != 0)
        return RR_ERR_CORRUPT;
    if (rr_le_get_u32(h + 12) != 0)
        return RR_ERR_CORRUPT;
    m->type = h[0];
    m->reject = (h[1] & MSG_FLAG_REJECT) != 0;
    m->to = rr_le_get_u64(h + 16);
    m->from = rr_le_get_u64(h + 24);
    m->term = rr_le_get_u64(h + 32);
    m->log_term = rr_le_get_u64(h + 40);
    m->index = rr_le_get_u64(h + 48);
    m->commit = rr_le_get_u64(h + 56);
    m->vote = rr_le_get_u64(h + 64);
    m->reject_hint = rr_le_get_u64(h + 72);
    int rc = context_decode(r, rr_le_get_u32(h + 4), m);
    if (rc == 0)
        rc = entries_decode(r, rr_le_get_u32(h + 8), owner, m);
    if (rc != 0 || (h[1] & MSG_FLAG_SNAPSHOT) == 0)
        return rc;
    m->snapshot = calloc(1, sizeof(rr_snapshot));
    if (m->snapshot == NULL)
        return -ENOMEM;
    return snapshot_decode(r, owner, st, m->snapshot);
}

int rr_codec_messages_decode(const uint8_t *body, size_t len, uint32_t count, rr_buf *owner,
                             const rr_codec_streamed *streamed, rr_message *out)
{
    if (count == 0 || count > RR_CODEC_FRAME_MSGS_MAX)
        return RR_ERR_CORRUPT;
    if (len > RR_CODEC_FRAME_BODY_BYTES_MAX)
        return RR_ERR_TOO_LARGE;
    reader r = {.p = body, .left = len};
    int rc = 0;
    uint32_t i = 0;
    for (; i < count && rc == 0; i++)
        rc = message_decode(&r, owner, streamed, &out[i]);
    /* Trailing bytes mean the sender and we disagree about the layout. */
    if (rc == 0 && r.left != 0)
        rc = RR_ERR_CORRUPT;
    if (rc == 0)
        return 0;
    for (uint32_t k = 0; k < i; k++)
        rr_message_free(&out[k]); /* the failed one is partly built: freed the same way */
    return rc;
}

int rr_codec_hello_decode(const uint8_t *body, size_t len, rr_codec_hello *h)
{
    if (len < RR_CODEC_HELLO_BYTES)
        return RR_ERR_TRUNCATED;
    if (len > RR_CODEC_HELLO_BYTES)
        return RR_ERR_CORRUPT;
    h->cluster_id = rr_le_get_u64(body);
    h->from = rr_le_get_u64(body + 8);
    h->to = rr_le_get_u64(body + 16);
    if (h->from == RR_NODE_ID_NONE || h->to == RR_NODE_ID_NONE)
        return RR_ERR_CORRUPT;
    return 0;
}

int rr_codec_chunk_decode(const uint8_t *body, size_t len, rr_codec_chunk *c)
{
    if (len <= RR_CODEC_CHUNK_HEADER_BYTES)
        return RR_ERR_TRUNCATED;
    if (len - RR_CODEC_CHUNK_HEADER_BYTES > RR_CODEC_CHUNK_BYTES_MAX)
        return RR_ERR_TOO_LARGE;
    c->snap_index = rr_le_get_u64(body);
    c->snap_term = rr_le_get_u64(body + 8);
    c->offset = rr_le_get_u64(body + 16);
    c->total_len = rr_le_get_u64(body + 24);
    c->data = body + RR_CODEC_CHUNK_HEADER_BYTES;
    c->len = (uint32_t)(len - RR_CODEC_CHUNK_HEADER_BYTES);
    if (c->total_len > RR_CODEC_SNAPSHOT_BYTES_MAX)
        return RR_ERR_TOO_LARGE;
    if (c->offset > c->total_len || c->total_len - c->offset < c->len)
        return RR_ERR_CORRUPT;
    return 0;
}

int rr_codec_frame_decode(const uint8_t *p, size_t len, rr_buf *owner, rr_message *out, uint32_t *n,
                          rr_codec_frame_header *h)
{
    *n = 0;
    int rc = rr_codec_header_decode(p, len, h);
    if (rc != 0)
        return rc;
    const uint8_t *body = p + RR_CODEC_FRAME_HEADER_BYTES;
    size_t body_left = len - RR_CODEC_FRAME_HEADER_BYTES;
    rc = rr_codec_body_check(h, body, body_left);
    if (rc != 0)
        return rc;
    if (h->kind == RR_CODEC_KIND_HELLO) {
        rr_codec_hello hello;
        return rr_codec_hello_decode(body, h->body_len, &hello);
    }
    if (h->kind == RR_CODEC_KIND_SNAP_CHUNK) {
        rr_codec_chunk c;
        return rr_codec_chunk_decode(body, h->body_len, &c);
    }
    rc = rr_codec_messages_decode(body, h->body_len, h->count, owner, NULL, out);
    if (rc == 0)
        *n = h->count;
    return rc;
}
