/* libFuzzer harness of the .npy reader (models/npy.c): `qsim run --input`
 * and `--labels`.
 *
 * Properties of an accepted array: count is the product of the shape, the
 * data of count elements was present in the input (no allocation beyond
 * what the input justifies), and every element is readable. */
#include "fuzz_util.h"
#include "qs_npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qs_npy a;
    qs_error e;
    qs_status st = qs_npy_parse(data, size, "fuzz.npy", &a, &e);
    if (st != QS_OK) {
        fz_check_error(st, &e);
        FZ_CHECK(a.data == NULL, "a refused array keeps data");
        return 0;
    }
    FZ_CHECK(a.ndim >= 0 && a.ndim <= QS_NPY_MAXDIM, "ndim %d", a.ndim);
    int64_t count = 1;
    for (int i = 0; i < a.ndim; i++) {
        FZ_CHECK(a.shape[i] >= 0, "shape[%d] = %lld", i, (long long)a.shape[i]);
        FZ_CHECK(a.shape[i] == 0 || count <= INT64_MAX / a.shape[i], "the shape's product overflows int64");
        count *= a.shape[i];
    }
    FZ_CHECK(count == a.count, "count %lld, the shape says %lld", (long long)a.count, (long long)count);
    FZ_CHECK((uint64_t)a.count <= size, "%lld elements from %zu bytes", (long long)a.count, size);
    int64_t sum = 0;
    for (int64_t i = 0; i < a.count; i++) sum += a.data[i];
    (void)sum;
    qs_npy_free(&a);
    return 0;
}
