/*
 * kind_quorum.c: quorum/testdata transcripts (etcd's quorum/datadriven_test.go) over
 * engine/core/src/quorum.c.
 *
 *   committed cfg=(ids) [cfgj=(ids)|cfgj=zero] idx=(n|_ ...)
 *   vote      cfg=(ids) [cfgj=(ids)|cfgj=zero] votes=(y|n|_ ...)
 *
 * Values of idx and votes go to the voters in the order they appear in cfg then cfgj,
 * each voter once; `_` means "nothing known" (different from 0, which idx refuses).
 * Besides the result, the harness recomputes it in ways that must agree (an independent
 * majority algorithm, joining with the empty and with the same config, lowering one
 * voter's index, swapping the halves of a joint config) and prints a line only when one
 * disagrees, exactly as etcd's harness does.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "datadriven.h"
#include "quorum.h"

/* Voters named by cfg and cfgj together, each at most RR_NODES_MAX. */
#define QUORUM_IDS_MAX (2 * RR_NODES_MAX)

/* An acknowledged index (or vote: 1 no, 2 yes) per id; ids absent are unknown. */
typedef struct lookup {
    uint32_t n;
    rr_node_id_t id[QUORUM_IDS_MAX];
    rr_index_t idx[QUORUM_IDS_MAX];
} lookup;

typedef struct quorum_case {
    bool joint;
    uint32_t n_ids, n_idsj, n_idxs, n_votes;
    rr_node_id_t ids[RR_DD_VALS_MAX];
    rr_node_id_t idsj[RR_DD_VALS_MAX];
    rr_index_t idxs[RR_DD_VALS_MAX];
    rr_index_t votes[RR_DD_VALS_MAX];
    rr_id_set c, cj;
} quorum_case;

static bool lookup_get(const lookup *l, rr_node_id_t id, rr_index_t *idx)
{
    for (uint32_t i = 0; i < l->n; i++) {
        if (l->id[i] == id) {
            *idx = l->idx[i];
            return true;
        }
    }
    return false;
}

static void lookup_set(lookup *l, rr_node_id_t id, rr_index_t idx)
{
    for (uint32_t i = 0; i < l->n; i++) {
        if (l->id[i] == id) {
            l->idx[i] = idx;
            return;
        }
    }
    l->id[l->n] = id;
    l->idx[l->n] = idx;
    l->n++;
}

static bool acked(void *ctx, rr_node_id_t id, rr_index_t *index)
{
    return lookup_get(ctx, id, index);
}

static int vote_of(void *ctx, rr_node_id_t id)
{
    rr_index_t v = 0;
    if (!lookup_get(ctx, id, &v))
        return -1;
    return v != 1; /* 1 = voted against, 2 = voted for */
}

/* etcd's Index.String(). */
static void put_index(rr_dd_out *out, rr_index_t idx)
{
    if (idx == RR_INDEX_INF)
        rr_dd_puts(out, "∞");
    else
        rr_dd_printf(out, "%llu", (unsigned long long)idx);
}

/* ---- parsing ------------------------------------------------------------------------- */

/* Parses an unsigned value, tolerating the blanks of `cfg=(1, 2)`. */
static int parse_u64(const char *s, uint64_t *v)
{
    char buf[RR_DD_TOKEN_MAX];
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n >= sizeof(buf))
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return rr_dd_parse_u64(buf, v);
}

static bool is_token(const char *s, const char *want)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(want);
    if (strncmp(s, want, n) != 0)
        return false;
    for (s += n; *s != '\0'; s++) {
        if (*s != ' ' && *s != '\t')
            return false;
    }
    return true;
}

static int parse_val(const rr_dd_arg *a, uint32_t i, quorum_case *qc, rr_dd_out *out)
{
    const char *v = a->vals[i];
    uint64_t n = 0;
    if (strcmp(a->key, "cfg") == 0 || (strcmp(a->key, "cfgj") == 0 && !is_token(v, "zero"))) {
        if (strcmp(a->key, "cfgj") == 0)
            qc->joint = true;
        if (parse_u64(v, &n) != 0) {
            rr_dd_printf(out, "error: %s: cannot parse %s\n", a->key, v);
            return -1;
        }
        if (strcmp(a->key, "cfg") == 0)
            qc->ids[qc->n_ids++] = n;
        else
            qc->idsj[qc->n_idsj++] = n;
    } else if (strcmp(a->key, "cfgj") == 0) {
        qc->joint = true;
        if (a->n_vals != 1) {
            rr_dd_puts(out, "error: cannot mix 'zero' into configuration\n");
            return -1;
        }
    } else if (strcmp(a->key, "idx") == 0) {
        if (!is_token(v, "_")) {
            if (parse_u64(v, &n) != 0) {
                rr_dd_printf(out, "error: idx: cannot parse %s\n", v);
                return -1;
            }
            if (n == 0) {
                rr_dd_puts(out, "error: cannot use 0 as idx\n");
                return -1;
            }
        }
        qc->idxs[qc->n_idxs++] = n;
    } else if (strcmp(a->key, "votes") == 0) {
        if (is_token(v, "y")) {
            qc->votes[qc->n_votes++] = 2;
        } else if (is_token(v, "n")) {
            qc->votes[qc->n_votes++] = 1;
        } else if (is_token(v, "_")) {
            qc->votes[qc->n_votes++] = 0;
        } else {
            rr_dd_printf(out, "unknown vote: %s\n", v);
            return -1;
        }
    } else {
        rr_dd_printf(out, "unknown arg %s\n", a->key);
        return -1;
    }
    return 0;
}

static int build_set(const rr_node_id_t *ids, uint32_t n, rr_id_set *s, rr_dd_out *out)
{
    memset(s, 0, sizeof(*s));
    for (uint32_t i = 0; i < n; i++) {
        if (!rr_id_set_insert(s, ids[i])) {
            rr_dd_printf(out, "error: more than %d voters in a majority config\n", RR_NODES_MAX);
            return -1;
        }
    }
    return 0;
}

static int parse_case(const rr_dd_cmd *cmd, quorum_case *qc, rr_dd_out *out)
{
    memset(qc, 0, sizeof(*qc));
    for (uint32_t a = 0; a < cmd->n_args; a++) {
        for (uint32_t i = 0; i < cmd->args[a].n_vals; i++) {
            if (parse_val(&cmd->args[a], i, qc, out) != 0)
                return -1;
        }
    }
    if (build_set(qc->ids, qc->n_ids, &qc->c, out) != 0 ||
        build_set(qc->idsj, qc->n_idsj, &qc->cj, out) != 0)
        return -1;
    return 0;
}

/* Union of two sets, which may exceed RR_NODES_MAX (rr_joint_ids may not). */
static void union_ids(const rr_id_set *a, const rr_id_set *b, rr_node_id_t *out, uint32_t *n)
{
    *n = 0;
    uint32_t i = 0, j = 0;
    while (i < a->n || j < b->n) {
        rr_node_id_t x;
        if (j == b->n || (i < a->n && a->ids[i] < b->ids[j]))
            x = a->ids[i++];
        else if (i == a->n || b->ids[j] < a->ids[i])
            x = b->ids[j++];
        else
            x = a->ids[i++], j++;
        out[(*n)++] = x;
    }
}

/* Assigns the values to the voters in order of appearance, each voter once; zeroes are
 * the `_` placeholders and leave the voter unknown. */
static void make_lookup(const quorum_case *qc, const rr_index_t *vals, uint32_t n_vals, lookup *l)
{
    lookup all = {0};
    uint32_t p = 0;
    for (uint32_t k = 0; k < qc->n_ids + qc->n_idsj; k++) {
        rr_node_id_t id = k < qc->n_ids ? qc->ids[k] : qc->idsj[k - qc->n_ids];
        rr_index_t ignored;
        if (lookup_get(&all, id, &ignored))
            continue;
        if (p < n_vals)
            lookup_set(&all, id, vals[p++]);
    }
    memset(l, 0, sizeof(*l));
    for (uint32_t i = 0; i < all.n; i++) {
        if (all.idx[i] != 0)
            lookup_set(l, all.id[i], all.idx[i]);
    }
}

/* etcd's error when the number of values does not match the voters: the voters as a Go
 * map, the values as a Go slice of Index. */
static void print_mismatch(const rr_node_id_t *voters, uint32_t n, const rr_index_t *vals,
                           uint32_t n_vals, rr_dd_out *out)
{
    rr_dd_puts(out, "error: mismatched input (explicit or _) for voters map[");
    for (uint32_t i = 0; i < n; i++)
        rr_dd_printf(out, "%s%llu:{}", i > 0 ? " " : "", (unsigned long long)voters[i]);
    rr_dd_puts(out, "]: [");
    for (uint32_t i = 0; i < n_vals; i++) {
        if (i > 0)
            rr_dd_puts(out, " ");
        put_index(out, vals[i]);
    }
    rr_dd_puts(out, "]");
}

/* ---- Describe ------------------------------------------------------------------------ */

typedef struct describe_row {
    rr_node_id_t id;
    rr_index_t idx;
    bool ok;
    uint32_t bar;
} describe_row;

static bool row_less_by_idx(const describe_row *a, const describe_row *b)
{
    return a->idx < b->idx || (a->idx == b->idx && a->id < b->id);
}

/* Insertion sort: at most QUORUM_IDS_MAX rows. */
static void sort_rows(describe_row *r, uint32_t n, bool by_idx)
{
    for (uint32_t i = 1; i < n; i++) {
        describe_row x = r[i];
        uint32_t j = i;
        while (j > 0 && (by_idx ? row_less_by_idx(&x, &r[j - 1]) : x.id < r[j - 1].id)) {
            r[j] = r[j - 1];
            j--;
        }
        r[j] = x;
    }
}

static void put_repeat(rr_dd_out *out, char c, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        rr_dd_printf(out, "%c", c);
}

/*
 * etcd's MajorityConfig.Describe: one row per voter sorted by id, with a bar whose length
 * is the voter's rank by index (voters sorted by (index, id); a voter gets bar i when its
 * index is strictly above the previous one's, else no bar), `?` for unknown indexes.
 */
static void describe(const rr_node_id_t *ids, uint32_t n, const lookup *l, rr_dd_out *out)
{
    if (n == 0) {
        rr_dd_puts(out, "<empty majority quorum>");
        return;
    }
    describe_row rows[QUORUM_IDS_MAX];
    for (uint32_t i = 0; i < n; i++) {
        rows[i] = (describe_row){.id = ids[i]};
        rows[i].ok = lookup_get(l, ids[i], &rows[i].idx);
    }
    sort_rows(rows, n, true);
    for (uint32_t i = 1; i < n; i++) {
        if (rows[i - 1].idx < rows[i].idx)
            rows[i].bar = i;
    }
    sort_rows(rows, n, false);

    put_repeat(out, ' ', n);
    rr_dd_puts(out, "    idx\n");
    for (uint32_t i = 0; i < n; i++) {
        if (!rows[i].ok) {
            rr_dd_puts(out, "?");
            put_repeat(out, ' ', n);
        } else {
            put_repeat(out, 'x', rows[i].bar);
            rr_dd_puts(out, ">");
            put_repeat(out, ' ', n - rows[i].bar);
        }
        rr_dd_printf(out, " %5llu    (id=%llu)\n", (unsigned long long)rows[i].idx,
                     (unsigned long long)rows[i].id);
    }
}

/* ---- cross-checks -------------------------------------------------------------------- */

/* An independent majority commit rule: the largest acknowledged index that a quorum of
 * voters has acknowledged (at or above). */
static rr_index_t alternative_committed(const rr_id_set *c, const lookup *l)
{
    if (c->n == 0)
        return RR_INDEX_INF;
    rr_index_t known[RR_NODES_MAX];
    uint32_t n = 0;
    for (uint32_t i = 0; i < c->n; i++) {
        if (lookup_get(l, c->ids[i], &known[n]))
            n++;
    }
    uint32_t q = c->n / 2 + 1;
    rr_index_t best = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t votes = 0;
        for (uint32_t j = 0; j < n; j++)
            votes += known[j] >= known[i];
        if (votes >= q && known[i] > best)
            best = known[i];
    }
    return best;
}

/* l restricted to c, with id's index replaced by idx. */
static void overlay(const rr_id_set *c, const lookup *l, rr_node_id_t id, rr_index_t idx,
                    lookup *ll)
{
    memset(ll, 0, sizeof(*ll));
    for (uint32_t i = 0; i < c->n; i++) {
        rr_index_t v;
        if (c->ids[i] == id)
            lookup_set(ll, id, idx);
        else if (lookup_get(l, c->ids[i], &v))
            lookup_set(ll, c->ids[i], v);
    }
}

static void check_alt(rr_dd_out *out, rr_index_t want, rr_index_t got, const char *how)
{
    if (got == want)
        return;
    put_index(out, got);
    rr_dd_printf(out, " <-- via %s\n", how);
}

static rr_index_t committed_with(const rr_id_set *a, const rr_id_set *b, const lookup *l)
{
    rr_joint_config jc = {.incoming = *a, .outgoing = *b};
    return rr_joint_committed(&jc, acked, (void *)(uintptr_t)l);
}

static void committed_majority(const quorum_case *qc, const lookup *l, rr_dd_out *out)
{
    const rr_id_set *c = &qc->c;
    rr_id_set empty = {0};
    rr_index_t idx = rr_majority_committed(c, acked, (void *)(uintptr_t)l);
    describe(c->ids, c->n, l, out);
    check_alt(out, idx, alternative_committed(c, l), "alternative computation");
    check_alt(out, idx, committed_with(c, &empty, l), "zero-joint quorum");
    check_alt(out, idx, committed_with(c, c, l), "self-joint quorum");

    /* Lowering the index of a voter already below the committed index cannot change it
     * (etcd prints these two without a newline). */
    for (uint32_t i = 0; i < c->n; i++) {
        rr_index_t iidx = 0;
        lookup_get(l, c->ids[i], &iidx);
        if (!(idx > iidx && iidx > 0))
            continue;
        lookup lo;
        overlay(c, l, c->ids[i], iidx - 1, &lo);
        rr_index_t a = rr_majority_committed(c, acked, &lo);
        if (a != idx) {
            put_index(out, a);
            rr_dd_printf(out, " <-- overlaying %llu->%llu", (unsigned long long)c->ids[i],
                         (unsigned long long)iidx);
        }
        overlay(c, l, c->ids[i], 0, &lo);
        a = rr_majority_committed(c, acked, &lo);
        if (a != idx) {
            put_index(out, a);
            rr_dd_printf(out, " <-- overlaying %llu->0", (unsigned long long)c->ids[i]);
        }
    }
    put_index(out, idx);
    rr_dd_puts(out, "\n");
}

static void committed_joint(const quorum_case *qc, const rr_node_id_t *voters, uint32_t n,
                            const lookup *l, rr_dd_out *out)
{
    describe(voters, n, l, out);
    rr_index_t idx = committed_with(&qc->c, &qc->cj, l);
    check_alt(out, idx, committed_with(&qc->cj, &qc->c, l), "symmetry");
    put_index(out, idx);
    rr_dd_puts(out, "\n");
}

static void vote(const quorum_case *qc, const lookup *l, rr_dd_out *out)
{
    void *ctx = (void *)(uintptr_t)l;
    if (!qc->joint) {
        rr_dd_printf(out, "%s\n",
                     rr_vote_result_name(rr_majority_vote_result(&qc->c, vote_of, ctx)));
        return;
    }
    rr_joint_config jc = {.incoming = qc->c, .outgoing = qc->cj};
    rr_joint_config swapped = {.incoming = qc->cj, .outgoing = qc->c};
    rr_vote_result r = rr_joint_vote_result(&jc, vote_of, ctx);
    rr_vote_result ar = rr_joint_vote_result(&swapped, vote_of, ctx);
    if (ar != r)
        rr_dd_printf(out, "%s <-- via symmetry\n", rr_vote_result_name(ar));
    rr_dd_printf(out, "%s\n", rr_vote_result_name(r));
}

/* ---- the kind ------------------------------------------------------------------------ */

static void *quorum_env_new(void)
{
    return calloc(1, 1); /* stateless: each case stands alone */
}

static void quorum_env_free(void *env)
{
    free(env);
}

static int quorum_handle(void *env, const rr_dd_cmd *cmd, rr_dd_out *out)
{
    (void)env;
    bool is_vote = strcmp(cmd->name, "vote") == 0;
    if (!is_vote && strcmp(cmd->name, "committed") != 0) {
        rr_dd_printf(out, "unknown command: %s\n", cmd->name);
        return -1;
    }
    quorum_case qc;
    if (parse_case(cmd, &qc, out) != 0)
        return -1;

    rr_node_id_t voters[QUORUM_IDS_MAX];
    uint32_t n_voters;
    union_ids(&qc.c, &qc.cj, voters, &n_voters);
    const rr_index_t *vals = is_vote ? qc.votes : qc.idxs;
    uint32_t n_vals = is_vote ? qc.n_votes : qc.n_idxs;
    if (n_voters != n_vals) {
        print_mismatch(voters, n_voters, vals, n_vals, out);
        return 0;
    }

    lookup l;
    make_lookup(&qc, vals, n_vals, &l);
    if (is_vote)
        vote(&qc, &l, out);
    else if (!qc.joint)
        committed_majority(&qc, &l, out);
    else
        committed_joint(&qc, voters, n_voters, &l, out);
    return 0;
}

const rr_dd_kind rr_dd_kind_quorum = {
    .name = "quorum",
    .env_new = quorum_env_new,
    .env_free = quorum_env_free,
    .handle = quorum_handle,
};
