/* confchange.c: computing configuration changes (etcd raft v3.6's confchange package).
 * See confchange.h.
 *
 * Every function works on a copy of the tracker's configuration and progress (an
 * rr_tracker_change), validates it, applies the changes to the copy and validates the
 * result, so that an invalid change never touches the active configuration. By
 * convention changes to voters always go to the incoming half; the outgoing half is
 * either empty or holds C_old while joint (thesis §4.3).
 */
#include "confchange.h"

#include <string.h>

#include "ringraft/assert.h"

/* ---- the progress array of a change, sorted by id ---------------------------------- */

static uint32_t change_pos(const rr_tracker_change *c, rr_node_id_t id)
{
    uint32_t i = 0;
    while (i < c->n_progress && c->progress[i].id < id)
        i++;
    return i;
}

static rr_progress *change_get(rr_tracker_change *c, rr_node_id_t id)
{
    uint32_t i = change_pos(c, id);
    return i < c->n_progress && c->progress[i].id == id ? &c->progress[i] : NULL;
}

static const rr_progress *change_get_const(const rr_tracker_change *c, rr_node_id_t id)
{
    uint32_t i = change_pos(c, id);
    return i < c->n_progress && c->progress[i].id == id ? &c->progress[i] : NULL;
}

/* Adds a progress for an id not tracked yet; false when RR_NODES_MAX are tracked. */
static bool change_add(rr_tracker_change *c, const rr_progress *pr)
{
    if (c->n_progress == RR_NODES_MAX)
        return false;
    uint32_t i = change_pos(c, pr->id);
    RR_ASSERT(i == c->n_progress || c->progress[i].id != pr->id);
    memmove(&c->progress[i + 1], &c->progress[i], (c->n_progress - i) * sizeof(c->progress[0]));
    c->progress[i] = *pr;
    c->n_progress++;
    return true;
}

/* Stops tracking id. The progress is a copy (or new), so nothing is freed here: the
 * tracker's own progress is destroyed when the change is installed. */
static void change_drop(rr_tracker_change *c, rr_node_id_t id)
{
    uint32_t i = change_pos(c, id);
    if (i == c->n_progress || c->progress[i].id != id)
        return;
    memmove(&c->progress[i], &c->progress[i + 1], (c->n_progress - i - 1) * sizeof(c->progress[0]));
    c->n_progress--;
}

/* Every id in a configuration set has a progress and there are at most RR_NODES_MAX of
 * those, so an insertion into a set cannot fail. */
static void set_add(rr_id_set *s, rr_node_id_t id)
{
    bool ok = rr_id_set_insert(s, id);
    RR_ASSERT(ok);
}

static bool joint(const rr_tracker_config *cfg)
{
    return cfg->voters.outgoing.n > 0;
}

/* ---- validation (etcd's checkInvariants) -------------------------------------------- */

static const char *check_tracked(const rr_tracker_change *c, const rr_id_set *s)
{
    for (uint32_t i = 0; i < s->n; i++) {
        if (change_get_const(c, s->ids[i]) == NULL)
            return "no progress for a member of the configuration";
    }
    return NULL;
}

/* The configuration and the progress map agree: every member is tracked, and a node is
 * a voter or a learner, never both (a demoted outgoing voter waits in learners_next). */
static const char *check_invariants(const rr_tracker_change *c)
{
    const rr_tracker_config *cfg = &c->config;
    const char *err;
    if ((err = check_tracked(c, &cfg->voters.incoming)) != NULL ||
        (err = check_tracked(c, &cfg->voters.outgoing)) != NULL ||
        (err = check_tracked(c, &cfg->learners)) != NULL ||
        (err = check_tracked(c, &cfg->learners_next)) != NULL)
        return err;

    for (uint32_t i = 0; i < cfg->learners_next.n; i++) {
        rr_node_id_t id = cfg->learners_next.ids[i];
        if (!rr_id_set_contains(&cfg->voters.outgoing, id))
            return "a member of LearnersNext is not in Voters[1]";
        if (change_get_const(c, id)->is_learner)
            return "a member of LearnersNext is already marked as learner";
    }
    for (uint32_t i = 0; i < cfg->learners.n; i++) {
        rr_node_id_t id = cfg->learners.ids[i];
        if (rr_id_set_contains(&cfg->voters.outgoing, id))
            return "a member is in Learners and Voters[1]";
        if (rr_id_set_contains(&cfg->voters.incoming, id))
            return "a member is in Learners and Voters[0]";
        if (!change_get_const(c, id)->is_learner)
            return "a member is in Learners, but is not marked as learner";
    }
    if (!joint(cfg)) {
        if (cfg->learners_next.n > 0)
            return "cfg.LearnersNext must be nil when not joint";
        if (cfg->auto_leave)
            return "AutoLeave must be false when not joint";
    }
    return NULL;
}

/* Copies the tracker's configuration and progress into out and validates them. The
 * progress copies share the tracker's in-flight buffers; only is_learner is changed. */
static const char *check_and_copy(const rr_tracker *t, rr_tracker_change *out)
{
    RR_ASSERT(t->n_progress <= RR_NODES_MAX);
    out->config = t->config;
    out->n_progress = t->n_progress;
    memcpy(out->progress, t->progress, (size_t)t->n_progress * sizeof(t->progress[0]));
    return check_invariants(out);
}

/* ---- single changes ------------------------------------------------------------------ */

typedef struct changer {
    const rr_tracker *t;   /* the configuration the change starts from */
    rr_index_t last_index; /* the leader's last index: where new members are probed */
    rr_tracker_change *out;
} changer;

/* Tracks a new member. Its probe starts at the last index: optimistic (a new member
 * usually has no log and will need a snapshot), but it is what etcd does and what the
 * transcripts show. It counts as recently active so that CheckQuorum does not depose the
 * leader before the new member had a chance to answer. */
static bool init_progress(changer *ch, rr_node_id_t id, bool is_learner)
{
    rr_progress pr;
    rr_index_t next = ch->last_index > 0 ? ch->last_index : 1;
    rr_progress_init(&pr, id, next, ch->t->max_inflight, ch->t->max_inflight_bytes, is_learner);
    pr.recent_active = true;
    if (!change_add(ch->out, &pr))
        return false;
    set_add(is_learner ? &ch->out->config.learners : &ch->out->config.voters.incoming, id);
    return true;
}

/* Removes id from the incoming voters and the learners. An outgoing voter stays tracked:
 * it still votes in C_old until the joint configuration is left. */
static void remove_node(changer *ch, rr_node_id_t id)
{
    rr_tracker_config *cfg = &ch->out->config;
    if (change_get(ch->out, id) == NULL)
        return;
    rr_id_set_remove(&cfg->voters.incoming, id);
    rr_id_set_remove(&cfg->learners, id);
    rr_id_set_remove(&cfg->learners_next, id);
    if (!rr_id_set_contains(&cfg->voters.outgoing, id))
        change_drop(ch->out, id);
}

static bool make_voter(changer *ch, rr_node_id_t id)
{
    rr_tracker_config *cfg = &ch->out->config;
    rr_progress *pr = change_get(ch->out, id);
    if (pr == NULL)
        return init_progress(ch, id, false);
    pr->is_learner = false;
    rr_id_set_remove(&cfg->learners, id);
    rr_id_set_remove(&cfg->learners_next, id);
    set_add(&cfg->voters.incoming, id);
    return true;
}

/* Makes id a learner, or stages it in learners_next while it is still an outgoing voter
 * (it may not be a voter and a learner at once); leave_joint completes the demotion. The
 * progress of a demoted voter is kept. */
static bool make_learner(changer *ch, rr_node_id_t id)
{
    rr_tracker_config *cfg = &ch->out->config;
    rr_progress *pr = change_get(ch->out, id);
    if (pr == NULL)
        return init_progress(ch, id, true);
    if (pr->is_learner)
        return true;
    rr_id_set_remove(&cfg->voters.incoming, id);
    rr_id_set_remove(&cfg->learners, id);
    rr_id_set_remove(&cfg->learners_next, id);
    if (rr_id_set_contains(&cfg->voters.outgoing, id)) {
        set_add(&cfg->learners_next, id);
    } else {
        pr->is_learner = true;
        set_add(&cfg->learners, id);
    }
    return true;
}

static const char *apply_one(changer *ch, const rr_conf_change_single *cc)
{
    /* etcd zeroes the node id of a change the application decided not to apply. */
    if (cc->node_id == RR_NODE_ID_NONE)
        return NULL;
    bool ok = true;
    switch (cc->type) {
    case RR_CONF_ADD_NODE:
        ok = make_voter(ch, cc->node_id);
        break;
    case RR_CONF_ADD_LEARNER_NODE:
        ok = make_learner(ch, cc->node_id);
        break;
    case RR_CONF_REMOVE_NODE:
        remove_node(ch, cc->node_id);
        break;
    case RR_CONF_UPDATE_NODE:
        break; /* carries application data only; membership is unchanged */
    default:
        return "unexpected conf type";
    }
    return ok ? NULL : "configuration would exceed RR_NODES_MAX members";
}

static const char *apply(changer *ch, const rr_conf_change_single *ccs, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        const char *err = apply_one(ch, &ccs[i]);
        if (err != NULL)
            return err;
    }
    if (ch->out->config.voters.incoming.n == 0)
        return "removed all voters";
    return NULL;
}

/* |a \ b| + |b \ a| */
static uint32_t symdiff(const rr_id_set *a, const rr_id_set *b)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < a->n; i++)
        n += !rr_id_set_contains(b, a->ids[i]);
    for (uint32_t i = 0; i < b->n; i++)
        n += !rr_id_set_contains(a, b->ids[i]);
    return n;
}

/* ---- the three transitions ----------------------------------------------------------- */

const char *rr_confchange_simple(const rr_tracker *t, rr_index_t last_index,
                                 const rr_conf_change_single *ccs, uint32_t n,
                                 rr_tracker_change *out)
{
    const char *err = check_and_copy(t, out);
    if (err != NULL)
        return err;
    if (joint(&out->config))
        return "can't apply simple config change in joint config";
    changer ch = {.t = t, .last_index = last_index, .out = out};
    if ((err = apply(&ch, ccs, n)) != NULL)
        return err;
    /* Changing one voter at a time keeps every majority of C_old overlapping every
     * majority of C_new (thesis §4.1); anything more needs a joint configuration. */
    if (symdiff(&t->config.voters.incoming, &out->config.voters.incoming) > 1)
        return "more than one voter changed without entering joint config";
    return check_invariants(out);
}

const char *rr_confchange_enter_joint(const rr_tracker *t, rr_index_t last_index, bool auto_leave,
                                      const rr_conf_change_single *ccs, uint32_t n,
                                      rr_tracker_change *out)
{
    const char *err = check_and_copy(t, out);
    if (err != NULL)
        return err;
    if (joint(&out->config))
        return "config is already joint";
    /* An empty configuration may be populated (bootstrap, tests), not made joint. */
    if (out->config.voters.incoming.n == 0)
        return "can't make a zero-voter config joint";
    /* C_old moves to the outgoing half; the changes then turn the incoming half into
     * C_new, giving C_old,new (thesis §4.3). */
    out->config.voters.outgoing = out->config.voters.incoming;
    changer ch = {.t = t, .last_index = last_index, .out = out};
    if ((err = apply(&ch, ccs, n)) != NULL)
        return err;
    out->config.auto_leave = auto_leave;
    return check_invariants(out);
}

const char *rr_confchange_leave_joint(const rr_tracker *t, rr_index_t last_index,
                                      rr_tracker_change *out)
{
    (void)last_index; /* nobody is added when C_new takes over alone */
    const char *err = check_and_copy(t, out);
    if (err != NULL)
        return err;
    rr_tracker_config *cfg = &out->config;
    if (!joint(cfg))
        return "can't leave a non-joint config";

    /* Demotions staged while the nodes were still outgoing voters take effect now. */
    for (uint32_t i = 0; i < cfg->learners_next.n; i++) {
        rr_node_id_t id = cfg->learners_next.ids[i];
        set_add(&cfg->learners, id);
        change_get(out, id)->is_learner = true;
    }
    cfg->learners_next.n = 0;

    /* Outgoing voters that are in no role of C_new stop being tracked. */
    for (uint32_t i = 0; i < cfg->voters.outgoing.n; i++) {
        rr_node_id_t id = cfg->voters.outgoing.ids[i];
        if (!rr_id_set_contains(&cfg->voters.incoming, id) &&
            !rr_id_set_contains(&cfg->learners, id))
            change_drop(out, id);
    }
    cfg->voters.outgoing.n = 0;
    cfg->auto_leave = false;
    return check_invariants(out);
}

/* ---- restore ------------------------------------------------------------------------- */

/* Makes a computed change the configuration of the scratch tracker of a restore. Progress
 * there is all new (no in-flight buffers), so plain copies are enough. */
static void scratch_install(rr_tracker *scratch, const rr_tracker_change *c)
{
    scratch->config = c->config;
    scratch->n_progress = c->n_progress;
    memcpy(scratch->progress, c->progress, (size_t)c->n_progress * sizeof(c->progress[0]));
}

static const char *restore_simple(rr_tracker *scratch, rr_index_t last_index, uint8_t type,
                                  rr_node_id_t id, rr_tracker_change *out)
{
    rr_conf_change_single cc = {.type = type, .node_id = id};
    const char *err = rr_confchange_simple(scratch, last_index, &cc, 1, out);
    if (err == NULL)
        scratch_install(scratch, out);
    return err;
}

/*
 * A ConfState is reached from the empty configuration by a sequence of changes the
 * changer accepts. Not joint: add every voter and learner one at a time. Joint, e.g.
 * voters=(1 2 3) outgoing=(1 2 4 6) learners=(5) learners_next=(4): first build C_old
 * with simple additions of 1 2 4 6, then enter the joint configuration with
 *   remove 1 2 4 6, add 1 2 3, add-learner 5, add-learner 4
 * which yields (1 2 3)&&(1 2 4 6) learners=(5) learners_next=(4), 4 staying an outgoing
 * voter until the joint configuration is left.
 */
const char *rr_confchange_restore(const rr_tracker *t, rr_index_t last_index,
                                  const rr_conf_state *cs, rr_tracker_change *out)
{
    rr_tracker scratch;
    rr_tracker_init(&scratch, t->max_inflight, t->max_inflight_bytes);
    out->config = scratch.config; /* the empty ConfState restores the empty configuration */
    out->n_progress = 0;

    const char *err = NULL;
    if (cs->voters_outgoing.n == 0) {
        for (uint32_t i = 0; err == NULL && i < cs->voters.n; i++)
            err = restore_simple(&scratch, last_index, RR_CONF_ADD_NODE, cs->voters.ids[i], out);
        for (uint32_t i = 0; err == NULL && i < cs->learners.n; i++)
            err = restore_simple(&scratch, last_index, RR_CONF_ADD_LEARNER_NODE,
                                 cs->learners.ids[i], out);
        for (uint32_t i = 0; err == NULL && i < cs->learners_next.n; i++)
            err = restore_simple(&scratch, last_index, RR_CONF_ADD_LEARNER_NODE,
                                 cs->learners_next.ids[i], out);
        return err;
    }

    for (uint32_t i = 0; err == NULL && i < cs->voters_outgoing.n; i++)
        err =
            restore_simple(&scratch, last_index, RR_CONF_ADD_NODE, cs->voters_outgoing.ids[i], out);
    if (err != NULL)
        return err;

    /* Each set holds at most RR_NODES_MAX ids, so the joint step has at most 4x that. */
    rr_conf_change_single in[4 * RR_NODES_MAX];
    uint32_t n = 0;
    for (uint32_t i = 0; i < cs->voters_outgoing.n; i++)
        in[n++] = (rr_conf_change_single){RR_CONF_REMOVE_NODE, cs->voters_outgoing.ids[i]};
    for (uint32_t i = 0; i < cs->voters.n; i++)
        in[n++] = (rr_conf_change_single){RR_CONF_ADD_NODE, cs->voters.ids[i]};
    for (uint32_t i = 0; i < cs->learners.n; i++)
        in[n++] = (rr_conf_change_single){RR_CONF_ADD_LEARNER_NODE, cs->learners.ids[i]};
    for (uint32_t i = 0; i < cs->learners_next.n; i++)
        in[n++] = (rr_conf_change_single){RR_CONF_ADD_LEARNER_NODE, cs->learners_next.ids[i]};
    return rr_confchange_enter_joint(&scratch, last_index, cs->auto_leave, in, n, out);
}

/* ---- conf change predicates (etcd's ConfChangeV2.EnterJoint / LeaveJoint) ------------ */

bool rr_conf_change_enter_joint(const rr_conf_change *cc, bool *auto_leave)
{
    /* More changes could qualify for a simple change depending on the configuration they
     * apply to (two learner additions are fine unless they demote two voters); like etcd,
     * use joint consensus whenever there is more than one change or it was asked for. */
    if (auto_leave != NULL)
        *auto_leave = false;
    if (cc->v1)
        return false; /* a v1 change is one change with an AUTO transition: simple */
    if (cc->transition == RR_TRANSITION_AUTO && cc->n_changes <= 1)
        return false;
    RR_ASSERT(cc->transition <= RR_TRANSITION_JOINT_EXPLICIT);
    if (auto_leave != NULL)
        *auto_leave = cc->transition != RR_TRANSITION_JOINT_EXPLICIT;
    return true;
}

bool rr_conf_change_leave_joint(const rr_conf_change *cc)
{
    /* The zero ConfChangeV2 (context aside). A v1 change always holds one change. */
    return !cc->v1 && cc->transition == RR_TRANSITION_AUTO && cc->n_changes == 0;
}
