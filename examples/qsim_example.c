/* Embedding qsim (docs/api.md): load a network and a configuration once,
 * then compile and run it for several array shapes, reading the report.
 *
 *   qsim_example NET.qbin ARCH.cfg
 *
 * Prints one line per shape (cycles, energy, area) and the per-layer
 * figures of the last one; exits 1 with qsim's message on any failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qsim/qsim.h>

static int check(qsim_status st, const qsim_error *err)
{
    if (st == QSIM_OK) return 0;
    fprintf(stderr, "qsim_example: %s: %s\n", qsim_status_name(st), err->msg);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: qsim_example NET.qbin ARCH.cfg\n");
        return 2;
    }
    qsim_error err;
    /* the library loaded at run time must be the one this file was compiled against */
    if (check(qsim_check_version(QSIM_API_VERSION, &err), &err)) return 1;
    printf("libqsim %s (source %s)\n", qsim_version(), qsim_source_revision());

    qsim_net *net = NULL;
    qsim_config *base = NULL;
    if (check(qsim_net_load(argv[1], &net, &err), &err)) return 1;
    if (check(qsim_config_load(argv[2], &base, &err), &err)) {
        qsim_net_free(net);
        return 1;
    }
    qsim_net_info info;
    qsim_net_get_info(net, &info, NULL);
    printf("network '%s': %d layers, input %dx%dx%d\n", info.name, (int)info.n_layers, (int)info.in_c,
           (int)info.in_h, (int)info.in_w);

    /* one input: a ramp within the input layer's range */
    int64_t per = (int64_t)info.in_c * info.in_h * info.in_w;
    int32_t *x = malloc((size_t)per * sizeof *x);
    if (!x) return 1;
    int32_t hi = info.in_signed ? (1 << (info.in_bits - 1)) - 1 : (1 << info.in_bits) - 1;
    for (int64_t i = 0; i < per; i++) x[i] = (int32_t)(i % (hi + 1));

    static const char *const shapes[][2] = {{"array.rows=8", "array.cols=8"}, {"array.rows=16", "array.cols=16"}};
    int rc = 1;
    qsim_report *rep = NULL;
    for (int s = 0; s < 2; s++) {
        qsim_config *cfg = NULL;
        qsim_program *prog = NULL;
        qsim_report_free(rep);
        rep = NULL;
        int bad = check(qsim_config_copy(base, &cfg, &err), &err) ||
                  check(qsim_config_set(cfg, shapes[s][0], &err), &err) ||
                  check(qsim_config_set(cfg, shapes[s][1], &err), &err) ||
                  check(qsim_compile(net, cfg, &prog, &err), &err) ||
                  /* no input given: qsim's deterministic pseudo-random input, as `qsim run` without --input */
                  check(qsim_run(prog, NULL, 0, 1, NULL, &rep, &err), &err);
        qsim_totals t;
        qsim_energy e;
        qsim_area a;
        if (!bad) {
            qsim_report_totals(rep, &t, NULL);
            qsim_report_energy(rep, &e, NULL);
            qsim_report_area(rep, &a, NULL);
            printf("%s %s: %.0f cycles, %.1f pJ (mac %.1f, sram %.1f, dram %.1f), %.4f mm^2, utilization %.3f\n",
                   shapes[s][0], shapes[s][1], t.cycles, e.total, e.mac, e.sram, e.dram, a.total, t.utilization);
        }
        if (!bad && s == 1) { /* the last shape again, on our own input (two inferences: a batch) */
            qsim_report *ramp = NULL;
            int32_t *xx = malloc(2 * (size_t)per * sizeof *xx);
            bad = !xx;
            if (xx) {
                memcpy(xx, x, (size_t)per * sizeof *xx);
                memcpy(xx + per, x, (size_t)per * sizeof *xx);
            }
            bad = bad || check(qsim_run(prog, xx, 2 * per, 2, NULL, &ramp, &err), &err);
            const int32_t *y;
            int64_t n;
            if (!bad && !check(qsim_report_output(ramp, 1, &y, &n, &err), &err))
                printf("ramp input, inference 2: %lld output values, first %d\n", (long long)n, (int)y[0]);
            qsim_report_free(ramp);
            free(xx);
        }
        qsim_program_free(prog);
        qsim_config_free(cfg);
        if (bad) goto out;
    }
    for (int32_t i = 1; i < info.n_layers; i++) {
        qsim_layer_figures f;
        if (check(qsim_report_layer(rep, i, &f, &err), &err)) goto out;
        printf("  %-12s %-8s %10.0f cycles %12.1f pJ  sram read ifmap %.0f B weight %.0f B\n", f.name, f.kind, f.cycles,
               f.energy.total, f.sram_read_bytes[0], f.sram_read_bytes[1]);
    }
    const int32_t *y;
    int64_t n;
    if (check(qsim_report_output(rep, 0, &y, &n, &err), &err)) goto out;
    printf("output: %lld values, first %d\n", (long long)n, (int)y[0]);
    /* a bad call is a status and a message, not a crash */
    qsim_layer_figures none;
    if (qsim_report_layer(rep, info.n_layers, &none, &err) != QSIM_ERR_ARG) goto out;
    printf("bad index: %s\n", err.msg);
    rc = 0;
out:
    qsim_report_free(rep);
    free(x);
    qsim_config_free(base);
    qsim_net_free(net);
    return rc;
}
