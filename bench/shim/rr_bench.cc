// rr_bench.cc: the C API of rr_bench.h over Google Benchmark 1.7.1. See rr_bench.h.
#include "rr_bench.h"

#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

// What a C benchmark function holds: the library's state, plus the argument count of the
// definition so rr_bench_arg() can check its index (State::range() only asserts).
struct rr_bench_state {
    benchmark::State *state;
    size_t args_per_set;
};

namespace
{

// Zero-initialised plain data only: constructors in C files call rr_bench_register() at load
// time, possibly before this file's dynamic initialisers have run.
const rr_bench_def *defs[RR_BENCH_DEFS_MAX];
size_t defs_count;

// Runs that called rr_bench_skip_with_error(). Relaxed is enough: a benchmark's threads are
// joined by the library before RunSpecifiedBenchmarks() returns and rr_bench_main() reads it.
std::atomic<int> errors_count{0};

// name: the definition concerned, or nullptr when the call does not know it.
[[noreturn]] void die(const char *what, const char *name)
{
    if (name != nullptr)
        std::fprintf(stderr, "rr_bench: %s: %s\n", name, what);
    else
        std::fprintf(stderr, "rr_bench: %s\n", what);
    std::abort();
}

void check_def(const rr_bench_def *def)
{
    if (def == nullptr || def->name == nullptr || def->fn == nullptr)
        die("definition without a name or function", def != nullptr ? def->name : nullptr);
    if ((def->args == nullptr) != (def->arg_sets_count == 0))
        die("args must be NULL exactly when arg_sets_count is 0", def->name);
    if ((def->args_per_set == 0) != (def->arg_sets_count == 0))
        die("args_per_set must be 0 exactly when arg_sets_count is 0", def->name);
    if (def->args_per_set > RR_BENCH_ARGS_PER_SET_MAX)
        die("args_per_set above RR_BENCH_ARGS_PER_SET_MAX", def->name);
    if (def->arg_sets_count > RR_BENCH_ARG_SETS_MAX)
        die("arg_sets_count above RR_BENCH_ARG_SETS_MAX", def->name);
    if (def->arg_names != nullptr && def->args_per_set == 0)
        die("arg_names without args", def->name);
    if ((def->options & ~static_cast<unsigned>(RR_BENCH_REAL_TIME)) != 0)
        die("unknown option bits", def->name);
    if (def->min_time_s < 0 || def->iterations < 0)
        die("negative min_time_s or iterations", def->name);
}

void add_to_library(const rr_bench_def *def)
{
    // The lambda keeps the definition pointer; rr_bench.h requires it to outlive the run.
    benchmark::internal::Benchmark *b =
        benchmark::RegisterBenchmark(def->name, [def](benchmark::State &state) {
            rr_bench_state st{&state, def->args_per_set};
            def->fn(&st, def->arg);
        });
    if (def->arg_names != nullptr)
        b->ArgNames(std::vector<std::string>(def->arg_names, def->arg_names + def->args_per_set));
    for (size_t i = 0; i < def->arg_sets_count; i++) {
        const int64_t *row = def->args + i * def->args_per_set;
        b->Args(std::vector<int64_t>(row, row + def->args_per_set));
    }
    if ((def->options & RR_BENCH_REAL_TIME) != 0)
        b->UseRealTime();
    if (def->min_time_s > 0)
        b->MinTime(def->min_time_s);
    if (def->iterations > 0)
        b->Iterations(def->iterations);
}

benchmark::Counter::Flags counter_flags(unsigned flags)
{
    constexpr unsigned known = RR_BENCH_COUNTER_RATE | RR_BENCH_COUNTER_AVG_THREADS |
                               RR_BENCH_COUNTER_ITERATION_INVARIANT |
                               RR_BENCH_COUNTER_AVG_ITERATIONS | RR_BENCH_COUNTER_INVERT |
                               RR_BENCH_COUNTER_BASE_1024;
    if ((flags & ~known) != 0)
        die("unknown counter flag bits", nullptr);
    benchmark::Counter::Flags f = benchmark::Counter::kDefaults;
    if ((flags & RR_BENCH_COUNTER_RATE) != 0)
        f = f | benchmark::Counter::kIsRate;
    if ((flags & RR_BENCH_COUNTER_AVG_THREADS) != 0)
        f = f | benchmark::Counter::kAvgThreads;
    if ((flags & RR_BENCH_COUNTER_ITERATION_INVARIANT) != 0)
        f = f | benchmark::Counter::kIsIterationInvariant;
    if ((flags & RR_BENCH_COUNTER_AVG_ITERATIONS) != 0)
        f = f | benchmark::Counter::kAvgIterations;
    if ((flags & RR_BENCH_COUNTER_INVERT) != 0)
        f = f | benchmark::Counter::kInvert;
    return f;
}

} // namespace

extern "C" {

void rr_bench_register(const rr_bench_def *def)
{
    check_def(def);
    if (defs_count == RR_BENCH_DEFS_MAX)
        die("more than RR_BENCH_DEFS_MAX definitions", def->name);
    defs[defs_count++] = def;
}

int rr_bench_main(int argc, char **argv)
{
    for (size_t i = 0; i < defs_count; i++)
        add_to_library(defs[i]);

    // Initialize() consumes the flags it knows (and exits after --help); whatever is left
    // is a typo or a flag of another version, and running anyway would measure something
    // other than what was asked for.
    benchmark::Initialize(&argc, argv);
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            std::fprintf(stderr, "%s: unrecognised argument '%s'\n", argv[0], argv[i]);
        std::fprintf(stderr, "%s: --help lists the accepted flags (Google Benchmark 1.7.1)\n",
                     argv[0]);
        return 1;
    }

    // The library prints "Failed to match any benchmarks" itself and returns 0 then.
    size_t matched_count = benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    if (matched_count == 0)
        return 1;
    int errors = errors_count.load(std::memory_order_relaxed);
    if (errors > 0) {
        std::fprintf(stderr, "%s: %d benchmark run(s) failed\n", argv[0], errors);
        return 1;
    }
    return 0;
}

bool rr_bench_keep_running(rr_bench_state *st)
{
    return st->state->KeepRunning();
}

bool rr_bench_keep_running_batch(rr_bench_state *st, int64_t n)
{
    if (n < 1)
        die("rr_bench_keep_running_batch: n < 1", nullptr);
    return st->state->KeepRunningBatch(n);
}

int64_t rr_bench_iterations_max(const rr_bench_state *st)
{
    return st->state->max_iterations;
}

int64_t rr_bench_iterations(const rr_bench_state *st)
{
    return st->state->iterations();
}

int64_t rr_bench_arg(const rr_bench_state *st, size_t i)
{
    if (i >= st->args_per_set)
        die("rr_bench_arg: index beyond the definition's args_per_set", nullptr);
    return st->state->range(i);
}

void rr_bench_pause_timing(rr_bench_state *st)
{
    st->state->PauseTiming();
}

void rr_bench_resume_timing(rr_bench_state *st)
{
    st->state->ResumeTiming();
}

void rr_bench_set_bytes_processed(rr_bench_state *st, int64_t bytes)
{
    st->state->SetBytesProcessed(bytes);
}

void rr_bench_set_items_processed(rr_bench_state *st, int64_t items)
{
    st->state->SetItemsProcessed(items);
}

void rr_bench_set_label(rr_bench_state *st, const char *label)
{
    st->state->SetLabel(label);
}

void rr_bench_counter(rr_bench_state *st, const char *name, double value, unsigned flags)
{
    benchmark::Counter::OneK one_k = (flags & RR_BENCH_COUNTER_BASE_1024) != 0
                                         ? benchmark::Counter::kIs1024
                                         : benchmark::Counter::kIs1000;
    st->state->counters[name] = benchmark::Counter(value, counter_flags(flags), one_k);
}

void rr_bench_skip_with_error(rr_bench_state *st, const char *msg)
{
    errors_count.fetch_add(1, std::memory_order_relaxed);
    st->state->SkipWithError(msg);
}

} // extern "C"
