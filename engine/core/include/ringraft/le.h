/*
 * le.h: fixed-width little-endian fields of every ringraft format (conf changes in the log,
 * entries on disk and wire, WAL records, frames) — STYLE.md habit 3. Header-only, pure:
 * byte shifts, so unaligned pointers are fine and the host's byte order does not matter.
 */
#ifndef RINGRAFT_LE_H
#define RINGRAFT_LE_H

#include <stdint.h>

static inline void rr_le_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void rr_le_put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline void rr_le_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t rr_le_get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t rr_le_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t rr_le_get_u64(const uint8_t *p)
{
    return (uint64_t)rr_le_get_u32(p) | (uint64_t)rr_le_get_u32(p + 4) << 32;
}

#endif
