/* test_entry.c: entries, entry arrays, messages, Readys, message types, config defaults
 * (engine/core/src/entry.c) and the conf change codec (engine/core/src/confcodec.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "confchange.h"
#include "entry_internal.h"
#include "ringraft/core.h"

/* ---- a buffer that counts its releases, to check reference balance ---- */

typedef struct tbuf {
    rr_buf b;
    int released;
    uint8_t bytes[256];
} tbuf;

static void tbuf_release(rr_buf *b)
{
    ((tbuf *)b)->released++;
}

static void tbuf_init(tbuf *t, const char *s)
{
    memset(t, 0, sizeof(*t));
    t->b.refs = 1;
    t->b.release = tbuf_release;
    if (s != NULL)
        memcpy(t->bytes, s, strlen(s));
}

/* Only the creator's reference is left: every copy made was released. */
static void assert_balanced(const tbuf *t)
{
    assert_int_equal(t->b.refs, 1);
    assert_int_equal(t->released, 0);
}

static rr_entry data_entry(rr_index_t index, rr_term_t term, tbuf *t, uint32_t len)
{
    return (rr_entry){
        .index = index, .term = term, .data = t->bytes, .data_len = len, .buf = &t->b};
}

/* ---- rr_entry_size_bytes against an independent protobuf encoder ---- */

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    do {
        uint8_t b = (uint8_t)(v & 0x7f);
        v >>= 7;
        p[n++] = (uint8_t)(b | (v != 0 ? 0x80 : 0));
    } while (v != 0);
    return n;
}

/* raftpb.Entry as gogoproto marshals it: Type (1), Term (2), Index (3) always, as varints
 * (wire type 0); Data (4, wire type 2) when non-nil. Returns the encoded length. */
static size_t pb_entry_marshal(const rr_entry *e, uint8_t *out)
{
    size_t n = 0;
    out[n++] = (1 << 3) | 0;
    n += put_varint(out + n, e->type);
    out[n++] = (2 << 3) | 0;
    n += put_varint(out + n, e->term);
    out[n++] = (3 << 3) | 0;
    n += put_varint(out + n, e->index);
    if (e->data != NULL) {
        out[n++] = (4 << 3) | 2;
        n += put_varint(out + n, e->data_len);
        n += e->data_len; /* the bytes themselves: only their count matters here */
    }
    return n;
}

static void test_entry_size_matches_protobuf(void **state)
{
    (void)state;
    static uint8_t scratch[1 << 17];
    static uint8_t payload[1 << 16];
    const uint64_t vals[] = {0,          1,          127,       128,        16383,
                             16384,      2097151,    2097152,   UINT32_MAX, 1ull << 35,
                             1ull << 56, 1ull << 63, UINT64_MAX};
    const uint32_t lens[] = {0, 1, 9, 127, 128, 300, 16383, 16384, 65535};
    const size_t nv = sizeof(vals) / sizeof(vals[0]);
    for (size_t ti = 0; ti < nv; ti++) {
        for (size_t ii = 0; ii < nv; ii++) {
            for (uint8_t type = 0; type <= 2; type++) {
                rr_entry e = {.term = vals[ti], .index = vals[ii], .type = type};
                assert_int_equal(rr_entry_size_bytes(&e), pb_entry_marshal(&e, scratch));
                for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
                    e.data = payload;
                    e.data_len = lens[li];
                    assert_int_equal(rr_entry_size_bytes(&e), pb_entry_marshal(&e, scratch));
                }
            }
        }
    }
}

static void test_entry_size_known_values(void **state)
{
    (void)state;
    /* The leader's empty entry (nil data) at 1/1: three 2-byte fields. */
    rr_entry empty = {.term = 1, .index = 1};
    assert_int_equal(rr_entry_size_bytes(&empty), 6);
    /* 1/12 "init_prop": 6 + tag + len + 9 bytes. */
    rr_entry prop = {.term = 1, .index = 12, .data = (const uint8_t *)"init_prop", .data_len = 9};
    assert_int_equal(rr_entry_size_bytes(&prop), 17);
    /* Non-nil empty data is still encoded (tag + zero length), as gogoproto does. */
    rr_entry blank = {.term = 1, .index = 1, .data = (const uint8_t *)""};
    assert_int_equal(rr_entry_size_bytes(&blank), 8);
}

/* ---- entry arrays ---- */

static void test_entry_vec_push_clear_free_balance_refs(void **state)
{
    (void)state;
    tbuf t;
    tbuf_init(&t, "abc");
    rr_entry e = data_entry(1, 1, &t, 3);
    rr_entry_vec v = {0};
    for (int i = 0; i < 100; i++) {
        e.index = (rr_index_t)i + 1;
        assert_int_equal(rr_entry_vec_push(&v, &e), 0);
    }
    assert_int_equal(v.n, 100);
    assert_true(v.cap >= 100);
    assert_int_equal(t.b.refs, 101);
    for (size_t i = 0; i < v.n; i++)
        assert_int_equal(v.v[i].index, i + 1);

    rr_entry_vec_truncate(&v, 60);
    assert_int_equal(v.n, 60);
    assert_int_equal(t.b.refs, 61);

    rr_entry_vec_drop_front(&v, 10);
    assert_int_equal(v.n, 50);
    assert_int_equal(v.v[0].index, 11);
    assert_int_equal(v.v[49].index, 60);
    assert_int_equal(t.b.refs, 51);

    size_t cap = v.cap;
    rr_entry_vec_clear(&v);
    assert_int_equal(v.n, 0);
    assert_int_equal(v.cap, cap); /* the allocation is kept */
    assert_balanced(&t);

    assert_int_equal(rr_entry_vec_push_n(&v, &e, 1), 0);
    rr_entry_vec_free(&v);
    assert_null(v.v);
    assert_int_equal(v.cap, 0);
    assert_balanced(&t);

    /* The last reference calls release exactly once. */
    rr_buf_unref(&t.b);
    assert_int_equal(t.released, 1);
}

static void test_entry_clear_releases_and_zeroes(void **state)
{
    (void)state;
    tbuf t;
    tbuf_init(&t, "x");
    rr_entry e = data_entry(7, 3, &t, 1);
    rr_entry copy;
    rr_entry_copy(&copy, &e);
    assert_int_equal(t.b.refs, 2);
    assert_int_equal(copy.index, 7);
    assert_ptr_equal(copy.data, t.bytes);
    rr_entry_clear(&copy);
    assert_null(copy.buf);
    assert_null(copy.data);
    assert_int_equal(copy.index, 0);
    assert_balanced(&t);

    rr_entry stat = {.index = 1, .data = (const uint8_t *)"static", .data_len = 6};
    rr_entry_clear(&stat); /* buf NULL: nothing to release */
    assert_int_equal(stat.data_len, 0);
}

/* ---- messages and Readys ---- */

static rr_message make_message(tbuf *t, tbuf *snapbuf)
{
    rr_message m = {.type = RR_MSG_APP, .to = 2, .from = 1, .term = 5, .index = 10};
    m.n_entries = 3;
    m.entries = calloc(3, sizeof(rr_entry));
    for (uint32_t i = 0; i < 3; i++) {
        rr_entry e = data_entry(11 + i, 5, t, 2);
        rr_entry_copy(&m.entries[i], &e);
    }
    m.snapshot = calloc(1, sizeof(rr_snapshot));
    m.snapshot->meta.index = 9;
    m.snapshot->meta.term = 4;
    m.snapshot->data = snapbuf->bytes;
    m.snapshot->data_len = 4;
    m.snapshot->buf = &snapbuf->b;
    rr_buf_ref(&snapbuf->b);
    m.context = malloc(3);
    memcpy(m.context, "ctx", 3);
    m.context_len = 3;
    return m;
}

static void test_message_copy_is_deep_and_free_balances(void **state)
{
    (void)state;
    tbuf t, s;
    tbuf_init(&t, "ab");
    tbuf_init(&s, "snap");
    rr_message m = make_message(&t, &s);
    /* Two responses, one carrying entries (MsgStorageApplyResp does). */
    m.n_responses = 2;
    m.responses = calloc(2, sizeof(rr_message));
    m.responses[0] = (rr_message){.type = RR_MSG_APP_RESP, .to = 1, .from = 2, .index = 13};
    m.responses[1] = (rr_message){.type = RR_MSG_STORAGE_APPLY_RESP, .n_entries = 1};
    m.responses[1].entries = calloc(1, sizeof(rr_entry));
    rr_entry e = data_entry(20, 5, &t, 1);
    rr_entry_copy(&m.responses[1].entries[0], &e);
    assert_int_equal(t.b.refs, 5);
    assert_int_equal(s.b.refs, 2);

    rr_message c;
    assert_int_equal(rr_message_copy(&c, &m), 0);
    assert_int_equal(t.b.refs, 9);
    assert_int_equal(s.b.refs, 3);
    assert_int_equal(c.type, RR_MSG_APP);
    assert_int_equal(c.n_entries, 3);
    assert_ptr_not_equal(c.entries, m.entries);
    assert_int_equal(c.entries[2].index, 13);
    assert_ptr_not_equal(c.snapshot, m.snapshot);
    assert_int_equal(c.snapshot->meta.index, 9);
    assert_ptr_not_equal(c.context, m.context);
    assert_memory_equal(c.context, "ctx", 3);
    assert_int_equal(c.n_responses, 2);
    assert_ptr_not_equal(c.responses, m.responses);
    assert_int_equal(c.responses[0].index, 13);
    assert_int_equal(c.responses[1].entries[0].index, 20);
    assert_ptr_not_equal(c.responses[1].entries, m.responses[1].entries);

    rr_message_free(&m);
    assert_null(m.entries);
    assert_int_equal(m.n_responses, 0);
    assert_int_equal(t.b.refs, 5);
    assert_int_equal(c.entries[0].index, 11); /* the copy lives on */
    rr_message_free(&c);
    assert_balanced(&t);
    assert_balanced(&s);

    /* Copy of an empty message allocates nothing. */
    rr_message z = {.type = RR_MSG_HEARTBEAT};
    assert_int_equal(rr_message_copy(&c, &z), 0);
    assert_null(c.entries);
    assert_null(c.snapshot);
    assert_null(c.context);
    assert_null(c.responses);
    rr_message_free(&c);
}

static void test_ready_free_balances_and_skips_moved_messages(void **state)
{
    (void)state;
    tbuf t, s;
    tbuf_init(&t, "ab");
    tbuf_init(&s, "snap");
    rr_ready rd = {0};
    rd.n_entries = 2;
    rd.entries = calloc(2, sizeof(rr_entry));
    rd.n_committed_entries = 1;
    rd.committed_entries = calloc(1, sizeof(rr_entry));
    for (uint32_t i = 0; i < 2; i++) {
        rr_entry e = data_entry(1 + i, 1, &t, 2);
        rr_entry_copy(&rd.entries[i], &e);
    }
    rr_entry e = data_entry(1, 1, &t, 2);
    rr_entry_copy(&rd.committed_entries[0], &e);
    rd.snapshot = calloc(1, sizeof(rr_snapshot));
    rd.snapshot->buf = &s.b;
    rr_buf_ref(&s.b);
    rd.n_read_states = 1;
    rd.read_states = calloc(1, sizeof(rr_read_state));
    rd.read_states[0].request_ctx = malloc(4);
    rd.read_states[0].request_ctx_len = 4;
    rd.n_messages = 2;
    rd.messages = calloc(2, sizeof(rr_message));
    rd.messages[0] = make_message(&t, &s);
    rd.messages[1] = make_message(&t, &s);

    /* The caller keeps message 1: moves it out and zeroes the slot. */
    rr_message kept = rd.messages[1];
    memset(&rd.messages[1], 0, sizeof(rr_message));

    rr_ready_free(&rd);
    assert_null(rd.messages);
    assert_int_equal(rd.n_messages, 0);
    assert_int_equal(t.b.refs, 4); /* only kept's three entries remain */
    assert_int_equal(s.b.refs, 2);
    rr_message_free(&kept);
    assert_balanced(&t);
    assert_balanced(&s);

    rr_ready empty = {0};
    rr_ready_free(&empty);
}

static void test_snapshot_clear_and_copy(void **state)
{
    (void)state;
    tbuf s;
    tbuf_init(&s, "snap");
    rr_snapshot a = {.meta = {.index = 5, .term = 2}, .data = s.bytes, .data_len = 4, .buf = &s.b};
    rr_buf_ref(&s.b);
    rr_snapshot b;
    rr_snapshot_copy(&b, &a);
    assert_int_equal(s.b.refs, 3);
    assert_int_equal(b.meta.index, 5);
    rr_snapshot_clear(&a);
    rr_snapshot_clear(&b);
    assert_int_equal(b.meta.index, 0);
    assert_null(b.buf);
    assert_balanced(&s);
}

/* ---- message types ---- */

static void test_msg_type_tables(void **state)
{
    (void)state;
    const uint8_t local[] = {RR_MSG_HUP,
                             RR_MSG_BEAT,
                             RR_MSG_UNREACHABLE,
                             RR_MSG_SNAP_STATUS,
                             RR_MSG_CHECK_QUORUM,
                             RR_MSG_STORAGE_APPEND,
                             RR_MSG_STORAGE_APPEND_RESP,
                             RR_MSG_STORAGE_APPLY,
                             RR_MSG_STORAGE_APPLY_RESP};
    const uint8_t resp[] = {RR_MSG_APP_RESP,
                            RR_MSG_VOTE_RESP,
                            RR_MSG_HEARTBEAT_RESP,
                            RR_MSG_UNREACHABLE,
                            RR_MSG_READ_INDEX_RESP,
                            RR_MSG_PRE_VOTE_RESP,
                            RR_MSG_STORAGE_APPEND_RESP,
                            RR_MSG_STORAGE_APPLY_RESP};
    for (unsigned t = 0; t < 256; t++) {
        bool want_local = false, want_resp = false;
        for (size_t i = 0; i < sizeof(local); i++)
            want_local |= local[i] == t;
        for (size_t i = 0; i < sizeof(resp); i++)
            want_resp |= resp[i] == t;
        assert_int_equal(rr_msg_is_local((uint8_t)t), want_local);
        assert_int_equal(rr_msg_is_response((uint8_t)t), want_resp);
        assert_non_null(rr_msg_type_name((uint8_t)t));
    }
    assert_string_equal(rr_msg_type_name(RR_MSG_HUP), "MsgHup");
    assert_string_equal(rr_msg_type_name(RR_MSG_APP), "MsgApp");
    assert_string_equal(rr_msg_type_name(RR_MSG_PRE_VOTE_RESP), "MsgPreVoteResp");
    assert_string_equal(rr_msg_type_name(RR_MSG_STORAGE_APPEND_RESP), "MsgStorageAppendResp");
    assert_string_equal(rr_msg_type_name(RR_MSG_FORGET_LEADER), "MsgForgetLeader");
    assert_string_equal(rr_msg_type_name(RR_MSG_TYPE_COUNT), "MsgUnknown");
    /* Every defined type has its own name. */
    for (unsigned t = 0; t < RR_MSG_TYPE_COUNT; t++)
        assert_string_not_equal(rr_msg_type_name((uint8_t)t), "MsgUnknown");
}

static void test_config_init_defaults(void **state)
{
    (void)state;
    rr_config cfg;
    memset(&cfg, 0xab, sizeof(cfg));
    rr_storage st = {.ops = NULL, .ctx = &cfg};
    rr_config_init(&cfg, 3, st);
    assert_int_equal(cfg.id, 3);
    assert_int_equal(cfg.election_ticks, 10);
    assert_int_equal(cfg.heartbeat_ticks, 1);
    assert_ptr_equal(cfg.storage.ctx, &cfg);
    assert_int_equal(cfg.applied, 0);
    assert_int_equal(cfg.max_inflight_msgs, 256);
    assert_true(cfg.max_size_per_msg_bytes == RR_NO_LIMIT);
    assert_int_equal(cfg.max_committed_size_per_ready_bytes, 0);
    assert_int_equal(cfg.max_uncommitted_entries_size_bytes, 0);
    assert_int_equal(cfg.max_inflight_bytes, 0);
    assert_true(cfg.pre_vote);
    assert_true(cfg.check_quorum);
    assert_int_equal(cfg.read_only_option, RR_READ_ONLY_SAFE);
    assert_false(cfg.disable_proposal_forwarding);
    assert_false(cfg.async_storage_writes);
    assert_false(cfg.step_down_on_removal);
    assert_int_not_equal(cfg.rand_seed, 0);
}

/* ---- conf change codec ---- */

static rr_conf_change v2_change(void)
{
    rr_conf_change cc = {.v1 = false, .transition = RR_TRANSITION_JOINT_EXPLICIT, .n_changes = 3};
    cc.changes[0] = (rr_conf_change_single){RR_CONF_ADD_NODE, 2};
    cc.changes[1] = (rr_conf_change_single){RR_CONF_REMOVE_NODE, 0x0102030405060708ull};
    cc.changes[2] = (rr_conf_change_single){RR_CONF_ADD_LEARNER_NODE, UINT64_MAX};
    cc.context = (const uint8_t *)"hello";
    cc.context_len = 5;
    return cc;
}

static void assert_cc_equal(const rr_conf_change *a, const rr_conf_change *b)
{
    assert_int_equal(a->v1, b->v1);
    assert_int_equal(a->transition, b->transition);
    assert_int_equal(a->n_changes, b->n_changes);
    for (uint32_t i = 0; i < a->n_changes; i++) {
        assert_int_equal(a->changes[i].type, b->changes[i].type);
        assert_true(a->changes[i].node_id == b->changes[i].node_id);
    }
    assert_int_equal(a->context_len, b->context_len);
    if (a->context_len > 0)
        assert_memory_equal(a->context, b->context, a->context_len);
}

static void test_conf_change_roundtrip(void **state)
{
    (void)state;
    uint8_t buf[1024];
    rr_conf_change out;

    rr_conf_change v2 = v2_change();
    size_t n = rr_conf_change_encoded_bytes(&v2);
    assert_int_equal(n, 8 + 3 * 9 + 5);
    assert_int_equal(rr_conf_change_encode(&v2, buf, sizeof(buf)), (int)n);
    assert_int_equal(rr_conf_change_decode(buf, n, false, &out), 0);
    assert_cc_equal(&v2, &out);
    assert_ptr_equal(out.context, buf + n - 5); /* points into the data, no copy */

    /* Little-endian, fixed layout. */
    assert_int_equal(buf[0], 2);
    assert_int_equal(buf[1], RR_TRANSITION_JOINT_EXPLICIT);
    assert_int_equal(buf[2], 3);
    assert_int_equal(buf[3], 0);
    assert_int_equal(buf[4], 5);
    assert_int_equal(buf[8], RR_CONF_ADD_NODE);
    assert_int_equal(buf[9], 2);
    assert_int_equal(buf[8 + 9 + 1], 0x08);
    assert_int_equal(buf[8 + 9 + 8], 0x01);

    rr_conf_change v1 = {.v1 = true, .n_changes = 1};
    v1.changes[0] = (rr_conf_change_single){RR_CONF_UPDATE_NODE, 7};
    n = rr_conf_change_encoded_bytes(&v1);
    assert_int_equal(n, 17);
    assert_int_equal(rr_conf_change_encode(&v1, buf, n), (int)n);
    assert_int_equal(rr_conf_change_decode(buf, n, true, &out), 0);
    assert_cc_equal(&v1, &out);
    assert_null(out.context);

    /* The empty v2 change (leave joint). */
    rr_conf_change leave = {.v1 = false};
    n = rr_conf_change_encoded_bytes(&leave);
    assert_int_equal(n, 8);
    assert_int_equal(rr_conf_change_encode(&leave, buf, n), 8);
    assert_int_equal(rr_conf_change_decode(buf, n, false, &out), 0);
    assert_int_equal(out.n_changes, 0);

    /* A full configuration's worth of changes. */
    rr_conf_change big = {.v1 = false, .n_changes = RR_NODES_MAX};
    for (uint32_t i = 0; i < RR_NODES_MAX; i++)
        big.changes[i] = (rr_conf_change_single){(uint8_t)(i % 4), i + 1};
    n = rr_conf_change_encoded_bytes(&big);
    assert_int_equal(rr_conf_change_encode(&big, buf, sizeof(buf)), (int)n);
    assert_int_equal(rr_conf_change_decode(buf, n, false, &out), 0);
    assert_cc_equal(&big, &out);
}

static void test_conf_change_encode_needs_room(void **state)
{
    (void)state;
    uint8_t buf[64];
    rr_conf_change v2 = v2_change();
    size_t n = rr_conf_change_encoded_bytes(&v2);
    assert_int_equal(rr_conf_change_encode(&v2, buf, n - 1), -ENOBUFS);
    assert_int_equal(rr_conf_change_encode(&v2, buf, 0), -ENOBUFS);
}

/* Empty data is the zero value, as an empty protobuf is in etcd: the v2 change that leaves a
 * joint configuration (what auto-leave proposes), or v1 "add node 0". */
static int coalesce_releases;
static void coalesce_release(rr_buf *b)
{
    (void)b;
    coalesce_releases++;
}

/* Runs of equal buffers, a NULL buffer between, and a buffer recurring after another: the
 * coalesced operations count exactly as one ref/unref per entry would. */
static void test_entries_ref_coalesces_runs_exactly(void **state)
{
    (void)state;
    rr_buf a = {.refs = 1, .release = coalesce_release};
    rr_buf b = {.refs = 1, .release = coalesce_release};
    rr_buf *pattern[] = {&a, &a, &a, NULL, &b, &b, &a, NULL, NULL, &b};
    rr_entry ents[10];
    memset(ents, 0, sizeof(ents));
    for (int i = 0; i < 10; i++)
        ents[i].buf = pattern[i];
    rr_entries_ref(ents, 10);
    assert_int_equal(a.refs, 1 + 4);
    assert_int_equal(b.refs, 1 + 3);
    rr_entries_unref(ents, 6);
    assert_int_equal(a.refs, 1 + 1);
    assert_int_equal(b.refs, 1 + 1);
    rr_entries_unref(ents + 6, 4);
    assert_int_equal(a.refs, 1);
    assert_int_equal(b.refs, 1);
    assert_int_equal(coalesce_releases, 0);
    ents[0].buf = &a;
    rr_entries_unref(ents, 1); /* the last reference: released once */
    assert_int_equal(coalesce_releases, 1);
}

static void test_conf_change_decode_empty_is_zero_value(void **state)
{
    (void)state;
    rr_conf_change out;
    assert_int_equal(rr_conf_change_decode(NULL, 0, false, &out), 0);
    assert_false(out.v1);
    assert_int_equal(out.n_changes, 0);
    assert_true(rr_conf_change_leave_joint(&out));
    assert_int_equal(rr_conf_change_decode(NULL, 0, true, &out), 0);
    assert_true(out.v1);
    assert_int_equal(out.n_changes, 1);
    assert_int_equal(out.changes[0].type, RR_CONF_ADD_NODE);
    assert_int_equal(out.changes[0].node_id, 0);
}

static void test_conf_change_decode_rejects_malformed(void **state)
{
    (void)state;
    uint8_t good[128], b[256];
    rr_conf_change out;
    rr_conf_change v2 = v2_change();
    size_t n = (size_t)rr_conf_change_encode(&v2, good, sizeof(good));

    /* Every truncation (but the empty one, which is the zero value: see below), and any
     * trailing byte. */
    for (size_t len = 1; len < n; len++)
        assert_int_equal(rr_conf_change_decode(good, len, false, &out), RR_ERR_CORRUPT);
    memcpy(b, good, n);
    b[n] = 0;
    assert_int_equal(rr_conf_change_decode(b, n + 1, false, &out), RR_ERR_CORRUPT);

    /* The entry type disagrees with the kind byte; unknown kinds. */
    assert_int_equal(rr_conf_change_decode(good, n, true, &out), RR_ERR_CORRUPT);
    memcpy(b, good, n);
    b[0] = 0;
    assert_int_equal(rr_conf_change_decode(b, n, false, &out), RR_ERR_CORRUPT);
    b[0] = 3;
    assert_int_equal(rr_conf_change_decode(b, n, false, &out), RR_ERR_CORRUPT);

    /* Bad transition, bad change type. */
    memcpy(b, good, n);
    b[1] = 3;
    assert_int_equal(rr_conf_change_decode(b, n, false, &out), RR_ERR_CORRUPT);
    memcpy(b, good, n);
    b[8 + 9] = 4;
    assert_int_equal(rr_conf_change_decode(b, n, false, &out), RR_ERR_CORRUPT);

    /* v1 must hold exactly one change and no joint transition. */
    rr_conf_change v1 = {.v1 = true, .n_changes = 1};
    size_t n1 = (size_t)rr_conf_change_encode(&v1, b, sizeof(b));
    b[1] = RR_TRANSITION_JOINT_IMPLICIT;
    assert_int_equal(rr_conf_change_decode(b, n1, true, &out), RR_ERR_CORRUPT);
    uint8_t two[8 + 18] = {1, 0, 2, 0, 0, 0, 0, 0};
    assert_int_equal(rr_conf_change_decode(two, sizeof(two), true, &out), RR_ERR_CORRUPT);
    uint8_t zero[8] = {1, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(rr_conf_change_decode(zero, sizeof(zero), true, &out), RR_ERR_CORRUPT);

    /* Counts beyond their bounds are TOO_LARGE, whatever the length says. */
    uint8_t many[8] = {2, 0, RR_NODES_MAX + 1, 0, 0, 0, 0, 0};
    assert_int_equal(rr_conf_change_decode(many, sizeof(many), false, &out), RR_ERR_TOO_LARGE);
    uint8_t huge[8] = {2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(rr_conf_change_decode(huge, sizeof(huge), false, &out), RR_ERR_TOO_LARGE);
    /* A context length that the data cannot hold. */
    uint8_t lie[9] = {2, 0, 0, 0, 2, 0, 0, 0, 'x'};
    assert_int_equal(rr_conf_change_decode(lie, sizeof(lie), false, &out), RR_ERR_CORRUPT);
}

/* Random bytes, and random mutations of a valid encoding, never crash or over-read (run
 * under ASan to check the latter); what decodes re-encodes to the same bytes. */
static void test_conf_change_decode_fuzz(void **state)
{
    (void)state;
    uint64_t seed = 0x5eed0001;
    uint64_t x = seed;
    uint8_t good[128];
    rr_conf_change v2 = v2_change();
    size_t n = (size_t)rr_conf_change_encode(&v2, good, sizeof(good));
    for (int iter = 0; iter < 20000; iter++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t len = (size_t)(x % (n + 8));
        uint8_t *b = malloc(len == 0 ? 1 : len); /* exact size: ASan sees any over-read */
        if (iter % 2 == 0) {
            for (size_t i = 0; i < len; i++)
                b[i] = (uint8_t)(x >> (8 * (i % 8)));
        } else {
            for (size_t i = 0; i < len; i++)
                b[i] = i < n ? good[i] : 0;
            if (len > 0)
                b[(x >> 16) % len] ^= (uint8_t)(1u << ((x >> 8) % 8));
        }
        bool v1 = (x >> 40) & 1;
        rr_conf_change out;
        int rc = rr_conf_change_decode(b, len, v1, &out);
        if (rc == 0 && len > 0) { /* empty data decodes to the zero value, not a round trip */
            uint8_t re[512];
            int m = rr_conf_change_encode(&out, re, sizeof(re));
            if (m != (int)len || memcmp(re, b, len) != 0) {
                print_error("conf change fuzz: seed %#llx iteration %d\n", (unsigned long long)seed,
                            iter);
                fail();
            }
        } else if (rc != 0 && rc != RR_ERR_CORRUPT && rc != RR_ERR_TOO_LARGE) {
            print_error("conf change fuzz: seed %#llx iteration %d rc %d\n",
                        (unsigned long long)seed, iter, rc);
            fail();
        }
        free(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entry_size_matches_protobuf),
        cmocka_unit_test(test_entry_size_known_values),
        cmocka_unit_test(test_entry_vec_push_clear_free_balance_refs),
        cmocka_unit_test(test_entry_clear_releases_and_zeroes),
        cmocka_unit_test(test_message_copy_is_deep_and_free_balances),
        cmocka_unit_test(test_ready_free_balances_and_skips_moved_messages),
        cmocka_unit_test(test_snapshot_clear_and_copy),
        cmocka_unit_test(test_msg_type_tables),
        cmocka_unit_test(test_config_init_defaults),
        cmocka_unit_test(test_conf_change_roundtrip),
        cmocka_unit_test(test_conf_change_encode_needs_room),
        cmocka_unit_test(test_entries_ref_coalesces_runs_exactly),
        cmocka_unit_test(test_conf_change_decode_empty_is_zero_value),
        cmocka_unit_test(test_conf_change_decode_rejects_malformed),
        cmocka_unit_test(test_conf_change_decode_fuzz),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
