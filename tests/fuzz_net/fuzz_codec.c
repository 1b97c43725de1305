/*
 * fuzz_codec.c: libFuzzer target for the wire decoder (net/src/codec.c).
 *
 * The first input byte picks the entry point; the rest is untrusted bytes. Whole frames go
 * through the header and CRC checks; since random bytes almost never carry a valid CRC,
 * the other entry points feed the bytes straight to the body decoders, which must hold on
 * their own. Every decoded MSGS body is re-encoded and must come back byte for byte: a
 * decoder that accepts what the encoder would not produce has a hole.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ringraft/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fuzz_buf {
    rr_buf hdr;
    uint8_t bytes[];
} fuzz_buf;

static void fuzz_buf_release(rr_buf *b)
{
    free(b);
}

static rr_message out[RR_CODEC_FRAME_MSGS_MAX];

static void reencode_check(const uint8_t *body, size_t len, uint32_t n)
{
    size_t cap = len + RR_CODEC_FRAME_HEADER_BYTES;
    uint8_t *again = malloc(cap);
    if (again == NULL)
        abort();
    int m = rr_codec_frame_encode(out, n, again, cap);
    if (m < 0 || (size_t)m != cap || memcmp(again + RR_CODEC_FRAME_HEADER_BYTES, body, len) != 0)
        abort();
    free(again);
}

static void body_decode(const uint8_t *body, size_t len, uint32_t count, rr_buf *owner)
{
    if (rr_codec_messages_decode(body, len, count, owner, NULL, out) != 0)
        return;
    reencode_check(body, len, count);
    for (uint32_t i = 0; i < count; i++)
        rr_message_free(&out[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20))
        return 0;
    fuzz_buf *b = malloc(sizeof(*b) + size);
    if (b == NULL)
        return 0;
    b->hdr.refs = 1;
    b->hdr.release = fuzz_buf_release;
    memcpy(b->bytes, data, size);
    const uint8_t *p = b->bytes + 1;
    size_t len = size - 1;
    switch (data[0] % 4) {
    case 0: {
        uint32_t n = 0;
        rr_codec_frame_header h;
        if (rr_codec_frame_decode(p, len, &b->hdr, out, &n, &h) == 0 && n > 0) {
            reencode_check(p + RR_CODEC_FRAME_HEADER_BYTES, h.body_len, n);
            for (uint32_t i = 0; i < n; i++)
                rr_message_free(&out[i]);
        }
        break;
    }
    case 1:
        body_decode(p, len, 1, &b->hdr);
        break;
    case 2:
        body_decode(p, len, 1u + data[0] / 4 % 8, &b->hdr);
        break;
    default: {
        rr_codec_chunk c;
        rr_codec_hello hi;
        (void)rr_codec_chunk_decode(p, len, &c);
        (void)rr_codec_hello_decode(p, len, &hi);
        break;
    }
    }
    rr_buf_unref(&b->hdr);
    return 0;
}
