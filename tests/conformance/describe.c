/*
 * describe.c: etcd raft's Describe* formats for rr-conformance (see describe.h).
 */
#include "describe.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char *const msg_type_names[] = {
    "MsgHup",
    "MsgBeat",
    "MsgProp",
    "MsgApp",
    "MsgAppResp",
    "MsgVote",
    "MsgVoteResp",
    "MsgSnap",
    "MsgHeartbeat",
    "MsgHeartbeatResp",
    "MsgUnreachable",
    "MsgSnapStatus",
    "MsgCheckQuorum",
    "MsgTransferLeader",
    "MsgTimeoutNow",
    "MsgReadIndex",
    "MsgReadIndexResp",
    "MsgPreVote",
    "MsgPreVoteResp",
    "MsgStorageAppend",
    "MsgStorageAppendResp",
    "MsgStorageApply",
    "MsgStorageApplyResp",
    "MsgForgetLeader",
};
_Static_assert(sizeof(msg_type_names) / sizeof(msg_type_names[0]) == RR_MSG_TYPE_COUNT,
               "one name per message type");

static const char *const entry_type_names[] = {"EntryNormal", "EntryConfChange",
                                               "EntryConfChangeV2"};
static const char *const state_names[] = {"StateFollower", "StateCandidate", "StateLeader",
                                          "StatePreCandidate"};
static const char *const progress_state_names[] = {"StateProbe", "StateReplicate", "StateSnapshot"};

#define NAME_AT(table, i) ((i) < sizeof(table) / sizeof((table)[0]) ? (table)[i] : NULL)

const char *rr_describe_msg_type_name(uint32_t type)
{
    return NAME_AT(msg_type_names, type);
}

const char *rr_describe_entry_type_name(uint32_t type)
{
    return NAME_AT(entry_type_names, type);
}

const char *rr_describe_state_name(uint32_t state)
{
    return NAME_AT(state_names, state);
}

const char *rr_describe_progress_state_name(uint32_t state)
{
    return NAME_AT(progress_state_names, state);
}

int rr_describe_msg_type_parse(const char *name, uint8_t *type)
{
    for (uint32_t i = 0; i < RR_MSG_TYPE_COUNT; i++) {
        if (strcmp(msg_type_names[i], name) == 0) {
            *type = (uint8_t)i;
            return 0;
        }
    }
    return -1;
}

/* Go prints an enum without a name as its number. */
static void put_name(rr_dd_out *out, const char *name, uint32_t value)
{
    if (name != NULL)
        rr_dd_puts(out, name);
    else
        rr_dd_printf(out, "%" PRIu32, value);
}

/* ---- Go's %q ---------------------------------------------------------------------- */

/* Decodes one UTF-8 rune at s[0..len) as Go's utf8.DecodeRune: returns its width, or 0
 * when the bytes are not valid UTF-8 (overlong, surrogate, beyond U+10FFFF, truncated). */
static size_t utf8_decode(const uint8_t *s, size_t len, uint32_t *rune)
{
    uint8_t c = s[0];
    size_t width;
    uint32_t r;
    uint32_t min;
    if (c < 0x80) {
        *rune = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        width = 2, r = c & 0x1Fu, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        width = 3, r = c & 0x0Fu, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        width = 4, r = c & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    if (len < width)
        return 0;
    for (size_t i = 1; i < width; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        r = (r << 6) | (s[i] & 0x3Fu);
    }
    if (r < min || r > 0x10FFFF || (r >= 0xD800 && r <= 0xDFFF))
        return 0;
    *rune = r;
    return width;
}

/* An approximation of Go's unicode.IsPrint for non-ASCII runes: everything but the C1
 * controls, the non-ASCII spaces and the common format, private-use and non-characters. */
static bool rune_printable(uint32_t r)
{
    if (r < 0x80)
        return r >= 0x20 && r < 0x7F;
    if (r <= 0xA0 || r == 0xAD)
        return false;
    if ((r >= 0x2000 && r <= 0x200F) || (r >= 0x2028 && r <= 0x202F) ||
        (r >= 0x205F && r <= 0x206F) || r == 0x3000 || r == 0xFEFF)
        return false;
    if ((r >= 0xE000 && r <= 0xF8FF) || (r >= 0xFFF9 && r <= 0xFFFB))
        return false;
    /* Non-characters (U+xxFFFE, U+xxFFFF) and the private-use planes 15 and 16. */
    return (r & 0xFFFE) != 0xFFFE && r < 0xF0000;
}

/* One rune that is not printed as itself: Go's escapes. */
static void put_escaped_rune(rr_dd_out *out, uint32_t r)
{
    static const char controls[] = "\a\b\f\n\r\t\v";
    static const char letters[] = "abfnrtv";
    const char *c = r != 0 && r < 0x80 ? strchr(controls, (int)r) : NULL;
    if (r == '"' || r == '\\')
        rr_dd_printf(out, "\\%c", (char)r);
    else if (c != NULL)
        rr_dd_printf(out, "\\%c", letters[c - controls]);
    else if (r < 0x20 || r == 0x7F)
        rr_dd_printf(out, "\\x%02" PRIx32, r);
    else if (r < 0x10000)
        rr_dd_printf(out, "\\u%04" PRIx32, r);
    else
        rr_dd_printf(out, "\\U%08" PRIx32, r);
}

void rr_describe_quote(rr_dd_out *out, const uint8_t *data, size_t len)
{
    rr_dd_puts(out, "\"");
    size_t i = 0;
    while (i < len) {
        uint32_t r = 0;
        size_t width = utf8_decode(data + i, len - i, &r);
        if (width == 0) {
            rr_dd_printf(out, "\\x%02x", (unsigned)data[i]); /* not UTF-8: byte escape */
            i++;
        } else if (r != '"' && r != '\\' && rune_printable(r)) {
            char glyph[5];
            memcpy(glyph, data + i, width);
            glyph[width] = '\0';
            rr_dd_puts(out, glyph);
            i += width;
        } else {
            put_escaped_rune(out, r);
            i += width;
        }
    }
    rr_dd_puts(out, "\"");
}

/* ---- configuration ---------------------------------------------------------------- */

void rr_describe_conf_changes(rr_dd_out *out, const rr_conf_change_single *ccs, uint32_t n)
{
    static const char *const letters[] = {"v", "r", "u", "l"}; /* by rr_conf_change_type */
    for (uint32_t i = 0; i < n; i++) {
        const char *letter = ccs[i].type < 4 ? letters[ccs[i].type] : "unknown";
        rr_dd_printf(out, "%s%s%" PRIu64, i > 0 ? " " : "", letter, ccs[i].node_id);
    }
}

/* Go's %v of a []uint64: `[1 2 3]`, `[]` when empty. */
static void put_id_set(rr_dd_out *out, const rr_id_set *s)
{
    rr_dd_puts(out, "[");
    for (uint32_t i = 0; i < s->n; i++)
        rr_dd_printf(out, "%s%" PRIu64, i > 0 ? " " : "", s->ids[i]);
    rr_dd_puts(out, "]");
}

void rr_describe_conf_state(rr_dd_out *out, const rr_conf_state *cs)
{
    rr_dd_puts(out, "Voters:");
    put_id_set(out, &cs->voters);
    rr_dd_puts(out, " VotersOutgoing:");
    put_id_set(out, &cs->voters_outgoing);
    rr_dd_puts(out, " Learners:");
    put_id_set(out, &cs->learners);
    rr_dd_puts(out, " LearnersNext:");
    put_id_set(out, &cs->learners_next);
    rr_dd_printf(out, " AutoLeave:%s", cs->auto_leave ? "true" : "false");
}

void rr_describe_snapshot(rr_dd_out *out, const rr_snapshot_meta *meta)
{
    rr_dd_printf(out, "Index:%" PRIu64 " Term:%" PRIu64 " ConfState:", meta->index, meta->term);
    rr_describe_conf_state(out, &meta->conf_state);
}

/* ---- state ------------------------------------------------------------------------- */

bool rr_describe_hard_state_empty(const rr_hard_state *hs)
{
    return hs->term == 0 && hs->vote == 0 && hs->commit == 0;
}

void rr_describe_hard_state(rr_dd_out *out, const rr_hard_state *hs)
{
    rr_dd_printf(out, "Term:%" PRIu64, hs->term);
    if (hs->vote != 0)
        rr_dd_printf(out, " Vote:%" PRIu64, hs->vote);
    rr_dd_printf(out, " Commit:%" PRIu64, hs->commit);
}

void rr_describe_soft_state(rr_dd_out *out, const rr_soft_state *ss)
{
    rr_dd_printf(out, "Lead:%" PRIu64 " State:", ss->lead);
    put_name(out, rr_describe_state_name(ss->raft_state), ss->raft_state);
}

int rr_describe_decode_conf_change(const rr_entry *e, rr_conf_change *cc)
{
    return rr_conf_change_decode(e->data, e->data_len, e->type == RR_ENTRY_CONF_CHANGE, cc);
}

/* ---- entries and messages ------------------------------------------------------------ */

void rr_describe_entry(rr_dd_out *out, const rr_entry *e)
{
    rr_dd_printf(out, "%" PRIu64 "/%" PRIu64 " ", e->term, e->index);
    put_name(out, rr_describe_entry_type_name(e->type), e->type);
    if (e->type == RR_ENTRY_NORMAL) {
        rr_dd_puts(out, " ");
        rr_describe_quote(out, e->data, e->data_len);
        return;
    }
    if (e->type != RR_ENTRY_CONF_CHANGE && e->type != RR_ENTRY_CONF_CHANGE_V2)
        return;
    rr_conf_change cc;
    int rc = rr_describe_decode_conf_change(e, &cc);
    if (rc != 0) {
        rr_dd_printf(out, " <undecodable conf change: error %d>", rc);
        return;
    }
    /* etcd prints nothing after the type when there are no changes (leaving a joint
     * configuration). */
    if (cc.n_changes > 0) {
        rr_dd_puts(out, " ");
        rr_describe_conf_changes(out, cc.changes, cc.n_changes);
    }
}

void rr_describe_entries(rr_dd_out *out, const rr_entry *ents, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        rr_describe_entry(out, &ents[i]);
        rr_dd_puts(out, "\n");
    }
}

static void put_target(rr_dd_out *out, rr_node_id_t id)
{
    if (id == RR_NODE_ID_NONE)
        rr_dd_puts(out, "None");
    else if (id == RR_LOCAL_APPEND_THREAD)
        rr_dd_puts(out, "AppendThread");
    else if (id == RR_LOCAL_APPLY_THREAD)
        rr_dd_puts(out, "ApplyThread");
    else
        rr_dd_printf(out, "%" PRIx64, id); /* etcd prints ids in hex */
}

/* Responses nest one level (storage messages carry plain responses), so this is not
 * recursive: a response's own responses, if any, are not printed. */
static void describe_message_indent(rr_dd_out *out, const char *indent, const rr_message *m,
                                    bool with_responses)
{
    rr_dd_puts(out, indent);
    put_target(out, m->from);
    rr_dd_puts(out, "->");
    put_target(out, m->to);
    rr_dd_puts(out, " ");
    put_name(out, rr_describe_msg_type_name(m->type), m->type);
    rr_dd_printf(out, " Term:%" PRIu64 " Log:%" PRIu64 "/%" PRIu64, m->term, m->log_term, m->index);
    if (m->reject)
        rr_dd_printf(out, " Rejected (Hint: %" PRIu64 ")", m->reject_hint);
    if (m->commit != 0)
        rr_dd_printf(out, " Commit:%" PRIu64, m->commit);
    if (m->vote != 0)
        rr_dd_printf(out, " Vote:%" PRIu64, m->vote);
    if (m->n_entries == 1) {
        rr_dd_puts(out, " Entries:[");
        rr_describe_entry(out, &m->entries[0]);
        rr_dd_puts(out, "]");
    } else if (m->n_entries > 1) {
        rr_dd_puts(out, " Entries:[");
        for (uint32_t i = 0; i < m->n_entries; i++) {
            rr_dd_printf(out, "\n%s  ", indent);
            rr_describe_entry(out, &m->entries[i]);
        }
        rr_dd_printf(out, "\n%s]", indent);
    }
    if (m->snapshot != NULL && m->snapshot->meta.index != 0) {
        rr_dd_printf(out, "\n%s  Snapshot: ", indent);
        rr_describe_snapshot(out, &m->snapshot->meta);
    }
    if (with_responses && m->n_responses > 0) {
        char sub[64];
        size_t len = strlen(indent);
        if (len + 3 > sizeof(sub))
            len = sizeof(sub) - 3;
        memcpy(sub, indent, len);
        memcpy(sub + len, "  ", 3);
        rr_dd_puts(out, " Responses:[");
        for (uint32_t i = 0; i < m->n_responses; i++) {
            rr_dd_puts(out, "\n");
            describe_message_indent(out, sub, &m->responses[i], false);
        }
        rr_dd_printf(out, "\n%s]", indent);
    }
}

void rr_describe_message(rr_dd_out *out, const rr_message *m, bool with_responses)
{
    describe_message_indent(out, "", m, with_responses);
}

/* Go's %v of []ReadState: `[{1 [102 111 111]}]`. */
static void put_read_states(rr_dd_out *out, const rr_read_state *rs, uint32_t n)
{
    rr_dd_puts(out, "[");
    for (uint32_t i = 0; i < n; i++) {
        rr_dd_printf(out, "%s{%" PRIu64 " [", i > 0 ? " " : "", rs[i].index);
        for (uint32_t j = 0; j < rs[i].request_ctx_len; j++)
            rr_dd_printf(out, "%s%u", j > 0 ? " " : "", (unsigned)rs[i].request_ctx[j]);
        rr_dd_puts(out, "]}");
    }
    rr_dd_puts(out, "]");
}

void rr_describe_ready(rr_dd_out *out, const rr_ready *rd)
{
    rr_dd_out body = {0};
    if (rd->has_soft_state) {
        rr_describe_soft_state(&body, &rd->soft_state);
        rr_dd_puts(&body, "\n");
    }
    if (rd->has_hard_state && !rr_describe_hard_state_empty(&rd->hard_state)) {
        rr_dd_puts(&body, "HardState ");
        rr_describe_hard_state(&body, &rd->hard_state);
        rr_dd_puts(&body, "\n");
    }
    if (rd->n_read_states > 0) {
        rr_dd_puts(&body, "ReadStates ");
        put_read_states(&body, rd->read_states, rd->n_read_states);
        rr_dd_puts(&body, "\n");
    }
    if (rd->n_entries > 0) {
        rr_dd_puts(&body, "Entries:\n");
        rr_describe_entries(&body, rd->entries, rd->n_entries);
    }
    if (rd->snapshot != NULL && rd->snapshot->meta.index != 0) {
        rr_dd_puts(&body, "Snapshot ");
        rr_describe_snapshot(&body, &rd->snapshot->meta);
        rr_dd_puts(&body, "\n");
    }
    if (rd->n_committed_entries > 0) {
        rr_dd_puts(&body, "CommittedEntries:\n");
        rr_describe_entries(&body, rd->committed_entries, rd->n_committed_entries);
    }
    if (rd->n_messages > 0) {
        rr_dd_puts(&body, "Messages:\n");
        for (uint32_t i = 0; i < rd->n_messages; i++) {
            rr_describe_message(&body, &rd->messages[i], true);
            rr_dd_puts(&body, "\n");
        }
    }
    if (body.len > 0) {
        rr_dd_printf(out, "Ready MustSync=%s:\n", rd->must_sync ? "true" : "false");
        rr_dd_puts(out, body.buf);
    } else {
        rr_dd_puts(out, "<empty Ready>");
    }
    free(body.buf);
}

void rr_describe_progress(rr_dd_out *out, const rr_progress_status *pr, uint64_t inflight_bytes_max)
{
    put_name(out, rr_describe_progress_state_name(pr->state), pr->state);
    rr_dd_printf(out, " match=%" PRIu64 " next=%" PRIu64, pr->match, pr->next);
    if (pr->is_learner)
        rr_dd_puts(out, " learner");
    if (pr->paused)
        rr_dd_puts(out, " paused");
    if (pr->pending_snapshot > 0)
        rr_dd_printf(out, " pendingSnap=%" PRIu64, pr->pending_snapshot);
    if (!pr->recent_active)
        rr_dd_puts(out, " inactive");
    if (pr->inflight_count > 0) {
        rr_dd_printf(out, " inflight=%" PRIu32, pr->inflight_count);
        /* etcd's Inflights.Full(): the count or the byte budget is exhausted. */
        bool full = pr->inflight_count == pr->inflight_capacity ||
                    (inflight_bytes_max != 0 && pr->inflight_bytes >= inflight_bytes_max);
        if (full)
            rr_dd_puts(out, "[full]");
    }
}
