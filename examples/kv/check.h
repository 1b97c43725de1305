/* check.h: linearizability checker for rrkv client histories (/work/shared/HISTORY.md).
 *
 * The history is JSON Lines, one client operation per line, lines in any order. The model
 * is a register per key (put overwrites, get returns the value or null when absent), so
 * the history is checked key by key. Per key the search is Wing & Gong's with Lowe's
 * refinements, as in Porcupine: operations in call order, only minimal operations (whose
 * call precedes the return of every operation not yet linearized) are tried next, and the
 * pair (set of linearized operations, register value) is memoized so that no state is
 * explored twice.
 *
 * Statuses: an `ok` operation happened within its interval; an `error` operation did not
 * happen; a `timeout` put may have happened at any time after its call, or never; a
 * `timeout` get returned nothing and is ignored. Put values must be unique (the checker
 * relies on a read naming its write).
 *
 * Bounded: the search of one key stops after `steps_max` steps or when its memo table and
 * bitsets would exceed `memory_bytes_max`; the key is then undecided (never a pass).
 *
 * Single-threaded; no global state. Everything allocated by a call is freed before it
 * returns.
 */
#ifndef RRKV_CHECK_H
#define RRKV_CHECK_H

#include <stdint.h>
#include <stdio.h>

/* Results, equal to the exit codes of HISTORY.md. */
enum rr_kvcheck_result {
    RR_KVCHECK_LINEARIZABLE = 0,
    RR_KVCHECK_VIOLATION = 1,
    RR_KVCHECK_UNDECIDED = 2,
    RR_KVCHECK_MALFORMED = 3,
};

struct rr_kvcheck_limits {
    uint64_t steps_max;        /* search steps per key */
    uint64_t memory_bytes_max; /* memo table and bitsets, per key */
};

struct rr_kvcheck_stats {
    uint64_t ops_count;      /* lines read */
    uint64_t keys_count;     /* distinct keys */
    uint64_t searched_count; /* operations that entered a search (after pruning) */
    uint64_t steps_count;    /* search steps, all keys */
    uint64_t states_count;   /* memoized states, all keys */
    uint64_t violations_count;
    uint64_t undecided_count;
};

/* Defaults: 100 M steps and 1 GiB per key. */
void rr_kvcheck_limits_default(struct rr_kvcheck_limits *limits);

/* Reads the whole history from `in` and judges it. `out` receives the explanation of each
 * violation (the key and the operations that cannot be ordered), of each undecided key,
 * and of malformed input (with the line number); it may be NULL. `stats` may be NULL.
 * Returns an rr_kvcheck_result (a violation anywhere wins over undecided), or -ENOMEM. */
int rr_kvcheck_file(FILE *in, const struct rr_kvcheck_limits *limits,
                    struct rr_kvcheck_stats *stats, FILE *out);

#endif /* RRKV_CHECK_H */
