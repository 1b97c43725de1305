/* test_entry_codec.c: the shared entry encoding (common/entry_codec.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "ringraft/entry_codec.h"

static void test_round_trip_keeps_nil_and_empty_apart(void **state)
{
    (void)state;
    uint8_t buf[128];
    static const uint8_t payload[] = "hello";
    rr_entry cases[3];
    memset(cases, 0, sizeof(cases));
    cases[0] = (rr_entry){.term = 7, .index = 42, .data = payload, .data_len = 5, .type = 0};
    cases[1] = (rr_entry){.term = 1, .index = 1, .data = NULL, .data_len = 0, .type = 2};
    cases[2] = (rr_entry){
        .term = UINT64_MAX, .index = UINT64_MAX, .data = payload, .data_len = 0, .type = 1};
    for (int k = 0; k < 3; k++) {
        int n = rr_entry_encode(&cases[k], buf, sizeof buf);
        assert_int_equal(n, (int)rr_entry_encoded_bytes(&cases[k]));
        rr_entry d;
        size_t used = 0;
        assert_int_equal(rr_entry_decode(buf, (size_t)n, &d, &used), 0);
        assert_int_equal(used, (size_t)n);
        assert_true(d.term == cases[k].term);
        assert_true(d.index == cases[k].index);
        assert_int_equal(d.type, cases[k].type);
        assert_int_equal(d.data_len, cases[k].data_len);
        assert_int_equal(d.data == NULL, cases[k].data == NULL);
        assert_null(d.buf);
        assert_true(rr_entry_size_bytes(&d) == rr_entry_size_bytes(&cases[k]));
        if (d.data_len > 0)
            assert_memory_equal(d.data, cases[k].data, d.data_len);
    }
    assert_int_equal(rr_entry_encode(&cases[0], buf, RR_ENTRY_HEADER_BYTES + 4), -ENOBUFS);
}

static void test_decode_rejects_bad_input(void **state)
{
    (void)state;
    uint8_t good[64], b[64];
    rr_entry e = {.term = 3, .index = 9, .data = (const uint8_t *)"abcd", .data_len = 4};
    int n = rr_entry_encode(&e, good, sizeof good);
    rr_entry d;
    size_t used;
    for (int len = 0; len < n; len++) /* every truncation */
        assert_int_equal(rr_entry_decode(good, (size_t)len, &d, &used), RR_ERR_TRUNCATED);
    struct {
        size_t at;
        uint8_t value;
        int want;
    } bad[] = {
        {8, 0, RR_ERR_CORRUPT},       /* index 0 (low byte 9 -> 0) */
        {20, 3, RR_ERR_CORRUPT},      /* unknown type */
        {21, 2, RR_ERR_CORRUPT},      /* unknown flag */
        {21, 1, RR_ERR_CORRUPT},      /* nil with a payload */
        {22, 1, RR_ERR_CORRUPT},      /* reserved */
        {19, 0x7f, RR_ERR_TOO_LARGE}, /* data_len far beyond the bound */
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        memcpy(b, good, (size_t)n);
        b[bad[k].at] = bad[k].value;
        assert_int_equal(rr_entry_decode(b, (size_t)n, &d, &used), bad[k].want);
    }
    /* Random bytes never crash and never claim more than they were given. */
    uint64_t x = 0x243F6A8885A308D3ull;
    for (int it = 0; it < 100000; it++) {
        size_t len = (size_t)(x % sizeof b);
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b[i] = (uint8_t)x;
        }
        if (it % 3 == 0 && len > 23) { /* plausible headers too */
            memcpy(b, good, 16);
            b[16] = (uint8_t)(len - 24);
            memset(b + 17, 0, 7);
        }
        if (rr_entry_decode(b, len, &d, &used) == 0)
            assert_true(used <= len);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_keeps_nil_and_empty_apart),
        cmocka_unit_test(test_decode_rejects_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
