/* test_histogram.c: log-linear latency histograms (engine/node/src/histogram.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "histogram.h"

static void test_small_values_are_exact(void **state)
{
    (void)state;
    rr_hist *h = malloc(sizeof(*h));
    rr_hist_reset(h);
    for (uint64_t v = 1; v <= 100; v++)
        rr_hist_record(h, v);
    assert_int_equal(h->count, 100);
    assert_int_equal(rr_hist_quantile(h, 0.5), 50);
    assert_int_equal(rr_hist_quantile(h, 0.99), 99);
    assert_int_equal(rr_hist_quantile(h, 1.0), 100);
    assert_int_equal(h->min, 1);
    assert_true(rr_hist_mean(h) > 50.4 && rr_hist_mean(h) < 50.6);
    free(h);
}

/* Over the whole range the reported quantile is never below the true one and at most one
 * part in 2^RR_HIST_SUB_BITS above it. */
static void test_relative_error_bounded_across_range(void **state)
{
    (void)state;
    rr_hist *h = malloc(sizeof(*h));
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int trial = 0; trial < 2000; trial++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint64_t v = x >> (x % 60); /* spread over many magnitudes */
        rr_hist_reset(h);
        rr_hist_record(h, v);
        rr_hist_record(h, v / 2);
        uint64_t got = rr_hist_quantile(h, 1.0);
        assert_true(got == v); /* capped at max */
        uint64_t mid = rr_hist_quantile(h, 0.5);
        uint64_t truth = v / 2;
        assert_true(mid >= truth);
        assert_true(mid - truth <= truth / RR_HIST_SUB + 1);
    }
    free(h);
}

static void test_merge_and_tail(void **state)
{
    (void)state;
    rr_hist *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
    rr_hist_reset(a);
    rr_hist_reset(b);
    for (int i = 0; i < 990; i++)
        rr_hist_record(a, 1000); /* 1 us */
    for (int i = 0; i < 10; i++)
        rr_hist_record(b, 5000000); /* 5 ms outliers: 1 % */
    rr_hist_merge(a, b);
    assert_int_equal(a->count, 1000);
    uint64_t p99 = rr_hist_quantile(a, 0.99), p999 = rr_hist_quantile(a, 0.999);
    assert_true(p99 >= 1000 && p99 < 1010);
    assert_true(p999 >= 5000000 && p999 <= 5000000);
    assert_int_equal(a->max, 5000000);
    rr_hist_reset(a);
    assert_int_equal(rr_hist_quantile(a, 0.5), 0);
    free(a);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_values_are_exact),
        cmocka_unit_test(test_relative_error_bounded_across_range),
        cmocka_unit_test(test_merge_and_tail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
