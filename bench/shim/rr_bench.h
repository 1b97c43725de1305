/*
 * rr_bench.h: a C API over Google Benchmark 1.7.1 (STYLE.md habit 14).
 *
 * Benchmarks are C functions. A file describes each one with a struct rr_bench_def in
 * static storage and hands it to RR_BENCH_REGISTER(), which records it from a constructor
 * before main() runs. rr_bench_main() then registers every recorded definition with Google
 * Benchmark, parses the usual --benchmark_* flags and runs the selected benchmarks. The
 * library owns timing, iteration counts, repetitions, statistics and output formats; this
 * shim only translates calls, so every number means exactly what Google Benchmark says it
 * means.
 *
 * Linking: registration happens in constructors, so benchmark object files must be linked
 * into the executable directly. From a static library the linker would drop any object no
 * other object references, and its benchmarks with it, silently.
 *
 * Threading contract: an rr_bench_state belongs to the thread running the benchmark
 * function it was passed to, and is valid only until that function returns. Every
 * rr_bench_* call that takes a state must be made from that thread; helper threads a
 * benchmark starts must not touch it (pass results back and report them from the benchmark
 * thread). rr_bench_register() and rr_bench_main() are for the main thread, before any
 * benchmark runs (constructors count).
 *
 * Misuse of the API (an argument index out of range, an unknown counter flag, a malformed
 * definition, too many definitions) prints the reason and aborts: a benchmark that reports
 * numbers for the wrong experiment is worse than one that reports none.
 */
#ifndef RINGRAFT_BENCH_RR_BENCH_H
#define RINGRAFT_BENCH_RR_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Limits, checked by rr_bench_register(). */
#define RR_BENCH_DEFS_MAX         64 /* definitions per executable */
#define RR_BENCH_ARGS_PER_SET_MAX 8  /* values in one argument set, like ->Args({...}) */
#define RR_BENCH_ARG_SETS_MAX     64 /* argument sets per definition */

typedef struct rr_bench_state rr_bench_state;
typedef void (*rr_bench_fn)(rr_bench_state *st, void *arg);

/* Options of a definition. */
enum rr_bench_option {
    /* Time and rates come from the wall clock instead of the benchmark thread's CPU time.
     * Needed whenever the work runs on other threads or the benchmark thread waits. */
    RR_BENCH_REAL_TIME = 1u << 0,
};

/*
 * One benchmark. Run once per argument set, named "<name>/<arg_name>:<value>/...".
 * The definition and everything it points to must stay valid until rr_bench_main() returns
 * (static storage in practice).
 */
struct rr_bench_def {
    const char *name; /* required; the target of --benchmark_filter */
    rr_bench_fn fn;   /* required */
    void *arg;        /* passed to fn unchanged */
    /* arg_sets_count rows of args_per_set values, row-major; NULL and 0, 0 for none. */
    const int64_t *args;
    size_t args_per_set;
    size_t arg_sets_count;
    const char *const *arg_names; /* args_per_set names, or NULL for unnamed "/<value>" */
    unsigned options;             /* enum rr_bench_option bits */
    /* Minimum measuring time per run; 0 leaves it to --benchmark_min_time (0.5 s default).
     * Nonzero overrides that flag for this benchmark, so leave it 0 unless required. */
    double min_time_s;
    /* Fixed iteration count; 0 lets the library grow it until min time is reached.
     * Nonzero overrides --benchmark_min_time. */
    int64_t iterations;
};

/* Records def for rr_bench_main(). Call before rr_bench_main(), normally through
 * RR_BENCH_REGISTER. Aborts on a malformed definition or beyond RR_BENCH_DEFS_MAX. */
void rr_bench_register(const struct rr_bench_def *def);

/* RR_BENCH_REGISTER(def); registers `def`, the identifier of a static struct rr_bench_def,
 * from a constructor at load time. For C files; the trailing _Static_assert only makes the
 * semicolon after the macro legal at file scope. */
#define RR_BENCH_REGISTER(def)                                                                     \
    __attribute__((constructor)) static void rr_bench_register_##def(void)                         \
    {                                                                                              \
        rr_bench_register(&(def));                                                                 \
    }                                                                                              \
    _Static_assert(1, "RR_BENCH_REGISTER(" #def ")")

/*
 * Parses flags, runs the selected benchmarks and returns the process exit status: 0 on
 * success; 1 if a flag or argument is not recognised, if the filter matches no benchmark,
 * or if any benchmark called rr_bench_skip_with_error(). --help prints every flag.
 */
int rr_bench_main(int argc, char **argv);

/*
 * The timed loop. Timing starts at the first call and stops at the call that returns false;
 * work before and after the loop is not timed. The function must keep calling until false
 * (unless it has called rr_bench_skip_with_error()).
 */
bool rr_bench_keep_running(rr_bench_state *st);

/*
 * As rr_bench_keep_running() for n iterations at a time; may overshoot by up to n - 1
 * iterations. With n = rr_bench_iterations_max(st) the first call returns true once for
 * the whole run and the body loops n times itself, which removes the cost of one call out
 * of C per iteration (about a nanosecond, a sizeable share of a 128-byte checksum):
 *
 *     int64_t n = rr_bench_iterations_max(st);
 *     while (rr_bench_keep_running_batch(st, n))
 *         for (int64_t i = 0; i < n; i++)
 *             work();
 */
bool rr_bench_keep_running_batch(rr_bench_state *st, int64_t n);

/* Iterations this run will time, chosen by the library before the function is called. */
int64_t rr_bench_iterations_max(const rr_bench_state *st);

/* Iterations completed so far (0 before the loop starts). */
int64_t rr_bench_iterations(const rr_bench_state *st);

/* Value i of the argument set this run uses. Aborts if i >= args_per_set. */
int64_t rr_bench_arg(const rr_bench_state *st, size_t i);

/* Stop and restart the clock inside the loop. Each pair costs hundreds of nanoseconds and
 * takes a system call, so do not use them around work of that order. */
void rr_bench_pause_timing(rr_bench_state *st);
void rr_bench_resume_timing(rr_bench_state *st);

/* Total bytes or items over the run; reported as a rate ("bytes_per_second", 1024-based,
 * and "items_per_second", 1000-based). Call once, after the loop. */
void rr_bench_set_bytes_processed(rr_bench_state *st, int64_t bytes);
void rr_bench_set_items_processed(rr_bench_state *st, int64_t items);

/* Free text shown at the end of the row; copied. */
void rr_bench_set_label(rr_bench_state *st, const char *label);

/* Counter flags; they map one to one onto benchmark::Counter flags. */
enum rr_bench_counter_flag {
    RR_BENCH_COUNTER_RATE = 1u << 0,                /* divided by seconds: shown as "/s" */
    RR_BENCH_COUNTER_AVG_THREADS = 1u << 1,         /* divided by the thread count */
    RR_BENCH_COUNTER_ITERATION_INVARIANT = 1u << 2, /* multiplied by iterations */
    RR_BENCH_COUNTER_AVG_ITERATIONS = 1u << 3,      /* divided by iterations: per op */
    /* Reciprocal, taken last. RATE | INVERT turns a count into seconds per unit, shown with
     * an SI prefix ("12.3ns"); JSON holds the plain seconds. */
    RR_BENCH_COUNTER_INVERT = 1u << 4,
    RR_BENCH_COUNTER_BASE_1024 = 1u << 5, /* k, M, G are powers of 1024 (bytes) */
};

/* Sets the user counter `name` (copied) to value, transformed per flags when the run ends.
 * Aborts on an unknown flag bit. Call after the loop. */
void rr_bench_counter(rr_bench_state *st, const char *name, double value, unsigned flags);

/*
 * Marks the run failed: its row shows "ERROR OCCURRED: '<msg>'" (msg copied) instead of
 * numbers, and rr_bench_main() returns 1. Called before the loop, the loop does not run and
 * the function may return at once; called inside it, the next rr_bench_keep_running*() call
 * returns false.
 */
void rr_bench_skip_with_error(rr_bench_state *st, const char *msg);

/* Keeps value, and every store it depends on, from being optimised away. */
static inline void rr_bench_do_not_optimize(const void *value)
{
    __asm__ __volatile__("" : : "g"(value) : "memory");
}

#ifdef __cplusplus
}
#endif
#endif
