/*
 * confchange.h: computing configuration changes (etcd raft's confchange package), as pure
 * functions from the current tracker to a new rr_tracker_change. Depends on tracker.h.
 *
 * Simple changes alter the voters by at most one (Raft thesis §4.1). Joint changes enter a
 * joint configuration C_old,new (thesis §4.3), later left by leave_joint. Validation errors
 * are returned as messages (static strings, etcd's wording where transcripts print them).
 */
#ifndef RR_CORE_CONFCHANGE_H
#define RR_CORE_CONFCHANGE_H

#include "tracker.h"

/* Each returns NULL on success with *out filled, or a static error message and *out
 * unspecified. last_index initializes the progress of added members. */
const char *rr_confchange_simple(const rr_tracker *t, rr_index_t last_index,
                                 const rr_conf_change_single *ccs, uint32_t n,
                                 rr_tracker_change *out);
const char *rr_confchange_enter_joint(const rr_tracker *t, rr_index_t last_index, bool auto_leave,
                                      const rr_conf_change_single *ccs, uint32_t n,
                                      rr_tracker_change *out);
const char *rr_confchange_leave_joint(const rr_tracker *t, rr_index_t last_index,
                                      rr_tracker_change *out);

/* Rebuilds a tracker's configuration from a ConfState (restoring a snapshot or starting
 * up), as a sequence of changes from an empty configuration. Only t's in-flight limits are
 * used: every member gets fresh progress (next = max(last_index, 1)), so install the result
 * into a freshly initialised tracker (etcd builds a new ProgressTracker here too). */
const char *rr_confchange_restore(const rr_tracker *t, rr_index_t last_index,
                                  const rr_conf_state *cs, rr_tracker_change *out);

/* Whether cc enters a joint configuration and whether it leaves it automatically
 * (etcd's ConfChangeV2.EnterJoint; auto_leave may be NULL), and whether it is the empty
 * "leave joint" change (ConfChangeV2.LeaveJoint). A v1 change does neither. */
bool rr_conf_change_enter_joint(const rr_conf_change *cc, bool *auto_leave);
bool rr_conf_change_leave_joint(const rr_conf_change *cc);

#endif
