/*
 * codec.h: the wire format of ringraft — one framing for every Raft message that leaves a
 * node, for the connection handshake and for snapshot chunks. The byte layout is written
 * at the top of net/src/codec.c; the limits are here, in one place.
 *
 * Trust: everything decoded here is untrusted. Decoders check every length against its
 * bound before using it, never read outside the bytes they are given, allocate at most
 * what the (already bounded) input length justifies, and reject bad input with
 * RR_ERR_CORRUPT / RR_ERR_TRUNCATED / RR_ERR_TOO_LARGE / RR_ERR_BAD_VERSION.
 *
 * Ownership: encoders borrow the messages. Decoded messages are owned by the caller (free
 * with rr_message_free); their entries' and inline snapshot's bytes point into the frame
 * body, and each holds one reference on the body's rr_buf (`owner`): payloads are never
 * copied out of the receive buffer. Context bytes are copied (the core frees them).
 * Entries use the shared entry encoding (ringraft/entry_codec.h), so a follower can hand
 * the received entry bytes to the WAL as they are.
 *
 * Threads: pure functions, any thread.
 */
#ifndef RINGRAFT_CODEC_H
#define RINGRAFT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "ringraft/core.h"
#include "ringraft/entry_codec.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- limits of the wire format (every length on the wire is checked against these) ---- */

#define RR_CODEC_MAGIC              0x3146524eu /* "NRF1" little-endian on the wire */
#define RR_CODEC_VERSION            1u
#define RR_CODEC_FRAME_HEADER_BYTES 24u
#define RR_CODEC_MSG_HEADER_BYTES   80u
#define RR_CODEC_SNAP_HEADER_BYTES  32u
#define RR_CODEC_HELLO_BYTES        24u
#define RR_CODEC_CHUNK_HEADER_BYTES 32u
/* Messages in one frame. */
#define RR_CODEC_FRAME_MSGS_MAX 1024u
/* Opaque message context (etcd: campaign type, ReadIndex context). */
#define RR_CODEC_CONTEXT_BYTES_MAX 256u
/* Entries in one message. */
#define RR_CODEC_MSG_ENTRIES_MAX 65536u
/* Snapshot data carried inside a MsgSnap record; larger snapshots stream in chunks. */
#define RR_CODEC_SNAP_INLINE_BYTES_MAX (1u << 20)
/* Bytes of one snapshot chunk frame's data. */
#define RR_CODEC_CHUNK_BYTES_MAX (1u << 20)
/* A whole snapshot reassembled from chunks. */
#define RR_CODEC_SNAPSHOT_BYTES_MAX (1ull << 32)
/* A frame body: room for one maximal entry plus headers, so any single message fits. */
#define RR_CODEC_FRAME_BODY_BYTES_MAX (RR_ENTRY_BYTES_MAX + (4u << 20))

_Static_assert(RR_CODEC_FRAME_HEADER_BYTES == 4 + 1 + 1 + 2 + 4 + 4 + 4 + 4, "frame header");
_Static_assert(RR_CODEC_MSG_HEADER_BYTES == 1 + 1 + 2 + 4 + 4 + 4 + 8 * 8, "message header");
_Static_assert(RR_CODEC_SNAP_HEADER_BYTES == 8 + 8 + 8 + 4 + 1 + 1 + 2, "snapshot header");
_Static_assert(RR_CODEC_HELLO_BYTES == 8 + 8 + 8, "hello body");
_Static_assert(RR_CODEC_CHUNK_HEADER_BYTES == 8 + 8 + 8 + 8, "chunk header");
_Static_assert(RR_CODEC_CONTEXT_BYTES_MAX >= RR_READ_CONTEXT_BYTES_MAX, "ReadIndex context fits");
_Static_assert(RR_CODEC_FRAME_BODY_BYTES_MAX <= UINT32_MAX, "body length is 32-bit");
_Static_assert(RR_CODEC_FRAME_BODY_BYTES_MAX >= RR_CODEC_MSG_HEADER_BYTES +
                                                    RR_CODEC_CONTEXT_BYTES_MAX +
                                                    RR_ENTRY_HEADER_BYTES + RR_ENTRY_BYTES_MAX,
               "one message with one maximal entry fits a frame");
_Static_assert(RR_CODEC_FRAME_BODY_BYTES_MAX >=
                   RR_CODEC_MSG_HEADER_BYTES + RR_CODEC_SNAP_HEADER_BYTES + 4 * RR_NODES_MAX * 8 +
                       RR_CODEC_SNAP_INLINE_BYTES_MAX,
               "a MsgSnap with inline data fits a frame");
_Static_assert(RR_CODEC_CHUNK_BYTES_MAX + RR_CODEC_CHUNK_HEADER_BYTES <=
                   RR_CODEC_FRAME_BODY_BYTES_MAX,
               "a chunk fits a frame");
_Static_assert(RR_CODEC_SNAP_INLINE_BYTES_MAX <= RR_CODEC_CHUNK_BYTES_MAX,
               "larger snapshots stream");

/* Frame kinds. */
enum rr_codec_kind {
    RR_CODEC_KIND_MSGS = 1,       /* body: `count` message records */
    RR_CODEC_KIND_HELLO = 2,      /* body: the handshake (count 0) */
    RR_CODEC_KIND_SNAP_CHUNK = 3, /* body: one chunk of a streamed snapshot (count 0) */
};

typedef struct rr_codec_frame_header {
    uint8_t kind; /* enum rr_codec_kind */
    uint32_t body_len;
    uint32_t count;
    uint32_t body_crc;
} rr_codec_frame_header;

typedef struct rr_codec_hello {
    uint64_t cluster_id;
    rr_node_id_t from; /* the dialer */
    rr_node_id_t to;   /* whom the dialer believes it reached */
} rr_codec_hello;

/* One piece of a snapshot's data, sent before the MsgSnap that refers to it. */
typedef struct rr_codec_chunk {
    rr_index_t snap_index;
    rr_term_t snap_term;
    uint64_t offset;
    uint64_t total_len;
    const uint8_t *data; /* decoded: points into the body */
    uint32_t len;
} rr_codec_chunk;

/* A snapshot's data reassembled from chunks, offered to the decoder for the MsgSnap record
 * that says its data was streamed. */
typedef struct rr_codec_streamed {
    rr_index_t snap_index;
    rr_term_t snap_term;
    const uint8_t *data;
    uint64_t len;
    rr_buf *buf; /* the decoder takes its own reference */
} rr_codec_streamed;

/* ---- frame header ---- */

/* Writes a header for a body of body_len bytes with CRC-32C body_crc. */
void rr_codec_header_encode(uint8_t kind, uint32_t body_len, uint32_t count, uint32_t body_crc,
                            uint8_t out[RR_CODEC_FRAME_HEADER_BYTES]);
/* Validates a header from untrusted bytes: magic and version (RR_ERR_BAD_VERSION), header
 * CRC, kind, reserved bytes, count (RR_ERR_CORRUPT), body length (RR_ERR_TOO_LARGE); len
 * short of a header is RR_ERR_TRUNCATED. Returns 0 and fills *h. */
int rr_codec_header_decode(const uint8_t *p, size_t len, rr_codec_frame_header *h);
/* Checks the body against h (length RR_ERR_TRUNCATED, CRC RR_ERR_CORRUPT). */
int rr_codec_body_check(const rr_codec_frame_header *h, const uint8_t *body, size_t len);

/* ---- messages ---- */

/* True if m may go on the wire: a non-local type, no responses, bounded context and entry
 * count, a snapshot within RR_CODEC_SNAPSHOT_BYTES_MAX (over the inline bound it streams in
 * chunks), and a record that fits one frame. */
bool rr_codec_message_sendable(const rr_message *m);
/* Encoded size of m's record (inline snapshot data included). */
size_t rr_codec_message_bytes(const rr_message *m);
/* True if m is a MsgSnap whose data must stream in chunks. */
bool rr_codec_snapshot_streams(const rr_message *m);

/*
 * Encoder into a staging area plus iovecs: header-like bytes (and payloads shorter than
 * ref_min_bytes, cheaper to copy than to reference) go to the staging area; longer payloads
 * become iovecs pointing at the entry's own bytes, and the writer records the entry's
 * rr_buf (without taking a reference: the caller does, see rr_codec_writer_add).
 * iov[0] is reserved for the frame header, filled by rr_codec_writer_finish.
 */
typedef struct rr_codec_writer {
    uint8_t *stage; /* stage_cap bytes, caller-owned */
    size_t stage_cap;
    size_t stage_len;
    struct iovec *iov; /* iov_cap entries, caller-owned */
    uint32_t iov_cap;
    uint32_t n_iov;
    rr_buf **refs; /* iov_cap entries: buffers referenced by iovecs, caller-owned */
    uint32_t n_refs;
    uint32_t ref_min_bytes;
    uint8_t kind;
    uint32_t count;
    uint64_t body_len;
    uint32_t body_crc;
    uint8_t header[RR_CODEC_FRAME_HEADER_BYTES];
} rr_codec_writer;

/* Starts a frame (kind MSGS). */
void rr_codec_writer_begin(rr_codec_writer *w);
/* Staging bytes and iovecs m needs in w (for sizing before rr_codec_writer_add). */
void rr_codec_writer_needs(const rr_codec_writer *w, const rr_message *m, size_t *stage_bytes,
                           uint32_t *iovs);
/* Appends m. Takes a reference on every buffer it records in w->refs. Returns 0, -EINVAL
 * (not sendable), -ENOBUFS (staging, iovecs or frame bounds exceeded: start a new frame). */
int rr_codec_writer_add(rr_codec_writer *w, const rr_message *m);
/* Appends a snapshot chunk as the frame's only content (kind SNAP_CHUNK); w must be empty.
 * Returns 0 or -EINVAL / -ENOBUFS. */
int rr_codec_writer_add_chunk(rr_codec_writer *w, const rr_codec_chunk *c, rr_buf *buf);
/* Writes the frame header into w->header and iov[0]. Returns total frame bytes. */
size_t rr_codec_writer_finish(rr_codec_writer *w);
/* Drops the references recorded in w->refs. */
void rr_codec_writer_release(rr_codec_writer *w);

/* Contiguous encoding of a whole MSGS frame, for tests and tools. Returns bytes written,
 * -EINVAL (a message not sendable, n over the frame bound) or -ENOBUFS. */
int rr_codec_frame_encode(const rr_message *msgs, uint32_t n, uint8_t *out, size_t cap);
/* A HELLO frame (header and body) into out. Returns the bytes written. */
size_t rr_codec_hello_encode(const rr_codec_hello *h,
                             uint8_t out[RR_CODEC_FRAME_HEADER_BYTES + RR_CODEC_HELLO_BYTES]);

/*
 * Decodes the `count` message records of a checked MSGS body into out[0..count). owner is
 * the rr_buf holding body (may be NULL for bytes that outlive the messages). streamed, if
 * not NULL, is the reassembled snapshot a streamed MsgSnap refers to. All or nothing: on
 * error nothing is left allocated. Returns 0, RR_ERR_CORRUPT, RR_ERR_TRUNCATED,
 * RR_ERR_TOO_LARGE or -ENOMEM. out must hold count (<= RR_CODEC_FRAME_MSGS_MAX) messages.
 */
int rr_codec_messages_decode(const uint8_t *body, size_t len, uint32_t count, rr_buf *owner,
                             const rr_codec_streamed *streamed, rr_message *out);
/* Decodes a HELLO body. Returns 0 or RR_ERR_CORRUPT / RR_ERR_TRUNCATED. */
int rr_codec_hello_decode(const uint8_t *body, size_t len, rr_codec_hello *h);
/* Decodes a SNAP_CHUNK body; c->data points into body. Returns 0 or an RR_ERR_*. */
int rr_codec_chunk_decode(const uint8_t *body, size_t len, rr_codec_chunk *c);

/* Decodes one whole frame of any kind from p[0..len) for tests and the fuzzer: header,
 * CRC, body. For MSGS frames fills out (RR_CODEC_FRAME_MSGS_MAX slots) and *n. */
int rr_codec_frame_decode(const uint8_t *p, size_t len, rr_buf *owner, rr_message *out, uint32_t *n,
                          rr_codec_frame_header *h);

#ifdef __cplusplus
}
#endif
#endif
