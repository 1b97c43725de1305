/*
 * crc32c.c: CRC-32C. See ringraft/crc32c.h.
 *
 * Two paths, chosen by size from measurements (bench/micro/bench_crc32c.c, BENCHMARKS.md):
 * below RR_CRC32C_SMALL_BYTES the serial SSE4.2 crc32 loop is faster (9 ns vs 16 ns at
 * 64 B, 18 vs 24 at 128 B: ISA-L's short-buffer path has a high fixed cost); from there up
 * ISA-L's folding wins (17 vs 34 ns at 256 B, 9x at 64 KiB).
 */
#include "ringraft/crc32c.h"

#include <isa-l/crc.h>
#include <nmmintrin.h>
#include <string.h>

#define RR_CRC32C_SMALL_BYTES 256

/* 8 bytes per crc32q, then single bytes. Works on the raw (uninverted) register. */
__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t reg, const uint8_t *p,
                                                               size_t len)
{
    uint64_t r = reg;
    while (len >= 8) {
        uint64_t word;
        memcpy(&word, p, sizeof word); /* unaligned-safe; one load */
        r = _mm_crc32_u64(r, word);
        p += 8;
        len -= 8;
    }
    uint32_t r32 = (uint32_t)r; /* crc32q leaves the upper half zero */
    while (len > 0) {
        r32 = _mm_crc32_u8(r32, *p++);
        len--;
    }
    return r32;
}

uint32_t rr_crc32c(uint32_t crc, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    uint32_t reg = ~crc; /* the standard CRC-32C inverts in and out */
    /* __builtin_cpu_supports reads a table libgcc fills once at start-up: no syscall. */
    if (len < RR_CRC32C_SMALL_BYTES && __builtin_cpu_supports("sse4.2"))
        return ~crc32c_sse42(reg, p, len);
    while (len > 0) {
        /* crc32_iscsi takes an int length: feed very large buffers in pieces. */
        size_t n = len > (1u << 30) ? (1u << 30) : len;
        reg = crc32_iscsi((unsigned char *)p, (int)n, reg);
        p += n;
        len -= n;
    }
    return ~reg;
}
