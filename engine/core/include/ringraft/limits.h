/*
 * limits.h: every fixed limit of ringraft in one place (STYLE.md habit 10), tied together
 * with _Static_assert. Runtime-configurable limits (message sizes, in-flight windows) have
 * their defaults here and their bounds checked when a config is validated.
 */
#ifndef RINGRAFT_LIMITS_H
#define RINGRAFT_LIMITS_H

#include <stdint.h>

/* Members of one configuration: voters (incoming and outgoing) plus learners. Fixed so that
 * configurations and progress tables are flat arrays with no allocation when they change. */
#define RR_NODES_MAX 32

/* Node ids are nonzero; 0 means "none" (no leader, no vote). */
#define RR_NODE_ID_NONE 0

/* Proposal and entry payloads: one entry is at most this large (checked at the gateways). */
#define RR_ENTRY_BYTES_MAX (64u << 20)

/* ReadIndex request context (the opaque bytes a read is matched by). */
#define RR_READ_CONTEXT_BYTES_MAX 256u

/* Defaults, as etcd: election 10 ticks, heartbeat 1 tick (a tick of 100 ms in engine/node). */
#define RR_ELECTION_TICKS_DEFAULT  10
#define RR_HEARTBEAT_TICKS_DEFAULT 1
#define RR_INFLIGHT_MSGS_DEFAULT   256
#define RR_INFLIGHT_MSGS_MAX       65536

/* Leader lease (RR_READ_ONLY_LEASE_BASED reads, thesis §6.4.1). Lease reads are safe as long
 * as no node's clock runs faster than the leader's by more than 1/RR_LEASE_DRIFT_DIV
 * (12.5 %): the lease lasts election_ticks * DIV / (DIV + 1) leader ticks, less
 * RR_LEASE_SLACK_TICKS for tick phase on both sides, from the sending of the newest
 * heartbeat round a quorum acknowledged. */
#define RR_LEASE_DRIFT_DIV   8
#define RR_LEASE_SLACK_TICKS 2
/* Heartbeat rounds remembered for lease acknowledgements (older ones simply expire). */
#define RR_LEASE_ROUNDS 8

_Static_assert(RR_ELECTION_TICKS_DEFAULT *RR_LEASE_DRIFT_DIV / (RR_LEASE_DRIFT_DIV + 1) >
                   RR_LEASE_SLACK_TICKS,
               "the default election timeout leaves a nonzero lease");
_Static_assert(RR_NODES_MAX >= 7, "the simulator runs clusters of up to 7 nodes");
_Static_assert(RR_NODES_MAX <= 64, "vote tallies use a 64-bit mask per configuration");
_Static_assert(RR_ELECTION_TICKS_DEFAULT > RR_HEARTBEAT_TICKS_DEFAULT,
               "election timeout must exceed the heartbeat interval");
_Static_assert(RR_INFLIGHT_MSGS_DEFAULT <= RR_INFLIGHT_MSGS_MAX, "default within bound");
_Static_assert(RR_ENTRY_BYTES_MAX <= UINT32_MAX, "entry lengths are 32-bit on disk and wire");

#endif
