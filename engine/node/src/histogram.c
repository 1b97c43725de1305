/* histogram.c: log-linear histograms. See histogram.h. */
#include "histogram.h"

#include <string.h>

static uint32_t bucket_of(uint64_t v)
{
    if (v < RR_HIST_SUB)
        return (uint32_t)v;
    uint32_t msb = 63u - (uint32_t)__builtin_clzll(v); /* >= RR_HIST_SUB_BITS */
    uint32_t shift = msb - RR_HIST_SUB_BITS;
    /* v >> shift lies in [SUB, 2*SUB): its low bits index the sub-bucket. */
    uint32_t sub = (uint32_t)(v >> shift) - RR_HIST_SUB;
    return RR_HIST_SUB + shift * RR_HIST_SUB + sub;
}

/* Largest value that falls in bucket b. */
static uint64_t bucket_upper(uint32_t b)
{
    if (b < RR_HIST_SUB)
        return b;
    uint32_t shift = (b - RR_HIST_SUB) / RR_HIST_SUB;
    uint64_t sub = (b - RR_HIST_SUB) % RR_HIST_SUB;
    uint64_t lo = (RR_HIST_SUB + sub) << shift;
    return lo + ((1ull << shift) - 1);
}

void rr_hist_reset(rr_hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

void rr_hist_record(rr_hist *h, uint64_t value)
{
    h->buckets[bucket_of(value)]++;
    h->count++;
    h->sum += value;
    if (value < h->min)
        h->min = value;
    if (value > h->max)
        h->max = value;
}

void rr_hist_merge(rr_hist *dst, const rr_hist *src)
{
    for (uint32_t b = 0; b < RR_HIST_BUCKETS; b++)
        dst->buckets[b] += src->buckets[b];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t rr_hist_quantile(const rr_hist *h, double q)
{
    if (h->count == 0)
        return 0;
    if (q <= 0)
        return h->min;
    /* Rank of the sample sought, 1-based: ceil(q * count). */
    double want_d = q * (double)h->count;
    uint64_t want = (uint64_t)want_d;
    if ((double)want < want_d)
        want++;
    if (want == 0)
        want = 1;
    uint64_t seen = 0;
    for (uint32_t b = 0; b < RR_HIST_BUCKETS; b++) {
        seen += h->buckets[b];
        if (seen >= want) {
            uint64_t v = bucket_upper(b);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

double rr_hist_mean(const rr_hist *h)
{
    return h->count == 0 ? 0.0 : (double)h->sum / (double)h->count;
}
