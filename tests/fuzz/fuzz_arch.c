/* libFuzzer harness of the accelerator configuration (models/arch.c,
 * docs/config.md): the input up to its first NUL byte is the .cfg text, each
 * following NUL-separated part one `--set section.key=value` override.
 *
 * Properties: an accepted configuration passes qs_arch_validate again and
 * its derived quantities are in range; a refused one gets a message. */
#include "qs_alloc.h"
#include "fuzz_util.h"
#include "qs_arch.h"
#include "qs_scalesim.h"

enum { MAX_SETS = 16 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int n;
    char **parts = fz_split(data, size, 1 + MAX_SETS, &n);
    qs_arch a;
    qs_error e;
    /* a path with a folder, so that the tech.table resolution runs too */
    qs_status st = qs_arch_parse(parts[0], "fuzz/arch.cfg", (const char *const *)(parts + 1), n - 1, &a, &e);
    (void)qs_scalesim_is_config(parts[0]);
    if (st != QS_OK) {
        fz_check_error(st, &e);
    } else {
        FZ_CHECK(qs_arch_validate(&a, "fuzz/arch.cfg", &e) == QS_OK, "accepted, then invalid: %s", e.msg);
        FZ_CHECK(memchr(a.name, '\0', sizeof a.name) && memchr(a.tech_table, '\0', sizeof a.tech_table),
                 "unterminated string field");
        int32_t s = qs_arch_max_slices(&a);
        FZ_CHECK(s >= 1 && s <= a.max_weight_bits, "max slices %d for %d-bit weights", s, a.max_weight_bits);
        for (int bits = 1; bits <= a.max_weight_bits; bits++)
            FZ_CHECK(qs_arch_weight_slices(&a, bits) >= 1, "no slice for %d-bit weights", bits);
    }
    qs_free(parts[0]);
    qs_free(parts);
    return 0;
}
