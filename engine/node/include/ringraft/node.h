/*
 * node.h: the embedding API of ringraft (rr_node_*) — contract of engine/node (issue 8).
 *
 * A node runs the pure core on a raft thread, persists through io/ on an io thread,
 * talks to peers through net/ on a net thread, and applies committed entries on an apply
 * thread; the threads are joined by Concurrency Kit rings and sleep on eventfd/futex
 * when idle (nothing busy-polls forever).
 *
 * Contract:
 * - rr_node_create(config, callbacks) / start / stop. Config: node id, peers, data
 *   directory, timing (tick, election and heartbeat ticks), limits (sizes, windows).
 *   Callbacks: apply a batch of committed entries, save and restore snapshots. Stop drains,
 *   fsyncs, joins every thread and frees everything.
 * - Propose with a completion callback, called on the apply thread with the result:
 *   committed at an index, not leader (with a leader hint), or stopped. The payload is
 *   copied once into an engine buffer, or not at all when the caller hands over an rr_buf
 *   with its release callback; the WAL write, every send and the apply callback reference
 *   that same buffer.
 * - A linearizable read barrier (ReadIndex), membership changes (add/remove voter or
 *   learner), leadership transfer, snapshot trigger, stats (per-stage latency and batch
 *   histograms, counters).
 * - Each callback's thread and each buffer's owner are stated at its declaration.
 */
#ifndef RINGRAFT_NODE_H
#define RINGRAFT_NODE_H
#include "ringraft/core.h"
#endif
