/*
 * confcodec.c: the bytes of a configuration change inside an entry's data.
 *
 * These bytes are written to the WAL and sent to peers inside entries, so the format is
 * fixed, little-endian and documented here (STYLE.md habit 3). One layout serves v1
 * (RR_ENTRY_CONF_CHANGE) and v2 (RR_ENTRY_CONF_CHANGE_V2) changes:
 *
 *   offset  size     field
 *   0       1        kind: 1 = v1 (etcd ConfChange), 2 = v2 (etcd ConfChangeV2)
 *   1       1        transition (rr_conf_change_transition); 0 for v1
 *   2       2        n_changes, u16; exactly 1 for v1, at most RR_NODES_MAX
 *   4       4        context_len, u32; at most RR_ENTRY_BYTES_MAX
 *   8       9 * n    changes: type u8 (rr_conf_change_type), node_id u64
 *   ...     ctx_len  context, opaque
 *
 * The total length is exactly 8 + 9 * n_changes + context_len; anything else is corrupt.
 * The kind byte doubles as the format version: a future layout takes a new kind. Node id 0
 * is legal (etcd's applications blank the id of a change they veto; confchange skips it).
 *
 * Decoding is a gateway (entries arrive from peers and from disk): it checks every field
 * and never reads outside [data, data + len).
 */
#include "ringraft/core.h"

#include <errno.h>
#include <string.h>

#include "ringraft/assert.h"
#include "ringraft/le.h"

enum {
    CC_KIND_V1 = 1,
    CC_KIND_V2 = 2,
    CC_HEADER_BYTES = 8,
    CC_CHANGE_BYTES = 9,
};

_Static_assert(CC_HEADER_BYTES == 1 + 1 + 2 + 4, "header: kind, transition, n, ctx_len");
_Static_assert(CC_CHANGE_BYTES == 1 + 8, "change: type, node id");
_Static_assert(RR_NODES_MAX <= UINT16_MAX, "n_changes is a u16");
/* The largest encoding fits an int return value and an entry's u32 length. */
_Static_assert((uint64_t)CC_HEADER_BYTES + (uint64_t)CC_CHANGE_BYTES * RR_NODES_MAX +
                       RR_ENTRY_BYTES_MAX <=
                   INT32_MAX,
               "encoded conf change fits in an int");

/* The caller built cc; these are programming errors, not input errors. */
static void assert_well_formed(const rr_conf_change *cc)
{
    RR_ASSERT(cc->n_changes <= RR_NODES_MAX);
    RR_ASSERT(cc->context_len <= RR_ENTRY_BYTES_MAX);
    if (cc->context_len > 0)
        RR_ASSERT(cc->context != NULL);
    if (cc->v1)
        RR_ASSERT(cc->n_changes == 1);
    if (cc->v1)
        RR_ASSERT(cc->transition == RR_TRANSITION_AUTO);
}

size_t rr_conf_change_encoded_bytes(const rr_conf_change *cc)
{
    assert_well_formed(cc);
    return CC_HEADER_BYTES + (size_t)CC_CHANGE_BYTES * cc->n_changes + cc->context_len;
}

int rr_conf_change_encode(const rr_conf_change *cc, uint8_t *out, size_t cap)
{
    size_t need = rr_conf_change_encoded_bytes(cc);
    if (cap < need)
        return -ENOBUFS;

    out[0] = cc->v1 ? CC_KIND_V1 : CC_KIND_V2;
    out[1] = cc->transition;
    rr_le_put_u16(out + 2, (uint16_t)cc->n_changes);
    rr_le_put_u32(out + 4, cc->context_len);
    uint8_t *p = out + CC_HEADER_BYTES;
    for (uint32_t i = 0; i < cc->n_changes; i++) {
        p[0] = cc->changes[i].type;
        rr_le_put_u64(p + 1, cc->changes[i].node_id);
        p += CC_CHANGE_BYTES;
    }
    if (cc->context_len > 0)
        memcpy(p, cc->context, cc->context_len);
    return (int)need;
}

int rr_conf_change_decode(const uint8_t *data, size_t len, bool v1, rr_conf_change *cc)
{
    memset(cc, 0, sizeof(*cc));
    if (len == 0) {
        /* Empty data is the zero value, as an empty protobuf decodes in etcd: v2, the
         * empty change that leaves a joint configuration (what auto-leave proposes); v1,
         * "add node 0". */
        cc->v1 = v1;
        cc->n_changes = v1 ? 1 : 0;
        return 0;
    }
    if (len < CC_HEADER_BYTES)
        return RR_ERR_CORRUPT;

    uint8_t kind = data[0];
    uint8_t transition = data[1];
    uint16_t n = rr_le_get_u16(data + 2);
    uint32_t ctx_len = rr_le_get_u32(data + 4);

    if (kind != (v1 ? CC_KIND_V1 : CC_KIND_V2))
        return RR_ERR_CORRUPT; /* the entry type and the bytes disagree */
    if (transition > RR_TRANSITION_JOINT_EXPLICIT)
        return RR_ERR_CORRUPT;
    if (v1 && (transition != RR_TRANSITION_AUTO || n != 1))
        return RR_ERR_CORRUPT;
    if (n > RR_NODES_MAX)
        return RR_ERR_TOO_LARGE;
    if (ctx_len > RR_ENTRY_BYTES_MAX)
        return RR_ERR_TOO_LARGE;
    /* All terms are bounded above, so this sum cannot overflow 64 bits. */
    uint64_t want = (uint64_t)CC_HEADER_BYTES + (uint64_t)CC_CHANGE_BYTES * n + ctx_len;
    if ((uint64_t)len != want)
        return RR_ERR_CORRUPT;

    const uint8_t *p = data + CC_HEADER_BYTES;
    for (uint16_t i = 0; i < n; i++) {
        if (p[0] > RR_CONF_ADD_LEARNER_NODE)
            return RR_ERR_CORRUPT;
        cc->changes[i].type = p[0];
        cc->changes[i].node_id = rr_le_get_u64(p + 1);
        p += CC_CHANGE_BYTES;
    }
    cc->v1 = v1;
    cc->transition = transition;
    cc->n_changes = n;
    cc->context = ctx_len > 0 ? p : NULL;
    cc->context_len = ctx_len;
    return 0;
}
