/*
 * bench_crc32c.c: experiment. Is rr_crc32c (ISA-L crc32_iscsi) faster than a plain SSE4.2
 * crc32q loop, at 128 B (a small frame), 4 KiB (a page) and 64 KiB (a large batch)?
 * ringraft/crc32c.h claims ISA-L wins at 4 KiB and 64 KiB and ties at 128 B.
 *
 * Both variants checksum the same 64-byte-aligned pseudo-random buffer, which stays in L1
 * (128 B, 4 KiB) or L2 (64 KiB) across iterations: this measures the checksum, not memory.
 * Each call continues from the previous result, as a record checksummed in pieces would,
 * so no call can be hoisted out of the loop or dropped. The loop is kept out of line like
 * rr_crc32c, so both pay one call per buffer. Before timing, every run checks that the two
 * agree (the standard check value, the run's size, a tail that is not a multiple of 8, a
 * nonzero starting value); a mismatch fails the run instead of timing a wrong checksum.
 *
 * Reports bytes/s (bytes_per_second, 1024-based prefixes) from the thread's CPU time.
 */
#include "rr_bench.h"

#include "ringraft/assert.h"
#include "ringraft/crc32c.h"

#include <isa-l/crc.h>
#include <nmmintrin.h>
#include <stdint.h>
#include <string.h>

#define CRC_BUF_BYTES (64 * 1024)

static _Alignas(64) unsigned char crc_buf[CRC_BUF_BYTES];

static const int64_t crc_sizes_bytes[] = {64, 128, 256, 512, 1024, 4 * 1024, CRC_BUF_BYTES};
static const char *const crc_arg_names[] = {"bytes"};

typedef uint32_t (*crc_fn)(uint32_t crc, const void *buf, size_t len);

/*
 * CRC-32C with the SSE4.2 crc32 instruction, 8 bytes per step, then byte steps for the tail.
 * Each step depends on the previous one (3-cycle latency), so this runs at about 8 bytes per
 * 3 cycles; it is the baseline a hand-written implementation gets without interleaving.
 * target("sse4.2") instead of a global -msse4.2 keeps the rest of the file baseline x86-64;
 * callers check the CPU first.
 */
__attribute__((target("sse4.2"), noinline)) static uint32_t
crc32c_sse42(uint32_t crc, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    /* The standard CRC-32C inverts in and out, as rr_crc32c does. */
    uint64_t reg = ~crc;
    while (len >= 8) {
        uint64_t word;
        memcpy(&word, p, sizeof word); /* unaligned-safe; compiles to one load */
        reg = _mm_crc32_u64(reg, word);
        p += 8;
        len -= 8;
    }
    uint32_t reg32 = (uint32_t)reg; /* crc32q leaves the upper half zero */
    while (len > 0) {
        reg32 = _mm_crc32_u8(reg32, *p);
        p++;
        len--;
    }
    return ~reg32;
}

/* ISA-L alone, with the standard inversions: what rr_crc32c does above its small-size cutoff. */
static uint32_t crc32c_isal_only(uint32_t crc, const void *buf, size_t len)
{
    return ~crc32_iscsi((unsigned char *)buf, (int)len, ~crc);
}

/* Deterministic contents, so every run and every variant sees the same bytes. */
static void crc_buf_fill(void)
{
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < sizeof crc_buf; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        crc_buf[i] = (unsigned char)(x >> 56);
    }
}

/* Returns NULL if the loop and rr_crc32c agree on everything this run relies on. */
static const char *crc_verify(size_t len)
{
    static const char check[] = "123456789";
    if (!__builtin_cpu_supports("sse4.2"))
        return "CPU without SSE4.2";
    if (rr_crc32c(0, check, 9) != 0xE3069283u || crc32c_sse42(0, check, 9) != 0xE3069283u)
        return "check value of \"123456789\" is not 0xE3069283";
    if (crc32c_sse42(0, crc_buf, len) != rr_crc32c(0, crc_buf, len))
        return "SSE4.2 loop and rr_crc32c differ on the benchmark buffer";
    if (crc32c_sse42(0, crc_buf, len - 3) != rr_crc32c(0, crc_buf, len - 3))
        return "SSE4.2 loop and rr_crc32c differ on a tail of 5 bytes";
    if (crc32c_sse42(0xdeadbeefu, crc_buf, len) != rr_crc32c(0xdeadbeefu, crc_buf, len))
        return "SSE4.2 loop and rr_crc32c differ when continuing from a nonzero CRC";
    return NULL;
}

static void bench_crc(rr_bench_state *st, crc_fn fn)
{
    size_t len = (size_t)rr_bench_arg(st, 0);
    RR_ASSERT(len >= 8);
    RR_ASSERT(len <= sizeof crc_buf);
    crc_buf_fill();
    const char *err = crc_verify(len);
    if (err != NULL) {
        rr_bench_skip_with_error(st, err);
        return;
    }

    uint32_t crc = 0;
    int64_t n = rr_bench_iterations_max(st);
    /* One batch of all n iterations: no call back into the library per checksum. */
    while (rr_bench_keep_running_batch(st, n)) {
        for (int64_t i = 0; i < n; i++)
            crc = fn(crc, crc_buf, len);
    }
    rr_bench_do_not_optimize(&crc);
    rr_bench_set_bytes_processed(st, rr_bench_iterations(st) * (int64_t)len);
}

static void bench_crc32c_dispatch(rr_bench_state *st, void *arg)
{
    (void)arg;
    bench_crc(st, rr_crc32c);
}

static void bench_crc32c_isal(rr_bench_state *st, void *arg)
{
    (void)arg;
    bench_crc(st, crc32c_isal_only);
}

static void bench_crc32c_sse42(rr_bench_state *st, void *arg)
{
    (void)arg;
    bench_crc(st, crc32c_sse42);
}

static const struct rr_bench_def crc32c = {
    .name = "crc32c",
    .fn = bench_crc32c_dispatch,
    .args = crc_sizes_bytes,
    .args_per_set = 1,
    .arg_sets_count = sizeof crc_sizes_bytes / sizeof crc_sizes_bytes[0],
    .arg_names = crc_arg_names,
};
RR_BENCH_REGISTER(crc32c);

static const struct rr_bench_def crc32c_isal = {
    .name = "crc32c_isal",
    .fn = bench_crc32c_isal,
    .args = crc_sizes_bytes,
    .args_per_set = 1,
    .arg_sets_count = sizeof crc_sizes_bytes / sizeof crc_sizes_bytes[0],
    .arg_names = crc_arg_names,
};
RR_BENCH_REGISTER(crc32c_isal);

static const struct rr_bench_def crc32c_sse42_loop = {
    .name = "crc32c_sse42_loop",
    .fn = bench_crc32c_sse42,
    .args = crc_sizes_bytes,
    .args_per_set = 1,
    .arg_sets_count = sizeof crc_sizes_bytes / sizeof crc_sizes_bytes[0],
    .arg_names = crc_arg_names,
};
RR_BENCH_REGISTER(crc32c_sse42_loop);
