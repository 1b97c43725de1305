/*
 * kind_confchange.c: confchange/testdata transcripts (etcd's confchange/datadriven_test.go)
 * over engine/core/src/confchange.c.
 *
 *   simple                        input: changes, e.g. `v1 l2 r3 u4`
 *   enter-joint [autoleave=bool]  input: changes
 *   leave-joint                   no input
 *
 * vN makes N a voter, lN a learner, rN removes N, uN updates N. Each file starts from an
 * empty configuration tracked with max_inflight 10; the "last index" used for new members
 * starts at 0 and grows by one after every command, failed ones included. The output is
 * the resulting configuration and progress map, or the error.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "confchange.h"
#include "datadriven.h"

/* Changes in one command: more than a configuration holds, as tests repeat ids. */
#define CONFCHANGE_INPUT_MAX 256

typedef struct confchange_env {
    rr_tracker t;
    rr_index_t last_index;
} confchange_env;

/* ---- printing ------------------------------------------------------------------------ */

static void put_set(rr_dd_out *out, const rr_id_set *s)
{
    rr_dd_puts(out, "(");
    for (uint32_t i = 0; i < s->n; i++)
        rr_dd_printf(out, "%s%llu", i > 0 ? " " : "", (unsigned long long)s->ids[i]);
    rr_dd_puts(out, ")");
}

/* etcd's tracker.Config.String(). */
static void put_config(rr_dd_out *out, const rr_tracker_config *cfg)
{
    rr_dd_puts(out, "voters=");
    put_set(out, &cfg->voters.incoming);
    if (cfg->voters.outgoing.n > 0) {
        rr_dd_puts(out, "&&");
        put_set(out, &cfg->voters.outgoing);
    }
    if (cfg->learners.n > 0) {
        rr_dd_puts(out, " learners=");
        put_set(out, &cfg->learners);
    }
    if (cfg->learners_next.n > 0) {
        rr_dd_puts(out, " learners_next=");
        put_set(out, &cfg->learners_next);
    }
    if (cfg->auto_leave)
        rr_dd_puts(out, " autoleave");
}

/* etcd's Progress.String(). */
static void put_progress(rr_dd_out *out, const rr_progress *pr)
{
    rr_dd_printf(out, "%s match=%llu next=%llu", rr_progress_state_name(pr->state),
                 (unsigned long long)pr->match, (unsigned long long)pr->next);
    if (pr->is_learner)
        rr_dd_puts(out, " learner");
    if (rr_progress_is_paused(pr))
        rr_dd_puts(out, " paused");
    if (pr->pending_snapshot > 0)
        rr_dd_printf(out, " pendingSnap=%llu", (unsigned long long)pr->pending_snapshot);
    if (!pr->recent_active)
        rr_dd_puts(out, " inactive");
    if (pr->inflights.count > 0) {
        rr_dd_printf(out, " inflight=%u", pr->inflights.count);
        if (rr_inflights_full(&pr->inflights))
            rr_dd_puts(out, "[full]");
    }
}

static void put_tracker(rr_dd_out *out, const rr_tracker *t)
{
    put_config(out, &t->config);
    rr_dd_puts(out, "\n");
    for (uint32_t i = 0; i < t->n_progress; i++) {
        rr_dd_printf(out, "%llu: ", (unsigned long long)t->progress[i].id);
        put_progress(out, &t->progress[i]);
        rr_dd_puts(out, "\n");
    }
}

/* ---- input --------------------------------------------------------------------------- */

/* Go's %q of s, for strconv's error messages. */
static void put_quoted(rr_dd_out *out, const char *s, size_t n)
{
    rr_dd_puts(out, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            rr_dd_printf(out, "\\%c", c);
        else if (c == '\n')
            rr_dd_puts(out, "\\n");
        else if (c == '\t')
            rr_dd_puts(out, "\\t");
        else if (c < 0x20 || c == 0x7f)
            rr_dd_printf(out, "\\x%02x", c);
        else
            rr_dd_printf(out, "%c", c);
    }
    rr_dd_puts(out, "\"");
}

/* strconv.ParseUint(s, 10, 64), with its error text. */
static int parse_id(const char *s, size_t n, uint64_t *v, rr_dd_out *out)
{
    const char *why = n == 0 ? "invalid syntax" : NULL;
    for (size_t i = 0; why == NULL && i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            why = "invalid syntax";
    }
    uint64_t x = 0;
    for (size_t i = 0; why == NULL && i < n; i++) {
        uint64_t d = (uint64_t)(s[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            why = "value out of range";
        x = x * 10 + d;
    }
    if (why != NULL) {
        rr_dd_puts(out, "strconv.ParseUint: parsing ");
        put_quoted(out, s, n);
        rr_dd_printf(out, ": %s", why);
        return -1;
    }
    *v = x;
    return 0;
}

/* The input split on single spaces after trimming (as strings.Split would). */
static int parse_changes(const char *input, rr_conf_change_single *ccs, uint32_t *n, rr_dd_out *out)
{
    const char *ws = " \t\n\r\v\f";
    const char *s = input + strspn(input, ws);
    size_t len = strlen(s);
    while (len > 0 && strchr(ws, s[len - 1]) != NULL)
        len--;
    *n = 0;
    if (len == 0)
        return 0;

    const char *end = s + len;
    while (s <= end) {
        const char *sp = memchr(s, ' ', (size_t)(end - s));
        size_t tl = sp != NULL ? (size_t)(sp - s) : (size_t)(end - s);
        if (tl < 2) {
            rr_dd_puts(out, "unknown token ");
            rr_dd_printf(out, "%.*s", (int)tl, s);
            return -1;
        }
        uint8_t type;
        switch (s[0]) {
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
            rr_dd_printf(out, "unknown input: %.*s", (int)tl, s);
            return -1;
        }
        uint64_t id;
        if (parse_id(s + 1, tl - 1, &id, out) != 0)
            return -1;
        if (*n == CONFCHANGE_INPUT_MAX) {
            rr_dd_printf(out, "error: more than %d changes", CONFCHANGE_INPUT_MAX);
            return -1;
        }
        ccs[(*n)++] = (rr_conf_change_single){.type = type, .node_id = id};
        if (sp == NULL)
            break;
        s = sp + 1;
    }
    return 0;
}

/* strconv.ParseBool. */
static int parse_bool(const char *s, bool *v)
{
    static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcmp(s, yes[i]) == 0) {
            *v = true;
            return 0;
        }
        if (strcmp(s, no[i]) == 0) {
            *v = false;
            return 0;
        }
    }
    return -1;
}

/* enter-joint's optional autoleave argument (etcd scans it only if there are arguments). */
static int parse_autoleave(const rr_dd_cmd *cmd, bool *auto_leave, rr_dd_out *out)
{
    *auto_leave = false;
    if (cmd->n_args == 0)
        return 0;
    const rr_dd_arg *a = rr_dd_find(cmd, "autoleave");
    if (a == NULL) {
        rr_dd_printf(out, "%s:%d: enter-joint: missing argument: autoleave\n", cmd->file,
                     cmd->line);
        return -1;
    }
    if (a->n_vals != 1 || parse_bool(a->vals[0], auto_leave) != 0) {
        rr_dd_printf(out, "%s:%d: enter-joint: cannot parse autoleave\n", cmd->file, cmd->line);
        return -1;
    }
    return 0;
}

/* ---- the kind ------------------------------------------------------------------------ */

static void *confchange_env_new(void)
{
    confchange_env *env = calloc(1, sizeof(*env));
    if (env != NULL)
        rr_tracker_init(&env->t, 10, 0);
    return env;
}

static void confchange_env_free(void *p)
{
    confchange_env *env = p;
    if (env == NULL)
        return;
    rr_tracker_destroy(&env->t);
    free(env);
}

static int run(confchange_env *env, const rr_dd_cmd *cmd, rr_dd_out *out)
{
    rr_conf_change_single ccs[CONFCHANGE_INPUT_MAX];
    rr_tracker_change next;
    uint32_t n;
    if (parse_changes(cmd->input, ccs, &n, out) != 0)
        return 0; /* etcd prints these as the output */

    const char *err;
    if (strcmp(cmd->name, "simple") == 0) {
        err = rr_confchange_simple(&env->t, env->last_index, ccs, n, &next);
    } else if (strcmp(cmd->name, "enter-joint") == 0) {
        bool auto_leave;
        if (parse_autoleave(cmd, &auto_leave, out) != 0)
            return -1;
        err = rr_confchange_enter_joint(&env->t, env->last_index, auto_leave, ccs, n, &next);
    } else if (strcmp(cmd->name, "leave-joint") == 0) {
        err = n > 0 ? "this command takes no input"
                    : rr_confchange_leave_joint(&env->t, env->last_index, &next);
    } else {
        rr_dd_puts(out, "unknown command");
        return 0;
    }
    if (err != NULL) {
        rr_dd_printf(out, "%s\n", err);
        return 0;
    }
    rr_tracker_install(&env->t, &next);
    put_tracker(out, &env->t);
    return 0;
}

static int confchange_handle(void *p, const rr_dd_cmd *cmd, rr_dd_out *out)
{
    confchange_env *env = p;
    int rc = run(env, cmd, out);
    env->last_index++; /* after every command, as etcd's deferred LastIndex++ */
    return rc;
}

const rr_dd_kind rr_dd_kind_confchange = {
    .name = "confchange",
    .env_new = confchange_env_new,
    .env_free = confchange_env_free,
    .handle = confchange_handle,
};
