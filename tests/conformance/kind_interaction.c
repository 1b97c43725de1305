/*
 * kind_interaction.c: the commands of etcd's interaction transcripts (the .txt files in
 * testdata/), parsed as etcd's rafttest handlers parse them and run on an rr_ienv
 * (interaction_env.h).
 *
 * Output follows etcd's InteractionEnv.Handle: a command prints nothing but what it
 * describes (log lines are etcd's and are not reproduced); an error is appended to the
 * output (it is all the output under log level NONE); an empty output reads `ok`. The
 * input lines of any command but propose-conf-change are further commands. Malformed
 * arguments, which stop etcd's test (t.Fatal), print an error and make the handler
 * return -1.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "datadriven.h"
#include "describe.h"
#include "interaction_env.h"
#include "protocol.h" /* the set-randomized-election-timeout test hook */

/* ---- argument scanning, with Go's strconv error wording ------------------------------- */

static int parse_u64(rr_ienv *e, const char *s, uint64_t *v)
{
    if (rr_dd_parse_u64(s, v) == 0)
        return 0;
    bool digits = *s != '\0' && strspn(s, "0123456789") == strlen(s);
    return rr_ienv_fatal(e, "strconv.ParseUint: parsing \"%s\": %s", s,
                         digits ? "value out of range" : "invalid syntax");
}

/* strconv.Atoi: an optional sign, then decimal digits. */
static int parse_int(rr_ienv *e, const char *s, int64_t *v)
{
    const char *digits = (*s == '+' || *s == '-') ? s + 1 : s;
    uint64_t u;
    if (rr_dd_parse_u64(digits, &u) != 0 || u > (uint64_t)INT64_MAX) {
        bool syntax = *digits == '\0' || strspn(digits, "0123456789") != strlen(digits);
        return rr_ienv_fatal(e, "strconv.Atoi: parsing \"%s\": %s", s,
                             syntax ? "invalid syntax" : "value out of range");
    }
    *v = *s == '-' ? -(int64_t)u : (int64_t)u;
    return 0;
}

/* strconv.ParseBool. fatal chooses between a harness error and an error etcd prints. */
static int parse_bool(rr_ienv *e, const char *s, bool *v, bool fatal)
{
    static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};
    for (size_t i = 0; i < 6; i++) {
        if (strcmp(s, yes[i]) == 0 || strcmp(s, no[i]) == 0) {
            *v = strcmp(s, yes[i]) == 0;
            return 0;
        }
    }
    if (fatal)
        return rr_ienv_fatal(e, "strconv.ParseBool: parsing \"%s\": invalid syntax", s);
    return rr_ienv_fail(e, "strconv.ParseBool: parsing \"%s\": invalid syntax", s);
}

/* A node index from a 1-based id token (etcd's firstAsNodeIdx / nodeIdxs). */
static int node_idx(rr_ienv *e, const char *tok, uint32_t *idx)
{
    int64_t id;
    if (parse_int(e, tok, &id) != 0)
        return -1;
    if (id < 1 || id > (int64_t)e->n_nodes)
        return rr_ienv_fatal(e, "no node %s (%" PRIu32 " nodes)", tok, e->n_nodes);
    *idx = (uint32_t)(id - 1);
    return 0;
}

static int first_node_idx(rr_ienv *e, const rr_dd_cmd *cmd, uint32_t *idx)
{
    if (cmd->n_args == 0)
        return rr_ienv_fatal(e, "%s: missing node id", cmd->name);
    return node_idx(e, cmd->args[0].key, idx);
}

/* Every argument without values is a node id. */
static int node_idxs(rr_ienv *e, const rr_dd_cmd *cmd, uint32_t *idxs, size_t *n)
{
    *n = 0;
    for (uint32_t i = 0; i < cmd->n_args; i++) {
        if (cmd->args[i].n_vals != 0)
            continue;
        if (node_idx(e, cmd->args[i].key, &idxs[*n]) != 0)
            return -1;
        ++*n;
    }
    return 0;
}

/* ---- commands ----------------------------------------------------------------------- */

static int cmd_add_nodes(rr_ienv *e, const rr_dd_cmd *cmd)
{
    int64_t count;
    if (cmd->n_args == 0)
        return rr_ienv_fatal(e, "add-nodes: missing node count");
    if (parse_int(e, cmd->args[0].key, &count) != 0)
        return -1;
    if (count < 0 || count > IENV_NODES_MAX)
        return rr_ienv_fatal(e, "add-nodes: bad node count %s", cmd->args[0].key);

    /* etcd's raftConfigStub: small timeouts, no size limits, and every option at the zero
     * value of etcd's Config (our defaults differ: PreVote and CheckQuorum are on). */
    rr_config cfg;
    rr_config_init(&cfg, 1, (rr_storage){0});
    cfg.election_ticks = 3;
    cfg.heartbeat_ticks = 1;
    cfg.applied = 0;
    cfg.max_size_per_msg_bytes = RR_NO_LIMIT;
    cfg.max_committed_size_per_ready_bytes = 0;   /* no limit */
    cfg.max_uncommitted_entries_size_bytes = 0;   /* no limit */
    cfg.max_inflight_msgs = RR_INFLIGHT_MSGS_MAX; /* etcd: MaxInt32, never reached here */
    cfg.max_inflight_bytes = 0;                   /* no limit */
    cfg.check_quorum = false;
    cfg.pre_vote = false;
    cfg.read_only_option = RR_READ_ONLY_SAFE;
    cfg.disable_proposal_forwarding = false;
    cfg.disable_conf_change_validation = false;
    cfg.step_down_on_removal = false;
    cfg.async_storage_writes = false;
    rr_conf_state cs;
    memset(&cs, 0, sizeof(cs));
    rr_index_t index = 0;
    const char *content = "";

    for (uint32_t a = 1; a < cmd->n_args; a++) {
        const rr_dd_arg *arg = &cmd->args[a];
        for (uint32_t i = 0; i < arg->n_vals; i++) {
            const char *val = arg->vals[i];
            uint64_t u;
            int64_t s;
            int rc = 0;
            if (strcmp(arg->key, "voters") == 0 || strcmp(arg->key, "learners") == 0) {
                rr_id_set *set = arg->key[0] == 'v' ? &cs.voters : &cs.learners;
                rc = parse_u64(e, val, &u);
                if (rc == 0 && !rr_id_set_insert(set, u))
                    rc = rr_ienv_fatal(e, "more than %d %s", RR_NODES_MAX, arg->key);
            } else if (strcmp(arg->key, "inflight") == 0) {
                rc = parse_int(e, val, &s);
                if (rc == 0 && (s < 0 || s > (int64_t)UINT32_MAX))
                    rc = rr_ienv_fatal(e, "inflight out of range: %s", val);
                if (rc == 0)
                    cfg.max_inflight_msgs = (uint32_t)s;
            } else if (strcmp(arg->key, "index") == 0) {
                rc = parse_u64(e, val, &index);
                cfg.applied = index;
            } else if (strcmp(arg->key, "content") == 0) {
                content = val;
            } else if (strcmp(arg->key, "async-storage-writes") == 0) {
                rc = parse_bool(e, val, &cfg.async_storage_writes, true);
            } else if (strcmp(arg->key, "prevote") == 0) {
                rc = parse_bool(e, val, &cfg.pre_vote, true);
            } else if (strcmp(arg->key, "checkquorum") == 0) {
                rc = parse_bool(e, val, &cfg.check_quorum, true);
            } else if (strcmp(arg->key, "max-committed-size-per-ready") == 0) {
                rc = parse_u64(e, val, &cfg.max_committed_size_per_ready_bytes);
            } else if (strcmp(arg->key, "disable-conf-change-validation") == 0) {
                rc = parse_bool(e, val, &cfg.disable_conf_change_validation, true);
            } else if (strcmp(arg->key, "step-down-on-removal") == 0) {
                rc = parse_bool(e, val, &cfg.step_down_on_removal, true);
            } else if (strcmp(arg->key, "read-only") == 0) {
                if (strcmp(val, "safe") == 0)
                    cfg.read_only_option = RR_READ_ONLY_SAFE;
                else if (strcmp(val, "lease-based") == 0)
                    cfg.read_only_option = RR_READ_ONLY_LEASE_BASED;
                else
                    rc = rr_ienv_fail(e, "invalid read-only option \"%s\"", val);
            }
            /* etcd ignores other keys. */
            if (rc != 0)
                return rc;
        }
    }
    return rr_ienv_add_nodes(e, (uint32_t)count, &cfg, &cs, index, (const uint8_t *)content,
                             strlen(content));
}

static int cmd_campaign(rr_ienv *e, const rr_dd_cmd *cmd)
{
    if (cmd->n_args == 0)
        return rr_ienv_fatal(e, "campaign: missing node id");
    int64_t id;
    if (parse_int(e, cmd->args[0].key, &id) != 0)
        return -1;
    if (id < 1 || id > (int64_t)e->n_nodes)
        return rr_ienv_fail(e, "node index %" PRId64 " out of range [0, %" PRIu32 ")", id - 1,
                            e->n_nodes);
    int rc = rr_rawnode_campaign(e->nodes[id - 1]->rn);
    return rc == 0 ? 0 : rr_ienv_fail(e, "%s", rr_ienv_strerror(rc));
}

static int cmd_compact(rr_ienv *e, const rr_dd_cmd *cmd)
{
    uint32_t idx;
    if (first_node_idx(e, cmd, &idx) != 0)
        return -1;
    if (cmd->n_args < 2)
        return rr_ienv_fatal(e, "compact: missing new first index");
    uint64_t first;
    if (rr_dd_parse_u64(cmd->args[1].key, &first) != 0)
        return rr_ienv_fail(e, "strconv.ParseUint: parsing \"%s\": invalid syntax",
                            cmd->args[1].key);
    return rr_ienv_compact(e, idx, first);
}

static int cmd_deliver_msgs(rr_ienv *e, const rr_dd_cmd *cmd)
{
    rr_ienv_recipient rs[RR_DD_ARGS_MAX * RR_DD_VALS_MAX];
    size_t n = 0;
    int type = -1;
    for (uint32_t a = 0; a < cmd->n_args; a++) {
        const rr_dd_arg *arg = &cmd->args[a];
        if (arg->n_vals == 0) {
            if (parse_u64(e, arg->key, &rs[n].id) != 0)
                return -1;
            rs[n++].drop = false;
        }
        for (uint32_t i = 0; i < arg->n_vals; i++) {
            if (strcmp(arg->key, "drop") == 0) {
                uint64_t id;
                if (parse_u64(e, arg->vals[i], &id) != 0)
                    return -1;
                for (size_t k = 0; k < n; k++) {
                    if (rs[k].id == id)
                        return rr_ienv_fatal(e, "can't both deliver and drop msgs to %" PRIu64, id);
                }
                rs[n++] = (rr_ienv_recipient){.id = id, .drop = true};
            } else if (strcmp(arg->key, "type") == 0) {
                uint8_t t;
                if (rr_describe_msg_type_parse(arg->vals[i], &t) != 0)
                    return rr_ienv_fatal(e, "unknown message type %s", arg->vals[i]);
                type = t;
            }
        }
    }
    if (rr_ienv_deliver_msgs(e, type, rs, n) == 0)
        rr_ienv_puts(e, "no messages\n");
    return 0;
}

static int cmd_forget_leader(rr_ienv *e, const rr_dd_cmd *cmd)
{
    uint32_t idx;
    if (first_node_idx(e, cmd, &idx) != 0)
        return -1;
    rr_rawnode_forget_leader(e->nodes[idx]->rn);
    return 0;
}

static int set_log_level(rr_ienv *e, const char *name)
{
    static const char *const names[] = {"DEBUG", "INFO", "WARN", "ERROR", "FATAL", "NONE"};
    for (int i = 0; i < 6; i++) {
        if (strcasecmp(names[i], name) == 0) {
            e->level = i;
            return 0;
        }
    }
    return rr_ienv_fail(e, "log levels must be either of [DEBUG INFO WARN ERROR FATAL NONE]");
}

static int cmd_log_level(rr_ienv *e, const rr_dd_cmd *cmd)
{
    if (cmd->n_args == 0)
        return rr_ienv_fatal(e, "log-level: missing level");
    return set_log_level(e, cmd->args[0].key);
}

/* process-ready, process-append-thread, process-apply-thread: one node as is, several
 * each under a header with its output indented. */
typedef int (*node_work_fn)(rr_ienv *e, uint32_t idx);

static int for_nodes(rr_ienv *e, const rr_dd_cmd *cmd, node_work_fn fn, const char *header)
{
    uint32_t idxs[RR_DD_ARGS_MAX];
    size_t n;
    if (node_idxs(e, cmd, idxs, &n) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (n == 1) {
            if (fn(e, idxs[i]) != 0)
                return -1;
            continue;
        }
        rr_ienv_printf(e, "> %" PRIu32 " %s\n", idxs[i] + 1, header);
        rr_dd_out tmp;
        rr_dd_out *saved = rr_ienv_indent_begin(e, &tmp);
        int rc = fn(e, idxs[i]);
        rr_ienv_indent_end(e, saved, &tmp);
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int cmd_process_ready(rr_ienv *e, const rr_dd_cmd *cmd)
{
    return for_nodes(e, cmd, rr_ienv_process_ready, "handling Ready");
}

static int cmd_process_append_thread(rr_ienv *e, const rr_dd_cmd *cmd)
{
    return for_nodes(e, cmd, rr_ienv_process_append_thread, "processing append thread");
}

static int cmd_process_apply_thread(rr_ienv *e, const rr_dd_cmd *cmd)
{
    return for_nodes(e, cmd, rr_ienv_process_apply_thread, "processing apply thread");
}

static int cmd_propose(rr_ienv *e, const rr_dd_cmd *cmd)
{
    uint32_t idx;
    if (first_node_idx(e, cmd, &idx) != 0)
        return -1;
    if (cmd->n_args != 2 || cmd->args[1].n_vals > 0)
        return rr_ienv_fatal(e, "expected exactly one key with no vals");
    const char *data = cmd->args[1].key;
    return rr_ienv_propose(e, idx, (const uint8_t *)data, strlen(data));
}

/* raftpb.ConfChangesFromString: space-separated `v1 l2 r3 u4`. */
static int parse_conf_changes(rr_ienv *e, const char *s, rr_conf_change *cc)
{
    cc->n_changes = 0;
    while (*s == ' ' || *s == '\t' || *s == '\n')
        s++;
    size_t len = strlen(s);
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\n'))
        len--;
    size_t pos = 0;
    while (len > 0 && pos <= len) {
        size_t tok_len = 0;
        while (pos + tok_len < len && s[pos + tok_len] != ' ')
            tok_len++;
        char tok[RR_DD_TOKEN_MAX];
        if (tok_len >= sizeof(tok))
            return rr_ienv_fail(e, "unknown token %.*s", (int)tok_len, s + pos);
        memcpy(tok, s + pos, tok_len);
        tok[tok_len] = '\0';
        pos += tok_len + 1;
        if (tok_len < 2)
            return rr_ienv_fail(e, "unknown token %s", tok);
        uint8_t type;
        switch (tok[0]) {
        case 'v':
            type = RR_CONF_ADD_NODE;
            break;
        case 'l':
            type = RR_CONF_ADD_LEARNER_NODE;
            break;
        case 'r':
            type = RR_CONF_REMOVE_NODE;
            break;
        case 'u':
            type = RR_CONF_UPDATE_NODE;
            break;
        default:
            return rr_ienv_fail(e, "unknown input: %s", tok);
        }
        uint64_t id;
        if (rr_dd_parse_u64(tok + 1, &id) != 0)
            return rr_ienv_fail(e, "strconv.ParseUint: parsing \"%s\": invalid syntax", tok + 1);
        if (cc->n_changes >= RR_NODES_MAX)
            return rr_ienv_fail(e, "more than %d changes", RR_NODES_MAX);
        cc->changes[cc->n_changes++] = (rr_conf_change_single){.type = type, .node_id = id};
    }
    return 0;
}

static int cmd_propose_conf_change(rr_ienv *e, const rr_dd_cmd *cmd)
{
    uint32_t idx;
    if (first_node_idx(e, cmd, &idx) != 0)
        return -1;
    bool v1 = false;
    uint8_t transition = RR_TRANSITION_AUTO;
    for (uint32_t a = 1; a < cmd->n_args; a++) {
        const rr_dd_arg *arg = &cmd->args[a];
        for (uint32_t i = 0; i < arg->n_vals; i++) {
            const char *val = arg->vals[i];
            if (strcmp(arg->key, "v1") == 0) {
                if (parse_bool(e, val, &v1, false) != 0)
                    return -1;
            } else if (strcmp(arg->key, "transition") == 0) {
                if (strcmp(val, "auto") == 0)
                    transition = RR_TRANSITION_AUTO;
                else if (strcmp(val, "implicit") == 0)
                    transition = RR_TRANSITION_JOINT_IMPLICIT;
                else if (strcmp(val, "explicit") == 0)
                    transition = RR_TRANSITION_JOINT_EXPLICIT;
                else
                    return rr_ienv_fail(e, "unknown transition %s", val);
            } else {
                return rr_ienv_fail(e, "unknown command %s", arg->key);
            }
        }
    }
    rr_conf_change cc;
    memset(&cc, 0, sizeof(cc));
    if (parse_conf_changes(e, cmd->input, &cc) != 0)
        return -1;
    cc.v1 = v1;
    cc.transition = transition;
    if (v1 && (cc.n_changes != 1 || transition != RR_TRANSITION_AUTO))
        return rr_ienv_fail(e, "v1 conf change can only have one operation and no transition");
    int rc = rr_rawnode_propose_conf_change(e->nodes[idx]->rn, &cc);
    return rc == 0 ? 0 : rr_ienv_fail(e, "%s", rr_ienv_strerror(rc));
}

static int cmd_raft_log(rr_ienv *e, const rr_dd_cmd *cmd)
{
    uint32_t idx;
    if (first_node_idx(e, cmd, &idx) != 0)
        return -1;
    return rr_ienv_raft_log(e, idx);
}

static int cmd_raft_state(rr_ienv *e, const rr_dd_cmd *cmd)
{
    (void)cmd;
    return rr_ienv_raft_state(e);
}

static int cmd_report_unreachable(rr_ienv *e, const rr_dd_cmd *cmd)
{
    uint32_t idxs[RR_DD_ARGS_MAX];
    size_t n;
    if (node_idxs(e, cmd, idxs, &n) != 0)
        return -1;
    if (n != 2)
        return rr_ienv_fail(e, "must specify exactly two node indexes: node on which to "
                               "report, and reported node");
    rr_rawnode_report_unreachable(e->nodes[idxs[0]]->rn, e->nodes[idxs[1]]->id);
    return 0;
}

static int cmd_send_snapshot(rr_ienv *e, const rr_dd_cmd *cmd)
{
    uint32_t idxs[RR_DD_ARGS_MAX];
    size_t n;
    if (node_idxs(e, cmd, idxs, &n) != 0)
        return -1;
    if (n != 2)
        return rr_ienv_fatal(e, "send-snapshot: expected two node ids");
    return rr_ienv_send_snapshot(e, idxs[0], idxs[1]);
}

static int cmd_set_randomized_election_timeout(rr_ienv *e, const rr_dd_cmd *cmd)
{
    uint32_t idx;
    if (first_node_idx(e, cmd, &idx) != 0)
        return -1;
    const rr_dd_arg *arg = rr_dd_find(cmd, "timeout");
    if (arg == NULL)
        return rr_ienv_fatal(e, "missing argument: timeout");
    if (arg->n_vals != 1)
        return rr_ienv_fatal(e, "timeout: got 1 destinations, but %" PRIu32 " values", arg->n_vals);
    int64_t ticks;
    if (parse_int(e, arg->vals[0], &ticks) != 0)
        return -1;
    if (ticks <= 0 || ticks > (int64_t)UINT32_MAX)
        return rr_ienv_fatal(e, "timeout must be positive: %s", arg->vals[0]);
    /* etcd's test-only setRandomizedElectionTimeout: holds until the node resets it. */
    rr_raft_set_randomized_election_timeout(rr_rawnode_raft(e->nodes[idx]->rn), (uint32_t)ticks);
    return 0;
}

static int cmd_stabilize(rr_ienv *e, const rr_dd_cmd *cmd)
{
    uint32_t idxs[RR_DD_ARGS_MAX];
    size_t n;
    if (node_idxs(e, cmd, idxs, &n) != 0)
        return -1;
    int saved_level = e->level;
    for (uint32_t a = 0; a < cmd->n_args; a++) {
        const rr_dd_arg *arg = &cmd->args[a];
        for (uint32_t i = 0; i < arg->n_vals; i++) {
            if (strcmp(arg->key, "log-level") == 0 && set_log_level(e, arg->vals[i]) != 0) {
                e->level = saved_level;
                return -1;
            }
        }
    }
    int rc = rr_ienv_stabilize(e, idxs, n);
    e->level = saved_level; /* log-level= holds for this command only */
    return rc;
}

static int cmd_status(rr_ienv *e, const rr_dd_cmd *cmd)
{
    uint32_t idx;
    if (first_node_idx(e, cmd, &idx) != 0)
        return -1;
    return rr_ienv_status(e, idx);
}

static int tick(rr_ienv *e, const rr_dd_cmd *cmd, bool election)
{
    uint32_t idx;
    if (first_node_idx(e, cmd, &idx) != 0)
        return -1;
    const rr_ienv_node *n = e->nodes[idx];
    uint32_t ticks = election ? n->cfg.election_ticks : n->cfg.heartbeat_ticks;
    for (uint32_t i = 0; i < ticks; i++)
        rr_rawnode_tick(n->rn);
    return 0;
}

static int cmd_tick_election(rr_ienv *e, const rr_dd_cmd *cmd)
{
    return tick(e, cmd, true);
}

static int cmd_tick_heartbeat(rr_ienv *e, const rr_dd_cmd *cmd)
{
    return tick(e, cmd, false);
}

static int cmd_transfer_leadership(rr_ienv *e, const rr_dd_cmd *cmd)
{
    uint64_t ids[2] = {0, 0};
    static const char *const keys[] = {"from", "to"};
    for (int k = 0; k < 2; k++) {
        const rr_dd_arg *arg = rr_dd_find(cmd, keys[k]);
        if (arg == NULL || arg->n_vals != 1)
            return rr_ienv_fatal(e, "expected a single \"%s\" value", keys[k]);
        if (parse_u64(e, arg->vals[0], &ids[k]) != 0)
            return -1;
        if (ids[k] == 0 || ids[k] > e->n_nodes)
            return rr_ienv_fatal(e, "expected valid \"%s\" argument", keys[k]);
    }
    rr_rawnode_transfer_leader(e->nodes[ids[0] - 1]->rn, ids[1]);
    return 0;
}

/* ---- dispatch ------------------------------------------------------------------------ */

typedef int (*cmd_fn)(rr_ienv *e, const rr_dd_cmd *cmd);

static const struct {
    const char *name;
    cmd_fn fn;
} commands[] = {
    {"add-nodes", cmd_add_nodes},
    {"campaign", cmd_campaign},
    {"compact", cmd_compact},
    {"deliver-msgs", cmd_deliver_msgs},
    {"forget-leader", cmd_forget_leader},
    {"log-level", cmd_log_level},
    {"process-append-thread", cmd_process_append_thread},
    {"process-apply-thread", cmd_process_apply_thread},
    {"process-ready", cmd_process_ready},
    {"propose", cmd_propose},
    {"raft-log", cmd_raft_log},
    {"raft-state", cmd_raft_state},
    {"report-unreachable", cmd_report_unreachable},
    {"send-snapshot", cmd_send_snapshot},
    {"set-randomized-election-timeout", cmd_set_randomized_election_timeout},
    {"stabilize", cmd_stabilize},
    {"status", cmd_status},
    {"tick-election", cmd_tick_election},
    {"tick-heartbeat", cmd_tick_heartbeat},
    {"transfer-leadership", cmd_transfer_leadership},
};

static int handle_single(rr_ienv *e, const rr_dd_cmd *cmd)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(commands[i].name, cmd->name) == 0)
            return commands[i].fn(e, cmd);
    }
    return rr_ienv_fail(e, "unknown command");
}

/* The command, then each input line as a command of its own (etcd's
 * handleMultiCommand). */
static int handle_multi(rr_ienv *e, const rr_dd_cmd *cmd)
{
    if (handle_single(e, cmd) != 0)
        return -1;
    const char *p = cmd->input;
    while (*p != '\0') {
        const char *nl = strchr(p, '\n');
        size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
        char line[1024];
        if (len >= sizeof(line))
            return rr_ienv_fatal(e, "input line too long");
        memcpy(line, p, len);
        line[len] = '\0';
        p += nl != NULL ? len + 1 : len;

        char err[256];
        rr_dd_cmd *sub = e->sub_cmd;
        if (rr_dd_parse_line(line, sub, err, sizeof(err)) != 0)
            return rr_ienv_fatal(e, "could not parse the command line \"%s\": %s", line, err);
        sub->file = cmd->file;
        sub->line = cmd->line;
        sub->input = "";
        if (handle_single(e, sub) != 0) {
            if (rr_ienv_quiet(e) || e->fatal)
                return -1;
            rr_dd_puts(e->out, e->err);
        }
    }
    return 0;
}

static int interaction_handle(void *env, const rr_dd_cmd *cmd, rr_dd_out *out)
{
    rr_ienv *e = env;
    e->out = out;
    e->err[0] = '\0';
    e->fatal = false;
    int rc;
    if (strcmp(cmd->name, "propose-conf-change") == 0)
        rc = cmd_propose_conf_change(e, cmd);
    else
        rc = handle_multi(e, cmd);
    e->out = out;
    if (rc != 0) {
        /* Errors are printed even when the log level silences everything else. */
        if (rr_ienv_quiet(e))
            out->len = 0;
        rr_dd_puts(out, e->err);
    }
    if (out->len == 0)
        rr_dd_puts(out, "ok");
    return rc != 0 && e->fatal ? -1 : 0;
}

static void *interaction_env_new(void)
{
    return rr_ienv_new();
}

static void interaction_env_free(void *env)
{
    rr_ienv_free(env);
}

const rr_dd_kind rr_dd_kind_interaction = {
    .name = "interaction",
    .env_new = interaction_env_new,
    .env_free = interaction_env_free,
    .handle = interaction_handle,
};
