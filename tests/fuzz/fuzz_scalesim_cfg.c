/* libFuzzer harness of SCALE-Sim's configuration files (models/scalesim.c,
 * docs/scalesim.md): the input up to its first NUL byte is the .cfg text,
 * each following NUL-separated part one `--set` override in qsim's key names.
 *
 * Properties: an accepted configuration gives a valid qs_arch under the
 * scalesim timing convention, with the array SCALE-Sim's file named, and
 * terminated strings and notes; a refused one gets a message. */
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
    qs_scalesim_cfg cfg;
    qs_error e;
    (void)qs_scalesim_is_config(parts[0]);
    qs_status st = qs_scalesim_parse_config(parts[0], "fuzz/scale.cfg", (const char *const *)(parts + 1), n - 1, &a,
                                            &cfg, &e);
    if (st != QS_OK) {
        fz_check_error(st, &e);
    } else {
        FZ_CHECK(qs_arch_validate(&a, "fuzz/scale.cfg", &e) == QS_OK, "accepted, then invalid: %s", e.msg);
        FZ_CHECK(cfg.n_notes >= 0 && cfg.n_notes <= QS_SCALESIM_MAX_NOTES, "%d notes", cfg.n_notes);
        for (int i = 0; i < cfg.n_notes; i++)
            FZ_CHECK(memchr(cfg.notes[i], '\0', sizeof cfg.notes[i]) != NULL, "note %d unterminated", i);
        FZ_CHECK(memchr(cfg.run_name, '\0', sizeof cfg.run_name) != NULL, "run_name unterminated");
        FZ_CHECK(cfg.array_h >= 1 && cfg.array_w >= 1, "array %dx%d", cfg.array_h, cfg.array_w);
    }
    qs_free(parts[0]);
    qs_free(parts);
    return 0;
}
