/*
 * wal_record.c: the on-disk format of the WAL — records and segments (snapshot files are
 * in wal_snap.c). This file encodes and verifies it; wal_io.c writes it.
 *
 * Directory: <16 hex digits>.wal segments numbered from 1 without gaps, <16 hex>.snap
 * snapshots (by index), and transient spare.tmp (the next segment, preallocated),
 * recycle-*.tmp (deleted segments kept for reuse, at most 4) and snap.tmp (a snapshot
 * being written). Directory fsynced after every create, rename and unlink.
 *
 * Segment: a file of segment_size_bytes, preallocated (zeros), or recycled from a segment
 * that compaction deleted (PostgreSQL and RocksDB recycle log files the same way: writes
 * then overwrite allocated, initialized blocks and fdatasync has no metadata to commit).
 * Records are packed back to back from offset 0; the first is a SEGMENT record. Data ends
 * at the first all-zero header or at a whole, checksummed record of another segment (the
 * seq_lo field differs: what a recycled file held before). A record that does not fit in
 * what is left of a segment starts the next one (a record larger than a whole segment goes
 * alone into a segment that grows past the size), and the next segment's header records
 * exactly where the previous one's data ends.
 *
 * Record, little-endian (STYLE.md habit 3):
 *
 *   offset size field
 *   0      4    crc32c        CRC-32C of bytes 4..16 of this header, then the payload
 *   4      4    payload_bytes (1 .. RR_ENTRY_HEADER_BYTES + RR_ENTRY_BYTES_MAX)
 *   8      4    seq_lo        low 32 bits of the segment's sequence number: a record left
 *                             over from another file never validates here
 *   12     1    type          1 segment, 2 entry, 3 hard state, 4 snapshot marker
 *   13     3    reserved      zero
 *   16     payload_bytes of payload:
 *
 *   SEGMENT (48)   magic u64 "RRLWSEG1", version u32 (1), reserved u32 (0), seq u64,
 *                  prev_index u64, prev_term u64 (the log's last entry when the segment
 *                  was started: the start of the log if older segments are deleted),
 *                  prev_end u64 (byte offset where the previous segment's data ends)
 *   ENTRY          ringraft/entry_codec.h exactly (24-byte header + data), the bytes net/
 *                  puts on the wire, so a follower writes what it received as it is
 *   HARD_STATE (24) term u64, vote u64, commit u64
 *   SNAPSHOT (16)  index u64, term u64: the log was reset to this snapshot here (a snapshot
 *                  received from the leader); the snapshot itself is a .snap file
 *
 * Log semantics of replay (the commit invariant, as etcd's WAL): records apply in file
 * order; an ENTRY at index i <= last replaces the suffix from i (a truncation is durable
 * exactly when the replacing entries are); i == last + 1 extends; i > last + 1 is a gap,
 * which is corruption. The last HARD_STATE wins.
 *
 * Recovery (wal.c): every record of every segment is verified. A segment followed by
 * another must hold valid records exactly up to the prev_end its successor declares. In
 * the last segment holding data, a bad record is a torn write — cut — only if no valid
 * record of this segment follows it (else some acknowledged record was lost or damaged);
 * anywhere else it fails the open, naming the file and offset. The writer guarantees the
 * premise: a batch spanning two segments is written writev(old) -> fdatasync(old) ->
 * writev(new), linked, so bytes in a newer segment mean the older one is complete.
 */
#include "wal_record.h"

#include <string.h>

#include "ringraft/crc32c.h"
#include "ringraft/errors.h"

void wal_record_header_init(uint8_t hdr[WAL_RECORD_HEADER_BYTES], uint8_t type, uint64_t seq,
                            uint32_t payload_bytes)
{
    rr_le_put_u32(hdr, 0);
    rr_le_put_u32(hdr + 4, payload_bytes);
    rr_le_put_u32(hdr + 8, (uint32_t)seq);
    hdr[12] = type;
    hdr[13] = 0;
    hdr[14] = 0;
    hdr[15] = 0;
}

void wal_record_seal(uint8_t *hdr, const uint8_t *inline_payload, size_t inline_bytes,
                     const uint8_t *ext_payload, size_t ext_bytes)
{
    uint32_t crc;
    if (inline_payload == hdr + WAL_RECORD_HEADER_BYTES) /* contiguous: one call, not two */
        crc = rr_crc32c(0, hdr + 4, WAL_RECORD_HEADER_BYTES - 4 + inline_bytes);
    else
        crc = rr_crc32c(rr_crc32c(0, hdr + 4, WAL_RECORD_HEADER_BYTES - 4), inline_payload,
                        inline_bytes);
    if (ext_bytes > 0)
        crc = rr_crc32c(crc, ext_payload, ext_bytes);
    rr_le_put_u32(hdr, crc);
}

void wal_segment_payload_encode(uint8_t out[WAL_SEGMENT_PAYLOAD_BYTES],
                                const wal_segment_header *sh)
{
    rr_le_put_u64(out, WAL_SEGMENT_MAGIC);
    rr_le_put_u32(out + 8, WAL_FORMAT_VERSION);
    rr_le_put_u32(out + 12, 0);
    rr_le_put_u64(out + 16, sh->seq);
    rr_le_put_u64(out + 24, sh->prev_index);
    rr_le_put_u64(out + 32, sh->prev_term);
    rr_le_put_u64(out + 40, sh->prev_end_bytes);
}

void wal_segment_payload_decode(const uint8_t in[WAL_SEGMENT_PAYLOAD_BYTES], wal_segment_header *sh)
{
    sh->seq = rr_le_get_u64(in + 16);
    sh->prev_index = rr_le_get_u64(in + 24);
    sh->prev_term = rr_le_get_u64(in + 32);
    sh->prev_end_bytes = rr_le_get_u64(in + 40);
}

void wal_hard_state_encode(uint8_t out[WAL_HARD_STATE_PAYLOAD_BYTES], const rr_hard_state *hs)
{
    rr_le_put_u64(out, hs->term);
    rr_le_put_u64(out + 8, hs->vote);
    rr_le_put_u64(out + 16, hs->commit);
}

void wal_hard_state_decode(const uint8_t in[WAL_HARD_STATE_PAYLOAD_BYTES], rr_hard_state *hs)
{
    hs->term = rr_le_get_u64(in);
    hs->vote = rr_le_get_u64(in + 8);
    hs->commit = rr_le_get_u64(in + 16);
}

void wal_snapshot_marker_encode(uint8_t out[WAL_SNAPSHOT_PAYLOAD_BYTES], rr_index_t index,
                                rr_term_t term)
{
    rr_le_put_u64(out, index);
    rr_le_put_u64(out + 8, term);
}

void wal_snapshot_marker_decode(const uint8_t in[WAL_SNAPSHOT_PAYLOAD_BYTES], rr_index_t *index,
                                rr_term_t *term)
{
    *index = rr_le_get_u64(in);
    *term = rr_le_get_u64(in + 8);
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return false;
    return true;
}

/* Structure of a payload whose checksum already matched. */
static int payload_check(uint8_t type, const uint8_t *p, uint32_t len, uint64_t seq,
                         uint64_t offset_bytes)
{
    switch (type) {
    case WAL_REC_SEGMENT: {
        if (len != WAL_SEGMENT_PAYLOAD_BYTES || offset_bytes != 0)
            return RR_ERR_CORRUPT;
        if (rr_le_get_u64(p) != WAL_SEGMENT_MAGIC || rr_le_get_u32(p + 12) != 0)
            return RR_ERR_CORRUPT;
        if (rr_le_get_u32(p + 8) != WAL_FORMAT_VERSION)
            return RR_ERR_BAD_VERSION;
        return rr_le_get_u64(p + 16) == seq ? 0 : RR_ERR_CORRUPT;
    }
    case WAL_REC_ENTRY: {
        rr_entry e;
        size_t used = 0;
        int rc = rr_entry_decode(p, len, &e, &used);
        if (rc != 0)
            return RR_ERR_CORRUPT;
        return used == len ? 0 : RR_ERR_CORRUPT;
    }
    case WAL_REC_HARD_STATE:
        return len == WAL_HARD_STATE_PAYLOAD_BYTES ? 0 : RR_ERR_CORRUPT;
    case WAL_REC_SNAPSHOT:
        return len == WAL_SNAPSHOT_PAYLOAD_BYTES ? 0 : RR_ERR_CORRUPT;
    default:
        return RR_ERR_CORRUPT;
    }
}

int wal_record_check(const uint8_t *p, size_t avail, uint64_t seq, uint64_t offset_bytes,
                     wal_record *rec)
{
    if (avail < WAL_RECORD_HEADER_BYTES)
        return all_zero(p, avail) ? 1 : RR_ERR_TRUNCATED;
    if (all_zero(p, WAL_RECORD_HEADER_BYTES))
        return 1;
    uint32_t len = rr_le_get_u32(p + 4);
    if (len == 0 || len > WAL_RECORD_PAYLOAD_BYTES_MAX)
        return RR_ERR_TOO_LARGE;
    if (p[13] != 0 || p[14] != 0 || p[15] != 0)
        return RR_ERR_CORRUPT;
    if (avail - WAL_RECORD_HEADER_BYTES < len)
        return RR_ERR_TRUNCATED;
    uint32_t crc = rr_crc32c(0, p + 4, WAL_RECORD_HEADER_BYTES - 4);
    crc = rr_crc32c(crc, p + WAL_RECORD_HEADER_BYTES, len);
    if (crc != rr_le_get_u32(p))
        return RR_ERR_CORRUPT;
    /* Checksummed with another segment's number: old contents of a recycled file. A flip
     * in seq_lo itself fails the checksum above instead. */
    if (rr_le_get_u32(p + 8) != (uint32_t)seq)
        return 1;
    const uint8_t *payload = p + WAL_RECORD_HEADER_BYTES;
    int rc = payload_check(p[12], payload, len, seq, offset_bytes);
    if (rc != 0)
        return rc;
    *rec = (wal_record){
        .type = p[12], .offset_bytes = offset_bytes, .payload = payload, .payload_bytes = len};
    return 0;
}

/* One past the last nonzero byte of p[from..len), or from. Word steps over zeros: the
 * unused end of a preallocated segment is megabytes of them. */
static uint64_t dirty_end(const uint8_t *p, size_t from, size_t len)
{
    size_t i = len;
    while (i >= from + 8) {
        uint64_t w;
        memcpy(&w, p + i - 8, 8);
        if (w != 0)
            break;
        i -= 8;
    }
    while (i > from && p[i - 1] == 0)
        i--;
    return i;
}

/* Whether any offset in (from, to) holds a valid record: tells a torn tail (garbage only)
 * from a damaged record that acknowledged records follow. */
static bool valid_record_after(const uint8_t *p, size_t len, uint64_t seq, size_t from, size_t to)
{
    for (size_t off = from + 1; off + WAL_RECORD_HEADER_BYTES <= to; off++) {
        if (rr_le_get_u32(p + off + 8) != (uint32_t)seq) /* cheap filter before the CRC */
            continue;
        wal_record rec;
        if (wal_record_check(p + off, len - off, seq, off, &rec) == 0)
            return true;
    }
    return false;
}

int wal_segment_scan(const uint8_t *p, size_t len, uint64_t seq, wal_record_fn fn, void *ctx,
                     wal_scan_result *res)
{
    size_t off = 0;
    int stop = 0;
    while (off < len) {
        wal_record rec;
        int rc = wal_record_check(p + off, len - off, seq, off, &rec);
        if (rc == 1)
            break;
        if (rc == 0 && off == 0 && rec.type != WAL_REC_SEGMENT)
            rc = RR_ERR_CORRUPT; /* every segment starts with its header */
        if (rc != 0) {
            stop = rc;
            break;
        }
        if (fn != NULL) {
            rc = fn(ctx, &rec);
            if (rc != 0) {
                res->end_bytes = off;
                res->stop_err = rc;
                return rc;
            }
        }
        off += WAL_RECORD_HEADER_BYTES + (size_t)rec.payload_bytes;
    }
    res->end_bytes = off;
    res->stop_err = stop;
    res->dirty_end_bytes = dirty_end(p, off, len);
    /* After a clean end (zeros, or a recycled file's old records, which can fill the rest
     * of the file) look one search window further: a lost sector of the last batch. */
    uint64_t to = res->dirty_end_bytes;
    if (stop == 0 && to - off > WAL_SEARCH_AFTER_CLEAN_END_BYTES)
        to = off + WAL_SEARCH_AFTER_CLEAN_END_BYTES;
    res->valid_after = valid_record_after(p, len, seq, off, (size_t)to);
    return 0;
}
