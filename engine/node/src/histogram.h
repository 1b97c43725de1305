/*
 * histogram.h: fixed-size log-linear histograms of nanosecond latencies (or any counts),
 * for engine/node's per-stage statistics and rrbench's percentiles.
 *
 * Buckets: values below 2^RR_HIST_SUB_BITS are exact; above, each power of two is split
 * into 2^RR_HIST_SUB_BITS linear sub-buckets, so a recorded value is known to within
 * 1/2^RR_HIST_SUB_BITS (0.8 % with 7 bits) — HdrHistogram's idea with no allocation. Up to
 * 2^63. Recording is one clz, a shift and an increment: no allocation, no lock. A
 * histogram belongs to one writer thread; readers take a copy (rr_hist_merge into their
 * own) while the writer is quiescent, or accept a torn snapshot of independent counters.
 */
#ifndef RR_NODE_HISTOGRAM_H
#define RR_NODE_HISTOGRAM_H

#include <stdint.h>

#define RR_HIST_SUB_BITS 7
#define RR_HIST_SUB      (1u << RR_HIST_SUB_BITS)
/* Exact range [0, SUB), then one group of SUB sub-buckets per power of two up to 2^63. */
#define RR_HIST_BUCKETS (RR_HIST_SUB + (64 - RR_HIST_SUB_BITS) * RR_HIST_SUB)

typedef struct rr_hist {
    uint64_t count;
    uint64_t sum;
    uint64_t min;
    uint64_t max;
    uint64_t buckets[RR_HIST_BUCKETS];
} rr_hist;

void rr_hist_reset(rr_hist *h);
void rr_hist_record(rr_hist *h, uint64_t value);
/* Adds every sample of src to dst. */
void rr_hist_merge(rr_hist *dst, const rr_hist *src);
/* The smallest recorded value v such that at least q (0..1] of the samples are <= v, up to
 * the bucket's resolution (the bucket's upper bound, capped at max). 0 when empty. */
uint64_t rr_hist_quantile(const rr_hist *h, double q);
double rr_hist_mean(const rr_hist *h);

#endif
