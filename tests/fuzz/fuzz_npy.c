/* libFuzzer harness of the .npy reader (models/npy.c): `qsim run --input`
 * and `--labels`.
 *
 * Properties of an accepted array: count is the product of the shape, the
 * data of count elements was present in the input (no allocation beyond
 * what the input justifies), and every element is readable. The same bytes
 * read from a pipe (qs_npy_load's stream path, bounded by the size the
 * header declares) give the same answer: the same array, or a refusal. */
#include "fuzz_util.h"
#include "qs_npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qs_npy a;
    qs_error e;
    qs_status st = qs_npy_parse(data, size, "fuzz.npy", &a, &e);
    char path[64];
    const int fd = fz_pipe_of(data, size, path, sizeof path);
    if (fd >= 0) {
        qs_npy b;
        qs_error es;
        const qs_status ss = qs_npy_load(path, &b, &es);
        close(fd);
        fz_same_answer(ss, &es, st, &e);
        if (ss == QS_OK) {
            FZ_CHECK(b.ndim == a.ndim && b.count == a.count && memcmp(b.shape, a.shape, sizeof *a.shape * (size_t)a.ndim) == 0 &&
                         (a.count == 0 || memcmp(b.data, a.data, sizeof *a.data * (size_t)a.count) == 0),
                     "the array read from a pipe differs from the one in memory");
            qs_npy_free(&b);
        }
    }
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
