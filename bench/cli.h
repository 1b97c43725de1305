/*
 * cli.h: option parsing shared by rrbench and the peer harnesses (bench/peers), so that
 * both accept and refuse the same values with the same messages. A bad value prints
 * "<prog>: <what> must be ..." and exits 2. Header-only.
 */
#ifndef RR_BENCH_CLI_H
#define RR_BENCH_CLI_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A decimal integer in [lo, hi]. */
static inline uint32_t cli_parse_u32(const char *prog, const char *s, uint32_t lo, uint32_t hi,
                                     const char *what)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "%s: %s must be an integer in [%u, %u], not '%s'\n", prog, what, lo, hi, s);
        exit(2);
    }
    return (uint32_t)v;
}

/* Seconds in (0, 3600] (NaN refused). */
static inline double cli_parse_seconds(const char *prog, const char *s, const char *what)
{
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || !(v > 0) || v > 3600) {
        fprintf(stderr, "%s: %s must be seconds in (0, 3600], not '%s'\n", prog, what, s);
        exit(2);
    }
    return v;
}

/* "P1,P2,...": ports[1..] in order, at most max of them. */
static inline void cli_parse_ports(const char *prog, const char *s, uint16_t *ports, uint32_t max)
{
    char *copy = strdup(s), *save = NULL;
    uint32_t id = 1;
    for (char *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
        if (id > max) {
            fprintf(stderr, "%s: --ports lists more than %u ports\n", prog, max);
            exit(2);
        }
        ports[id++] = (uint16_t)cli_parse_u32(prog, t, 1, 65535, "--ports");
    }
    free(copy);
}

#endif
