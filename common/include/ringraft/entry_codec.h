/*
 * entry_codec.h: the one encoding of a log entry, shared by the WAL (io/) and the wire
 * (net/), so that a follower persists the entry bytes it received without re-encoding.
 *
 * Layout, little-endian, RR_ENTRY_HEADER_BYTES of header then the payload:
 *
 *   offset size field
 *   0      8    term
 *   8      8    index      (nonzero)
 *   16     4    data_len   (<= RR_ENTRY_BYTES_MAX)
 *   20     1    type       (rr_entry_type: 0 normal, 1 conf change, 2 conf change v2)
 *   21     1    flags      (bit 0: data is nil — see below; other bits zero)
 *   22     2    reserved   (zero)
 *   24     data_len bytes of payload
 *
 * The nil flag keeps the distinction etcd makes between nil and empty data, which changes
 * an entry's counted size (rr_entry_size_bytes) and so size limits. Integrity (CRC-32C) is
 * the container's job: the WAL record and the wire frame each checksum what they carry.
 * Pure functions; any thread.
 */
#ifndef RINGRAFT_ENTRY_CODEC_H
#define RINGRAFT_ENTRY_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "ringraft/core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RR_ENTRY_HEADER_BYTES 24
#define RR_ENTRY_FLAG_NIL     0x01u

_Static_assert(RR_ENTRY_HEADER_BYTES == 8 + 8 + 4 + 1 + 1 + 2, "entry header layout");

/* Header plus payload bytes of e. */
static inline size_t rr_entry_encoded_bytes(const rr_entry *e)
{
    return RR_ENTRY_HEADER_BYTES + (size_t)e->data_len;
}

/* Writes e's header into out; the payload (e->data, e->data_len) follows it unchanged, so
 * callers can write header and payload as two iovecs without copying the payload. */
void rr_entry_encode_header(const rr_entry *e, uint8_t out[RR_ENTRY_HEADER_BYTES]);

/* Writes header and payload into out[0..cap). Returns the bytes written or -ENOBUFS. */
int rr_entry_encode(const rr_entry *e, uint8_t *out, size_t cap);

/* Decodes one entry from untrusted bytes p[0..len). On success returns 0, fills *e with
 * e->data pointing into p (e->buf NULL: the caller attaches a reference to whatever owns
 * p) and *consumed with the bytes used. Returns RR_ERR_TRUNCATED when len is short of the
 * header or the payload, RR_ERR_TOO_LARGE for data_len over RR_ENTRY_BYTES_MAX, and
 * RR_ERR_CORRUPT for a zero index, an unknown type, unknown flags, nonzero reserved bytes
 * or a nil flag with a payload. Never reads outside p[0..len). */
int rr_entry_decode(const uint8_t *p, size_t len, rr_entry *e, size_t *consumed);

#ifdef __cplusplus
}
#endif
#endif
