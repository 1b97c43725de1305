/*
 * datadriven.c: reading etcd's datadriven transcripts (github.com/cockroachdb/datadriven
 * semantics), running their cases through a kind's handler, and comparing the output.
 *
 * File format, as datadriven's reader has it:
 * - A directive line `cmd key key=val key=(a, b)`; leading and trailing white space is
 *   ignored; a line ending in `\` continues on the next one. Lines starting with `#` and
 *   blank lines between cases are skipped.
 * - Input lines up to a line that is exactly `----`; the input is their text, trimmed.
 * - Expected output: the lines up to the first blank line, or, when the `----` is doubled,
 *   everything up to the next doubled `----` (blank lines allowed).
 * Values in `key=(a, b)` are split at top-level commas (parentheses nest), the text after
 * each comma trimmed. Output is compared line by line after dropping log lines (first word
 * DEBUG, INFO, WARN, ERROR, FATAL or PANIC) from both sides; an output that is just `ok`
 * after that counts as empty, since etcd answers `ok` exactly when a command printed
 * nothing, log lines included.
 */
#include "datadriven.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bounds on what the runner reads and compares. */
#define FILE_BYTES_MAX     (64u << 20)
#define DIFF_CELLS_MAX     (4u << 20) /* LCS table entries; beyond, print both sides */
#define DIFF_CONTEXT_LINES 3

/* ---- output buffers ------------------------------------------------------------------ */

static void out_reserve(rr_dd_out *out, size_t extra)
{
    size_t need = out->len + extra + 1; /* always room for the terminating NUL */
    if (need <= out->cap)
        return;
    size_t cap = out->cap > 0 ? out->cap : 256;
    while (cap < need)
        cap *= 2;
    char *buf = realloc(out->buf, cap);
    if (buf == NULL) {
        fprintf(stderr, "rr-conformance: out of memory\n");
        abort();
    }
    out->buf = buf;
    out->cap = cap;
}

static void out_write(rr_dd_out *out, const char *s, size_t len)
{
    out_reserve(out, len);
    memcpy(out->buf + out->len, s, len);
    out->len += len;
    out->buf[out->len] = '\0';
}

void rr_dd_puts(rr_dd_out *out, const char *s)
{
    out_write(out, s, strlen(s));
}

void rr_dd_printf(rr_dd_out *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(small)) {
        out_write(out, small, (size_t)n);
        return;
    }
    out_reserve(out, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(out->buf + out->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    out->len += (size_t)n;
}

static void out_reset(rr_dd_out *out)
{
    out->len = 0;
    if (out->buf != NULL)
        out->buf[0] = '\0';
}

static void out_free(rr_dd_out *out)
{
    free(out->buf);
    *out = (rr_dd_out){0};
}

/* ---- argument helpers ------------------------------------------------------------------- */

const rr_dd_arg *rr_dd_find(const rr_dd_cmd *cmd, const char *key)
{
    for (uint32_t i = 0; i < cmd->n_args; i++) {
        if (strcmp(cmd->args[i].key, key) == 0)
            return &cmd->args[i];
    }
    return NULL;
}

/* As Go's strconv.ParseUint(s, 10, 64): decimal digits only, no sign, no overflow. */
int rr_dd_parse_u64(const char *s, uint64_t *v)
{
    if (s == NULL || *s == '\0')
        return -1;
    uint64_t x = 0;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        uint64_t d = (uint64_t)(*s - '0');
        if (x > (UINT64_MAX - d) / 10)
            return -1;
        x = x * 10 + d;
    }
    *v = x;
    return 0;
}

/* ---- directive lines ------------------------------------------------------------------- */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Trims s[0..*len) in place (returns the new start, updates *len). */
static const char *trim(const char *s, size_t *len)
{
    size_t n = *len;
    while (n > 0 && is_space(*s))
        s++, n--;
    while (n > 0 && is_space(s[n - 1]))
        n--;
    *len = n;
    return s;
}

static int copy_token(char dst[RR_DD_TOKEN_MAX], const char *src, size_t len, char *err,
                      size_t err_len)
{
    if (len >= RR_DD_TOKEN_MAX) {
        snprintf(err, err_len, "token longer than %d bytes: %.*s", RR_DD_TOKEN_MAX - 1,
                 (int)(len > 40 ? 40 : len), src);
        return -1;
    }
    memcpy(dst, src, len);
    dst[len] = '\0';
    return 0;
}

/* Index of the first byte of s[0..len) in chars, or len. */
static size_t until(const char *s, size_t len, const char *chars)
{
    size_t i = 0;
    while (i < len && strchr(chars, s[i]) == NULL)
        i++;
    return i;
}

/* Scans one value of a parenthesized list: up to a top-level ',' or ')'. Returns its
 * length, or -1 when the list is not closed. */
static long scan_list_value(const char *s, size_t len)
{
    size_t pos = 0;
    while (pos < len && s[pos] != ')' && s[pos] != ',') {
        if (s[pos++] != '(')
            continue;
        for (unsigned depth = 1; depth > 0;) {
            if (pos >= len)
                return -1;
            char c = s[pos++];
            if (c == ')')
                depth--;
            else if (c == '(')
                depth++;
        }
    }
    return pos < len ? (long)pos : -1;
}

static int add_value(rr_dd_arg *arg, const char *s, size_t len, char *err, size_t err_len)
{
    if (arg->n_vals >= RR_DD_VALS_MAX) {
        snprintf(err, err_len, "more than %d values for %s", RR_DD_VALS_MAX, arg->key);
        return -1;
    }
    return copy_token(arg->vals[arg->n_vals++], s, len, err, err_len);
}

/*
 * Parses a directive line as datadriven.ParseLine. Returns 0 (cmd->name is "" for a blank
 * line) or -1 with a message in err. cmd->file, line and input are left alone.
 */
int rr_dd_parse_line(const char *line_in, rr_dd_cmd *cmd, char *err, size_t err_len)
{
    size_t len = strlen(line_in);
    const char *line = trim(line_in, &len);
    const char *orig = line;
    cmd->name[0] = '\0';
    cmd->n_args = 0;
    if (len == 0)
        return 0;

    size_t n = until(line, len, " ");
    if (copy_token(cmd->name, line, n, err, err_len) != 0)
        return -1;
    line += n, len -= n;
    line = trim(line, &len);

    while (len > 0) {
        if (cmd->n_args >= RR_DD_ARGS_MAX) {
            snprintf(err, err_len, "more than %d arguments", RR_DD_ARGS_MAX);
            return -1;
        }
        rr_dd_arg *arg = &cmd->args[cmd->n_args];
        arg->n_vals = 0;
        n = until(line, len, " =");
        if (n == 0)
            goto bad;
        if (copy_token(arg->key, line, n, err, err_len) != 0)
            return -1;
        line += n, len -= n;
        if (len > 0 && line[0] == '=') {
            line++, len--;
            if (len == 0 || line[0] == ' ') {
                if (add_value(arg, "", 0, err, err_len) != 0) /* key= : one empty value */
                    return -1;
            } else if (line[0] != '(') {
                n = until(line, len, " ");
                if (add_value(arg, line, n, err, err_len) != 0)
                    return -1;
                line += n, len -= n;
            } else {
                line++, len--;
                for (bool done = false; !done;) {
                    long pos = scan_list_value(line, len);
                    if (pos < 0)
                        goto bad;
                    done = line[pos] == ')';
                    if (add_value(arg, line, (size_t)pos, err, err_len) != 0)
                        return -1;
                    line += pos + 1, len -= (size_t)pos + 1;
                    line = trim(line, &len);
                }
            }
        }
        cmd->n_args++;
        line = trim(line, &len);
    }
    return 0;
bad:
    snprintf(err, err_len, "cannot parse directive at column %zu: %s", (size_t)(line - orig) + 1,
             orig);
    return -1;
}

/* ---- transcript files ------------------------------------------------------------------ */

typedef struct dd_reader {
    const char *path;
    char *text;   /* owned: the file, lines NUL-terminated in place */
    char **lines; /* owned: lines[i] is line i + 1, without '\n' or a trailing '\r' */
    size_t n_lines;
    size_t next; /* index of the next line to scan */
} dd_reader;

typedef struct dd_case {
    int line; /* of the directive */
    rr_dd_out directive;
    rr_dd_out input;
    rr_dd_out expected;
} dd_case;

static int reader_open(dd_reader *r, const char *path)
{
    *r = (dd_reader){.path = path};
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, len = 0;
    char *text = malloc(cap);
    while (text != NULL) {
        len += fread(text + len, 1, cap - len - 1, f);
        if (len < cap - 1 || cap >= FILE_BYTES_MAX)
            break;
        char *bigger = realloc(text, cap * 2);
        if (bigger == NULL)
            free(text);
        text = bigger, cap *= 2;
    }
    bool failed = text == NULL || ferror(f) || len >= FILE_BYTES_MAX - 1;
    fclose(f);
    if (failed) {
        fprintf(stderr, "%s: cannot read (or larger than %u bytes)\n", path, FILE_BYTES_MAX);
        free(text);
        return -1;
    }
    text[len] = '\0';

    size_t n_lines = 0;
    for (size_t i = 0; i < len; i++)
        n_lines += text[i] == '\n';
    n_lines += len > 0 && text[len - 1] != '\n';
    r->lines = calloc(n_lines + 1, sizeof(*r->lines));
    if (r->lines == NULL) {
        free(text);
        return -1;
    }
    char *p = text;
    for (size_t i = 0; i < n_lines; i++) {
        r->lines[i] = p;
        char *nl = strchr(p, '\n');
        char *end = nl != NULL ? nl : p + strlen(p);
        if (end > p && end[-1] == '\r')
            end[-1] = '\0';
        *end = '\0';
        p = nl != NULL ? nl + 1 : end;
    }
    r->text = text;
    r->n_lines = n_lines;
    return 0;
}

static void reader_close(dd_reader *r)
{
    free(r->lines);
    free(r->text);
    *r = (dd_reader){0};
}

static bool blank(const char *s)
{
    size_t len = strlen(s);
    trim(s, &len);
    return len == 0;
}

static void read_expected(dd_reader *r, rr_dd_out *expected)
{
    if (r->next >= r->n_lines)
        return;
    const char *line = r->lines[r->next++];
    if (strcmp(line, "----") != 0) {
        /* Plain block: up to the first blank line. */
        while (!blank(line)) {
            rr_dd_puts(expected, line);
            rr_dd_puts(expected, "\n");
            if (r->next >= r->n_lines)
                break;
            line = r->lines[r->next++];
        }
        return;
    }
    /* Fenced block: up to a doubled "----". */
    while (r->next < r->n_lines) {
        line = r->lines[r->next++];
        if (strcmp(line, "----") == 0 && r->next < r->n_lines) {
            const char *line2 = r->lines[r->next++];
            if (strcmp(line2, "----") == 0)
                return;
            rr_dd_printf(expected, "%s\n%s\n", line, line2);
            continue;
        }
        rr_dd_printf(expected, "%s\n", line);
    }
}

/* Reads the next case; returns false at the end of the file. */
static bool next_case(dd_reader *r, dd_case *c)
{
    out_reset(&c->directive);
    out_reset(&c->input);
    out_reset(&c->expected);
    while (r->next < r->n_lines) {
        c->line = (int)(r->next + 1);
        const char *raw = r->lines[r->next++];
        size_t len = strlen(raw);
        const char *line = trim(raw, &len);
        if (len > 0 && line[0] == '#')
            continue;
        out_reset(&c->directive);
        out_write(&c->directive, line, len);
        while (c->directive.len > 0 && c->directive.buf[c->directive.len - 1] == '\\' &&
               r->next < r->n_lines) {
            const char *more = r->lines[r->next++];
            size_t more_len = strlen(more);
            more = trim(more, &more_len);
            c->directive.buf[--c->directive.len] = '\0';
            rr_dd_puts(&c->directive, " ");
            out_write(&c->directive, more, more_len);
        }
        size_t dlen = c->directive.len;
        trim(c->directive.buf, &dlen);
        if (dlen == 0)
            continue;

        rr_dd_out input = {0};
        bool separator = false;
        while (r->next < r->n_lines) {
            const char *in = r->lines[r->next++];
            if (strcmp(in, "----") == 0) {
                separator = true;
                break;
            }
            rr_dd_printf(&input, "%s\n", in);
        }
        if (input.len > 0) {
            size_t ilen = input.len;
            const char *in = trim(input.buf, &ilen);
            out_write(&c->input, in, ilen);
        }
        out_free(&input);
        if (separator)
            read_expected(r, &c->expected);
        return true;
    }
    return false;
}

/* ---- comparison ------------------------------------------------------------------------ */

typedef struct span {
    const char *s;
    size_t len;
} span;

typedef struct span_vec {
    span *v;
    size_t n;
} span_vec;

static bool is_log_line(const char *s, size_t len)
{
    static const char *const levels[] = {"DEBUG", "INFO", "WARN", "ERROR", "FATAL", "PANIC"};
    size_t i = 0;
    while (i < len && (s[i] == ' ' || s[i] == '\t'))
        i++;
    size_t w = i;
    while (w < len && s[w] != ' ')
        w++;
    for (size_t k = 0; k < sizeof(levels) / sizeof(levels[0]); k++) {
        if (w - i == strlen(levels[k]) && memcmp(s + i, levels[k], w - i) == 0)
            return true;
    }
    return false;
}

/* Splits text (which ends with '\n' unless empty) into its lines other than log lines;
 * a lone `ok` becomes no line at all. */
static int compared_lines(const char *text, size_t len, span_vec *out)
{
    size_t cap = 1;
    for (size_t i = 0; i < len; i++)
        cap += text[i] == '\n';
    out->v = calloc(cap, sizeof(*out->v));
    out->n = 0;
    if (out->v == NULL)
        return -1;
    size_t start = 0;
    while (start < len) {
        const char *nl = memchr(text + start, '\n', len - start);
        size_t end = nl != NULL ? (size_t)(nl - text) : len;
        if (!is_log_line(text + start, end - start))
            out->v[out->n++] = (span){text + start, end - start};
        start = end + 1;
    }
    if (out->n == 1 && out->v[0].len == 2 && memcmp(out->v[0].s, "ok", 2) == 0)
        out->n = 0;
    return 0;
}

static bool span_eq(span a, span b)
{
    return a.len == b.len && memcmp(a.s, b.s, a.len) == 0;
}

typedef struct diff_op {
    char kind; /* ' ', '-', '+' */
    size_t a;  /* index in a (for ' ' and '-'), else the position in a */
    size_t b;
} diff_op;

static void print_hunk(const diff_op *ops, size_t from, size_t to, const span_vec *a,
                       const span_vec *b)
{
    size_t na = 0, nb = 0;
    for (size_t k = from; k < to; k++) {
        na += ops[k].kind != '+';
        nb += ops[k].kind != '-';
    }
    printf("@@ -%zu,%zu +%zu,%zu @@\n", na > 0 ? ops[from].a + 1 : ops[from].a, na,
           nb > 0 ? ops[from].b + 1 : ops[from].b, nb);
    for (size_t k = from; k < to; k++) {
        span s = ops[k].kind == '+' ? b->v[ops[k].b] : a->v[ops[k].a];
        printf("%c%.*s\n", ops[k].kind, (int)s.len, s.s);
    }
}

/* Unified diff of a (expected) against b (actual), from a longest common subsequence. */
static void print_diff(const span_vec *a, const span_vec *b)
{
    size_t na = a->n, nb = b->n;
    size_t cells = (na + 1) * (nb + 1);
    uint32_t *lcs = cells <= DIFF_CELLS_MAX ? calloc(cells, sizeof(*lcs)) : NULL;
    diff_op *ops = calloc(na + nb + 1, sizeof(*ops));
    if (lcs == NULL || ops == NULL) {
        /* Too big to align: show both sides whole. */
        diff_op *all = ops;
        if (all != NULL) {
            for (size_t i = 0; i < na; i++)
                all[i] = (diff_op){'-', i, 0};
            for (size_t j = 0; j < nb; j++)
                all[na + j] = (diff_op){'+', na, j};
            print_hunk(all, 0, na + nb, a, b);
        }
        free(lcs);
        free(ops);
        return;
    }
#define LCS(i, j) lcs[(i) * (nb + 1) + (j)]
    for (size_t i = na; i-- > 0;) {
        for (size_t j = nb; j-- > 0;) {
            if (span_eq(a->v[i], b->v[j]))
                LCS(i, j) = LCS(i + 1, j + 1) + 1;
            else
                LCS(i, j) = LCS(i + 1, j) >= LCS(i, j + 1) ? LCS(i + 1, j) : LCS(i, j + 1);
        }
    }
    size_t n_ops = 0, i = 0, j = 0;
    while (i < na || j < nb) {
        if (i < na && j < nb && span_eq(a->v[i], b->v[j]))
            ops[n_ops++] = (diff_op){' ', i++, j++};
        else if (i < na && (j == nb || LCS(i + 1, j) >= LCS(i, j + 1)))
            ops[n_ops++] = (diff_op){'-', i++, j};
        else
            ops[n_ops++] = (diff_op){'+', i, j++};
    }
#undef LCS
    size_t k = 0;
    while (k < n_ops) {
        if (ops[k].kind == ' ') {
            k++;
            continue;
        }
        size_t start = k >= DIFF_CONTEXT_LINES ? k - DIFF_CONTEXT_LINES : 0;
        size_t last = k;
        for (size_t m = k + 1; m < n_ops; m++) {
            if (ops[m].kind == ' ')
                continue;
            if (m - last - 1 > 2 * DIFF_CONTEXT_LINES)
                break;
            last = m;
        }
        size_t end = last + 1 + DIFF_CONTEXT_LINES;
        if (end > n_ops)
            end = n_ops;
        print_hunk(ops, start, end, a, b);
        k = end;
    }
    free(lcs);
    free(ops);
}

/* Compares a case's output with its expected output; prints the diff on mismatch.
 * Returns 1 if they match, 0 if not. */
static int compare_case(const char *path, const dd_case *c, const rr_dd_out *actual)
{
    span_vec a = {0}, b = {0};
    if (compared_lines(c->expected.buf != NULL ? c->expected.buf : "", c->expected.len, &a) != 0 ||
        compared_lines(actual->buf, actual->len, &b) != 0) {
        fprintf(stderr, "rr-conformance: out of memory\n");
        abort();
    }
    bool same = a.n == b.n;
    for (size_t i = 0; same && i < a.n; i++)
        same = span_eq(a.v[i], b.v[i]);
    if (!same) {
        /* Hunk line numbers count compared lines: log lines are left out. */
        printf("--- %s:%d expected: %s\n", path, c->line, c->directive.buf);
        printf("+++ %s:%d actual (log lines left out of both)\n", path, c->line);
        print_diff(&a, &b);
    }
    free(a.v);
    free(b.v);
    return same;
}

/* ---- running a file --------------------------------------------------------------------- */

/* Checks that every directive of the file parses, before anything runs. */
static int validate_file(dd_reader *r, dd_case *c, rr_dd_cmd *cmd, size_t *n_cases)
{
    char err[256];
    *n_cases = 0;
    while (next_case(r, c)) {
        if (rr_dd_parse_line(c->directive.buf, cmd, err, sizeof(err)) != 0) {
            fprintf(stderr, "%s:%d: %s\n", r->path, c->line, err);
            return -1;
        }
        ++*n_cases;
    }
    r->next = 0;
    return 0;
}

static void print_verbose(const char *path, const dd_case *c, const rr_dd_out *actual, int rc)
{
    printf("=== %s:%d: %s\n", path, c->line, c->directive.buf);
    if (c->input.len > 0)
        printf("%s\n", c->input.buf);
    printf("----\n%s", actual->buf);
    if (rc != 0)
        printf("(handler reported a harness error)\n");
}

/*
 * Runs every case of the transcript at path with a fresh env of kind. Prints a diff per
 * differing case and a summary line. Returns 0 (all match), 1 (some differ) or 2 (the
 * file cannot be read or parsed, or the env cannot be created).
 */
int rr_dd_run_file(const char *path, const rr_dd_kind *kind, unsigned flags)
{
    dd_reader r;
    if (reader_open(&r, path) != 0) {
        printf("ERROR %s (unreadable)\n", path);
        return 2;
    }
    int result = 2;
    dd_case c = {0};
    rr_dd_out actual = {0};
    rr_dd_cmd *cmd = calloc(1, sizeof(*cmd)); /* large: keep it off the stack */
    void *env = NULL;
    size_t n_cases = 0, n_failed = 0;
    if (cmd == NULL)
        goto out;
    if (validate_file(&r, &c, cmd, &n_cases) != 0) {
        printf("ERROR %s (parse error)\n", path);
        goto out;
    }
    env = kind->env_new();
    if (env == NULL) {
        printf("ERROR %s (cannot create %s env)\n", path, kind->name);
        goto out;
    }
    char err[256];
    while (next_case(&r, &c)) {
        int prc = rr_dd_parse_line(c.directive.buf, cmd, err, sizeof(err));
        if (prc != 0) /* validated above */
            abort();
        cmd->file = path;
        cmd->line = c.line;
        cmd->input = c.input.buf != NULL ? c.input.buf : "";
        out_reset(&actual);
        int rc = kind->handle(env, cmd, &actual);
        if (actual.len == 0 || actual.buf[actual.len - 1] != '\n')
            rr_dd_puts(&actual, "\n");
        if (flags & RR_DD_VERBOSE)
            print_verbose(path, &c, &actual, rc);
        n_failed += !compare_case(path, &c, &actual);
    }
    if (n_failed == 0) {
        printf("PASS %s (%zu cases)\n", path, n_cases);
        result = 0;
    } else {
        printf("FAIL %s (%zu of %zu cases differ)\n", path, n_failed, n_cases);
        result = 1;
    }
out:
    if (env != NULL)
        kind->env_free(env);
    free(cmd);
    out_free(&actual);
    out_free(&c.directive);
    out_free(&c.input);
    out_free(&c.expected);
    reader_close(&r);
    fflush(stdout);
    return result;
}
