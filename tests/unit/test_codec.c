/* test_codec.c: the wire codec (net/src/codec.c): round trips of every message type that
 * may leave a node, the iovec writer, and rejection of bad input. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ringraft/codec.h"
#include "ringraft/crc32c.h"

/* A heap rr_buf whose release is counted, so tests see every reference come back. */
typedef struct test_buf {
    rr_buf hdr;
    size_t len;
    uint8_t data[];
} test_buf;

static int released;

static void test_buf_release(rr_buf *b)
{
    released++;
    free(b);
}

static test_buf *test_buf_new(size_t len, uint8_t seed)
{
    test_buf *b = malloc(sizeof(*b) + len);
    assert_non_null(b);
    b->hdr.refs = 1;
    b->hdr.release = test_buf_release;
    b->len = len;
    for (size_t i = 0; i < len; i++)
        b->data[i] = (uint8_t)(seed + i * 7u);
    return b;
}

/* A message of type t using every field; entries' payloads live in pay. */
static void message_fill(rr_message *m, uint8_t t, test_buf *pay, bool with_snap)
{
    memset(m, 0, sizeof(*m));
    m->type = t;
    m->reject = (t & 1) != 0;
    m->to = 2;
    m->from = 1;
    m->term = 0x0102030405060708ull + t;
    m->log_term = 5;
    m->index = 100 + t;
    m->commit = 99;
    m->vote = 3;
    m->reject_hint = UINT64_MAX - t;
    m->context_len = 5;
    m->context = malloc(5);
    memcpy(m->context, "ctx!!", 5);
    static const uint32_t lens[] = {0, 0, 1, 128, 4096};
    m->n_entries = 5;
    m->entries = calloc(5, sizeof(rr_entry));
    size_t off = 0;
    for (uint32_t i = 0; i < 5; i++) {
        rr_entry *e = &m->entries[i];
        e->term = 5;
        e->index = 101 + i;
        e->type = (uint8_t)(i % 3);
        e->data_len = lens[i];
        e->data = i == 0 ? NULL : pay->data + off; /* entry 0 nil, entry 1 empty */
        e->buf = i == 0 ? NULL : &pay->hdr;
        if (e->buf != NULL)
            rr_buf_ref(e->buf);
        off += lens[i];
    }
    if (!with_snap)
        return;
    m->snapshot = calloc(1, sizeof(rr_snapshot));
    rr_snapshot *s = m->snapshot;
    s->meta.index = 77;
    s->meta.term = 4;
    rr_id_set_insert(&s->meta.conf_state.voters, 1);
    rr_id_set_insert(&s->meta.conf_state.voters, 2);
    rr_id_set_insert(&s->meta.conf_state.voters_outgoing, 3);
    rr_id_set_insert(&s->meta.conf_state.learners, 9);
    rr_id_set_insert(&s->meta.conf_state.learners_next, 3);
    s->meta.conf_state.auto_leave = true;
    s->data = pay->data + 10;
    s->data_len = 3000;
    s->buf = &pay->hdr;
    rr_buf_ref(s->buf);
}

static void assert_messages_equal(const rr_message *a, const rr_message *b)
{
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->reject, b->reject);
    assert_true(a->to == b->to && a->from == b->from && a->term == b->term);
    assert_true(a->log_term == b->log_term && a->index == b->index && a->commit == b->commit);
    assert_true(a->vote == b->vote && a->reject_hint == b->reject_hint);
    assert_int_equal(a->context_len, b->context_len);
    if (a->context_len > 0)
        assert_memory_equal(a->context, b->context, a->context_len);
    assert_int_equal(a->n_entries, b->n_entries);
    for (uint32_t i = 0; i < a->n_entries; i++) {
        const rr_entry *x = &a->entries[i], *y = &b->entries[i];
        assert_true(x->term == y->term && x->index == y->index);
        assert_int_equal(x->type, y->type);
        assert_int_equal(x->data_len, y->data_len);
        assert_int_equal(x->data == NULL, y->data == NULL);
        if (x->data_len > 0)
            assert_memory_equal(x->data, y->data, x->data_len);
    }
    assert_int_equal(a->snapshot == NULL, b->snapshot == NULL);
    if (a->snapshot == NULL)
        return;
    const rr_snapshot *s = a->snapshot, *t = b->snapshot;
    assert_true(s->meta.index == t->meta.index && s->meta.term == t->meta.term);
    assert_true(rr_conf_state_equal(&s->meta.conf_state, &t->meta.conf_state));
    assert_true(s->data_len == t->data_len);
    assert_memory_equal(s->data, t->data, (size_t)s->data_len);
}

static void test_round_trip_every_type(void **state)
{
    (void)state;
    released = 0;
    test_buf *pay = test_buf_new(8192, 3);
    static uint8_t frame[64 * 1024];
    int types = 0;
    for (uint8_t t = 0; t < RR_MSG_TYPE_COUNT; t++) {
        rr_message m, out[RR_CODEC_FRAME_MSGS_MAX];
        message_fill(&m, t, pay, t == RR_MSG_SNAP);
        int n = rr_codec_frame_encode(&m, 1, frame, sizeof frame);
        if (rr_msg_is_local(t)) {
            assert_int_equal(n, -EINVAL); /* local messages never go on the wire */
            rr_message_free(&m);
            continue;
        }
        assert_true(n > 0);
        assert_int_equal((size_t)n, RR_CODEC_FRAME_HEADER_BYTES + rr_codec_message_bytes(&m));
        test_buf *rx = test_buf_new((size_t)n, 0);
        memcpy(rx->data, frame, (size_t)n);
        uint32_t got = 0;
        rr_codec_frame_header h;
        assert_int_equal(rr_codec_frame_decode(rx->data, (size_t)n, &rx->hdr, out, &got, &h), 0);
        assert_int_equal(got, 1);
        assert_messages_equal(&m, &out[0]);
        /* Each entry arrives in the WAL's own encoding: the header bytes right before the
         * payload are what rr_entry_encode_header writes, so a follower can persist
         * [data - RR_ENTRY_HEADER_BYTES, data + data_len) as received. */
        for (uint32_t i = 0; i < out[0].n_entries; i++) {
            const rr_entry *e = &out[0].entries[i];
            if (e->data == NULL)
                continue; /* nil: the header alone, no pointer to find it by */
            uint8_t hdr[RR_ENTRY_HEADER_BYTES];
            rr_entry_encode_header(e, hdr);
            assert_memory_equal(e->data - RR_ENTRY_HEADER_BYTES, hdr, sizeof hdr);
        }
        /* Payloads point into the receive buffer, not into copies. */
        assert_true(out[0].entries[3].data >= rx->data && out[0].entries[3].data < rx->data + n);
        assert_true(out[0].entries[3].buf == &rx->hdr);
        rr_message_free(&out[0]);
        rr_message_free(&m);
        rr_buf_unref(&rx->hdr);
        types++;
    }
    assert_int_equal(types, RR_MSG_TYPE_COUNT - 9); /* 9 local types */
    rr_buf_unref(&pay->hdr);
    assert_int_equal(released, types + 1); /* every reference came back */
}

/* The iovec writer: payloads from ref_min_bytes up are referenced, not copied; flattened,
 * the frame is byte-identical to the contiguous encoding. Several messages share a frame. */
static void test_writer_iovecs_match_contiguous(void **state)
{
    (void)state;
    released = 0;
    test_buf *pay = test_buf_new(8192, 9);
    rr_message msgs[3];
    message_fill(&msgs[0], RR_MSG_APP, pay, false);
    message_fill(&msgs[1], RR_MSG_SNAP, pay, true);
    message_fill(&msgs[2], RR_MSG_HEARTBEAT, pay, false);
    static uint8_t flat[64 * 1024], ref[64 * 1024], stage[16 * 1024];
    int n = rr_codec_frame_encode(msgs, 3, ref, sizeof ref);
    assert_true(n > 0);
    struct iovec iov[32];
    rr_buf *refs[32];
    rr_codec_writer w = {.stage = stage,
                         .stage_cap = sizeof stage,
                         .iov = iov,
                         .iov_cap = 32,
                         .refs = refs,
                         .ref_min_bytes = 512};
    rr_codec_writer_begin(&w);
    for (int i = 0; i < 3; i++)
        assert_int_equal(rr_codec_writer_add(&w, &msgs[i]), 0);
    size_t total = rr_codec_writer_finish(&w);
    assert_int_equal(total, (size_t)n);
    assert_int_equal(w.n_refs, 4); /* three 4 KiB entries and the 3000-byte snapshot */
    size_t off = 0;
    for (uint32_t i = 0; i < w.n_iov; i++) {
        memcpy(flat + off, iov[i].iov_base, iov[i].iov_len);
        off += iov[i].iov_len;
    }
    assert_int_equal(off, total);
    assert_memory_equal(flat, ref, total);
    for (int i = 0; i < 3; i++)
        rr_message_free(&msgs[i]);
    assert_int_equal(released, 0); /* the writer still holds its references */
    rr_codec_writer_release(&w);
    assert_int_equal(released, 0);
    rr_buf_unref(&pay->hdr);
    assert_int_equal(released, 1);
}

static void test_writer_bounds(void **state)
{
    (void)state;
    test_buf *pay = test_buf_new(8192, 1);
    rr_message m;
    message_fill(&m, RR_MSG_APP, pay, false);
    uint8_t stage[200];
    struct iovec iov[3];
    rr_buf *refs[3];
    rr_codec_writer w = {.stage = stage,
                         .stage_cap = sizeof stage,
                         .iov = iov,
                         .iov_cap = 3,
                         .refs = refs,
                         .ref_min_bytes = 64};
    rr_codec_writer_begin(&w);
    assert_int_equal(rr_codec_writer_add(&w, &m), -ENOBUFS); /* two refs need 5 iovecs */
    assert_int_equal(w.body_len, 0);                         /* nothing half-written */
    m.type = RR_MSG_STORAGE_APPEND;
    assert_int_equal(rr_codec_writer_add(&w, &m), -EINVAL);
    rr_message_free(&m);
    rr_buf_unref(&pay->hdr);
}

static int encode_one(uint8_t *frame, size_t cap, test_buf *pay)
{
    rr_message m;
    message_fill(&m, RR_MSG_SNAP, pay, true);
    int n = rr_codec_frame_encode(&m, 1, frame, cap);
    rr_message_free(&m);
    return n;
}

static int decode_all(const uint8_t *p, size_t len)
{
    static rr_message out[RR_CODEC_FRAME_MSGS_MAX];
    uint32_t n = 0;
    rr_codec_frame_header h;
    int rc = rr_codec_frame_decode(p, len, NULL, out, &n, &h);
    for (uint32_t i = 0; i < n; i++)
        rr_message_free(&out[i]);
    return rc;
}

/* Re-seals the header CRC after a test edits the header. */
static void header_reseal(uint8_t *p)
{
    uint32_t crc = rr_crc32c(0, p, 20);
    memcpy(p + 20, &crc, 4); /* x86-64 is little-endian like the wire */
}

/* Re-seals the body CRC (and the header) after a test edits the body. */
static void body_reseal(uint8_t *p, size_t len)
{
    uint32_t crc = rr_crc32c(0, p + RR_CODEC_FRAME_HEADER_BYTES, len - RR_CODEC_FRAME_HEADER_BYTES);
    memcpy(p + 16, &crc, 4);
    header_reseal(p);
}

static void test_rejects_truncation_and_bit_flips(void **state)
{
    (void)state;
    test_buf *pay = test_buf_new(8192, 5);
    static uint8_t frame[16 * 1024], b[16 * 1024];
    int n = encode_one(frame, sizeof frame, pay);
    assert_true(n > 0);
    assert_int_equal(decode_all(frame, (size_t)n), 0);
    for (int len = 0; len < n; len++)
        assert_int_equal(decode_all(frame, (size_t)len), RR_ERR_TRUNCATED);
    for (int bit = 0; bit < n * 8; bit += 3) {
        memcpy(b, frame, (size_t)n);
        b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        int rc = decode_all(b, (size_t)n);
        assert_true(rc == RR_ERR_CORRUPT || rc == RR_ERR_BAD_VERSION || rc == RR_ERR_TOO_LARGE);
    }
    rr_buf_unref(&pay->hdr);
}

/* Structurally bad bodies with valid CRCs: the decoder's own checks must catch them. */
static void test_rejects_bad_structure(void **state)
{
    (void)state;
    test_buf *pay = test_buf_new(8192, 5);
    static uint8_t frame[16 * 1024], b[16 * 1024];
    int n = encode_one(frame, sizeof frame, pay);
    const size_t H = RR_CODEC_FRAME_HEADER_BYTES, M = RR_CODEC_MSG_HEADER_BYTES;
    struct {
        size_t at;
        uint8_t value;
        int want;
    } bad[] = {
        {H + 0, RR_MSG_STORAGE_APPEND, RR_ERR_CORRUPT}, /* local type */
        {H + 0, 200, RR_ERR_CORRUPT},                   /* unknown type */
        {H + 1, 0x80, RR_ERR_CORRUPT},                  /* unknown flag */
        {H + 2, 1, RR_ERR_CORRUPT},                     /* reserved */
        {H + 7, 0x10, RR_ERR_TOO_LARGE},                /* context_len */
        {H + 11, 0x10, RR_ERR_TOO_LARGE},               /* n_entries */
        {H + M + 5 + 8, 0, RR_ERR_CORRUPT},             /* first entry's index 0 */
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        memcpy(b, frame, (size_t)n);
        b[bad[k].at] = bad[k].value;
        body_reseal(b, (size_t)n);
        assert_int_equal(decode_all(b, (size_t)n), bad[k].want);
    }
    /* Header: bad version, oversized body length, unknown kind, count 0 for MSGS. */
    memcpy(b, frame, (size_t)n);
    b[4] = 2;
    header_reseal(b);
    assert_int_equal(decode_all(b, (size_t)n), RR_ERR_BAD_VERSION);
    memcpy(b, frame, (size_t)n);
    b[11] = 0xff;
    header_reseal(b);
    assert_int_equal(decode_all(b, (size_t)n), RR_ERR_TOO_LARGE);
    memcpy(b, frame, (size_t)n);
    b[5] = 9;
    header_reseal(b);
    assert_int_equal(decode_all(b, (size_t)n), RR_ERR_CORRUPT);
    memcpy(b, frame, (size_t)n);
    b[12] = 0;
    header_reseal(b);
    assert_int_equal(decode_all(b, (size_t)n), RR_ERR_CORRUPT);
    /* 65536 entries cannot fit the body: refused before anything is allocated for them. */
    memcpy(b, frame, (size_t)n);
    b[H + 8] = 0;
    b[H + 10] = 1;
    body_reseal(b, (size_t)n);
    assert_int_equal(decode_all(b, (size_t)n), RR_ERR_TRUNCATED);
    /* count 2 with one record: the second is truncated. */
    memcpy(b, frame, (size_t)n);
    b[12] = 2;
    header_reseal(b);
    assert_int_equal(decode_all(b, (size_t)n), RR_ERR_TRUNCATED);
    rr_buf_unref(&pay->hdr);
}

/* A streamed MsgSnap takes its data from the reassembled chunks and nowhere else. */
static void test_streamed_snapshot(void **state)
{
    (void)state;
    released = 0;
    size_t big = RR_CODEC_SNAP_INLINE_BYTES_MAX + 100;
    test_buf *pay = test_buf_new(big, 11);
    rr_message m;
    message_fill(&m, RR_MSG_SNAP, pay, true);
    m.snapshot->data = pay->data;
    m.snapshot->data_len = big;
    assert_true(rr_codec_snapshot_streams(&m));
    static uint8_t frame[64 * 1024];
    int n = rr_codec_frame_encode(&m, 1, frame, sizeof frame);
    assert_true(n > 0 && n < 64 * 1024); /* the data is not in the frame */
    rr_codec_frame_header h;
    assert_int_equal(rr_codec_header_decode(frame, (size_t)n, &h), 0);
    const uint8_t *body = frame + RR_CODEC_FRAME_HEADER_BYTES;
    rr_message out[1];
    assert_int_equal(rr_codec_messages_decode(body, h.body_len, 1, NULL, NULL, out),
                     RR_ERR_CORRUPT);
    rr_codec_streamed st = {
        .snap_index = 77, .snap_term = 4, .data = pay->data, .len = big, .buf = &pay->hdr};
    st.snap_term = 5;
    assert_int_equal(rr_codec_messages_decode(body, h.body_len, 1, NULL, &st, out), RR_ERR_CORRUPT);
    st.snap_term = 4;
    assert_int_equal(rr_codec_messages_decode(body, h.body_len, 1, NULL, &st, out), 0);
    assert_messages_equal(&m, &out[0]);
    rr_message_free(&out[0]);
    rr_message_free(&m);
    rr_buf_unref(&pay->hdr);
    assert_int_equal(released, 1);
}

static void test_chunk_and_hello(void **state)
{
    (void)state;
    uint8_t hello[RR_CODEC_FRAME_HEADER_BYTES + RR_CODEC_HELLO_BYTES];
    rr_codec_hello hi = {.cluster_id = 0xC1, .from = 1, .to = 3}, got;
    size_t n = rr_codec_hello_encode(&hi, hello);
    rr_codec_frame_header h;
    assert_int_equal(rr_codec_header_decode(hello, n, &h), 0);
    assert_int_equal(h.kind, RR_CODEC_KIND_HELLO);
    assert_int_equal(rr_codec_body_check(&h, hello + RR_CODEC_FRAME_HEADER_BYTES, h.body_len), 0);
    assert_int_equal(rr_codec_hello_decode(hello + RR_CODEC_FRAME_HEADER_BYTES, h.body_len, &got),
                     0);
    assert_true(got.cluster_id == 0xC1 && got.from == 1 && got.to == 3);
    assert_int_equal(decode_all(hello, n), 0);

    static uint8_t data[1000], stage[64];
    struct iovec iov[4];
    rr_buf *refs[4];
    rr_codec_writer w = {.stage = stage,
                         .stage_cap = sizeof stage,
                         .iov = iov,
                         .iov_cap = 4,
                         .refs = refs,
                         .ref_min_bytes = 1};
    test_buf *b = test_buf_new(1, 0);
    rr_codec_chunk c = {.snap_index = 9,
                        .snap_term = 2,
                        .offset = 500,
                        .total_len = 1500,
                        .data = data,
                        .len = 1000};
    rr_codec_writer_begin(&w);
    assert_int_equal(rr_codec_writer_add_chunk(&w, &c, &b->hdr), 0);
    size_t total = rr_codec_writer_finish(&w);
    static uint8_t flat[2048];
    size_t off = 0;
    for (uint32_t i = 0; i < w.n_iov; i++) {
        memcpy(flat + off, iov[i].iov_base, iov[i].iov_len);
        off += iov[i].iov_len;
    }
    assert_int_equal(off, total);
    assert_int_equal(decode_all(flat, total), 0);
    rr_codec_chunk d;
    assert_int_equal(rr_codec_chunk_decode(flat + RR_CODEC_FRAME_HEADER_BYTES,
                                           total - RR_CODEC_FRAME_HEADER_BYTES, &d),
                     0);
    assert_true(d.snap_index == 9 && d.offset == 500 && d.total_len == 1500 && d.len == 1000);
    c.offset = 600; /* 600 + 1000 > 1500 */
    rr_codec_writer_release(&w);
    rr_codec_writer_begin(&w);
    assert_int_equal(rr_codec_writer_add_chunk(&w, &c, &b->hdr), -EINVAL);
    rr_buf_unref(&b->hdr);
}

/* Random bytes, and random mutations of a good frame with CRCs re-sealed so that the
 * structural checks (not the CRC) are what stands between the bytes and the decoder. */
static void test_random_input_never_crashes(void **state)
{
    (void)state;
    test_buf *pay = test_buf_new(8192, 5);
    static uint8_t frame[16 * 1024], b[16 * 1024];
    int n = encode_one(frame, sizeof frame, pay);
    uint64_t seed = 0x9E3779B97F4A7C15ull, x = seed;
    int ok = 0;
    for (int it = 0; it < 20000; it++) {
        memcpy(b, frame, (size_t)n);
        int flips = 1 + (int)(x % 4);
        for (int f = 0; f < flips; f++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b[RR_CODEC_FRAME_HEADER_BYTES + x % (uint64_t)(n - RR_CODEC_FRAME_HEADER_BYTES)] =
                (uint8_t)(x >> 32);
        }
        size_t len = (size_t)n - (size_t)(x % 3 == 0 ? x % 40 : 0);
        body_reseal(b, (size_t)n);
        int rc = decode_all(b, len);
        if (rc == 0)
            ok++;
        else if (rc != RR_ERR_CORRUPT && rc != RR_ERR_TRUNCATED && rc != RR_ERR_TOO_LARGE)
            fail_msg("seed %llu iteration %d: unexpected %d", (unsigned long long)seed, it, rc);
    }
    for (int it = 0; it < 20000; it++) {
        size_t len = (size_t)(x % 200);
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b[i] = (uint8_t)x;
        }
        assert_int_not_equal(decode_all(b, len), 0);
    }
    (void)ok;
    rr_buf_unref(&pay->hdr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_type),
        cmocka_unit_test(test_writer_iovecs_match_contiguous),
        cmocka_unit_test(test_writer_bounds),
        cmocka_unit_test(test_rejects_truncation_and_bit_flips),
        cmocka_unit_test(test_rejects_bad_structure),
        cmocka_unit_test(test_streamed_snapshot),
        cmocka_unit_test(test_chunk_and_hello),
        cmocka_unit_test(test_random_input_never_crashes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
