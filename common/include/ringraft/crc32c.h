/*
 * crc32c.h: CRC-32C (Castagnoli), the checksum of every WAL record and wire frame.
 *
 * Buffers of 256 bytes and more go to ISA-L's crc32_iscsi (carry-less multiply folding:
 * 8x faster than a serial SSE4.2 crc32q loop at 4 KiB, 9x at 64 KiB); shorter ones to that
 * serial loop, which beats ISA-L's short-buffer path (1.3-1.7x at 64-128 B). Measured in
 * bench/micro/bench_crc32c.c, recorded in BENCHMARKS.md. Pure function, any thread.
 */
#ifndef RINGRAFT_CRC32C_H
#define RINGRAFT_CRC32C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Returns the CRC-32C of buf[0..len) continuing from crc (0 to start), with the standard
 * pre- and post-inversion, so rr_crc32c(rr_crc32c(0, a), b) == rr_crc32c(0, a || b).
 * rr_crc32c(0, "123456789", 9) == 0xE3069283. */
uint32_t rr_crc32c(uint32_t crc, const void *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
