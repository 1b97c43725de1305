/*
 * describe.h: etcd raft's Describe* text formats (util.go, raftpb/confchange.go,
 * tracker/progress.go), so that rr-conformance prints the core's Ready, messages, entries
 * and progress exactly as etcd's transcripts show them.
 *
 * Every function appends to an rr_dd_out and borrows its other arguments for the call.
 * Formats, as etcd v3.6 prints them:
 *   entry      `1/3 EntryNormal "foo"` (data quoted as Go's %q),
 *              `1/4 EntryConfChangeV2 v2 l3 r1` (changes as ConfChangesToString)
 *   message    `1->2 MsgApp Term:1 Log:1/2 Commit:2 Entries:[1/3 EntryNormal ""]`, ids in
 *              hex, `AppendThread` / `ApplyThread` / `None` for the special ids
 *   ready      `Ready MustSync=true:` then soft state, hard state, entries, snapshot,
 *              committed entries and messages; `<empty Ready>` (no newline) when empty
 *   progress   `StateReplicate match=11 next=12 paused inflight=3[full]`
 * Single-threaded test code; no function here fails (output buffers grow or abort).
 */
#ifndef RR_CONFORMANCE_DESCRIBE_H
#define RR_CONFORMANCE_DESCRIBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "datadriven.h"
#include "ringraft/core.h"

/* etcd's enum names ("MsgApp", "EntryNormal", "StateLeader", "StateProbe"); NULL when the
 * value has no name. */
const char *rr_describe_msg_type_name(uint32_t type);
const char *rr_describe_entry_type_name(uint32_t type);
const char *rr_describe_state_name(uint32_t state);
const char *rr_describe_progress_state_name(uint32_t state);
/* Looks up a message type by etcd name; returns 0 and *type, or -1 if unknown. */
int rr_describe_msg_type_parse(const char *name, uint8_t *type);

/* Go's %q of a byte string: double-quoted, escapes as strconv.Quote. */
void rr_describe_quote(rr_dd_out *out, const uint8_t *data, size_t len);
/* raftpb.ConfChangesToString: `v1 l2 r3 u4`, space-separated. */
void rr_describe_conf_changes(rr_dd_out *out, const rr_conf_change_single *ccs, uint32_t n);

/* Decodes a conf change entry's data as etcd's protobuf Unmarshal does, where empty data is
 * the zero-valued change: for v2 the empty change that leaves a joint configuration (the
 * leader's auto-leave entry), for v1 {ConfChangeAddNode, node 0}. Returns 0 or the error
 * of rr_conf_change_decode. */
int rr_describe_decode_conf_change(const rr_entry *e, rr_conf_change *cc);

void rr_describe_hard_state(rr_dd_out *out, const rr_hard_state *hs);
void rr_describe_soft_state(rr_dd_out *out, const rr_soft_state *ss);
void rr_describe_conf_state(rr_dd_out *out, const rr_conf_state *cs);
void rr_describe_snapshot(rr_dd_out *out, const rr_snapshot_meta *meta);
void rr_describe_entry(rr_dd_out *out, const rr_entry *e);
/* Each entry followed by a newline. */
void rr_describe_entries(rr_dd_out *out, const rr_entry *ents, size_t n);
/* DescribeMessage (no trailing newline). with_responses false leaves out the
 * ` Responses:[...]` of storage messages, as the harness prints a message it processes. */
void rr_describe_message(rr_dd_out *out, const rr_message *m, bool with_responses);
/* DescribeReady: ends with a newline unless it is `<empty Ready>`. */
void rr_describe_ready(rr_dd_out *out, const rr_ready *rd);
/* Progress.String(); inflight_bytes_max is the node's max_inflight_bytes (0: none), which
 * decides with the count whether the window is full. */
void rr_describe_progress(rr_dd_out *out, const rr_progress_status *pr,
                          uint64_t inflight_bytes_max);

bool rr_describe_hard_state_empty(const rr_hard_state *hs);

#endif
