/* rrkv-check: judges an rrkv client history (HISTORY.md) for linearizability.
 *
 *   rrkv-check [--steps-max N] [--memory-mb N] [--quiet] [FILE | -]
 *
 * Exit codes: 0 linearizable, 1 not (the explanation goes to stdout), 2 undecided within
 * the limits, 3 malformed input (or a usage error), 4 out of memory.
 */
#include "check.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(void)
{
    fprintf(stderr, "usage: rrkv-check [--steps-max N] [--memory-mb N] [--quiet] [FILE | -]\n"
                    "exit: 0 linearizable, 1 not, 2 undecided, 3 malformed input\n");
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return false;
    *out = v;
    return true;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    struct rr_kvcheck_limits limits;
    rr_kvcheck_limits_default(&limits);
    const char *path = "-";
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        uint64_t v;
        if (strcmp(argv[i], "--quiet") == 0) {
            quiet = true;
        } else if (strcmp(argv[i], "--steps-max") == 0 && i + 1 < argc &&
                   parse_u64(argv[i + 1], &v) && v > 0) {
            limits.steps_max = v;
            i++;
        } else if (strcmp(argv[i], "--memory-mb") == 0 && i + 1 < argc &&
                   parse_u64(argv[i + 1], &v) && v > 0 && v < (1ull << 40)) {
            limits.memory_bytes_max = v << 20;
            i++;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            usage();
            return RR_KVCHECK_MALFORMED;
        } else {
            path = argv[i];
        }
    }
    FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!in) {
        fprintf(stderr, "rrkv-check: %s: %s\n", path, strerror(errno));
        return RR_KVCHECK_MALFORMED;
    }
    struct rr_kvcheck_stats st;
    uint64_t start_ns = now_ns();
    int rc = rr_kvcheck_file(in, &limits, &st, stdout);
    uint64_t took_ns = now_ns() - start_ns;
    if (in != stdin)
        fclose(in);
    fflush(stdout); /* the explanation comes before the verdict line */
    if (rc < 0) {
        fprintf(stderr, "rrkv-check: %s\n", strerror(-rc));
        return 4;
    }
    static const char *const verdict[] = {"linearizable", "NOT linearizable", "undecided",
                                          "malformed input"};
    if (!quiet || rc != RR_KVCHECK_LINEARIZABLE)
        fprintf(stderr,
                "rrkv-check: %s: %s (%" PRIu64 " ops, %" PRIu64 " keys, %" PRIu64
                " searched, %" PRIu64 " steps, %" PRIu64 " states, %" PRIu64
                " keys failing, %" PRIu64 " undecided, %.3f s)\n",
                path, verdict[rc], st.ops_count, st.keys_count, st.searched_count, st.steps_count,
                st.states_count, st.violations_count, st.undecided_count, (double)took_ns / 1e9);
    return rc;
}
