/* crc32c.c: CRC-32C through ISA-L. See ringraft/crc32c.h. */
#include "ringraft/crc32c.h"

#include <isa-l/crc.h>

uint32_t rr_crc32c(uint32_t crc, const void *buf, size_t len)
{
    /* crc32_iscsi takes and returns the raw register (no inversions), with a 32-bit
     * length; the standard CRC-32C inverts in and out, and large buffers go in pieces. */
    const unsigned char *p = buf;
    uint32_t reg = ~crc;
    while (len > 0) {
        size_t n = len > (1u << 30) ? (1u << 30) : len;
        reg = crc32_iscsi((unsigned char *)p, (int)n, reg);
        p += n;
        len -= n;
    }
    return ~reg;
}
