/* libFuzzer harness of SCALE-Sim topology files (models/scalesim.c,
 * docs/scalesim.md) and the per-layer networks built from them.
 *
 * Input: byte 0 picks the form (GEMM / convolution / from the header), the
 * operand widths, the sparsity and the dataflow; the rest is the CSV text.
 *
 * Properties of an accepted topology: every layer has positive sizes and a
 * non-empty ofmap; a layer whose declared tensors are small (input, filters
 * and ofmap together at most 2^16 elements: the harness's time budget)
 * becomes a valid network whose input has the declared ifmap inside it; a
 * layer of at most 2^13 MACs then compiles and runs on a SCALE-Sim array
 * with both engines giving the same SCALE-Sim figures. Allocations beyond
 * what the declared sizes justify are caught by libFuzzer's -malloc_limit_mb
 * (scripts/fuzz sets it). */
#include "compiler.h"
#include "fuzz_util.h"
#include "qs_scalesim.h"
#include "sim.h"

enum { MAX_LAYERS = 4 };
#define DECLARED_MAX ((int64_t)1 << 16)
#define MACS_MAX ((int64_t)1 << 13)

static const qs_arch *scalesim_arch(int df)
{
    static qs_arch arch[3];
    static int have[3];
    static const char *const DF[3] = {"ws", "os", "is"};
    if (!have[df]) {
        char ini[512];
        snprintf(ini, sizeof ini,
                 "[general]\nrun_name = fuzz\n[architecture_presets]\nArrayHeight: 4\nArrayWidth: 8\n"
                 "IfmapSramSzkB: 4\nFilterSramSzkB: 4\nOfmapSramSzkB: 2\nIfmapOffset: 0\nFilterOffset: 10000000\n"
                 "OfmapOffset: 20000000\nDataflow : %s\n[run_presets]\nInterfaceBandwidth: CALC\n", DF[df]);
        qs_error e;
        FZ_CHECK(qs_scalesim_parse_config(ini, "fuzz/scale.cfg", NULL, 0, &arch[df], NULL, &e) == QS_OK, "%s", e.msg);
        have[df] = 1;
    }
    return &arch[df];
}

static void run_layer(const qs_net *net, const int32_t *x, int64_t n, const qs_arch *arch)
{
    qs_error e;
    qs_prog *prog = NULL;
    qs_status st = qs_compile(net, arch, &prog, &e);
    if (st != QS_OK) {
        fz_check_error(st, &e);
        FZ_CHECK(st == QS_ERR_NOFIT || st == QS_ERR_UNSUPPORTED, "compile: unexpected status %d: %s", (int)st, e.msg);
        return;
    }
    qs_sim *s[2] = {NULL, NULL};
    for (int k = 0; k < 2; k++) {
        FZ_CHECK(qs_sim_create(net, prog, k ? QS_ENGINE_DETAILED : QS_ENGINE_FAST, &s[k], &e) == QS_OK, "%s", e.msg);
        FZ_CHECK(qs_sim_set_input(s[k], x, n, &e) == QS_OK, "set_input: %s", e.msg);
        FZ_CHECK(qs_sim_run(s[k], &e) == QS_OK, "%s engine: %s", k ? "detailed" : "fast", e.msg);
    }
    const qs_layer_stats *a = qs_sim_layer_stats(s[0], 1), *b = qs_sim_layer_stats(s[1], 1);
    FZ_CHECK(qs_sim_total_cycles(s[0]) == qs_sim_total_cycles(s[1]), "total cycles differ between the engines");
    FZ_CHECK(memcmp(&a->ss, &b->ss, sizeof a->ss) == 0, "SCALE-Sim figures differ between the engines");
    FZ_CHECK(memcmp(&a->ev, &b->ev, sizeof a->ev) == 0, "event counts differ between the engines");
    const qs_layer *L = &net->layers[1];
    int64_t outs = (int64_t)L->out_c * L->out_h * L->out_w;
    FZ_CHECK(memcmp(qs_sim_layer_output(s[0], 1), qs_sim_layer_output(s[1], 1), sizeof(int32_t) * (size_t)outs) == 0,
             "outputs differ between the engines");
    qs_sim_destroy(s[0]);
    qs_sim_destroy(s[1]);
    qs_prog_destroy(prog);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static const int WBITS[4] = {1, 2, 4, 8};
    const uint8_t ctl = data[0];
    int gemm_mode = ctl % 3 - 1;
    qs_scalesim_opts opts;
    qs_scalesim_opts_default(&opts);
    opts.weight_bits = WBITS[(ctl >> 2) & 3];
    opts.act_bits = ctl & 0x10 ? 4 : 8;
    if (ctl & 0x20) {
        opts.act_sparsity = 0.5;
        if (opts.weight_bits > 1) opts.weight_sparsity = 0.5;
    }
    int df = (ctl >> 6) % 3;

    char *text = malloc(size);
    if (!text) abort();
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    qs_scalesim_topo topo;
    qs_error e;
    qs_status st = qs_scalesim_parse_topology(text, "fuzz/topology.csv", gemm_mode, &topo, &e);
    free(text);
    if (st != QS_OK) {
        fz_check_error(st, &e);
        FZ_CHECK(topo.n_layers == 0 && topo.layers == NULL, "a refused topology keeps layers");
        return 0;
    }
    /* a header with no layer is accepted (SCALE-Sim v2 writes empty reports), with a note saying so */
    FZ_CHECK(topo.n_layers >= 1 || topo.n_notes >= 1, "accepted with no layers and no note");
    for (int32_t i = 0; i < topo.n_layers && i < MAX_LAYERS; i++) {
        const qs_scalesim_layer *l = &topo.layers[i];
        FZ_CHECK(memchr(l->name, '\0', sizeof l->name) != NULL, "layer %d: unterminated name", i);
        int32_t oh, ow;
        qs_scalesim_ofmap_dims(l, &oh, &ow);
        FZ_CHECK(oh >= 1 && ow >= 1, "layer %d: ofmap %dx%d", i, oh, ow);
        int64_t m, n, k;
        qs_scalesim_mnk(l, &m, &n, &k);
        FZ_CHECK(m >= 1 && n >= 1 && k >= 1, "layer %d: M %lld N %lld K %lld", i, (long long)m, (long long)n,
                 (long long)k);
        for (int d = 0; d < 3; d++) {
            int64_t sr, sc, t;
            qs_scalesim_spatiotemporal(l, (qs_dataflow)d, &sr, &sc, &t);
            FZ_CHECK(sr >= 1 && sc >= 1 && t >= 1, "layer %d: empty mapping", i);
        }
        opts.index = i;
        qs_net *net = NULL;
        if (l->no_operands) {
            /* too large to simulate: SCALE-Sim's figures only, and no network */
            FZ_CHECK(qs_scalesim_layer_net(l, &opts, &net, &e) == QS_ERR_UNSUPPORTED && net == NULL,
                     "layer %d: a network for a layer without operands", i);
            continue;
        }
        /* sizes up to 2^30: products in double before int64 (no overflow) */
        if ((double)m * k + (double)n * k + (double)m * n > (double)DECLARED_MAX) continue;
        int64_t declared = m * k + n * k + m * n; /* ifmap windows bound the ifmap from above */
        double ifmap_d = l->is_gemm ? (double)l->gemm_m * l->gemm_k
                                    : (double)l->channels * l->ifmap_h * (double)l->ifmap_w;
        if (declared > DECLARED_MAX || ifmap_d > (double)DECLARED_MAX) continue;
        st = qs_scalesim_layer_net(l, &opts, &net, &e);
        FZ_CHECK(st == QS_OK, "layer %d: no network: %s", i, e.msg);
        FZ_CHECK(qs_net_validate(net, "layer", &e) == QS_OK, "layer %d: invalid network: %s", i, e.msg);
        int32_t *x = NULL;
        int64_t count = 0;
        st = qs_scalesim_layer_input(net, l, &opts, &x, &count, &e);
        FZ_CHECK(st == QS_OK, "layer %d: no input: %s", i, e.msg);
        if (m * n * k <= MACS_MAX) run_layer(net, x, count, scalesim_arch(df));
        free(x);
        qs_net_destroy(net);
    }
    qs_scalesim_topo_free(&topo);
    return 0;
}
