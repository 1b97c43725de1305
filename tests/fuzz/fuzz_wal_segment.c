/*
 * fuzz_wal_segment.c: libFuzzer target for the WAL's segment reader (io/src/wal_record.c),
 * the gateway that recovery trusts with untrusted bytes (STYLE.md habit 5).
 *
 * Each input is used twice: as a raw segment image, and as the recipe for a valid segment
 * (a header, then entry / hard state / snapshot records whose sizes and bytes come from
 * the input) that is then damaged at input-chosen positions, so the fuzzer reaches deep
 * into well-formed images without a seed corpus. Properties checked: the scan never reads
 * outside the image (ASan), stops within it, reports only records that lie inside it, and
 * on an undamaged synthesized image returns every record written, ending cleanly.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ringraft/entry_codec.h"
#include "wal_record.h"

#define IMAGE_BYTES_MAX (64u << 10)

typedef struct count {
    size_t len;
    uint32_t records;
} count;

static int on_record(void *ctx, const wal_record *rec)
{
    count *c = ctx;
    if (rec->offset_bytes + WAL_RECORD_HEADER_BYTES + rec->payload_bytes > c->len)
        abort(); /* a record reported past the image */
    if (rec->type == WAL_REC_ENTRY) {
        rr_entry e;
        size_t used;
        if (rr_entry_decode(rec->payload, rec->payload_bytes, &e, &used) != 0)
            abort(); /* the scanner let a malformed entry through */
    }
    c->records++;
    return 0;
}

static void scan(const uint8_t *p, size_t len, uint64_t seq, count *c)
{
    wal_scan_result res;
    c->len = len;
    c->records = 0;
    wal_segment_scan(p, len, seq, on_record, c, &res);
    if (res.end_bytes > len || res.dirty_end_bytes > len)
        abort();
}

static size_t put_record(uint8_t *img, size_t off, uint8_t type, uint64_t seq, const uint8_t *pl,
                         uint32_t len)
{
    wal_record_header_init(img + off, type, seq, len);
    memcpy(img + off + WAL_RECORD_HEADER_BYTES, pl, len);
    wal_record_seal(img + off, img + off + WAL_RECORD_HEADER_BYTES, len, NULL, 0);
    return off + WAL_RECORD_HEADER_BYTES + len;
}

/* Builds a valid segment from the input; returns its data length and record count. */
static size_t synthesize(const uint8_t *in, size_t n, uint8_t *img, uint32_t *records)
{
    uint8_t pl[RR_ENTRY_HEADER_BYTES + 256];
    wal_segment_header sh = {.seq = 3, .prev_index = 9, .prev_term = 1, .prev_end_bytes = 0};
    wal_segment_payload_encode(pl, &sh);
    size_t off = put_record(img, 0, WAL_REC_SEGMENT, 3, pl, WAL_SEGMENT_PAYLOAD_BYTES);
    *records = 1;
    rr_index_t index = 10;
    for (size_t i = 0; i + 2 <= n && off + sizeof pl + 64 < IMAGE_BYTES_MAX; i += 2) {
        uint8_t kind = in[i] % 4, size = in[i + 1];
        if (kind == 0) {
            rr_hard_state hs = {.term = in[i], .vote = size, .commit = index};
            wal_hard_state_encode(pl, &hs);
            off = put_record(img, off, WAL_REC_HARD_STATE, 3, pl, WAL_HARD_STATE_PAYLOAD_BYTES);
        } else if (kind == 1) {
            wal_snapshot_marker_encode(pl, index, 1);
            off = put_record(img, off, WAL_REC_SNAPSHOT, 3, pl, WAL_SNAPSHOT_PAYLOAD_BYTES);
        } else {
            rr_entry e = {
                .term = 1, .index = index++, .data = pl + RR_ENTRY_HEADER_BYTES, .data_len = size};
            memset(pl + RR_ENTRY_HEADER_BYTES, in[i], size);
            rr_entry_encode_header(&e, pl);
            off = put_record(img, off, WAL_REC_ENTRY, 3, pl, RR_ENTRY_HEADER_BYTES + size);
        }
        (*records)++;
    }
    return off;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t img[IMAGE_BYTES_MAX];
    count c;
    /* raw bytes, copied so that the image ends exactly where ASan can see it */
    uint8_t *raw = malloc(size > 0 ? size : 1);
    memcpy(raw, data, size);
    scan(raw, size, 3, &c);
    free(raw);

    memset(img, 0, sizeof img);
    uint32_t records;
    size_t end = synthesize(data, size, img, &records);
    size_t len = end + (size > 0 ? data[0] : 0); /* some zeros after the data, or none */
    if (len > IMAGE_BYTES_MAX)
        len = IMAGE_BYTES_MAX;
    scan(img, len, 3, &c);
    if (c.records != records)
        abort();     /* an undamaged segment lost records */
    if (size >= 4) { /* damage: a flipped bit, then a cut, at input-chosen positions */
        size_t at = ((size_t)data[1] << 8 | data[2]) % len;
        img[at] ^= (uint8_t)(1u << (data[3] % 8));
        scan(img, len, 3, &c);
        scan(img, at + 1, 3, &c);
    }
    return 0;
}
