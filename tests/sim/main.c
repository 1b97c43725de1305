/*
 * main.c: rr-sim's options and the loop over seeds.
 *
 *   rr-sim [--seed S] [--seeds N] [--nodes K] [--steps E] [--drop P] [--dup P] [--reorder P]
 *          [--partition P] [--crash P] [--liveness-ticks T] [--verbose]
 *          [--teeth-ack-early | --teeth-lose-acked | --teeth-forget-vote]
 *          [--expect INVARIANT[,INVARIANT...]]
 *
 * Exit status: 0 every seed passed (or, with --expect, a listed invariant was caught);
 * 1 a violation (seed, invariant and last events printed); 2 bad usage; 3 --expect given
 * and nothing caught within the seeds.
 */
#include "sim.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile uint64_t current_seed;

/* A core assertion aborts the process: still say which seed replays it. */
static void on_fatal_signal(int sig)
{
    char buf[96];
    int n = snprintf(buf, sizeof(buf),
                     "rr-sim: seed %llu crashed (signal %d): replay with --seed %llu\n",
                     (unsigned long long)current_seed, sig, (unsigned long long)current_seed);
    fflush(stdout); /* not async-signal-safe, but the process is dying anyway */
    if (n > 0)
        (void)!write(STDERR_FILENO, buf, (size_t)n);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void usage(void)
{
    fprintf(stderr, "usage: rr-sim [--seed S] [--seeds N] [--nodes 3..7] [--steps EVENTS]\n"
                    "              [--drop P] [--dup P] [--partition P] [--crash P]\n"
                    "              [--liveness-ticks T] [--verbose]\n"
                    "              [--protocol-checks-only]\n"
                    "              [--teeth-ack-early] [--teeth-lose-acked] [--teeth-forget-vote]\n"
                    "              [--expect INVARIANT[,INVARIANT...]]\n");
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 0);
    if (*s == '\0' || *end != '\0')
        return false;
    *out = v;
    return true;
}

static bool parse_rate(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || v < 0.0 || v > 1.0)
        return false;
    *out = v;
    return true;
}

enum {
    OPT_SEED = 256,
    OPT_SEEDS,
    OPT_NODES,
    OPT_STEPS,
    OPT_DROP,
    OPT_DUP,
    OPT_REORDER,
    OPT_PARTITION,
    OPT_CRASH,
    OPT_LIVENESS,
    OPT_VERBOSE,
    OPT_ACK_EARLY,
    OPT_LOSE_ACKED,
    OPT_FORGET_VOTE,
    OPT_EXPECT,
    OPT_PROTOCOL_CHECKS_ONLY,
};

static const struct option long_opts[] = {
    {"seed", required_argument, NULL, OPT_SEED},
    {"seeds", required_argument, NULL, OPT_SEEDS},
    {"nodes", required_argument, NULL, OPT_NODES},
    {"steps", required_argument, NULL, OPT_STEPS},
    {"drop", required_argument, NULL, OPT_DROP},
    {"dup", required_argument, NULL, OPT_DUP},
    {"reorder", required_argument, NULL, OPT_REORDER},
    {"partition", required_argument, NULL, OPT_PARTITION},
    {"crash", required_argument, NULL, OPT_CRASH},
    {"liveness-ticks", required_argument, NULL, OPT_LIVENESS},
    {"verbose", no_argument, NULL, OPT_VERBOSE},
    {"teeth-ack-early", no_argument, NULL, OPT_ACK_EARLY},
    {"teeth-lose-acked", no_argument, NULL, OPT_LOSE_ACKED},
    {"teeth-forget-vote", no_argument, NULL, OPT_FORGET_VOTE},
    {"expect", required_argument, NULL, OPT_EXPECT},
    {"protocol-checks-only", no_argument, NULL, OPT_PROTOCOL_CHECKS_ONLY},
    {NULL, 0, NULL, 0},
};

static bool parse_one(rr_sim_opts *o, int c, const char *arg)
{
    uint64_t v = 0;
    switch (c) {
    case OPT_SEED:
        return parse_u64(arg, &o->seed);
    case OPT_SEEDS:
        return parse_u64(arg, &o->n_seeds) && o->n_seeds > 0;
    case OPT_NODES:
        if (!parse_u64(arg, &v) || v < RR_SIM_NODES_MIN || v > RR_SIM_NODES_MAX)
            return false;
        o->nodes = (uint32_t)v;
        return true;
    case OPT_STEPS:
        if (!parse_u64(arg, &v) || v > UINT32_MAX)
            return false;
        o->steps = (uint32_t)v;
        return true;
    case OPT_LIVENESS:
        if (!parse_u64(arg, &v) || v == 0 || v > 1000000)
            return false;
        o->liveness_ticks_max = (uint32_t)v;
        return true;
    case OPT_DROP:
        return parse_rate(arg, &o->drop_rate);
    case OPT_DUP:
        return parse_rate(arg, &o->dup_rate);
    case OPT_REORDER:
        return parse_rate(arg, &o->reorder_rate);
    case OPT_PARTITION:
        return parse_rate(arg, &o->partition_rate);
    case OPT_CRASH:
        return parse_rate(arg, &o->crash_rate);
    case OPT_VERBOSE:
        o->verbose = true;
        return true;
    case OPT_ACK_EARLY:
        o->teeth.ack_early = true;
        return true;
    case OPT_LOSE_ACKED:
        o->teeth.lose_acked = true;
        return true;
    case OPT_FORGET_VOTE:
        o->teeth.forget_vote = true;
        return true;
    case OPT_EXPECT:
        o->expect = arg;
        return true;
    case OPT_PROTOCOL_CHECKS_ONLY:
        o->protocol_checks_only = true;
        return true;
    default:
        return false;
    }
}

static int parse(int argc, char **argv, rr_sim_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->seed = 1;
    o->n_seeds = 1;
    o->steps = 10000;
    o->drop_rate = 0.05;
    o->dup_rate = 0.02;
    o->reorder_rate = 0.05;
    o->partition_rate = 0.01;
    o->crash_rate = 0.01;
    o->liveness_ticks_max = 500;
    int c;
    while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
        if (!parse_one(o, c, optarg)) {
            usage();
            return -1;
        }
    }
    if (optind != argc) {
        usage();
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    rr_sim_opts opt;
    if (parse(argc, argv, &opt) != 0)
        return 2;
    signal(SIGABRT, on_fatal_signal);
    signal(SIGSEGV, on_fatal_signal);
    uint32_t ticks_max = 0;
    uint64_t ticks_sum = 0;
    for (uint64_t k = 0; k < opt.n_seeds; k++) {
        uint64_t seed = opt.seed + k;
        current_seed = seed;
        uint32_t ticks = 0;
        int rc = rr_sim_run_seed(&opt, seed, &ticks);
        if (rc == 2) {
            printf("rr-sim: caught the expected violation at seed %llu, after %llu seeds\n",
                   (unsigned long long)seed, (unsigned long long)(k + 1));
            fflush(stdout);
            return 0;
        }
        if (rc != 0) {
            printf("rr-sim: replay with: rr-sim --seed %llu --verbose (plus the same options)\n",
                   (unsigned long long)seed);
            return 1;
        }
        ticks_sum += ticks;
        if (ticks > ticks_max)
            ticks_max = ticks;
    }
    if (opt.expect != NULL) {
        printf("rr-sim: %s NOT caught in %llu seeds from %llu\n", opt.expect,
               (unsigned long long)opt.n_seeds, (unsigned long long)opt.seed);
        return 3;
    }
    printf("rr-sim: %llu seeds passed (%llu..%llu); liveness: settled within %u ticks at "
           "most (mean %.1f, bound %u)\n",
           (unsigned long long)opt.n_seeds, (unsigned long long)opt.seed,
           (unsigned long long)(opt.seed + opt.n_seeds - 1), ticks_max,
           (double)ticks_sum / (double)opt.n_seeds, opt.liveness_ticks_max);
    return 0;
}
