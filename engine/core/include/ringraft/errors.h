/*
 * errors.h: how ringraft reports failure (codes here; rr_strerror lives in common/).
 *
 * Functions that can fail return 0 on success or a negative errno (-EIO, -ENOSPC, ...).
 * ringraft's own conditions use the negative codes below, chosen outside errno's range.
 * Protocol outcomes ("not leader", "stale term") are results, not errors (STYLE.md 4).
 */
#ifndef RINGRAFT_ERRORS_H
#define RINGRAFT_ERRORS_H

#ifdef __cplusplus
extern "C" {
#endif

enum {
    RR_ERR_BASE = 10000,
    RR_ERR_CORRUPT = -(RR_ERR_BASE + 1),               /* a checksum or structural check failed */
    RR_ERR_TRUNCATED = -(RR_ERR_BASE + 2),             /* input ended inside a record or frame */
    RR_ERR_TOO_LARGE = -(RR_ERR_BASE + 3),             /* a length exceeds its documented bound */
    RR_ERR_BAD_VERSION = -(RR_ERR_BASE + 4),           /* unknown format or protocol version */
    RR_ERR_COMPACTED = -(RR_ERR_BASE + 5),             /* requested index was compacted away */
    RR_ERR_UNAVAILABLE = -(RR_ERR_BASE + 6),           /* requested index is not in the log yet */
    RR_ERR_SNAP_OUT_OF_DATE = -(RR_ERR_BASE + 7),      /* snapshot older than the current one */
    RR_ERR_SNAP_TEMP_UNAVAILABLE = -(RR_ERR_BASE + 8), /* snapshot not ready yet */
    RR_ERR_STOPPED = -(RR_ERR_BASE + 9),               /* the node or replica has stopped */
    RR_ERR_LAST = -(RR_ERR_BASE + 10),
};

/* Returns a static, human-readable description of err (a negative errno or RR_ERR_*).
 * Thread-safe; never returns NULL. */
const char *rr_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif
