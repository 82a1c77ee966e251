/* The qsim command: argument parsing, then compiler -> simulator -> report.
 * Every failure below a command becomes one message on stderr and exit 1;
 * usage errors exit 2. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "qs_alloc.h"
#include "compiler.h"
#include "qs_arch.h"
#include "qs_energy.h"
#include "qs_net.h"
#include "qs_npy.h"
#include "qs_revision.h"
#include "qs_scalesim.h"
#include "qs_xfmr.h"
#include "array.h"
#include "report.h"
#include "scalesim_reads.h"
#include "rtl_cosim.h"
#include "sim.h"
#include "trace.h"
#include "waveview.h"

#define MAX_SETS 256

/* The command line as typed (arguments quoted where the shell would need it),
 * recorded in every JSON report so that a result says how it was made. */
static char command_line[8192];

static void record_command_line(int argc, char **argv)
{
    size_t n = 0;
    command_line[0] = '\0';
    for (int i = 0; i < argc && n + 1 < sizeof command_line; i++) {
        const char *a = argv[i];
        int plain = a[0] != '\0' && strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.,/=:+@%") == strlen(a);
        int w = snprintf(command_line + n, sizeof command_line - n, plain ? "%s%s" : "%s'%s'", i ? " " : "", a);
        if (w < 0) break;
        n += (size_t)w;
    }
    if (n >= sizeof command_line) n = sizeof command_line - 1;
    command_line[n] = '\0';
}

static const char *USAGE =
    "usage: qsim <command> [options]\n"
    "\n"
    "commands:\n"
    "  info NET.qbin                         layers, shapes, bit widths, parameters, MACs\n"
    "  compile --arch A.cfg NET.qbin         map the network; --listing prints the mapping\n"
    "  run --arch A.cfg NET.qbin             simulate cycle by cycle and report\n"
    "  run --arch SCALE.cfg TOPOLOGY.csv     a SCALE-Sim config and topology, layer by layer (docs/scalesim.md)\n"
    "  scalesim -c CFG -t TOPO -p DIR        the same with SCALE-Sim's command line and outputs\n"
    "  import MODEL.onnx -o NET.qbin         convert a quantized ONNX / QONNX model (docs/onnx_import.md)\n"
    "\n"
    "  qsim --version | qsim --help | qsim COMMAND --help\n";

static const char *USAGE_COMPILE =
    "usage: qsim compile --arch A.cfg NET.qbin [options]\n"
    "  --arch FILE          accelerator configuration (models/arch/*.cfg)\n"
    "  --set S.K=V          override a configuration key (repeatable)\n"
    "  --listing            print the mapping per layer and the disassembly\n"
    "  --summary            print the mapping per layer without instructions\n";

static const char *USAGE_RUN =
    "usage: qsim run --arch A.cfg NET.qbin [options]\n"
    "       qsim run --arch A.cfg TOPOLOGY.csv [options]   (SCALE-Sim topology, docs/scalesim.md)\n"
    "  --arch FILE          accelerator configuration (models/arch/*.cfg, or a SCALE-Sim .cfg)\n"
    "  --set S.K=V          override a configuration key (repeatable)\n"
    "  --engine E           fast (default), detailed (every PE every cycle) or rtl (the detailed engine\n"
    "                       with the Verilated PE array of this configuration beside it, compared\n"
    "                       every clock; needs verilator; docs/waveforms.md \"RTL co-simulation\")\n"
    "  --rtl-tiles A:B      with --engine rtl: only array tiles A..B of each co-simulated layer\n"
    "  --rtl-cache DIR      with --engine rtl: where built models are kept (default\n"
    "                       $XDG_CACHE_HOME/qsim/rtl or ~/.cache/qsim/rtl)\n"
    "  --input X.npy        input integers, shape (C,H,W) or (N,C,H,W) for a batch\n"
    "  --labels Y.npy       labels of a batch: reports top-1 accuracy\n"
    "  --json FILE          write the full report as JSON (docs/report.md)\n"
    "  --csv FILE           write the per-layer table as CSV\n"
    "  --dump-outputs DIR   write every layer's output as DIR/<index>_<name>.npy; of a batch, every\n"
    "                       inference's as DIR/<inference>/<index>_<name>.npy (inference: 5 digits)\n"
    "  --dump-index K       of a batch, dump only inference K (0-based) as DIR/<index>_<name>.npy\n"
    "  --jobs N             simulate a batch's inferences on N threads (default: the machine's cores);\n"
    "                       the results do not depend on N\n"
    "  --fst FILE, --vcd FILE  waveform of the (first) inference for GTKWave, time in cycles; beside it\n"
    "                       FILE.gtkw, its view: gtkwave run.gtkw (per-clock PE activity needs --engine detailed)\n"
    "  --trace-from N, --trace-to N  cycle window of the waveform\n"
    "  --trace-layer NAME   waveform window = that layer's cycles; with --engine rtl also the only\n"
    "                       layer co-simulated (the others run fast), and --fst FILE puts the RTL's\n"
    "                       own signals in FILE.rtl.fst beside FILE\n"
    "  --dram-trace FILE    every DRAM request of the (first) inference, DRAMsim3/Ramulator format\n"
    "                       (docs/dram.md; needs a bank-level [dram] model)\n"
    "  -q, --quiet          no table on stdout\n"
    "SCALE-Sim topologies (each layer simulated on its own, synthetic operands):\n"
    "  --gemm               GEMM form (Layer, M, N, K); default: decided by the header\n"
    "  --sparsity F         fraction of zero weights and activations, 0..1 (default 0: dense)\n"
    "  --weight-sparsity F, --act-sparsity F   the same for one operand\n"
    "  --weight-bits B      signed weights: 1 (bipolar), 2, 4 or 8 (default 8)\n"
    "  --act-bits B         unsigned activations: 1..16 (default 8)\n"
    "  --report-dir DIR     SCALE-Sim's COMPUTE_REPORT.csv, BANDWIDTH_REPORT.csv, DETAILED_ACCESS_REPORT.csv\n"
    "  --traces             also SCALE-Sim's SRAM and DRAM trace CSVs, in DIR/layer<i>/ (needs --report-dir)\n"
    "  --timing-only        SCALE-Sim's figures only, no operands (layers too large to simulate always run so)\n";

static const char *USAGE_INFO = "usage: qsim info NET.qbin\n";

static const char *USAGE_IMPORT =
    "usage: qsim import MODEL.onnx -o NET.qbin [options]\n"
    "  converts ONNX QDQ / QOperator and QONNX (Quant, BipolarQuant, Trunc) graphs\n"
    "  -o FILE              the .qbin network to write\n"
    "  --name NAME          network name (default: the graph's)\n"
    "  --input-shape C,H,W  input size when the model's is symbolic\n"
    "  --strict             refuse anything not proved bit-exact against ONNX\n"
    "  --report             print every layer's exactness verdict\n"
    "  -q, --quiet          no summary line\n"
    "  (runs scripts/onnx_import.py with /usr/bin/python3; needs python3-onnx)\n";

typedef struct {
    const char *arch, *net, *engine, *input, *labels, *json, *csv, *dump;
    const char *fst, *vcd, *trace_from, *trace_to, *trace_layer;
    const char *sparsity, *wsparsity, *asparsity, *wbits, *abits, *report_dir; /* SCALE-Sim topologies */
    const char *jobs, *dump_index;
    const char *dram_trace;
    const char *rtl_tiles, *rtl_cache;  /* --engine rtl (docs/waveforms.md, "RTL co-simulation") */
    int timing_only;         /* SCALE-Sim topologies: no operands, SCALE-Sim's figures only */
    int gemm, traces;        /* traces: SCALE-Sim's trace CSVs per layer (docs/scalesim.md, "Traces") */
    const char *ss_outdir;   /* qsim scalesim -p: reports go to <dir>/<run_name>/, SCALE-Sim's stdout */
    const char *sets[MAX_SETS];
    int n_sets, listing, summary, quiet;
} options;

/* One line: what is wrong, and where the options are (the whole usage text
 * would bury the message). The command is the word after "usage: qsim ". */
static int usage_error(const char *cmd_usage, const char *fmt, const char *arg)
{
    char cmd[16] = "";
    if (sscanf(cmd_usage, "usage: qsim %15s", cmd) != 1) cmd[0] = '\0';
    fprintf(stderr, "qsim: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see 'qsim %s%s--help')\n", cmd, cmd[0] ? " " : "");
    return 2;
}

/* info and compile read a .qbin; a SCALE-Sim topology (.csv) goes to run. */
static int is_topology_path(const char *p);
static int refuse_topology(const char *cmd_usage, const char *path)
{
    return usage_error(cmd_usage,
                       "'%s' is a SCALE-Sim topology (.csv); this command takes a .qbin network, "
                       "'qsim run --arch SCALE.cfg TOPOLOGY.csv' simulates a topology",
                       path);
}

/* Parse options shared by the commands; `allowed` lists the long options the
 * command takes. Returns 0, or an exit code. */
static int parse_opts(int argc, char **argv, const char *cmd_usage, const char *allowed, options *o)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(cmd_usage, stdout);
            return -1;
        }
        if (a[0] != '-' || !strcmp(a, "-")) {
            if (o->net) return usage_error(cmd_usage, "more than one network given ('%s')", a);
            o->net = a;
            continue;
        }
        char key[32];
        snprintf(key, sizeof key, " %s ", a);
        if (!strstr(allowed, key)) return usage_error(cmd_usage, "unknown option '%s'", a);
        int takes_value = strcmp(a, "--listing") && strcmp(a, "--summary") && strcmp(a, "-q") && strcmp(a, "--quiet") &&
                          strcmp(a, "--gemm") && strcmp(a, "--traces") && strcmp(a, "--timing-only");
        const char *v = NULL;
        if (takes_value) {
            if (i + 1 >= argc) return usage_error(cmd_usage, "option '%s' needs a value", a);
            v = argv[++i];
        }
        if (!strcmp(a, "--arch")) o->arch = v;
        else if (!strcmp(a, "--set")) {
            if (o->n_sets == MAX_SETS) return usage_error(cmd_usage, "too many --set options (max 256) at '%s'", v);
            o->sets[o->n_sets++] = v;
        } else if (!strcmp(a, "--engine")) o->engine = v;
        else if (!strcmp(a, "--input")) o->input = v;
        else if (!strcmp(a, "--labels")) o->labels = v;
        else if (!strcmp(a, "--json")) o->json = v;
        else if (!strcmp(a, "--csv")) o->csv = v;
        else if (!strcmp(a, "--dump-outputs")) o->dump = v;
        else if (!strcmp(a, "--dump-index")) o->dump_index = v;
        else if (!strcmp(a, "--jobs")) o->jobs = v;
        else if (!strcmp(a, "--fst")) o->fst = v;
        else if (!strcmp(a, "--vcd")) o->vcd = v;
        else if (!strcmp(a, "--trace-from")) o->trace_from = v;
        else if (!strcmp(a, "--trace-to")) o->trace_to = v;
        else if (!strcmp(a, "--trace-layer")) o->trace_layer = v;
        else if (!strcmp(a, "--sparsity")) o->sparsity = v;
        else if (!strcmp(a, "--weight-sparsity")) o->wsparsity = v;
        else if (!strcmp(a, "--act-sparsity")) o->asparsity = v;
        else if (!strcmp(a, "--weight-bits")) o->wbits = v;
        else if (!strcmp(a, "--act-bits")) o->abits = v;
        else if (!strcmp(a, "--report-dir")) o->report_dir = v;
        else if (!strcmp(a, "--dram-trace")) o->dram_trace = v;
        else if (!strcmp(a, "--rtl-tiles")) o->rtl_tiles = v;
        else if (!strcmp(a, "--rtl-cache")) o->rtl_cache = v;
        else if (!strcmp(a, "--gemm")) o->gemm = 1;
        else if (!strcmp(a, "--traces")) o->traces = 1;
        else if (!strcmp(a, "--timing-only")) o->timing_only = 1;
        else if (!strcmp(a, "--listing")) o->listing = 1;
        else if (!strcmp(a, "--summary")) o->summary = 1;
        else o->quiet = 1;
    }
    return 0;
}

static int fail(const qs_error *e)
{
    fprintf(stderr, "qsim: %s\n", e->msg);
    return 1;
}

static int cmd_info(int argc, char **argv)
{
    options o;
    memset(&o, 0, sizeof o);
    int rc = parse_opts(argc, argv, USAGE_INFO, " ", &o);
    if (rc) return rc < 0 ? 0 : rc;
    if (!o.net) return usage_error(USAGE_INFO, "%s", "no network given");
    if (is_topology_path(o.net)) return refuse_topology(USAGE_INFO, o.net);
    qs_net *net;
    qs_error e;
    if (qs_net_load(o.net, &net, &e)) return fail(&e);
    int64_t params = 0, macs = 0, bytes = 0;
    int name_w = 4; /* the name column fits the longest name: cut names are ambiguous (features.1.conv.0, .1, ...) */
    for (int32_t i = 0; i < net->n_layers; i++) {
        int len = (int)strlen(net->layers[i].name);
        if (len > name_w) name_w = len;
    }
    printf("network '%s' (%s): %d layers, %d tensors\n", net->name, o.net, net->n_layers, net->n_tensors);
    const qs_layer *IN = &net->layers[0];
    /* what a user needs to quantize real data for --input: q = round(real / scale) + zero point */
    printf("input '%s': %dx%dx%d %s%d, scale %.9g, zero point %d (real = scale * (q - zero point))\n\n", IN->name,
           IN->out_c, IN->out_h, IN->out_w, IN->out_signed ? "int" : "uint", IN->out_bits, (double)IN->out_scale,
           (int)IN->out_zp);
    printf("%3s %-*s %-9s %-10s %-14s %-9s %-10s %12s\n", "#", name_w, "name", "kind", "inputs", "out CxHxW", "out",
           "weights", "MACs");
    for (int32_t i = 0; i < net->n_layers; i++) {
        const qs_layer *L = &net->layers[i];
        char ins[32] = "", shape[32], outq[16], w[40] = "-";
        for (int32_t k = 0; k < L->n_inputs && k < 3; k++) {
            char t[12];
            snprintf(t, sizeof t, "%s%d", k ? "," : "", L->inputs[k]);
            strncat(ins, t, sizeof ins - strlen(ins) - 1);
        }
        snprintf(shape, sizeof shape, "%dx%dx%d", L->out_c, L->out_h, L->out_w);
        snprintf(outq, sizeof outq, "%s%d", L->out_signed ? "int" : "uint", L->out_bits);
        if (L->kind == QS_L_SOFTMAX && QS_SOFTMAX_IS_CAUSAL(L->param)) { /* the mask says more than the table */
            if (QS_SOFTMAX_OFFSET(L->param))
                snprintf(w, sizeof w, "causal+%d", (int)QS_SOFTMAX_OFFSET(L->param));
            else
                snprintf(w, sizeof w, "causal");
        } else if (L->kind == QS_L_LUT || L->kind == QS_L_SOFTMAX) { /* a table of the PPU, not weights */
            snprintf(w, sizeof w, "table[%lld]", (long long)net->tensors[L->weight].count);
        } else if (L->kind == QS_L_ROPE) { /* cos/sin table: positions x pairs */
            snprintf(w, sizeof w, "rope[%lldx%lld]", (long long)net->tensors[L->weight].shape[0],
                     (long long)net->tensors[L->weight].shape[1]);
        } else if (L->kind == QS_L_MUL && L->param == QS_MUL_ROWMAX) {
            snprintf(w, sizeof w, "x rowmax(%d)", (int)L->inputs[1]);
        } else if (L->kind == QS_L_MATMUL) {
            snprintf(w, sizeof w, "%s", (const char *[]){"A x B", "A^T x B", "A x B^T", "A^T x B^T"}[L->param & 3]);
        } else if (L->weight >= 0) {
            const qs_tensor *T = &net->tensors[L->weight];
            snprintf(w, sizeof w, "%s", qs_dtype_name(T->dtype, T->is_signed));
            params += T->count;
            bytes += qs_tensor_packed_bytes(T->count, T->dtype);
        }
        int64_t m = qs_layer_macs(net, i);
        macs += m;
        printf("%3d %-*s %-9s %-10s %-14s %-9s %-10s %12lld\n", i, name_w, L->name, qs_layer_kind_name(L->kind), ins,
               shape, outq, w, (long long)m);
    }
    printf("\nparameters: %lld weights, %lld bytes packed; MACs per inference: %lld\n", (long long)params,
           (long long)bytes, (long long)macs);
    qs_net_destroy(net);
    return 0;
}

/* --arch: a native qsim configuration, or a SCALE-Sim one (docs/scalesim.md);
 * *is_scalesim (if given) says which, sscfg (if given) gets what it said. */
static int load_arch(const options *o, qs_arch *arch, qs_scalesim_cfg *sscfg, int *is_scalesim, qs_error *e)
{
    char *text;
    if (qs_read_text_file(o->arch, &text, e)) return 1;
    int ss = qs_scalesim_is_config(text);
    qs_status st = ss ? qs_scalesim_parse_config(text, o->arch, o->sets, o->n_sets, arch, sscfg, e) : QS_OK;
    qs_free(text);
    /* a native file through qs_arch_load: it resolves the tech table against the file's folder */
    if (!ss) st = qs_arch_load(o->arch, o->sets, o->n_sets, arch, e);
    if (is_scalesim) *is_scalesim = ss;
    return st != QS_OK;
}

static int load_inputs(const options *o, qs_arch *arch, qs_net **net, qs_error *e)
{
    if (!o->arch) {
        snprintf(e->msg, sizeof e->msg, "no --arch given (e.g. --arch models/arch/dlac.cfg)");
        return 2;
    }
    if (!o->net) {
        snprintf(e->msg, sizeof e->msg, "no network given");
        return 2;
    }
    if (load_arch(o, arch, NULL, NULL, e)) return 1;
    if (qs_net_load(o->net, net, e)) return 1;
    return 0;
}

/* Buffer bandwidth that does not grow with the array (docs/timing.md, "Buffer
 * bandwidth") can make a bigger array slower; a sweep shows only the cycles, so
 * say it where the user looks. The layer whose stream is slowed most names the
 * buffer, what it delivers and what the array reads. Run: when buffer stalls
 * are at least a quarter of the cycles; compile (no cycles yet): when layers
 * holding at least a quarter of the dense MACs stream slower than one step per
 * cycle. */
#define THROTTLE_WARN_FRACTION 0.25

static void warn_buffer_throttle(const qs_net *net, const qs_prog *p, const qs_arch *a, uint64_t stall_buffer,
                                 uint64_t cycles)
{
    static const char *const BUF[3] = {"ifmap", "weight", "accum"};
    int32_t worst_rate = 1, worst_buf = -1;
    int64_t worst_need = 0, worst_bw = 0;
    double macs_all = 0.0, macs_slow = 0.0;
    for (int32_t i = 0; i < net->n_layers && i < p->n_layers; i++) {
        if (!p->maps[i].is_gemm) continue;
        int64_t need[3], bw[3];
        int32_t rate = qs_array_stream_needs(a, &p->maps[i], need, bw);
        double m = (double)qs_layer_macs(net, i);
        macs_all += m;
        if (rate > 1) macs_slow += m;
        for (int b = 0; b < 3; b++) {
            if (bw[b] <= 0 || need[b] <= bw[b]) continue;
            int32_t rb = (int32_t)((need[b] + bw[b] - 1) / bw[b]);
            if (rb > worst_rate) {
                worst_rate = rb;
                worst_buf = b;
                worst_need = need[b];
                worst_bw = bw[b];
            }
        }
    }
    if (worst_buf < 0) return;
    char why[400];
    snprintf(why, sizeof why,
             "the %s buffer delivers %lld B/cycle, the %dx%d array reads %lld B per step (%d cycles a step); "
             "raise buffer.%s.banks or buffer.%s.bank_width_bytes (docs/timing.md, Buffer bandwidth)",
             BUF[worst_buf], (long long)worst_bw, a->rows, a->cols, (long long)worst_need, (int)worst_rate,
             BUF[worst_buf], BUF[worst_buf]);
    if (cycles > 0) {
        double frac = (double)stall_buffer / (double)cycles;
        if (frac >= THROTTLE_WARN_FRACTION)
            fprintf(stderr, "qsim: warning: buffer bandwidth throttles the array: %llu of %llu cycles (%.1f%%) are "
                            "buffer stalls: %s\n",
                    (unsigned long long)stall_buffer, (unsigned long long)cycles, 100.0 * frac, why);
    } else if (macs_all > 0 && macs_slow / macs_all >= THROTTLE_WARN_FRACTION) {
        fprintf(stderr, "qsim: warning: buffer bandwidth throttles the array in layers with %.1f%% of the MACs: %s\n",
                100.0 * macs_slow / macs_all, why);
    }
}

static int cmd_compile(int argc, char **argv)
{
    options o;
    memset(&o, 0, sizeof o);
    int rc = parse_opts(argc, argv, USAGE_COMPILE, " --arch --set --listing --summary ", &o);
    if (rc) return rc < 0 ? 0 : rc;
    if (is_topology_path(o.net)) return refuse_topology(USAGE_COMPILE, o.net);
    qs_arch arch;
    qs_net *net = NULL;
    qs_error e;
    rc = load_inputs(&o, &arch, &net, &e);
    if (rc == 2) return usage_error(USAGE_COMPILE, "%s", e.msg);
    if (rc) return fail(&e);
    qs_prog *p;
    if (qs_compile(net, &arch, &p, &e)) {
        qs_net_destroy(net);
        return fail(&e);
    }
    if (o.listing || o.summary) qs_compile_listing(p, net, o.listing, stdout);
    else printf("%s: %d instructions, DRAM footprint %u bytes\n", o.net, p->n_insn, p->dram_bytes);
    warn_buffer_throttle(net, p, &arch, 0, 0);
    qs_prog_destroy(p);
    qs_net_destroy(net);
    return rc;
}

/* Index of the largest value (first on ties) of the output layer. */
static int32_t argmax(const int32_t *v, int64_t n)
{
    int32_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (v[i] > v[best]) best = (int32_t)i;
    return best;
}

static int make_dir(const char *dir, qs_error *e)
{
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        snprintf(e->msg, sizeof e->msg, "%.400s: cannot create directory: %s", dir, strerror(errno));
        return 1;
    }
    return 0;
}

/* Every layer's output as DIR/<index>_<name>.npy, or with inference >= 0 (one
 * inference of a batch) DIR/<inference, 5 digits>/<index>_<name>.npy. */
static int dump_outputs(const char *top, int32_t inference, const qs_net *net, const qs_sim *sim, qs_error *e)
{
    char dir[900];
    if (inference >= 0) snprintf(dir, sizeof dir, "%s/%05d", top, (int)inference);
    else snprintf(dir, sizeof dir, "%s", top);
    if (make_dir(dir, e)) return 1;
    for (int32_t i = 0; i < net->n_layers; i++) {
        const qs_layer *L = &net->layers[i];
        char path[1024];
        snprintf(path, sizeof path, "%s/%03d_%s.npy", dir, i, L->name);
        for (char *c = path + strlen(dir) + 1; *c; c++)
            if (*c == '/') *c = '_';
        int64_t shape[3] = {L->out_c, L->out_h, L->out_w};
        if (qs_npy_save_i32(path, shape, 3, qs_sim_layer_output(sim, i), e)) return 1;
    }
    return 0;
}

static int parse_cycle(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-') return 1;
    *out = v;
    return 0;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* qs_sim_run, printing the simulated cycle count on stderr about four times a
 * second (for a terminal: a detailed-engine ResNet takes a while). Same
 * result: qs_sim_run is start + advance to the end. */
static qs_status run_showing_cycles(qs_sim *sim, qs_error *e)
{
    qs_status st = qs_sim_start(sim, e);
    int done = 0, shown = 0;
    double last = now_seconds();
    while (!st && !done) {
        st = qs_sim_advance(sim, qs_sim_now(sim) + 65536, &done, e);
        double t = now_seconds();
        if (t - last >= 0.25) {
            fprintf(stderr, "\rqsim: %llu cycles simulated", (unsigned long long)qs_sim_now(sim));
            last = t;
            shown = 1;
        }
    }
    if (shown) fputc('\n', stderr);
    return st;
}

/* ---- SCALE-Sim topologies (docs/scalesim.md) ---------------------------------------- */

static int is_topology_path(const char *p)
{
    size_t n = p ? strlen(p) : 0;
    return n > 4 && !strcasecmp(p + n - 4, ".csv");
}

static int parse_fraction(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !(v >= 0.0 && v <= 1.0)) return 1;
    *out = v;
    return 0;
}

static int parse_int_arg(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi) return 1;
    *out = (int)v;
    return 0;
}

/* The replayed figures of SCALE-Sim's CALC read buffers into the layer's
 * statistics. */
static void apply_read_replay(const qs_ssreads *r, qs_scalesim_stats *ss)
{
    ss->dram_reads_replayed = 1;
    for (int i = 0; i < 2; i++) {
        ss->dram_reads[i] = r->dram_reads[i];
        ss->dram_read_first[i] = r->dram_start[i];
        ss->dram_read_last[i] = r->dram_stop[i];
    }
    ss->ifmap_sram_first = (uint64_t)r->sram_start[0];
    ss->ifmap_sram_last = (uint64_t)r->sram_stop[0];
    ss->filter_sram_first = (uint64_t)r->sram_start[1];
    ss->filter_sram_last = (uint64_t)r->sram_stop[1];
}

/* CALC mode under the scalesim convention: the DRAM read columns and the
 * read operands' SRAM start/stop cycles from a replay of SCALE-Sim's read
 * buffers (docs/scalesim.md, "DRAM reads"); its own ofmap timeline must agree
 * with the engine's. With trace_dir, SCALE-Sim's six trace files of the
 * layer go to <trace_dir>/layer<index>/ (docs/scalesim.md, "Traces"), from
 * the same replay (in either bandwidth mode). */
static qs_status scalesim_read_replay(const qs_scalesim_layer *row, int32_t index, const qs_arch *arch,
                                      const char *trace_dir, const int64_t offsets[3], qs_scalesim_stats *ss,
                                      qs_error *e)
{
    if (arch->timing != QS_TIMING_SCALESIM || ss->folds == 0) return QS_OK;
    const int calc = arch->scalesim_bandwidth <= 0;
    if (!trace_dir && !calc) return QS_OK;
    qs_ssreads r;
    qs_status st;
    if (trace_dir) {
        char layer_dir[4096];
        if ((size_t)snprintf(layer_dir, sizeof layer_dir, "%s/layer%d", trace_dir, (int)index) >= sizeof layer_dir)
            return qs_fail(e, QS_ERR_ARG, "%s: path too long", trace_dir);
        if (mkdir(layer_dir, 0777) && errno != EEXIST)
            return qs_fail(e, QS_ERR_IO, "%s: cannot create directory: %s", layer_dir, strerror(errno));
        st = qs_sstrace_layer(row, arch, offsets, layer_dir, &r, e);
    } else {
        st = qs_ssreads_layer(row, arch, QS_SSREADS_DIRECT_LIMIT, &r, e);
    }
    if (st) return st;
    if (r.total_cycles != ss->total_cycles || r.stall_cycles != ss->stall_cycles)
        return qs_fail(e, QS_ERR_RUN, "layer '%s': SCALE-Sim read replay counts %llu cycles, the engine %llu",
                       row->name, (unsigned long long)r.total_cycles, (unsigned long long)ss->total_cycles);
    if (calc) apply_read_replay(&r, ss);
    return QS_OK;
}

/* One topology layer: its own network, compiled and simulated, then freed;
 * what the report needs is copied to *res. */
static qs_status run_topology_layer(const qs_scalesim_layer *row, int32_t index, const qs_arch *arch,
                                    qs_engine engine, const qs_scalesim_opts *base, int timing_only, int replay_reads,
                                    const char *trace_dir, const int64_t trace_offsets[3], qs_topo_layer *res,
                                    qs_error *e)
{
    if (timing_only || row->no_operands) {
        /* SCALE-Sim's figures from the row alone (docs/scalesim.md, "Layers
         * without operands"): no network, no qsim cycles or energy */
        memset(res, 0, sizeof *res);
        res->row = *row;
        res->no_operands = 1;
        snprintf(res->layer.name, sizeof res->layer.name, "%.40s", row->name);
        res->layer.kind = QS_L_CONV;
        int32_t oh, ow;
        qs_scalesim_ofmap_dims(row, &oh, &ow);
        res->layer.out_c = row->num_filters;
        res->layer.out_h = row->is_gemm ? row->gemm_m : oh;
        res->layer.out_w = row->is_gemm ? 1 : ow;
        qs_status st = qs_ssstats_layer(row, arch, &res->stats.ss, e);
        if (!st && (replay_reads || trace_dir))
            st = scalesim_read_replay(row, index, arch, trace_dir, trace_offsets, &res->stats.ss, e);
        return st;
    }
    qs_scalesim_opts opts = *base;
    opts.index = index;
    qs_net *net = NULL;
    qs_prog *prog = NULL;
    qs_sim *sim = NULL;
    int32_t *x = NULL;
    int64_t n = 0;
    qs_status st = qs_scalesim_layer_net(row, &opts, &net, e);
    if (!st) st = qs_compile(net, arch, &prog, e);
    if (!st) st = qs_sim_create(net, prog, engine, &sim, e);
    if (!st) st = qs_scalesim_layer_input(net, row, &opts, &x, &n, e);
    if (!st) st = qs_sim_set_input(sim, x, n, e);
    if (!st) qs_sim_set_scalesim_layer(sim, 1, row);
    if (!st) st = qs_sim_run(sim, e);
    if (!st) {
        res->row = *row;
        res->layer = net->layers[1];
        res->layer.rq.n = 0;
        res->layer.rq.mult = NULL;
        res->layer.rq.shift = NULL;
        res->map = prog->maps[1];
        res->map.list_off = res->map.list = res->map.bias_folded = NULL;
        res->stats = *qs_sim_layer_stats(sim, 1);
        if (replay_reads || trace_dir)
            st = scalesim_read_replay(row, index, arch, trace_dir, trace_offsets, &res->stats.ss, e);
    }
    qs_free(x);
    qs_sim_destroy(sim);
    qs_prog_destroy(prog);
    qs_net_destroy(net);
    return st;
}

static int run_topology(const options *o, qs_engine engine)
{
    if (o->input || o->labels || o->dump || o->fst || o->vcd || o->trace_from || o->trace_to || o->trace_layer)
        return usage_error(USAGE_RUN, "%s",
                           "--input, --labels, --dump-outputs and waveforms need a .qbin network; a topology's "
                           "operands are synthetic");
    if (!o->arch) return usage_error(USAGE_RUN, "%s", "no --arch given (e.g. --arch models/scalesim/scale.cfg)");
    if (!o->net) return usage_error(USAGE_RUN, "%s", "no topology given (a SCALE-Sim .csv)");
    qs_scalesim_opts opts;
    qs_scalesim_opts_default(&opts);
    double f;
    if (o->sparsity) {
        if (parse_fraction(o->sparsity, &f))
            return usage_error(USAGE_RUN, "--sparsity '%s' is not a fraction 0..1", o->sparsity);
        opts.weight_sparsity = opts.act_sparsity = f;
    }
    if (o->wsparsity) {
        if (parse_fraction(o->wsparsity, &f))
            return usage_error(USAGE_RUN, "--weight-sparsity '%s' is not a fraction 0..1", o->wsparsity);
        opts.weight_sparsity = f;
    }
    if (o->asparsity) {
        if (parse_fraction(o->asparsity, &f))
            return usage_error(USAGE_RUN, "--act-sparsity '%s' is not a fraction 0..1", o->asparsity);
        opts.act_sparsity = f;
    }
    if (o->wbits && (parse_int_arg(o->wbits, 1, 8, &opts.weight_bits) ||
                     (opts.weight_bits != 1 && opts.weight_bits != 2 && opts.weight_bits != 4 && opts.weight_bits != 8)))
        return usage_error(USAGE_RUN, "--weight-bits '%s': 1 (bipolar), 2, 4 or 8", o->wbits);
    if (o->abits && parse_int_arg(o->abits, 1, 16, &opts.act_bits))
        return usage_error(USAGE_RUN, "--act-bits '%s': 1..16", o->abits);
    if (opts.weight_bits == 1 && opts.weight_sparsity > 0.0)
        return usage_error(USAGE_RUN, "%s", "bipolar weights (--weight-bits 1) are +-1: they cannot be sparse");

    double t0 = now_seconds();
    qs_arch arch;
    qs_scalesim_cfg sscfg;
    qs_scalesim_topo topo = {0};
    qs_topo_layer *res = NULL;
    qs_tech tech;
    qs_error e;
    int is_ss = 0, rc = 1, progress = 0;
    memset(&sscfg, 0, sizeof sscfg);
    if (load_arch(o, &arch, &sscfg, &is_ss, &e)) goto out;
    if (opts.act_bits > arch.max_act_bits) {
        qs_fail(&e, QS_ERR_CONFIG, "%s: --act-bits %d exceeds [array] max_act_bits = %d (--set array.max_act_bits=%d)",
                o->arch, opts.act_bits, arch.max_act_bits, opts.act_bits);
        goto out;
    }
    if (o->report_dir && arch.timing != QS_TIMING_SCALESIM) {
        qs_fail(&e, QS_ERR_CONFIG, "--report-dir: SCALE-Sim's reports need [timing] convention = scalesim (%s gives %s)",
                o->arch, qs_timing_name(arch.timing));
        goto out;
    }
    char ss_report_dir[4096];
    if (o->ss_outdir) {
        /* SCALE-Sim's layout: <-p dir>/<run_name>/, both made if missing */
        if (!is_ss) {
            qs_fail(&e, QS_ERR_CONFIG, "%s: qsim scalesim needs a SCALE-Sim configuration", o->arch);
            goto out;
        }
        if (mkdir(o->ss_outdir, 0777) && errno != EEXIST) {
            qs_fail(&e, QS_ERR_IO, "%s: cannot create directory: %s", o->ss_outdir, strerror(errno));
            goto out;
        }
        if ((size_t)snprintf(ss_report_dir, sizeof ss_report_dir, "%s/%s", o->ss_outdir, sscfg.run_name) >=
            sizeof ss_report_dir) {
            qs_fail(&e, QS_ERR_ARG, "%s: path too long", o->ss_outdir);
            goto out;
        }
    }
    const char *report_dir = o->ss_outdir ? ss_report_dir : o->report_dir;
    if (o->traces) {
        if (!report_dir) {
            rc = usage_error(USAGE_RUN, "%s", "--traces needs --report-dir (the traces go to DIR/layer<i>/)");
            goto out_usage;
        }
        if (mkdir(report_dir, 0777) && errno != EEXIST) {
            qs_fail(&e, QS_ERR_IO, "%s: cannot create directory: %s", report_dir, strerror(errno));
            goto out;
        }
    }
    if (qs_scalesim_load_topology(o->net, o->gemm ? 1 : -1, &topo, &e)) goto out;
    /* an array over the engines' limit runs SCALE-Sim's figures only, which
     * use no technology figure (energy and area are not computed): the
     * table is loaded for the largest array the engines hold */
    qs_arch tech_arch = arch;
    if (tech_arch.scalesim_figures_only) {
        tech_arch.rows = tech_arch.rows < 1024 ? tech_arch.rows : 1024;
        tech_arch.cols = tech_arch.cols < 1024 ? tech_arch.cols : 1024;
        tech_arch.scalesim_figures_only = 0;
    }
    if (qs_tech_load(arch.tech_table, &tech_arch, opts.act_bits, &tech, &e)) goto out;
    res = qs_calloc(topo.n_layers ? (size_t)topo.n_layers : 1, sizeof *res);
    if (!res) {
        qs_fail(&e, QS_ERR_NOMEM, "out of memory");
        goto out;
    }
    progress = isatty(2) && topo.n_layers > 1;
    /* SCALE-Sim's defaults when the configuration is a native one */
    const int64_t trace_offsets[3] = {is_ss ? sscfg.ifmap_offset : 0, is_ss ? sscfg.filter_offset : 10000000,
                                      is_ss ? sscfg.ofmap_offset : 20000000};
    for (int32_t i = 0; i < topo.n_layers; i++) {
        qs_error le;
        /* the replayed figures appear only in the report files, JSON and CSV */
        int replay_reads = report_dir || o->json || o->csv || o->ss_outdir;
        if (run_topology_layer(&topo.layers[i], i, &arch, engine, &opts, o->timing_only || arch.scalesim_figures_only,
                               replay_reads,
                               o->traces ? report_dir : NULL, trace_offsets, &res[i], &le)) {
            if (progress) fputc('\n', stderr);
            qs_fail(&e, QS_ERR_RUN, "%.300s:%d: %.400s", o->net, (int)topo.layers[i].line, le.msg);
            goto out;
        }
        if (progress) fprintf(stderr, "\rqsim: layer %d/%d", (int)i + 1, (int)topo.n_layers);
    }
    if (progress) fputc('\n', stderr);
    qs_topo_report rep = {&arch, &tech, is_ss ? &sscfg : NULL, &opts, o->net, o->arch,
                          engine == QS_ENGINE_FAST ? "fast" : "detailed", topo.gemm, topo.n_layers, res, 0.0, NULL};
    rep.wall_seconds = now_seconds() - t0;
    rep.command_line = command_line;
    if (!o->quiet) qs_topo_report_print(&rep, stdout);
    if (o->json && qs_topo_report_write_json(&rep, o->json, &e)) goto out;
    if (o->csv && qs_topo_report_write_csv(&rep, o->csv, &e)) goto out;
    if (report_dir && qs_scalesim_write_reports(&rep, report_dir, &e)) goto out;
    if (o->ss_outdir) qs_scalesim_print_stdout(&rep, o->net, stdout);
    for (int i = 0; is_ss && i < sscfg.n_notes; i++) fprintf(stderr, "qsim: note: %s\n", sscfg.notes[i]);
    for (int i = 0; i < topo.n_notes; i++) fprintf(stderr, "qsim: note: %s\n", topo.notes[i]);
    /* sparse operands only count where the configuration does something with zeros (docs/scalesim.md) */
    if (opts.weight_sparsity > 0.0 || opts.act_sparsity > 0.0) {
        if (arch.zero_skip == QS_SKIP_NONE)
            fprintf(stderr, "qsim: note: the zero operands change nothing here: [array] zero_skip = none neither gates "
                            "nor skips them (--set array.zero_skip=gate saves energy; for cycles too: --set "
                            "timing.convention=native --set array.zero_skip=both --set array.skip_group=1)\n");
        else if (arch.timing == QS_TIMING_SCALESIM)
            fprintf(stderr, "qsim: note: under SCALE-Sim's timing the zero operands save energy, not cycles (for cycles "
                            "too: --set timing.convention=native --set array.skip_group=1)\n");
    }
    rc = 0;
out:
    if (rc) fail(&e);
out_usage:
    qs_free(res);
    qs_scalesim_topo_free(&topo);
    return rc;
}

static const char *USAGE_SCALESIM =
    "usage: qsim scalesim -c CONFIG.cfg -t TOPOLOGY.csv -p OUTDIR [-i gemm|conv] [options]\n"
    "  SCALE-Sim v2's command line (scale.py): OUTDIR/<run_name>/ gets COMPUTE_REPORT.csv, BANDWIDTH_REPORT.csv\n"
    "  and DETAILED_ACCESS_REPORT.csv; stdout gets SCALE-Sim's lines (\"Compute cycles: N\" per layer)\n"
    "  -c FILE              SCALE-Sim configuration\n"
    "  -t FILE              topology (convolution form unless -i gemm)\n"
    "  -p DIR               log directory (default: ../test_runs, as scale.py)\n"
    "  -i gemm|conv         topology form (default conv)\n"
    "  --engine E           fast (default) or detailed\n"
    "  --set S.K=V          override a qsim configuration key (repeatable)\n"
    "  --traces             also SCALE-Sim's SRAM and DRAM trace CSVs in OUTDIR/<run_name>/layer<i>/\n"
    "  --timing-only        no operands: SCALE-Sim's figures only (layers too large to simulate always run so)\n";

/* `qsim scalesim`: SCALE-Sim's own flags mapped onto a topology run. */
static int cmd_scalesim(int argc, char **argv)
{
    options o;
    memset(&o, 0, sizeof o);
    const char *cfg = NULL, *topo = NULL, *outdir = "../test_runs", *form = "conv";
    qs_engine engine = QS_ENGINE_FAST;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(USAGE_SCALESIM, stdout);
            return 0;
        }
        if (!strcmp(a, "--traces") || !strcmp(a, "--timing-only")) {
            *(!strcmp(a, "--traces") ? &o.traces : &o.timing_only) = 1;
            continue;
        }
        if (i + 1 >= argc) return usage_error(USAGE_SCALESIM, "%s needs a value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "-c")) cfg = v;
        else if (!strcmp(a, "-t")) topo = v;
        else if (!strcmp(a, "-p")) outdir = v;
        else if (!strcmp(a, "-i")) form = v;
        else if (!strcmp(a, "--engine")) {
            if (!strcmp(v, "fast")) engine = QS_ENGINE_FAST;
            else if (!strcmp(v, "detailed")) engine = QS_ENGINE_DETAILED;
            else return usage_error(USAGE_SCALESIM, "unknown engine '%s' (fast or detailed)", v);
        } else if (!strcmp(a, "--set")) {
            if (o.n_sets == MAX_SETS) return usage_error(USAGE_SCALESIM, "%s", "too many --set options");
            o.sets[o.n_sets++] = v;
        } else return usage_error(USAGE_SCALESIM, "unknown option '%s'", a);
    }
    if (!cfg) return usage_error(USAGE_SCALESIM, "%s", "no -c CONFIG given");
    if (!topo) return usage_error(USAGE_SCALESIM, "%s", "no -t TOPOLOGY given");
    if (strcmp(form, "gemm") && strcmp(form, "conv"))
        return usage_error(USAGE_SCALESIM, "-i '%s': gemm or conv", form);
    o.arch = cfg;
    o.net = topo;
    o.gemm = !strcmp(form, "gemm");
    o.ss_outdir = outdir;
    o.quiet = 1;
    return run_topology(&o, engine);
}

/* --dram-trace: the bank model's requests, collected during the first
 * inference, written sorted by cycle (docs/dram.md, "Request traces"). */
typedef struct {
    uint64_t cycle, addr, seq;
    int is_write;
} dram_req;

typedef struct {
    dram_req *v;
    size_t n, cap;
    int oom;
} dram_log;

static void dram_log_add(void *user, uint64_t cycle, uint64_t addr, int is_write, uint32_t bytes)
{
    (void)bytes; /* one burst, the same for every request */
    dram_log *l = user;
    if (l->oom) return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4096;
        dram_req *v = qs_realloc(l->v, cap * sizeof *v);
        if (!v) {
            l->oom = 1;
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    dram_req r = {cycle, addr, l->n, is_write};
    l->v[l->n++] = r;
}

static int dram_req_cmp(const void *a, const void *b)
{
    const dram_req *x = a, *y = b;
    if (x->cycle != y->cycle) return x->cycle < y->cycle ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static qs_status dram_log_write(dram_log *l, const char *path, qs_error *e)
{
    if (l->oom) return qs_fail(e, QS_ERR_NOMEM, "%s: out of memory for the DRAM trace", path);
    qsort(l->v, l->n, sizeof *l->v, dram_req_cmp);
    FILE *f = fopen(path, "w");
    if (!f) return qs_fail(e, QS_ERR_IO, "%s: cannot open for writing", path);
    for (size_t i = 0; i < l->n; i++)
        fprintf(f, "0x%" PRIx64 " %s %" PRIu64 "\n", l->v[i].addr, l->v[i].is_write ? "WRITE" : "READ", l->v[i].cycle);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return qs_fail(e, QS_ERR_IO, "%s: write failed", path);
    return QS_OK;
}

/* ---- a batch of inferences, split over threads ------------------------------------- */

/* One thread's share of a batch: inferences [first, end), on its own simulator.
 * Per-layer sums are integers, so adding the jobs' sums in any order gives the
 * same totals as one job: the report does not depend on the number of jobs. */
typedef struct {
    const qs_net *net;
    const qs_prog *prog;
    qs_engine engine;
    qs_sim *sim;                /* the main thread's for job 0; else created by the job */
    const char *input_path;     /* NULL: no --input (the network's own input) */
    const int32_t *x;           /* all inputs, `per` values each */
    const int32_t *labels;      /* NULL: no --labels */
    int64_t per;
    int32_t first, end, n;
    const char *dump;           /* --dump-outputs DIR or NULL */
    int32_t dump_index;         /* dump only this inference of a batch; -1: every one */
    qs_trace *trace;            /* job 0: closed after its first inference */
    const char *wave_path;      /* the --fst/--vcd file, for its view */
    uint64_t tr_from, tr_to;    /* the waveform's window */
    const char *dram_trace;     /* job 0: --dram-trace file, written after its first inference */
    dram_log *dlog;
    int progress, cycle_progress;
    qs_layer_stats *acc;        /* net->n_layers sums over this job's inferences */
    int32_t *preds;             /* the whole batch's; the job writes [first, end) */
    int n_correct;
    int failed;
    qs_error e;
} batch_job;

static void *run_batch_job(void *arg)
{
    batch_job *j = arg;
    qs_error *e = &j->e;
    qs_sim *own = NULL;
    j->failed = 1;
    if (!j->sim) {
        if (qs_sim_create(j->net, j->prog, j->engine, &own, e)) return NULL;
        j->sim = own;
    }
    const qs_net *net = j->net;
    const qs_layer *OUT = &net->layers[net->output];
    for (int32_t b = j->first; b < j->end; b++) {
        if (j->input_path) {
            qs_error ie;
            if (qs_sim_set_input(j->sim, j->x + (size_t)b * (size_t)j->per, j->per, &ie)) {
                qs_fail(e, QS_ERR_ARG, "%s: inference %d: %.400s", j->input_path, (int)b, ie.msg);
                goto out;
            }
        }
        if ((j->cycle_progress ? run_showing_cycles(j->sim, e) : qs_sim_run(j->sim, e)) != QS_OK) goto out;
        if (j->dram_trace && b == 0) {
            qs_sim_set_dram_trace(j->sim, NULL, NULL);
            if (dram_log_write(j->dlog, j->dram_trace, e)) goto out;
        }
        if (j->trace) { /* the first inference only */
            qs_sim_set_trace(j->sim, NULL, 0, 0);
            qs_status ts = qs_trace_close(j->trace, e);
            j->trace = NULL;
            if (ts) goto out;
            /* beside the dump, a view that opens on its window, with layer names */
            uint64_t last = qs_sim_now(j->sim), to = j->tr_to < last ? j->tr_to : last,
                     from = j->tr_from < to ? j->tr_from : to;
            char view[4096];
            if (qs_write_wave_view(j->wave_path, net, j->engine == QS_ENGINE_DETAILED, from, to, view, sizeof view, e))
                goto out;
            fprintf(stderr, "qsim: waveform %s holds cycles %llu..%llu; view it: gtkwave %s\n", j->wave_path,
                    (unsigned long long)from, (unsigned long long)to, view);
        }
        for (int32_t i = 0; i < net->n_layers; i++) {
            const qs_layer_stats *s = qs_sim_layer_stats(j->sim, i);
            j->acc[i].cycles += s->cycles;
            j->acc[i].array_busy += s->array_busy;
            j->acc[i].stall_dram += s->stall_dram;
            j->acc[i].stall_ppu += s->stall_ppu;
            j->acc[i].stall_buffer += s->stall_buffer;
            j->acc[i].stall_dep += s->stall_dep;
            qs_events_add(&j->acc[i].ev, &s->ev);
            qs_dram_stats none;
            memset(&none, 0, sizeof none);
            qs_dram_stats_add_delta(&j->acc[i].dram, &s->dram, &none);
        }
        j->preds[b] = argmax(qs_sim_layer_output(j->sim, net->output), (int64_t)OUT->out_c * OUT->out_h * OUT->out_w);
        if (j->labels) j->n_correct += j->preds[b] == j->labels[b];
        if (j->dump) {
            int st = 0;
            if (j->n == 1) st = dump_outputs(j->dump, -1, net, j->sim, e);
            else if (j->dump_index < 0) st = dump_outputs(j->dump, b, net, j->sim, e);
            else if (j->dump_index == b) st = dump_outputs(j->dump, -1, net, j->sim, e);
            if (st) goto out;
        }
        if (j->progress && (b % 16 == 0 || b == j->end - 1))
            fprintf(stderr, "\rqsim: inference %d/%d", (int)b + 1, (int)j->n);
    }
    j->failed = 0;
out:
    if (own) {
        qs_sim_destroy(own);
        j->sim = NULL;
    }
    return NULL;
}

static int online_cores(void)
{
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    return c < 1 ? 1 : c > 256 ? 256 : (int)c;
}

/* --engine rtl: progress of a model build, on stderr */
static void rtl_note(void *user, const char *msg)
{
    (void)user;
    fprintf(stderr, "qsim: %s\n", msg);
}

/* The run's command line without the options a co-simulation mismatch
 * message supplies itself (engine and window) or that a replay needs not
 * (outputs), for that message. */
static void rtl_repro(int argc, char **argv, char *out, size_t cap)
{
    static const char *const drop[] = {"--engine", "--trace-layer", "--rtl-tiles", "--fst", "--vcd", "--trace-from",
                                       "--trace-to", "--json", "--csv", "--dump-outputs", "--dump-index", "--jobs",
                                       "--dram-trace"};
    size_t n = (size_t)snprintf(out, cap, "qsim run");
    for (int i = 0; i < argc && n + 1 < cap; i++) {
        const char *a = argv[i];
        int skip = 0;
        for (size_t k = 0; k < sizeof drop / sizeof *drop; k++) skip |= !strcmp(a, drop[k]);
        if (skip) {
            i++;
            continue;
        }
        int plain = a[0] != '\0' && strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.,/=:+@%") == strlen(a);
        int w = snprintf(out + n, cap - n, plain ? " %s" : " '%s'", a);
        if (w < 0) break;
        n += (size_t)w;
    }
}

static int cmd_run(int argc, char **argv)
{
    options o;
    memset(&o, 0, sizeof o);
    int rc = parse_opts(argc, argv, USAGE_RUN,
                        " --arch --set --engine --input --labels --json --csv --dump-outputs -q --quiet --fst --vcd"
                        " --trace-from --trace-to --trace-layer --gemm --sparsity --weight-sparsity --act-sparsity"
                        " --weight-bits --act-bits --report-dir --traces --timing-only --dram-trace --jobs --dump-index"
                        " --rtl-tiles --rtl-cache ", &o);
    if (rc) return rc < 0 ? 0 : rc;
    qs_engine engine = QS_ENGINE_FAST;
    int rtl = 0;
    if (o.engine) {
        if (!strcmp(o.engine, "fast")) engine = QS_ENGINE_FAST;
        else if (!strcmp(o.engine, "detailed")) engine = QS_ENGINE_DETAILED;
        else if (!strcmp(o.engine, "rtl")) rtl = 1; /* fast outside the co-simulated layers */
        else return usage_error(USAGE_RUN, "unknown engine '%s' (fast, detailed or rtl)", o.engine);
    }
    int64_t tile_from = 0, tile_to = INT64_MAX;
    if ((o.rtl_tiles || o.rtl_cache) && !rtl)
        return usage_error(USAGE_RUN, "%s", "--rtl-tiles and --rtl-cache need --engine rtl");
    if (o.rtl_tiles) {
        char *end1 = NULL, *end2 = NULL;
        errno = 0;
        long long a = strtoll(o.rtl_tiles, &end1, 10), b = a;
        if (end1 != o.rtl_tiles && *end1 == ':') b = strtoll(end1 + 1, &end2, 10);
        if (errno || end1 == o.rtl_tiles || a < 0 || (*end1 && (*end1 != ':' || !end2 || *end2 || end2 == end1 + 1)) || b < a)
            return usage_error(USAGE_RUN, "--rtl-tiles '%s': a tile range A:B (or one tile A), 0 <= A <= B", o.rtl_tiles);
        tile_from = a;
        tile_to = b;
    }
    if (rtl && (o.gemm || is_topology_path(o.net)))
        return usage_error(USAGE_RUN, "%s", "--engine rtl runs .qbin networks (not SCALE-Sim topologies)");
    if (o.gemm || is_topology_path(o.net)) return run_topology(&o, engine);
    if (o.sparsity || o.wsparsity || o.asparsity || o.wbits || o.abits || o.report_dir || o.traces || o.timing_only)
        return usage_error(USAGE_RUN, "%s",
                           "--sparsity, --weight-bits, --act-bits, --report-dir, --timing-only and --traces apply to "
                           "SCALE-Sim topologies (.csv)");
    if (o.labels && !o.input) return usage_error(USAGE_RUN, "%s", "--labels needs --input");
    int n_jobs = online_cores();
    if (o.jobs && parse_int_arg(o.jobs, 1, 256, &n_jobs))
        return usage_error(USAGE_RUN, "--jobs '%s': a number of threads 1..256", o.jobs);
    int dump_index = -1;
    if (o.dump_index && !o.dump) return usage_error(USAGE_RUN, "%s", "--dump-index needs --dump-outputs");
    if (o.dump_index && parse_int_arg(o.dump_index, 0, 2147483646, &dump_index))
        return usage_error(USAGE_RUN, "--dump-index '%s' is not an inference index (0, 1, ...)", o.dump_index);
    if (o.fst && o.vcd) return usage_error(USAGE_RUN, "%s", "give one of --fst and --vcd");
    uint64_t tr_from = 0, tr_to = UINT64_MAX;
    if (o.trace_from && parse_cycle(o.trace_from, &tr_from))
        return usage_error(USAGE_RUN, "--trace-from '%s' is not a cycle number", o.trace_from);
    if (o.trace_to && parse_cycle(o.trace_to, &tr_to))
        return usage_error(USAGE_RUN, "--trace-to '%s' is not a cycle number", o.trace_to);
    if (o.trace_from && o.trace_to && tr_to < tr_from)
        return usage_error(USAGE_RUN, "--trace-to %s is before --trace-from (the window is from..to, in cycles)",
                           o.trace_to);
    if (o.trace_layer && (o.trace_from || o.trace_to))
        return usage_error(USAGE_RUN, "%s", "give --trace-layer or --trace-from/--trace-to, not both");
    if ((o.trace_from || o.trace_to || (o.trace_layer && !rtl)) && !o.fst && !o.vcd)
        return usage_error(USAGE_RUN, "%s", "a trace window needs --fst or --vcd");
    double t0 = now_seconds(), cpu0 = (double)clock() / CLOCKS_PER_SEC;
    qs_arch arch;
    qs_net *net = NULL;
    qs_prog *prog = NULL;
    qs_sim *sim = NULL;
    qs_npy x = {0}, y = {0};
    qs_layer_stats *acc = NULL;
    int32_t *preds = NULL;
    batch_job *jobs = NULL;
    pthread_t *threads = NULL;
    qs_tech tech;
    qs_trace *trace = NULL;
    qs_rtl_cosim *cosim = NULL;
    char rtl_fst[4096], rtl_cmd[8192];
    dram_log dlog = {NULL, 0, 0, 0};
    qs_error e;
    rc = load_inputs(&o, &arch, &net, &e);
    if (rc == 2) return usage_error(USAGE_RUN, "%s", e.msg);
    if (rc) return fail(&e);
    rc = 1;
    if (arch.dram_model == QS_DRAM_TLM) {
        /* the memory backend model = tlm needs exists only inside a SystemC platform */
        qs_fail(&e, QS_ERR_CONFIG, "%s: [dram] model = tlm: the DRAM is a SystemC/TLM-2.0 platform's memory, which "
                "only the SystemC wrapper (sim/systemc, docs/systemc.md) connects; qsim run needs model = simple or a "
                "bank-level preset (ddr4_3200, lpddr4_4266, lpddr5_6400, hbm2)", o.arch);
        goto out;
    }
    if (qs_compile(net, &arch, &prog, &e)) goto out;
    if (qs_tech_load(arch.tech_table, &arch, 0, &tech, &e)) goto out;
    if (qs_sim_create(net, prog, engine, &sim, &e)) goto out;
    if (rtl && o.trace_layer) {
        int32_t li = 1;
        while (li < net->n_layers && strcmp(net->layers[li].name, o.trace_layer)) li++;
        if (li == net->n_layers) {
            qs_fail(&e, QS_ERR_ARG, "--trace-layer: no layer named '%s' in %s", o.trace_layer, o.net);
            goto out;
        }
    }
    if (o.dram_trace && !qs_dram_is_bank_model(arch.dram_model)) {
        qs_fail(&e, QS_ERR_ARG, "--dram-trace %s: needs a bank-level DRAM model (e.g. --set dram.model=ddr4_3200); "
                "[dram] model = %s has no DRAM requests", o.dram_trace, qs_dram_model_name(arch.dram_model));
        goto out;
    }
    if (o.dram_trace) qs_sim_set_dram_trace(sim, dram_log_add, &dlog);

    const qs_layer *IN = &net->layers[0];
    int64_t per = (int64_t)IN->out_c * IN->out_h * IN->out_w;
    int32_t n = 1;
    if (o.input) {
        if (qs_npy_load(o.input, &x, &e)) goto out;
        if (x.ndim == 3) n = 1;
        else if (x.ndim == 4) n = (int32_t)x.shape[0];
        else n = -1;
        int64_t off = x.ndim == 4 ? 1 : 0;
        if (n < 1 || x.shape[off] != IN->out_c || x.shape[off + 1] != IN->out_h || x.shape[off + 2] != IN->out_w) {
            snprintf(e.msg, sizeof e.msg, "%s: shape must be (%d,%d,%d) or (N,%d,%d,%d) for input layer '%s'", o.input,
                     IN->out_c, IN->out_h, IN->out_w, IN->out_c, IN->out_h, IN->out_w, IN->name);
            goto out;
        }
    }
    if (o.labels) {
        if (qs_npy_load(o.labels, &y, &e)) goto out;
        if (y.count != n) {
            snprintf(e.msg, sizeof e.msg, "%s: %lld labels for %d inputs", o.labels, (long long)y.count, n);
            goto out;
        }
    }
    if (dump_index >= n) {
        snprintf(e.msg, sizeof e.msg, "--dump-index %d: the batch has %d inferences (0..%d)", dump_index, n, n - 1);
        goto out;
    }
    if (o.dump && make_dir(o.dump, &e)) goto out;
    if (n_jobs > n) n_jobs = n;
    if (o.fst || o.vcd) n_jobs = 1; /* the waveform is of the first inference, on this thread's simulator */
    if (rtl) n_jobs = 1;            /* the co-simulation hook is on this thread's simulator */
    acc = qs_calloc((size_t)net->n_layers * (size_t)n_jobs, sizeof *acc);
    preds = qs_calloc((size_t)n, sizeof *preds);
    jobs = qs_calloc((size_t)n_jobs, sizeof *jobs);
    threads = qs_calloc((size_t)n_jobs, sizeof *threads);
    if (!acc || !preds || !jobs || !threads) {
        snprintf(e.msg, sizeof e.msg, "out of memory");
        goto out;
    }
    if (o.fst || o.vcd) {
        const char *path = o.fst ? o.fst : o.vcd;
        if (o.trace_layer) { /* the window is the layer's span: find it with an untraced run */
            int32_t li = 1;
            while (li < net->n_layers && strcmp(net->layers[li].name, o.trace_layer)) li++;
            if (li == net->n_layers) {
                qs_fail(&e, QS_ERR_ARG, "--trace-layer: no layer named '%s' in %s", o.trace_layer, o.net);
                goto out;
            }
            if (o.input && qs_sim_set_input(sim, x.data, per, &e)) goto out;
            if (qs_sim_run(sim, &e)) goto out;
            tr_from = qs_sim_layer_stats(sim, li)->start;
            tr_to = qs_sim_layer_stats(sim, li)->end;
        }
        if (qs_trace_open(path, o.fst ? QS_TRACE_FST : QS_TRACE_VCD, "1ns", &trace, &e)) goto out;
        qs_sim_set_trace(sim, trace, tr_from, tr_to);
    }
    if (rtl) {
        qs_rtl_cosim_opts ro;
        memset(&ro, 0, sizeof ro);
        ro.max_act_bits = arch.max_act_bits;
        ro.max_weight_bits = arch.max_weight_bits;
        ro.cache_dir = o.rtl_cache;
        ro.layer = o.trace_layer;
        ro.tile_from = tile_from;
        ro.tile_to = tile_to;
        if (o.fst) { /* FILE.fst -> FILE.rtl.fst */
            size_t len = strlen(o.fst);
            int sfx = len > 4 && !strcmp(o.fst + len - 4, ".fst");
            snprintf(rtl_fst, sizeof rtl_fst, "%.*s.rtl.fst", (int)(sfx ? len - 4 : len), o.fst);
            ro.fst = rtl_fst;
            ro.fst_from = tr_from;
            ro.fst_to = tr_to;
        }
        rtl_repro(argc, argv, rtl_cmd, sizeof rtl_cmd);
        ro.repro = rtl_cmd;
        ro.note = rtl_note;
        if (qs_rtl_cosim_create(&ro, &cosim, &e)) goto out;
        if (qs_sim_set_array_hook(sim, qs_rtl_cosim_hook(cosim), &e)) goto out;
    }
    int n_correct = 0;
    int progress = isatty(2) && n > 1 && n_jobs == 1;
    int cycle_progress = isatty(2) && n == 1; /* one long inference: its simulated cycles */
    for (int k = 0; k < n_jobs; k++) { /* contiguous shares, the first n % n_jobs one longer */
        batch_job *j = &jobs[k];
        j->net = net;
        j->prog = prog;
        j->engine = engine;
        j->sim = k == 0 ? sim : NULL;
        j->input_path = o.input;
        j->x = x.data;
        j->labels = o.labels ? y.data : NULL;
        j->per = per;
        j->first = (int32_t)((int64_t)n * k / n_jobs);
        j->end = (int32_t)((int64_t)n * (k + 1) / n_jobs);
        j->n = n;
        j->dump = o.dump;
        j->dump_index = dump_index;
        j->trace = k == 0 ? trace : NULL;
        j->wave_path = o.fst ? o.fst : o.vcd;
        j->tr_from = tr_from;
        j->tr_to = tr_to;
        j->dram_trace = k == 0 ? o.dram_trace : NULL;
        j->dlog = &dlog;
        j->progress = progress;
        j->cycle_progress = cycle_progress;
        j->acc = acc + (size_t)k * (size_t)net->n_layers;
        j->preds = preds;
    }
    trace = NULL; /* job 0 closes it */
    int started = 0;
    for (int k = 1; k < n_jobs; k++, started++)
        if (pthread_create(&threads[k], NULL, run_batch_job, &jobs[k]) != 0) break;
    run_batch_job(&jobs[0]);
    for (int k = 1; k <= started; k++) pthread_join(threads[k], NULL);
    if (started < n_jobs - 1) {
        snprintf(e.msg, sizeof e.msg, "cannot start thread %d of --jobs %d", started + 1, n_jobs);
        goto out;
    }
    for (int k = 0; k < n_jobs; k++) /* the first failing inference's message */
        if (jobs[k].failed) {
            e = jobs[k].e;
            if (k == 0 && jobs[0].trace) {
                qs_error te;
                qs_trace_close(jobs[0].trace, &te);
            }
            goto out;
        }
    for (int k = 1; k < n_jobs; k++) {
        for (int32_t i = 0; i < net->n_layers; i++) {
            acc[i].cycles += jobs[k].acc[i].cycles;
            acc[i].array_busy += jobs[k].acc[i].array_busy;
            acc[i].stall_dram += jobs[k].acc[i].stall_dram;
            acc[i].stall_ppu += jobs[k].acc[i].stall_ppu;
            acc[i].stall_buffer += jobs[k].acc[i].stall_buffer;
            acc[i].stall_dep += jobs[k].acc[i].stall_dep;
            qs_events_add(&acc[i].ev, &jobs[k].acc[i].ev);
            qs_dram_stats none;
            memset(&none, 0, sizeof none);
            qs_dram_stats_add_delta(&acc[i].dram, &jobs[k].acc[i].dram, &none);
        }
    }
    for (int k = 0; k < n_jobs; k++) n_correct += jobs[k].n_correct;
    if (progress) fputc('\n', stderr);

    qs_report rep = {net, prog, &arch, &tech, o.net, o.arch, rtl ? "rtl" : engine == QS_ENGINE_FAST ? "fast" : "detailed", n, acc,
                     n_correct, o.labels ? n : 0, o.input ? preds : NULL, 0.0, NULL};
    rep.wall_seconds = now_seconds() - t0;
    rep.command_line = command_line;
    if (!o.quiet) qs_report_print(&rep, stdout);
    {
        uint64_t cyc = 0, stall_buffer = 0;
        for (int32_t i = 1; i < net->n_layers; i++) {
            cyc += acc[i].cycles;
            stall_buffer += acc[i].stall_buffer;
        }
        if (cyc > 0) warn_buffer_throttle(net, prog, &arch, stall_buffer, cyc);
    }
    if (cosim) {
        qs_rtl_cosim_stats cs;
        qs_rtl_cosim_stats_get(cosim, &cs);
        if (cs.clocks == 0) {
            snprintf(e.msg, sizeof e.msg, "--engine rtl: no array tile in the window (--trace-layer %s, --rtl-tiles %s)",
                     o.trace_layer ? o.trace_layer : "(all)", o.rtl_tiles ? o.rtl_tiles : "(all)");
            goto out;
        }
        /* the run's own time: the wall time but the model builds, and the
         * CPU time of this process (the builds run in child processes),
         * which a loaded machine does not inflate */
        double run_s = now_seconds() - t0 - cs.build_seconds, cpu_s = (double)clock() / CLOCKS_PER_SEC - cpu0;
        printf("RTL co-simulation: agreement: %" PRIu64 " clocks compared, %" PRIu64 " values compared, %" PRIu64
               " tiles, %d array configuration%s (%d built, %.1f s); %.0f clocks/s, %.0f per CPU second\n",
               cs.clocks, cs.values, cs.tiles, (int)cs.models, cs.models == 1 ? "" : "s", (int)cs.built,
               cs.build_seconds, run_s > 0 ? (double)cs.clocks / run_s : 0.0, cpu_s > 0 ? (double)cs.clocks / cpu_s : 0.0);
        if (o.fst) fprintf(stderr, "qsim: the RTL's own signals are in %s\n", rtl_fst);
    }
    if (o.json && qs_report_write_json(&rep, o.json, &e)) goto out;
    if (o.csv && qs_report_write_csv(&rep, o.csv, &e)) goto out;
    rc = 0;
out:
    if (rc) fail(&e);
    qs_rtl_cosim_destroy(cosim);
    if (trace) {
        qs_error te;
        qs_trace_close(trace, &te);
    }
    qs_free(acc);
    qs_free(preds);
    qs_free(jobs);
    qs_free(threads);
    qs_free(dlog.v);
    qs_npy_free(&x);
    qs_npy_free(&y);
    qs_sim_destroy(sim);
    qs_prog_destroy(prog);
    qs_net_destroy(net);
    return rc;
}

/* qsim import: hand over to scripts/onnx_import.py (found next to the build or
 * install tree of this executable, else in the source tree it was built from). */
static int cmd_import(int argc, char **argv)
{
    static const char *python = "/usr/bin/python3";
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(USAGE_IMPORT, stdout);
            return 0;
        }
    if (argc == 0) return usage_error(USAGE_IMPORT, "%s", "no model given");
    char exe[4096], script[4200 + sizeof QSIM_SOURCE_DIR];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) *slash = '\0';
    const char *candidates[] = {"%s/../../scripts/onnx_import.py", "%s/../share/qsim/onnx_import.py", NULL};
    script[0] = '\0';
    for (int i = 0; slash && candidates[i]; i++) {
        snprintf(script, sizeof script, candidates[i], exe);
        if (access(script, R_OK) == 0) break;
        script[0] = '\0';
    }
    if (!script[0]) snprintf(script, sizeof script, "%s/scripts/onnx_import.py", QSIM_SOURCE_DIR);
    if (access(script, R_OK) != 0) {
        fprintf(stderr, "qsim: import needs scripts/onnx_import.py, not found (looked in %s)\n", script);
        return 1;
    }
    if (access(python, X_OK) != 0) {
        fprintf(stderr, "qsim: import needs %s with the onnx package (Debian: apt-get install python3-onnx)\n",
                python);
        return 1;
    }
    char **args = qs_calloc((size_t)argc + 3, sizeof *args);
    if (!args) {
        fprintf(stderr, "qsim: out of memory\n");
        return 1;
    }
    args[0] = (char *)python;
    args[1] = script;
    for (int i = 0; i < argc; i++) args[i + 2] = argv[i];
    fflush(stdout);
    execv(python, args);
    fprintf(stderr, "qsim: cannot run %s: %s\n", python, strerror(errno));
    qs_free(args);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs("qsim: no command given; commands are info, compile, run, import (see 'qsim --help')\n", stderr);
        return 2;
    }
    const char *cmd = argv[1];
    record_command_line(argc, argv);
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(USAGE, stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("qsim %s (source %s)\n", QSIM_VERSION, qs_source_revision);
        return 0;
    }
    if (!strcmp(cmd, "info")) return cmd_info(argc - 2, argv + 2);
    if (!strcmp(cmd, "compile")) return cmd_compile(argc - 2, argv + 2);
    if (!strcmp(cmd, "run")) return cmd_run(argc - 2, argv + 2);
    if (!strcmp(cmd, "scalesim")) return cmd_scalesim(argc - 2, argv + 2);
    if (!strcmp(cmd, "import")) return cmd_import(argc - 2, argv + 2);
    fprintf(stderr, "qsim: unknown command '%s'; commands are info, compile, run, import (see 'qsim --help')\n", cmd);
    return 2;
}
