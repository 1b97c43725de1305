/* entry_codec.c: the shared entry encoding. The layout is in ringraft/entry_codec.h. */
#include "ringraft/entry_codec.h"

#include <errno.h>
#include <string.h>

#include "ringraft/le.h"

void rr_entry_encode_header(const rr_entry *e, uint8_t out[RR_ENTRY_HEADER_BYTES])
{
    rr_le_put_u64(out, e->term);
    rr_le_put_u64(out + 8, e->index);
    rr_le_put_u32(out + 16, e->data_len);
    out[20] = e->type;
    out[21] = e->data == NULL ? RR_ENTRY_FLAG_NIL : 0;
    out[22] = 0;
    out[23] = 0;
}

int rr_entry_encode(const rr_entry *e, uint8_t *out, size_t cap)
{
    size_t n = rr_entry_encoded_bytes(e);
    if (cap < n)
        return -ENOBUFS;
    rr_entry_encode_header(e, out);
    if (e->data_len > 0)
        memcpy(out + RR_ENTRY_HEADER_BYTES, e->data, e->data_len);
    return (int)n;
}

int rr_entry_decode(const uint8_t *p, size_t len, rr_entry *e, size_t *consumed)
{
    if (len < RR_ENTRY_HEADER_BYTES)
        return RR_ERR_TRUNCATED;
    uint64_t term = rr_le_get_u64(p);
    uint64_t index = rr_le_get_u64(p + 8);
    uint32_t data_len = rr_le_get_u32(p + 16);
    uint8_t type = p[20], flags = p[21];
    if (data_len > RR_ENTRY_BYTES_MAX)
        return RR_ERR_TOO_LARGE;
    if (index == 0 || type > RR_ENTRY_CONF_CHANGE_V2 || (flags & ~RR_ENTRY_FLAG_NIL) != 0 ||
        p[22] != 0 || p[23] != 0)
        return RR_ERR_CORRUPT;
    if ((flags & RR_ENTRY_FLAG_NIL) != 0 && data_len != 0)
        return RR_ERR_CORRUPT;
    if (len - RR_ENTRY_HEADER_BYTES < data_len)
        return RR_ERR_TRUNCATED;
    memset(e, 0, sizeof(*e));
    e->term = term;
    e->index = index;
    e->type = type;
    e->data_len = data_len;
    /* Empty but non-nil data needs a non-NULL pointer: the payload position will do. */
    e->data = (flags & RR_ENTRY_FLAG_NIL) != 0 ? NULL : p + RR_ENTRY_HEADER_BYTES;
    *consumed = RR_ENTRY_HEADER_BYTES + (size_t)data_len;
    return 0;
}
