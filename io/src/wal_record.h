/*
 * wal_record.h: WAL record and segment encoding, and the segment scanner (wal_record.c,
 * whose top comment documents the on-disk format). Pure functions over bytes: used by the
 * writer (io thread), recovery and reads (raft thread) and the fuzz target.
 */
#ifndef RR_IO_WAL_RECORD_H
#define RR_IO_WAL_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringraft/core.h"
#include "ringraft/entry_codec.h"
#include "ringraft/le.h"

#define WAL_RECORD_HEADER_BYTES      16
#define WAL_SEGMENT_PAYLOAD_BYTES    48
#define WAL_HARD_STATE_PAYLOAD_BYTES 24
#define WAL_SNAPSHOT_PAYLOAD_BYTES   16
/* The largest payload kept inline (beside the record header) in a queued record. */
#define WAL_INLINE_PAYLOAD_BYTES_MAX WAL_SEGMENT_PAYLOAD_BYTES
#define WAL_RECORD_PAYLOAD_BYTES_MAX (RR_ENTRY_HEADER_BYTES + RR_ENTRY_BYTES_MAX)
#define WAL_SEGMENT_MAGIC            0x31474553574C5252ull /* "RRLWSEG1" little-endian */
#define WAL_FORMAT_VERSION           1u
/* How far past a clean end of data recovery still looks for a valid record (a write lost
 * inside the last batch); past a bad record it looks to the end of the nonzero bytes. */
#define WAL_SEARCH_AFTER_CLEAN_END_BYTES (1u << 20)

_Static_assert(WAL_RECORD_HEADER_BYTES == 4 + 4 + 4 + 1 + 3, "record header layout");
_Static_assert(WAL_SEGMENT_PAYLOAD_BYTES == 8 + 4 + 4 + 8 + 8 + 8 + 8, "segment header layout");
_Static_assert(WAL_HARD_STATE_PAYLOAD_BYTES == 3 * 8, "hard state layout");
_Static_assert(WAL_SNAPSHOT_PAYLOAD_BYTES == 2 * 8, "snapshot marker layout");
_Static_assert(RR_ENTRY_HEADER_BYTES <= WAL_INLINE_PAYLOAD_BYTES_MAX, "entry header inline");
_Static_assert(WAL_RECORD_PAYLOAD_BYTES_MAX <= UINT32_MAX, "payload length is 32-bit");

enum wal_record_type {
    WAL_REC_SEGMENT = 1,
    WAL_REC_ENTRY = 2,
    WAL_REC_HARD_STATE = 3,
    WAL_REC_SNAPSHOT = 4,
};

/* A verified record inside a segment image. */
typedef struct wal_record {
    uint8_t type;
    uint64_t offset_bytes;  /* of the record header in the segment */
    const uint8_t *payload; /* payload_bytes bytes */
    uint32_t payload_bytes;
} wal_record;

typedef struct wal_segment_header {
    uint64_t seq;
    rr_index_t prev_index; /* the log's last entry when the segment was started */
    rr_term_t prev_term;
    uint64_t prev_end_bytes; /* where the previous segment's data ends (0: none) */
} wal_segment_header;

/* Where and how a scan stopped. */
typedef struct wal_scan_result {
    uint64_t end_bytes;       /* valid records end here */
    int stop_err;             /* 0: all-zero header or end of image; else why end_bytes is bad */
    bool valid_after;         /* a valid record exists beyond end_bytes */
    uint64_t dirty_end_bytes; /* one past the last nonzero byte (>= end_bytes) */
} wal_scan_result;

/* Called for each valid record in order; a nonzero return stops the scan with that error
 * (reported at the record's offset). */
typedef int (*wal_record_fn)(void *ctx, const wal_record *rec);

/* Writes a record header (CRC field zero) for a payload of payload_bytes. */
void wal_record_header_init(uint8_t hdr[WAL_RECORD_HEADER_BYTES], uint8_t type, uint64_t seq,
                            uint32_t payload_bytes);
/* Fills the CRC field of hdr from the header and the payload given as up to two pieces
 * (inline bytes right after the header, then an external payload). */
void wal_record_seal(uint8_t *hdr, const uint8_t *inline_payload, size_t inline_bytes,
                     const uint8_t *ext_payload, size_t ext_bytes);

void wal_segment_payload_encode(uint8_t out[WAL_SEGMENT_PAYLOAD_BYTES],
                                const wal_segment_header *sh);
void wal_hard_state_encode(uint8_t out[WAL_HARD_STATE_PAYLOAD_BYTES], const rr_hard_state *hs);
void wal_hard_state_decode(const uint8_t in[WAL_HARD_STATE_PAYLOAD_BYTES], rr_hard_state *hs);
void wal_snapshot_marker_encode(uint8_t out[WAL_SNAPSHOT_PAYLOAD_BYTES], rr_index_t index,
                                rr_term_t term);
void wal_snapshot_marker_decode(const uint8_t in[WAL_SNAPSHOT_PAYLOAD_BYTES], rr_index_t *index,
                                rr_term_t *term);
void wal_segment_payload_decode(const uint8_t in[WAL_SEGMENT_PAYLOAD_BYTES],
                                wal_segment_header *sh);

/* Verifies one record at p[0..avail) of segment seq. Returns 1 for the end of data (an
 * all-zero header, or a whole record of another segment: a recycled file's old contents),
 * 0 and *rec when valid, RR_ERR_TRUNCATED when it runs past avail, RR_ERR_CORRUPT
 * (checksum, type, reserved bytes, payload structure), RR_ERR_TOO_LARGE (length). */
int wal_record_check(const uint8_t *p, size_t avail, uint64_t seq, uint64_t offset_bytes,
                     wal_record *rec);

/* Scans a whole segment image p[0..len) of segment seq: a segment header record at 0, then
 * records until an all-zero header, the end, or a bad record. Calls fn for each valid
 * record. Never reads outside p[0..len). Returns 0 (see *res for where and why it stopped)
 * or fn's error (res->end_bytes is then that record's offset). */
int wal_segment_scan(const uint8_t *p, size_t len, uint64_t seq, wal_record_fn fn, void *ctx,
                     wal_scan_result *res);

#endif
