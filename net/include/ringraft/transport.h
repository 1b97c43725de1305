/*
 * transport.h: wire codec and transports — contract of the net/ module (issue 7).
 *
 * Contract:
 * - One framing for every rr_message: versioned header of fixed-width little-endian
 *   fields, CRC-32C, an explicit bound on every length; several messages to one peer may
 *   share a frame. Decoding untrusted bytes never crashes, never over-reads, never
 *   allocates without bound, and returns RR_ERR_CORRUPT / RR_ERR_TRUNCATED /
 *   RR_ERR_TOO_LARGE / RR_ERR_BAD_VERSION. Entry encoding is shared with io/'s WAL.
 * - TCP on io_uring: one connection per peer pair, TCP_NODELAY; SEND_ZC above a measured
 *   size threshold; a buffer under a zero-copy send is held (rr_buf reference) until its
 *   notification completion; multishot receive into provided buffer rings.
 * - A connection opens with a handshake of cluster id and node id; strangers and garbage
 *   are refused and logged. Reconnects back off exponentially, bounded. A peer that goes
 *   away is reported unreachable to the core.
 * - Per-peer send queues are bounded in bytes: when full, messages are dropped and the
 *   peer reported unreachable; memory never grows without bound.
 * - Snapshots stream in chunks with flow control.
 * - An in-process transport with the same interface serves tests and benchmarks.
 * - Threads: sends are queued by the raft thread; the net thread owns the ring and
 *   sockets; received messages reach the raft thread through an SPSC ring.
 */
#ifndef RINGRAFT_TRANSPORT_H
#define RINGRAFT_TRANSPORT_H
#include "ringraft/core.h"
#endif
