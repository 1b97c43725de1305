/* entry_codec.c: the shared entry encoding. The layout is in ringraft/entry_codec.h. */
#include "ringraft/entry_codec.h"

#include <errno.h>
#include <string.h>

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void rr_entry_encode_header(const rr_entry *e, uint8_t out[RR_ENTRY_HEADER_BYTES])
{
    put_u64(out, e->term);
    put_u64(out + 8, e->index);
    put_u32(out + 16, e->data_len);
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
    uint64_t term = get_u64(p);
    uint64_t index = get_u64(p + 8);
    uint32_t data_len = get_u32(p + 16);
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
