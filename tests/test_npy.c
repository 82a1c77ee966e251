/* CUnit tests of the .npy reader and writer (models/npy.c): values and shapes
 * survive a round trip, and malformed or absurd headers are refused with a
 * message (no wrap-around of the element count, no reading a stream past what
 * its header declares). */
#include <CUnit/Basic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qs_npy.h"

/* A version-1 .npy image with the given header dict and data bytes. */
static size_t make_npy(uint8_t *buf, size_t cap, const char *dict, const uint8_t *data, size_t n)
{
    size_t dl = strlen(dict), hl = ((10 + dl + 1 + 63) / 64) * 64 - 10;
    if (10 + hl + n > cap) return 0;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (uint8_t)(hl & 0xff);
    buf[9] = (uint8_t)(hl >> 8);
    memset(buf + 10, ' ', hl);
    memcpy(buf + 10, dict, dl);
    buf[10 + hl - 1] = '\n';
    if (n) memcpy(buf + 10 + hl, data, n); /* data may be NULL when n = 0 */
    return 10 + hl + n;
}

static void expect_fail(const char *dict, const uint8_t *data, size_t n, const char *needle)
{
    uint8_t buf[1024];
    size_t len = make_npy(buf, sizeof buf, dict, data, n);
    CU_ASSERT_FATAL(len > 0);
    qs_npy a;
    qs_error e;
    qs_status st = qs_npy_parse(buf, len, "x.npy", &a, &e);
    CU_ASSERT_EQUAL(st, QS_ERR_FORMAT);
    if (st == QS_ERR_FORMAT) {
        CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, needle));
        if (!strstr(e.msg, needle)) fprintf(stderr, "\n  want '%s' in: %s\n", needle, e.msg);
    } else {
        qs_npy_free(&a);
    }
}

static void test_parse_values(void)
{
    const uint8_t d[6] = {0xff, 0xff, 2, 0, 0x00, 0x80}; /* int16: -1, 2, -32768 */
    uint8_t buf[256];
    size_t len = make_npy(buf, sizeof buf, "{'descr': '<i2', 'fortran_order': False, 'shape': (3,), }", d, 6);
    qs_npy a;
    qs_error e;
    CU_ASSERT_EQUAL_FATAL(qs_npy_parse(buf, len, "x.npy", &a, &e), QS_OK);
    CU_ASSERT_EQUAL(a.count, 3);
    CU_ASSERT_EQUAL(a.data[0], -1);
    CU_ASSERT_EQUAL(a.data[1], 2);
    CU_ASSERT_EQUAL(a.data[2], -32768);
    qs_npy_free(&a);
}

static void test_absurd_shapes(void)
{
    /* 2^32 x 2^32 wraps a 64-bit count to 0: must be refused, not read as empty */
    expect_fail("{'descr': '<i4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", NULL, 0,
                "absurd array size");
    expect_fail("{'descr': '<i4', 'fortran_order': False, 'shape': (1048576, 1048576, 2), }", NULL, 0,
                "absurd array size");
    /* a zero dimension before a huge one is an empty array, not an error */
    uint8_t buf[256];
    size_t len = make_npy(buf, sizeof buf, "{'descr': '<i4', 'fortran_order': False, 'shape': (0, 1099511627776), }",
                          NULL, 0);
    qs_npy a;
    qs_error e;
    CU_ASSERT_EQUAL(qs_npy_parse(buf, len, "x.npy", &a, &e), QS_OK);
    CU_ASSERT_EQUAL(a.count, 0);
    qs_npy_free(&a);
    expect_fail("{'descr': '<i4', 'fortran_order': False, 'shape': (1000, 1000), }", NULL, 0, "truncated data");
}

static void test_dtype_message(void)
{
    /* the message names the dtype as written, cut at its closing quote */
    expect_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", (const uint8_t *)"\0\0\0\0", 4,
                "dtype '<f4' is not");
}

static void test_trailing_bytes(void)
{
    /* bytes after the data are refused from memory as from a file */
    expect_fail("{'descr': '<i2', 'fortran_order': False, 'shape': (1,), }", (const uint8_t *)"\1\0\7", 3,
                "1 byte after the last element (the header declares 130 bytes)");
    expect_fail("{'descr': '|u1', 'fortran_order': False, 'shape': (0,), }", (const uint8_t *)"\0", 1,
                "1 byte after the last element (the header declares 128 bytes)");
}

static void test_streams(void)
{
    qs_npy a;
    qs_error e;
    /* /dev/zero: refused at its first bytes, not after reading 16 GiB */
    CU_ASSERT_EQUAL(qs_npy_load("/dev/zero", &a, &e), QS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "bad magic"));
    /* a file with bytes past what its header declares */
    char path[] = "/tmp/qsim_npyXXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    uint8_t buf[256], d[8] = {1, 0, 0, 0, 2, 0, 0, 0};
    size_t len = make_npy(buf, sizeof buf, "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", d, 8);
    CU_ASSERT_EQUAL_FATAL(write(fd, buf, len), (ssize_t)len);
    CU_ASSERT_EQUAL(qs_npy_load(path, &a, &e), QS_OK);
    CU_ASSERT_EQUAL(a.count, 2);
    CU_ASSERT_EQUAL(a.data[1], 2);
    qs_npy_free(&a);
    CU_ASSERT_EQUAL_FATAL(write(fd, d, 4), 4);
    CU_ASSERT_EQUAL(qs_npy_load(path, &a, &e), QS_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "longer than the"));
    close(fd);
    unlink(path);
}

int main(void)
{
    static CU_TestInfo tests[] = {
        {"values", test_parse_values},
        {"absurd shapes", test_absurd_shapes},
        {"dtype message", test_dtype_message},
        {"bytes after the data", test_trailing_bytes},
        {"streams bounded by their header", test_streams},
        CU_TEST_INFO_NULL};
    CU_SuiteInfo suites[] = {{"npy", NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    if (CU_register_suites(suites) != CUE_SUCCESS) {
        CU_cleanup_registry();
        return 1;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    int failed = CU_get_error() || CU_get_number_of_failures();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
