/* check.c: the rrkv linearizability checker (see check.h for the model and the search).
 *
 * Before the search, a key's operations are pruned without changing the verdict:
 * - a `timeout` put whose value no `ok` get read can be dropped: linearized last (or right
 *   before another put) it is invisible, and a put that nobody observed is never needed
 *   anywhere else;
 * - a `timeout` put that was read must take effect before its earliest reader returns, so
 *   that return is its deadline. No operation then stays pending forever, which keeps the
 *   window of linearized-but-not-prefix operations (the memo key) as small as the
 *   concurrency of the history.
 */
#include "check.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define LINE_BYTES_MAX  (1u << 20) /* one history line, value included */
#define OPS_MAX         (1u << 26) /* lines per history */
#define EXPLAIN_OPS_MAX 8u         /* operations listed per violation */
#define VALUE_NULL      UINT32_MAX /* a get that found the key absent; the initial state */
#define NONE            UINT32_MAX

enum { OP_GET, OP_PUT };
enum { ST_OK, ST_TIMEOUT, ST_ERROR };

struct op {
    uint64_t call_ns;
    uint64_t ret_ns;
    uint32_t client;
    uint32_t line;
    uint32_t key;   /* id in keys */
    uint32_t value; /* id in values, or VALUE_NULL */
    uint8_t kind;
    uint8_t status;
};

/* Interned strings: ids are dense, slots hold id + 1 (0 = empty). */
struct strtab {
    char **strs;
    uint32_t count;
    uint32_t cap;
    uint32_t *slots;
    uint32_t slots_count; /* a power of two */
};

struct history {
    struct op *ops;
    uint32_t ops_count;
    uint32_t ops_cap;
    struct strtab keys;
    struct strtab values;
    uint32_t *value_writer; /* values.count entries: the put that wrote it */
    uint32_t value_writer_cap;
};

/* ---- small helpers ---- */

static uint64_t hash_bytes(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static uint64_t mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull; /* splitmix64 finalizer */
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static void strtab_free(struct strtab *t)
{
    for (uint32_t i = 0; i < t->count; i++)
        free(t->strs[i]);
    free(t->strs);
    free(t->slots);
    memset(t, 0, sizeof *t);
}

static int strtab_grow(struct strtab *t)
{
    uint32_t n = t->slots_count ? t->slots_count * 2 : 64;
    uint32_t *slots = calloc(n, sizeof *slots);
    if (!slots)
        return -ENOMEM;
    for (uint32_t id = 0; id < t->count; id++) {
        uint32_t s = (uint32_t)hash_bytes(t->strs[id]) & (n - 1);
        while (slots[s])
            s = (s + 1) & (n - 1);
        slots[s] = id + 1;
    }
    free(t->slots);
    t->slots = slots;
    t->slots_count = n;
    return 0;
}

/* Looks `s` up; when absent and `add` is set, takes ownership of `s` and adds it.
 * Returns the id, NONE when absent and not added, or -ENOMEM through *err. */
static uint32_t strtab_find(struct strtab *t, char *s, bool add, int *err)
{
    *err = 0;
    if (t->count * 2 >= t->slots_count && (*err = strtab_grow(t)) != 0)
        return NONE;
    uint32_t mask = t->slots_count - 1;
    uint32_t slot = (uint32_t)hash_bytes(s) & mask;
    for (; t->slots[slot]; slot = (slot + 1) & mask) {
        if (strcmp(t->strs[t->slots[slot] - 1], s) == 0)
            return t->slots[slot] - 1;
    }
    if (!add)
        return NONE;
    if (t->count == t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 64;
        char **strs = realloc(t->strs, cap * sizeof *strs);
        if (!strs) {
            *err = -ENOMEM;
            return NONE;
        }
        t->strs = strs;
        t->cap = cap;
    }
    t->strs[t->count] = s;
    t->slots[slot] = t->count + 1;
    return t->count++;
}

/* ---- JSON Lines parsing: flat objects of strings, integers and null ---- */

struct cursor {
    const char *p;
    const char *end;
    const char *error; /* first error, for the message */
};

enum { V_STRING, V_UINT, V_NULL, V_OTHER };

struct jvalue {
    int type;
    char *str; /* V_STRING: decoded, NUL-terminated, owned by the caller */
    uint64_t num;
};

static void skip_ws(struct cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\r' || *c->p == '\n'))
        c->p++;
}

static bool fail(struct cursor *c, const char *why)
{
    if (!c->error)
        c->error = why;
    return false;
}

static int hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Appends code point `cp` (< 0x10000: the history's strings are ASCII in practice, and a
 * surrogate pair is kept as two code points, which still compares consistently). */
static size_t put_utf8(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
}

static bool parse_escape(struct cursor *c, char *out, size_t *n)
{
    if (c->p >= c->end)
        return fail(c, "unterminated string");
    char e = *c->p++;
    const char *simple = "\"\"\\\\//b\bf\fn\nr\rt\t";
    for (const char *s = simple; *s; s += 2) {
        if (e == s[0]) {
            out[(*n)++] = s[1];
            return true;
        }
    }
    if (e != 'u')
        return fail(c, "bad escape in string");
    if (c->end - c->p < 4)
        return fail(c, "short \\u escape");
    uint32_t cp = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(*c->p++);
        if (d < 0)
            return fail(c, "bad \\u escape");
        cp = cp * 16 + (uint32_t)d;
    }
    if (cp == 0)
        return fail(c, "\\u0000 in string");
    *n += put_utf8(out + *n, cp);
    return true;
}

static bool parse_string(struct cursor *c, char **str)
{
    if (c->p >= c->end || *c->p != '"')
        return fail(c, "expected a string");
    c->p++;
    /* Decoded text is never longer than its encoding. */
    char *out = malloc((size_t)(c->end - c->p) + 1);
    if (!out)
        return fail(c, "out of memory");
    size_t n = 0;
    for (;;) {
        if (c->p >= c->end) {
            free(out);
            return fail(c, "unterminated string");
        }
        char ch = *c->p++;
        if (ch == '"')
            break;
        if ((unsigned char)ch < 0x20) {
            free(out);
            return fail(c, "control character in string");
        }
        if (ch != '\\') {
            out[n++] = ch;
        } else if (!parse_escape(c, out, &n)) {
            free(out);
            return false;
        }
    }
    out[n] = '\0';
    *str = out;
    return true;
}

static bool parse_value(struct cursor *c, struct jvalue *v)
{
    memset(v, 0, sizeof *v);
    if (c->p >= c->end)
        return fail(c, "expected a value");
    if (*c->p == '"') {
        v->type = V_STRING;
        return parse_string(c, &v->str);
    }
    if (c->end - c->p >= 4 && memcmp(c->p, "null", 4) == 0) {
        c->p += 4;
        v->type = V_NULL;
        return true;
    }
    if (*c->p >= '0' && *c->p <= '9') {
        v->type = V_UINT;
        for (; c->p < c->end && *c->p >= '0' && *c->p <= '9'; c->p++) {
            uint64_t d = (uint64_t)(*c->p - '0');
            if (v->num > (UINT64_MAX - d) / 10)
                return fail(c, "integer out of range");
            v->num = v->num * 10 + d;
        }
        if (c->p < c->end && (*c->p == '.' || *c->p == 'e' || *c->p == 'E'))
            return fail(c, "expected an integer");
        return true;
    }
    /* Unknown fields may carry booleans or negative numbers; skip such scalars. */
    v->type = V_OTHER;
    const char *start = c->p;
    while (c->p < c->end && *c->p != ',' && *c->p != '}' && *c->p != ' ' && *c->p != '{' &&
           *c->p != '[')
        c->p++;
    if (c->p == start)
        return fail(c, "unsupported value (nested objects and arrays are not part of the format)");
    return true;
}

static const char *const field_names[] = {"client", "op", "key", "value", "call", "ret", "status"};

/* Fields of one line, before interning. */
struct rawop {
    struct op op;
    char *key;
    char *value;
    unsigned seen;
};

static int field_index(const char *name)
{
    for (int i = 0; i < 7; i++) {
        if (strcmp(name, field_names[i]) == 0)
            return i;
    }
    return -1;
}

static bool set_enum(struct cursor *c, const struct jvalue *v, const char *a, const char *b,
                     const char *cc, uint8_t *out)
{
    if (v->type != V_STRING)
        return fail(c, "expected a string");
    if (strcmp(v->str, a) == 0)
        *out = 0;
    else if (strcmp(v->str, b) == 0)
        *out = 1;
    else if (cc && strcmp(v->str, cc) == 0)
        *out = 2;
    else
        return fail(c, cc ? "status must be \"ok\", \"timeout\" or \"error\""
                          : "op must be \"get\" or \"put\"");
    return true;
}

/* Stores value `v` of field `f`; takes the string when it keeps it. */
static bool set_field(struct cursor *c, struct rawop *r, int f, struct jvalue *v)
{
    switch (f) {
    case 0:
        if (v->type != V_UINT || v->num > UINT32_MAX - 1)
            return fail(c, "client must be an integer >= 0");
        r->op.client = (uint32_t)v->num;
        return true;
    case 1:
        return set_enum(c, v, "get", "put", NULL, &r->op.kind);
    case 2:
        if (v->type != V_STRING)
            return fail(c, "key must be a string");
        r->key = v->str;
        v->str = NULL;
        return true;
    case 3:
        if (v->type != V_STRING && v->type != V_NULL)
            return fail(c, "value must be a string or null");
        r->value = v->str;
        v->str = NULL;
        return true;
    case 4:
    case 5:
        if (v->type != V_UINT || v->num > INT64_MAX)
            return fail(c, "call and ret must be integers >= 0 (ns)");
        *(f == 4 ? &r->op.call_ns : &r->op.ret_ns) = v->num;
        return true;
    default:
        return set_enum(c, v, "ok", "timeout", "error", &r->op.status);
    }
}

static bool parse_member(struct cursor *c, struct rawop *r)
{
    char *name = NULL;
    struct jvalue v;
    if (!parse_string(c, &name))
        return false;
    skip_ws(c);
    if (c->p >= c->end || *c->p++ != ':') {
        free(name);
        return fail(c, "expected ':'");
    }
    skip_ws(c);
    int f = field_index(name);
    free(name);
    if (!parse_value(c, &v))
        return false;
    bool ok = true;
    if (f >= 0 && (r->seen & (1u << f)))
        ok = fail(c, "duplicate field");
    else if (f >= 0)
        ok = set_field(c, r, f, &v);
    if (f >= 0)
        r->seen |= 1u << f;
    free(v.str);
    return ok;
}

static bool parse_object(struct cursor *c, struct rawop *r)
{
    skip_ws(c);
    if (c->p >= c->end || *c->p++ != '{')
        return fail(c, "expected '{'");
    skip_ws(c);
    if (c->p < c->end && *c->p == '}') {
        c->p++;
    } else {
        for (;;) {
            skip_ws(c);
            if (!parse_member(c, r))
                return false;
            skip_ws(c);
            if (c->p < c->end && *c->p == ',') {
                c->p++;
                continue;
            }
            if (c->p < c->end && *c->p == '}') {
                c->p++;
                break;
            }
            return fail(c, "expected ',' or '}'");
        }
    }
    skip_ws(c);
    if (c->p != c->end)
        return fail(c, "text after the object");
    return true;
}

/* Returns what is wrong with a well-formed object as an operation, or NULL. */
static const char *check_fields(const struct rawop *r)
{
    static const char *const missing[] = {
        "missing field \"client\"", "missing field \"op\"",   "missing field \"key\"",
        "missing field \"value\"",  "missing field \"call\"", "missing field \"ret\"",
        "missing field \"status\"",
    };
    for (int i = 0; i < 7; i++) {
        if (!(r->seen & (1u << i)))
            return missing[i];
    }
    if (r->op.ret_ns < r->op.call_ns)
        return "ret is before call";
    if (r->op.kind == OP_PUT && !r->value)
        return "a put must write a string value";
    return NULL;
}

static void report(FILE *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void report(FILE *out, const char *fmt, ...)
{
    if (!out)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(out, fmt, ap);
    va_end(ap);
}

/* Interns the key and value of a parsed line and appends the op. Returns 0, -EINVAL
 * (reported) or -ENOMEM. */
static int add_op(struct history *h, struct rawop *r, FILE *out)
{
    int err;
    if (h->ops_count == OPS_MAX) {
        report(out, "line %u: more than %u operations\n", r->op.line, OPS_MAX);
        return -EINVAL;
    }
    if (h->ops_count == h->ops_cap) {
        uint32_t cap = h->ops_cap ? h->ops_cap * 2 : 1024;
        struct op *ops = realloc(h->ops, cap * sizeof *ops);
        if (!ops)
            return -ENOMEM;
        h->ops = ops;
        h->ops_cap = cap;
    }
    uint32_t key = strtab_find(&h->keys, r->key, true, &err);
    if (err)
        return err;
    if (h->keys.strs[key] != r->key)
        free(r->key);
    r->key = NULL;
    r->op.key = key;
    r->op.value = VALUE_NULL;
    if (r->value) {
        uint32_t before = h->values.count;
        uint32_t value = strtab_find(&h->values, r->value, true, &err);
        if (err)
            return err;
        if (h->values.strs[value] != r->value)
            free(r->value);
        r->value = NULL;
        r->op.value = value;
        if (h->values.count != before && h->values.cap != h->value_writer_cap) {
            uint32_t *w = realloc(h->value_writer, h->values.cap * sizeof *w);
            if (!w)
                return -ENOMEM;
            h->value_writer = w;
            h->value_writer_cap = h->values.cap;
        }
        if (h->values.count != before)
            h->value_writer[value] = NONE;
        if (r->op.kind == OP_PUT && h->value_writer[value] != NONE) {
            report(out,
                   "line %u: value \"%s\" is also written at line %u (put values must be "
                   "unique)\n",
                   r->op.line, h->values.strs[value], h->ops[h->value_writer[value]].line);
            return -EINVAL;
        }
        if (r->op.kind == OP_PUT)
            h->value_writer[value] = h->ops_count;
    }
    h->ops[h->ops_count++] = r->op;
    return 0;
}

/* Parses one line into h. Returns 0, -EINVAL (reported) or -ENOMEM. */
static int parse_line(struct history *h, const char *text, size_t len, uint32_t line, FILE *out)
{
    struct cursor c = {.p = text, .end = text + len, .error = NULL};
    struct rawop r;
    memset(&r, 0, sizeof r);
    r.op.line = line;
    bool ok = parse_object(&c, &r);
    const char *wrong = ok ? check_fields(&r) : NULL;
    if (!ok)
        report(out, "line %u: malformed: %s (at column %zu)\n", line,
               c.error ? c.error : "syntax error", (size_t)(c.p - text) + 1);
    else if (wrong)
        report(out, "line %u: malformed: %s\n", line, wrong);
    ok = ok && !wrong;
    int rc = ok ? add_op(h, &r, out) : -EINVAL;
    free(r.key);
    free(r.value);
    return rc;
}

static int read_history(FILE *in, struct history *h, FILE *out)
{
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    uint32_t line = 0;
    int rc = 0;
    while (rc == 0 && (n = getline(&buf, &cap, in)) >= 0) {
        line++;
        size_t len = (size_t)n;
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
            len--;
        if (len == 0)
            continue; /* a trailing blank line is not an operation */
        if (len > LINE_BYTES_MAX) {
            report(out, "line %u: malformed: longer than %u bytes\n", line, LINE_BYTES_MAX);
            rc = -EINVAL;
        } else if (memchr(buf, '\0', len)) {
            report(out, "line %u: malformed: NUL byte\n", line);
            rc = -EINVAL;
        } else {
            rc = parse_line(h, buf, len, line, out);
        }
    }
    free(buf);
    if (rc == 0 && ferror(in)) {
        report(out, "read error after line %u\n", line);
        rc = -EIO;
    }
    return rc;
}

static void history_free(struct history *h)
{
    free(h->ops);
    free(h->value_writer);
    strtab_free(&h->keys);
    strtab_free(&h->values);
}

/* ---- sorting ---- */

static const struct op *sort_ops; /* qsort has no context argument */

static int cmp_by_client(const void *a, const void *b)
{
    const struct op *x = &sort_ops[*(const uint32_t *)a], *y = &sort_ops[*(const uint32_t *)b];
    if (x->client != y->client)
        return x->client < y->client ? -1 : 1;
    if (x->call_ns != y->call_ns)
        return x->call_ns < y->call_ns ? -1 : 1;
    return x->line < y->line ? -1 : (x->line > y->line);
}

static int cmp_by_key(const void *a, const void *b)
{
    const struct op *x = &sort_ops[*(const uint32_t *)a], *y = &sort_ops[*(const uint32_t *)b];
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    if (x->call_ns != y->call_ns)
        return x->call_ns < y->call_ns ? -1 : 1;
    return x->line < y->line ? -1 : (x->line > y->line);
}

/* One outstanding request per client: a client's next call comes after its last return. */
static int check_clients(const struct history *h, uint32_t *order, FILE *out)
{
    for (uint32_t i = 0; i < h->ops_count; i++)
        order[i] = i;
    sort_ops = h->ops;
    qsort(order, h->ops_count, sizeof *order, cmp_by_client);
    for (uint32_t i = 1; i < h->ops_count; i++) {
        const struct op *a = &h->ops[order[i - 1]], *b = &h->ops[order[i]];
        if (a->client == b->client && b->call_ns < a->ret_ns) {
            report(out,
                   "line %u: malformed: client %u calls before its operation at line %u "
                   "returned (one outstanding request per client)\n",
                   b->line, b->client, a->line);
            return -EINVAL;
        }
    }
    return 0;
}

/* ---- the search over one key ---- */

struct sop {
    uint64_t call_ns;
    uint64_t ret_ns; /* a read timeout put: its first reader's return */
    uint32_t value;
    uint32_t op; /* index in history ops */
    uint8_t kind;
};

struct frame {
    uint32_t op;
    uint32_t state;
    uint32_t lo;
    uint32_t hi;
};

struct memo_entry {
    uint64_t hash;
    uint64_t words_at; /* offset in arena */
    uint32_t lo;
    uint32_t state;
    uint32_t words_count;
    uint32_t used;
};

struct explain {
    uint32_t depth;
    uint32_t state;
    uint32_t last;                   /* sop of the last linearized op, or NONE */
    uint32_t tried[EXPLAIN_OPS_MAX]; /* sops whose call came before the blocking return */
    uint32_t tried_count;
    uint32_t tried_total;
    uint32_t blocking; /* the sop that had to be linearized by now */
};

struct search {
    const struct rr_kvcheck_limits *limits;
    struct sop *ops;
    uint32_t n;
    int32_t *next; /* nodes: 2i = call of op i, 2i + 1 = its return, 2n = head */
    int32_t *prev;
    uint64_t *bits;
    uint64_t *zobrist;
    struct frame *stack;
    uint32_t depth;
    uint32_t lo; /* lowest op not linearized */
    uint32_t hi; /* highest linearized op + 1 */
    uint64_t set_hash;
    struct memo_entry *memo;
    uint64_t memo_count;
    uint64_t memo_slots; /* a power of two */
    uint64_t *arena;
    uint64_t arena_used;
    uint64_t arena_cap;
    uint64_t steps;
    struct explain ex;
};

static uint64_t memory_bytes(const struct search *s)
{
    return s->memo_slots * sizeof *s->memo + s->arena_cap * sizeof *s->arena;
}

static int memo_grow(struct search *s)
{
    uint64_t slots = s->memo_slots ? s->memo_slots * 2 : 4096;
    if (memory_bytes(s) + slots * sizeof *s->memo > s->limits->memory_bytes_max)
        return -ENOBUFS;
    struct memo_entry *m = calloc(slots, sizeof *m);
    if (!m)
        return -ENOMEM;
    for (uint64_t i = 0; i < s->memo_slots; i++) {
        if (!s->memo[i].used)
            continue;
        uint64_t j = s->memo[i].hash & (slots - 1);
        while (m[j].used)
            j = (j + 1) & (slots - 1);
        m[j] = s->memo[i];
    }
    free(s->memo);
    s->memo = m;
    s->memo_slots = slots;
    return 0;
}

static int arena_reserve(struct search *s, uint64_t words)
{
    if (s->arena_used + words <= s->arena_cap)
        return 0;
    uint64_t cap = s->arena_cap ? s->arena_cap * 2 : 1 << 16;
    while (cap < s->arena_used + words)
        cap *= 2;
    if (memory_bytes(s) + (cap - s->arena_cap) * sizeof *s->arena > s->limits->memory_bytes_max)
        return -ENOBUFS;
    uint64_t *a = realloc(s->arena, cap * sizeof *a);
    if (!a)
        return -ENOMEM;
    s->arena = a;
    s->arena_cap = cap;
    return 0;
}

/* Memoizes (linearized set, state). The set is all ops below lo plus the bits of the
 * words from lo's to hi's, so an entry costs the window, not the whole key.
 * Returns 1 when new, 0 when seen before, -ENOBUFS over the memory limit, -ENOMEM. */
static int memo_insert(struct search *s, uint32_t lo, uint32_t hi, uint32_t state, uint64_t hash)
{
    if ((s->memo_count + 1) * 2 > s->memo_slots) {
        int rc = memo_grow(s);
        if (rc)
            return rc;
    }
    uint32_t w0 = lo / 64;
    uint32_t words = hi > lo ? (hi - 1) / 64 - w0 + 1 : 0;
    const uint64_t *bits = s->bits + w0;
    uint64_t j = hash & (s->memo_slots - 1);
    for (; s->memo[j].used; j = (j + 1) & (s->memo_slots - 1)) {
        const struct memo_entry *e = &s->memo[j];
        if (e->hash == hash && e->lo == lo && e->state == state && e->words_count == words &&
            (words == 0 || memcmp(s->arena + e->words_at, bits, words * sizeof *bits) == 0))
            return 0;
    }
    int rc = arena_reserve(s, words);
    if (rc)
        return rc;
    if (words > 0) /* the arena is still NULL before the first window */
        memcpy(s->arena + s->arena_used, bits, words * sizeof *bits);
    s->memo[j] = (struct memo_entry){.hash = hash,
                                     .words_at = s->arena_used,
                                     .lo = lo,
                                     .state = state,
                                     .words_count = words,
                                     .used = 1};
    s->arena_used += words;
    s->memo_count++;
    return 1;
}

static bool bit_get(const struct search *s, uint32_t i)
{
    return (s->bits[i / 64] >> (i % 64)) & 1u;
}

static void bit_flip(struct search *s, uint32_t i)
{
    s->bits[i / 64] ^= 1ull << (i % 64);
    s->set_hash ^= s->zobrist[i];
}

/* Dancing links: an op leaves the event list when linearized and comes back, in reverse
 * order, when the search backtracks over it. */
static void lift(struct search *s, uint32_t i)
{
    for (int32_t node = (int32_t)(2 * i); node <= (int32_t)(2 * i + 1); node++) {
        s->next[s->prev[node]] = s->next[node];
        s->prev[s->next[node]] = s->prev[node];
    }
}

static void unlift(struct search *s, uint32_t i)
{
    for (int32_t node = (int32_t)(2 * i + 1); node >= (int32_t)(2 * i); node--) {
        s->next[s->prev[node]] = node;
        s->prev[s->next[node]] = node;
    }
}

/* The register: a put always applies, a get applies when it read the current value. */
static bool model_step(const struct sop *op, uint32_t state, uint32_t *next_state)
{
    if (op->kind == OP_PUT) {
        *next_state = op->value;
        return true;
    }
    *next_state = state;
    return op->value == state;
}

static uint32_t low_after(const struct search *s, uint32_t lo)
{
    while (lo < s->n && bit_get(s, lo))
        lo++;
    return lo;
}

/* Tries op i from `state`. Returns 1 when it was linearized (and pushed), 0 when the model
 * refuses it or the resulting state was explored before, < 0 on limits. */
static int try_linearize(struct search *s, uint32_t i, uint32_t *state)
{
    uint32_t next_state;
    if (!model_step(&s->ops[i], *state, &next_state))
        return 0;
    bit_flip(s, i);
    uint32_t lo = i == s->lo ? low_after(s, s->lo) : s->lo;
    uint32_t hi = i + 1 > s->hi ? i + 1 : s->hi;
    int rc = memo_insert(s, lo, hi, next_state, s->set_hash ^ mix64(next_state));
    if (rc <= 0) {
        bit_flip(s, i);
        return rc;
    }
    s->stack[s->depth++] = (struct frame){.op = i, .state = *state, .lo = s->lo, .hi = s->hi};
    s->lo = lo;
    s->hi = hi;
    *state = next_state;
    lift(s, i);
    return 1;
}

/* Pops the last linearized op; returns it. */
static uint32_t backtrack(struct search *s, uint32_t *state)
{
    struct frame f = s->stack[--s->depth];
    bit_flip(s, f.op);
    s->lo = f.lo;
    s->hi = f.hi;
    *state = f.state;
    unlift(s, f.op);
    return f.op;
}

/* A dead end: op `blocking` returns before anything else could be linearized. Keeps the
 * deepest one as the explanation. */
static void note_dead_end(struct search *s, uint32_t state, uint32_t blocking)
{
    if (s->ex.tried_total && s->depth <= s->ex.depth)
        return;
    int32_t head = (int32_t)(2 * s->n);
    s->ex.depth = s->depth;
    s->ex.state = state;
    s->ex.last = s->depth ? s->stack[s->depth - 1].op : NONE;
    s->ex.blocking = blocking;
    s->ex.tried_count = 0;
    s->ex.tried_total = 0;
    for (int32_t node = s->next[head]; node != (int32_t)(2 * blocking + 1); node = s->next[node]) {
        if (node % 2 != 0)
            continue;
        if (s->ex.tried_count < EXPLAIN_OPS_MAX)
            s->ex.tried[s->ex.tried_count++] = (uint32_t)node / 2;
        s->ex.tried_total++;
    }
}

static int search_run(struct search *s)
{
    int32_t head = (int32_t)(2 * s->n);
    uint32_t state = VALUE_NULL;
    int32_t node = s->next[head];
    while (s->next[head] != head) {
        if (++s->steps > s->limits->steps_max)
            return RR_KVCHECK_UNDECIDED;
        if (node % 2 == 0) {
            int rc = try_linearize(s, (uint32_t)node / 2, &state);
            if (rc == -ENOMEM)
                return rc;
            if (rc < 0)
                return RR_KVCHECK_UNDECIDED;
            node = rc ? s->next[head] : s->next[node];
            continue;
        }
        note_dead_end(s, state, (uint32_t)node / 2);
        if (s->depth == 0)
            return RR_KVCHECK_VIOLATION;
        node = s->next[2 * backtrack(s, &state)];
    }
    return RR_KVCHECK_LINEARIZABLE;
}

struct event {
    uint64_t at_ns;
    int32_t node;
};

/* Calls before returns at equal times: such ops count as concurrent, the lenient reading
 * of a clock that could not tell them apart. */
static int cmp_event(const void *a, const void *b)
{
    const struct event *x = a, *y = b;
    if (x->at_ns != y->at_ns)
        return x->at_ns < y->at_ns ? -1 : 1;
    if ((x->node & 1) != (y->node & 1))
        return (x->node & 1) ? 1 : -1;
    return x->node < y->node ? -1 : (x->node > y->node);
}

static int search_init(struct search *s, struct sop *ops, uint32_t n,
                       const struct rr_kvcheck_limits *limits)
{
    memset(s, 0, sizeof *s);
    s->limits = limits;
    s->ops = ops;
    s->n = n;
    size_t words = (size_t)n / 64 + 1;
    s->next = malloc((2 * (size_t)n + 1) * sizeof *s->next);
    s->prev = malloc((2 * (size_t)n + 1) * sizeof *s->prev);
    s->bits = calloc(words, sizeof *s->bits);
    s->zobrist = malloc(((size_t)n + 1) * sizeof *s->zobrist);
    s->stack = malloc(((size_t)n + 1) * sizeof *s->stack);
    struct event *ev = malloc((2 * (size_t)n + 1) * sizeof *ev);
    if (!s->next || !s->prev || !s->bits || !s->zobrist || !s->stack || !ev) {
        free(ev);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++) {
        ev[2 * i] = (struct event){.at_ns = ops[i].call_ns, .node = (int32_t)(2 * i)};
        ev[2 * i + 1] = (struct event){.at_ns = ops[i].ret_ns, .node = (int32_t)(2 * i + 1)};
        s->zobrist[i] = mix64(0xC0FFEEull + i);
    }
    qsort(ev, 2 * (size_t)n, sizeof *ev, cmp_event);
    int32_t head = (int32_t)(2 * n), last = head;
    for (uint32_t k = 0; k < 2 * n; k++) {
        s->next[last] = ev[k].node;
        s->prev[ev[k].node] = last;
        last = ev[k].node;
    }
    s->next[last] = head;
    s->prev[head] = last;
    free(ev);
    return 0;
}

static void search_free(struct search *s)
{
    free(s->next);
    free(s->prev);
    free(s->bits);
    free(s->zobrist);
    free(s->stack);
    free(s->memo);
    free(s->arena);
}

/* ---- per-key driver and explanations ---- */

static const char *value_text(const struct history *h, uint32_t value)
{
    return value == VALUE_NULL ? NULL : h->values.strs[value];
}

static void print_op(FILE *out, const struct history *h, uint32_t opi, const char *prefix)
{
    const struct op *op = &h->ops[opi];
    const char *v = value_text(h, op->value);
    static const char *const status[] = {"ok", "timeout", "error"};
    report(out, "%sline %u: client %u %s %s%s%s [%s, call %" PRIu64 ", ret %" PRIu64 "]\n", prefix,
           op->line, op->client, op->kind == OP_PUT ? "put" : "get ->", v ? "\"" : "",
           v ? v : "null", v ? "\"" : "", status[op->status], op->call_ns, op->ret_ns);
}

static void explain_violation(FILE *out, const struct history *h, const struct search *s,
                              const char *key)
{
    const struct explain *ex = &s->ex;
    const char *v = value_text(h, ex->state);
    report(out,
           "key \"%s\": not linearizable: after %u of %u operations, with value %s%s%s, no "
           "operation can take effect next.\n",
           key, ex->depth, s->n, v ? "\"" : "", v ? v : "null", v ? "\"" : "");
    if (ex->last != NONE)
        print_op(out, h, s->ops[ex->last].op, "  last ordered:  ");
    print_op(out, h, s->ops[ex->blocking].op, "  must be next:  ");
    report(out, "  candidates (%u, each tried and refused or leading to a dead end):\n",
           ex->tried_total);
    for (uint32_t k = 0; k < ex->tried_count; k++)
        print_op(out, h, s->ops[ex->tried[k]].op, "    ");
}

/* Reads that name no possible write cannot be ordered at all; say so directly. Returns
 * true when the key is already refuted. */
static bool refute_reads(const struct history *h, const uint32_t *ops, uint32_t n, FILE *out)
{
    for (uint32_t k = 0; k < n; k++) {
        const struct op *g = &h->ops[ops[k]];
        if (g->kind != OP_GET || g->status != ST_OK || g->value == VALUE_NULL)
            continue;
        uint32_t w = h->value_writer[g->value];
        const char *why = NULL;
        if (w == NONE)
            why = "no put wrote it";
        else if (h->ops[w].key != g->key)
            why = "it was written to another key";
        else if (h->ops[w].status == ST_ERROR)
            why = "its put failed with status error";
        if (!why)
            continue;
        report(out, "key \"%s\": not linearizable: a read returns \"%s\", but %s.\n",
               h->keys.strs[g->key], h->values.strs[g->value], why);
        print_op(out, h, ops[k], "  ");
        if (w != NONE)
            print_op(out, h, w, "  ");
        return true;
    }
    return false;
}

/* Builds the searched ops of one key (see the pruning at the top). `first_read` maps a
 * value to its earliest reader's return; it is indexed by value id. */
static uint32_t build_sops(const struct history *h, const uint32_t *ops, uint32_t n,
                           uint64_t *first_read, struct sop *out)
{
    for (uint32_t k = 0; k < n; k++) {
        const struct op *g = &h->ops[ops[k]];
        if (g->kind == OP_GET && g->status == ST_OK && g->value != VALUE_NULL &&
            g->ret_ns < first_read[g->value])
            first_read[g->value] = g->ret_ns;
    }
    uint32_t m = 0;
    for (uint32_t k = 0; k < n; k++) {
        const struct op *o = &h->ops[ops[k]];
        if (o->status == ST_ERROR || (o->kind == OP_GET && o->status == ST_TIMEOUT))
            continue;
        uint64_t ret = o->ret_ns;
        if (o->kind == OP_PUT && o->status == ST_TIMEOUT) {
            ret = first_read[o->value];
            if (ret == UINT64_MAX)
                continue;
            if (ret < o->call_ns)
                ret = o->call_ns; /* read before the call: the search refutes it */
        }
        out[m++] = (struct sop){
            .call_ns = o->call_ns, .ret_ns = ret, .value = o->value, .op = ops[k], .kind = o->kind};
    }
    return m;
}

static int check_key(const struct history *h, const uint32_t *ops, uint32_t n,
                     const struct rr_kvcheck_limits *limits, uint64_t *first_read,
                     struct rr_kvcheck_stats *st, FILE *out)
{
    const char *key = h->keys.strs[h->ops[ops[0]].key];
    if (refute_reads(h, ops, n, out))
        return RR_KVCHECK_VIOLATION;
    struct sop *sops = malloc(((size_t)n + 1) * sizeof *sops);
    if (!sops)
        return -ENOMEM;
    uint32_t m = build_sops(h, ops, n, first_read, sops);
    struct search s;
    int rc = search_init(&s, sops, m, limits);
    if (rc == 0)
        rc = search_run(&s);
    st->searched_count += m;
    st->steps_count += s.steps;
    st->states_count += s.memo_count;
    if (rc == RR_KVCHECK_VIOLATION)
        explain_violation(out, h, &s, key);
    if (rc == RR_KVCHECK_UNDECIDED)
        report(out,
               "key \"%s\": undecided: search limit reached (%" PRIu64 " steps, %" PRIu64
               " states, %" PRIu64 " MiB) over %u operations\n",
               key, s.steps, s.memo_count, memory_bytes(&s) >> 20, m);
    search_free(&s);
    free(sops);
    return rc;
}

static int check_keys(const struct history *h, uint32_t *order,
                      const struct rr_kvcheck_limits *limits, struct rr_kvcheck_stats *st,
                      FILE *out)
{
    uint64_t *first_read = malloc(((size_t)h->values.count + 1) * sizeof *first_read);
    if (!first_read)
        return -ENOMEM;
    for (uint32_t v = 0; v <= h->values.count; v++)
        first_read[v] = UINT64_MAX;
    sort_ops = h->ops;
    qsort(order, h->ops_count, sizeof *order, cmp_by_key);
    int result = RR_KVCHECK_LINEARIZABLE;
    for (uint32_t start = 0, end; start < h->ops_count; start = end) {
        for (end = start; end < h->ops_count && h->ops[order[end]].key == h->ops[order[start]].key;
             end++)
            ;
        int rc = check_key(h, order + start, end - start, limits, first_read, st, out);
        if (rc < 0) {
            result = rc;
            break;
        }
        st->violations_count += rc == RR_KVCHECK_VIOLATION;
        st->undecided_count += rc == RR_KVCHECK_UNDECIDED;
        if (rc == RR_KVCHECK_VIOLATION || (rc == RR_KVCHECK_UNDECIDED && result == 0))
            result = rc;
    }
    free(first_read);
    return result;
}

void rr_kvcheck_limits_default(struct rr_kvcheck_limits *limits)
{
    limits->steps_max = 100u * 1000 * 1000;
    limits->memory_bytes_max = 1ull << 30;
}

int rr_kvcheck_file(FILE *in, const struct rr_kvcheck_limits *limits,
                    struct rr_kvcheck_stats *stats, FILE *out)
{
    struct rr_kvcheck_stats st;
    struct history h;
    memset(&st, 0, sizeof st);
    memset(&h, 0, sizeof h);
    int rc = read_history(in, &h, out);
    uint32_t *order = NULL;
    if (rc == 0) {
        order = malloc(((size_t)h.ops_count + 1) * sizeof *order);
        rc = order ? check_clients(&h, order, out) : -ENOMEM;
    }
    if (rc == 0)
        rc = check_keys(&h, order, limits, &st, out);
    else if (rc == -EINVAL || rc == -EIO)
        rc = RR_KVCHECK_MALFORMED;
    st.ops_count = h.ops_count;
    st.keys_count = h.keys.count;
    if (stats)
        *stats = st;
    free(order);
    history_free(&h);
    return rc;
}
