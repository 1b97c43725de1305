/* test_crc32c.c: CRC-32C check values and incremental use (common/crc32c.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "ringraft/crc32c.h"
#include "ringraft/errors.h"

static void test_check_value(void **state)
{
    (void)state;
    /* The CRC-32C check value (RFC 3720 B.4 family; "123456789" -> 0xE3069283). */
    assert_int_equal(rr_crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(rr_crc32c(0, "", 0), 0);
    uint8_t zeros[32] = {0};
    assert_int_equal(rr_crc32c(0, zeros, sizeof zeros), 0x8A9136AAu); /* RFC 3720 B.4 */
}

static void test_incremental_equals_whole(void **state)
{
    (void)state;
    uint8_t buf[4099];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 131u + 7u);
    uint32_t whole = rr_crc32c(0, buf, sizeof buf);
    for (size_t cut = 0; cut <= sizeof buf; cut += 97) {
        uint32_t part = rr_crc32c(rr_crc32c(0, buf, cut), buf + cut, sizeof buf - cut);
        assert_int_equal(part, whole);
    }
    buf[1000] ^= 1; /* a single flipped bit changes the checksum */
    assert_int_not_equal(rr_crc32c(0, buf, sizeof buf), whole);
}

/* Bit-at-a-time CRC-32C (reflected polynomial 0x82F63B78): slow, obviously right. */
static uint32_t crc32c_bitwise(const uint8_t *p, size_t len)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    }
    return ~crc;
}

/* Both paths (the short-buffer loop below 256 B, ISA-L above) against the reference, at
 * every length around the cutoff and at odd alignments. */
static void test_matches_reference_on_both_paths(void **state)
{
    (void)state;
    static uint8_t buf[1024 + 16];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 2654435761u >> 13);
    for (size_t off = 0; off < 4; off++) {
        for (size_t len = 0; len <= 300; len++)
            assert_int_equal(rr_crc32c(0, buf + off, len), crc32c_bitwise(buf + off, len));
        assert_int_equal(rr_crc32c(0, buf + off, 1024), crc32c_bitwise(buf + off, 1024));
    }
}

static void test_strerror(void **state)
{
    (void)state;
    assert_string_equal(rr_strerror(RR_ERR_CORRUPT), "corrupt data (checksum or structure)");
    assert_non_null(strstr(rr_strerror(-28), "space")); /* -ENOSPC */
    assert_string_equal(rr_strerror(-999999), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_value),
        cmocka_unit_test(test_incremental_equals_whole),
        cmocka_unit_test(test_matches_reference_on_both_paths),
        cmocka_unit_test(test_strerror),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
