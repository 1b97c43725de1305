/*
 * wal.h: durable storage of a replica — contract of the io/ module (issue 6).
 *
 * A write-ahead log of numbered, preallocated segment files, written through io_uring with
 * group commit, plus snapshot files. It serves the core's rr_storage interface and
 * reports durability to engine/node.
 *
 * Contract:
 * - Records (entries, hard state, snapshot markers) carry length, type and CRC-32C over
 *   header and payload; the entry encoding is net/'s wire encoding, so entries received
 *   from the leader are persisted without re-encoding. The on-disk format is documented at
 *   the top of the file that writes it.
 * - rr_wal_submit-style appends are queued; one io thread submits each batch as a single
 *   vectored write from the callers' buffers (no copy) linked with one fdatasync; while a
 *   batch is in flight the next gathers. Each completion reports the highest durable
 *   (term, index). An append conflicting with the log truncates the suffix durably first.
 * - Recovery verifies every record; a torn record at the very tail of the last segment is
 *   cut; corruption anywhere else fails the open with an error naming file and offset.
 * - An fsync failure is fatal for the replica: no retry. Errors are 0 or -errno.
 * - Threads: submissions from the raft thread, completions on the io thread; reads through
 *   rr_storage on the raft thread.
 * - An in-memory backend with the same interface serves tests and the simulator.
 */
#ifndef RINGRAFT_WAL_H
#define RINGRAFT_WAL_H
#include "ringraft/core.h"
#endif
