/* errors.c: rr_strerror. See ringraft/errors.h. */
#include "ringraft/errors.h"

#include <string.h>

const char *rr_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case RR_ERR_CORRUPT:
        return "corrupt data (checksum or structure)";
    case RR_ERR_TRUNCATED:
        return "truncated input";
    case RR_ERR_TOO_LARGE:
        return "length exceeds its bound";
    case RR_ERR_BAD_VERSION:
        return "unknown format or protocol version";
    case RR_ERR_COMPACTED:
        return "requested index is unavailable due to compaction";
    case RR_ERR_UNAVAILABLE:
        return "requested entry at index is unavailable";
    case RR_ERR_SNAP_OUT_OF_DATE:
        return "requested index is older than the existing snapshot";
    case RR_ERR_SNAP_TEMP_UNAVAILABLE:
        return "snapshot is temporarily unavailable";
    case RR_ERR_STOPPED:
        return "stopped";
    default:
        break;
    }
    if (err < 0 && err > -RR_ERR_BASE) {
        /* strerrordesc_np (glibc >= 2.32) is thread-safe and static, unlike strerror. */
        const char *s = strerrordesc_np(-err);
        if (s != NULL)
            return s;
    }
    return "unknown error";
}
