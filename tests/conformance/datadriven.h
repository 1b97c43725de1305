/*
 * datadriven.h: the transcript format of etcd's datadriven tests, as rr-conformance reads
 * it (see ../shared/conformance/README.md), and the interface of command handlers.
 *
 * A test case is a command line `name arg key=value key=(a,b)`, optional input lines, a
 * `----` line, then the expected output (fenced by a doubled `----` when it contains blank
 * lines). The runner parses each case, hands it to the handler of the file's kind, and
 * compares the handler's output with the expected one: strictly, except that lines whose
 * first word is a log level (DEBUG, INFO, WARN, ERROR, PANIC, after leading spaces) are
 * left out of both sides.
 */
#ifndef RR_CONFORMANCE_DATADRIVEN_H
#define RR_CONFORMANCE_DATADRIVEN_H

#include <stddef.h>
#include <stdint.h>

#define RR_DD_ARGS_MAX  32
#define RR_DD_VALS_MAX  64
#define RR_DD_TOKEN_MAX 128

/* One argument: `key` (no values), `key=value` (one value) or `key=(a,b,c)`. */
typedef struct rr_dd_arg {
    char key[RR_DD_TOKEN_MAX];
    uint32_t n_vals;
    char vals[RR_DD_VALS_MAX][RR_DD_TOKEN_MAX];
} rr_dd_arg;

typedef struct rr_dd_cmd {
    const char *file; /* for messages */
    int line;         /* line of the command in file */
    char name[RR_DD_TOKEN_MAX];
    uint32_t n_args;
    rr_dd_arg args[RR_DD_ARGS_MAX];
    const char *input; /* input lines joined with '\n' (no trailing newline), "" if none */
} rr_dd_cmd;

/* Growable output buffer. */
typedef struct rr_dd_out {
    char *buf;
    size_t len;
    size_t cap;
} rr_dd_out;

void rr_dd_printf(rr_dd_out *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rr_dd_puts(rr_dd_out *out, const char *s); /* appends s as is */

/* Argument helpers. Missing arguments return NULL / the default. Malformed values make the
 * handler print an error line and return (the transcript then fails visibly). */
const rr_dd_arg *rr_dd_find(const rr_dd_cmd *cmd, const char *key);
/* Parses an unsigned integer value; returns 0 on success, -1 if malformed. */
int rr_dd_parse_u64(const char *s, uint64_t *v);

/* A kind of transcript: a fresh env per file, a handler per command. The handler writes
 * the output (without the trailing newline convention: the runner normalises a final
 * newline) and returns 0, or -1 on a harness error (printed into out as etcd would). */
typedef struct rr_dd_kind {
    const char *name;
    void *(*env_new)(void);
    void (*env_free)(void *env);
    int (*handle)(void *env, const rr_dd_cmd *cmd, rr_dd_out *out);
} rr_dd_kind;

/* Parses one command line (name and arguments) into cmd. Returns 0, or -1 with a message in
 * err. Input lines of a case may themselves be commands (etcd's harness allows it). */
int rr_dd_parse_line(const char *line, rr_dd_cmd *cmd, char *err, size_t err_len);

#define RR_DD_VERBOSE 1u /* rr_dd_run_file: print every case's output */

/* Runs every case of the transcript at path with a fresh env of kind. Returns 0 when all
 * match, 1 when some differ (a diff per case is printed), 2 when the file is unreadable or
 * malformed. */
int rr_dd_run_file(const char *path, const rr_dd_kind *kind, unsigned flags);

extern const rr_dd_kind rr_dd_kind_quorum; /* quorum/testdata: committed, vote */
extern const rr_dd_kind
    rr_dd_kind_confchange; /* confchange/testdata: simple, enter-joint, leave-joint */
extern const rr_dd_kind rr_dd_kind_interaction; /* testdata: the RawNode interaction env */

#endif
