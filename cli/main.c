/* The qsim command: argument parsing and printing over the public API
 * (include/qsim/qsim.h, docs/api.md), its first user: every figure, text and
 * file comes from libqsim. Every failure below a command becomes one message
 * on stderr and exit 1; usage errors exit 2. */
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

#include <qsim/qsim.h>

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
    "  --decode N           a decoder with KV caches: the prompt (the file's tokens) then N decode steps of\n"
    "                       one token; prefill and decode reported apart (docs/decode.md, docs/report.md)\n"
    "  --decode-input S.npy the steps' input rows, shape (N, C) or (N, C, 1, 1) (default: each step's input\n"
    "                       is the last output row before it)\n"
    "  --decode-outputs F.npy  every step's output, shape (N, C, H, W)\n"
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
    const char *decode, *decode_input, *decode_out; /* --decode N (docs/decode.md) */
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
        else if (!strcmp(a, "--decode")) o->decode = v;
        else if (!strcmp(a, "--decode-input")) o->decode_input = v;
        else if (!strcmp(a, "--decode-outputs")) o->decode_out = v;
        else if (!strcmp(a, "--gemm")) o->gemm = 1;
        else if (!strcmp(a, "--traces")) o->traces = 1;
        else if (!strcmp(a, "--timing-only")) o->timing_only = 1;
        else if (!strcmp(a, "--listing")) o->listing = 1;
        else if (!strcmp(a, "--summary")) o->summary = 1;
        else o->quiet = 1;
    }
    return 0;
}

static int fail(const qsim_error *e)
{
    fprintf(stderr, "qsim: %s\n", e->msg);
    return 1;
}

/* A library text on stdout, freed. */
static void put_text(char *text)
{
    if (text) fputs(text, stdout);
    qsim_text_free(text);
}

/* The library's warnings and notes, one line each, on stderr as the command's. */
static void put_messages(const char *text)
{
    while (text && *text) {
        const char *nl = strchr(text, '\n');
        size_t n = nl ? (size_t)(nl - text) : strlen(text);
        fprintf(stderr, "qsim: %.*s\n", (int)n, text);
        text += n + (nl ? 1 : 0);
    }
}

static int cmd_info(int argc, char **argv)
{
    options o;
    memset(&o, 0, sizeof o);
    int rc = parse_opts(argc, argv, USAGE_INFO, " ", &o);
    if (rc) return rc < 0 ? 0 : rc;
    if (!o.net) return usage_error(USAGE_INFO, "%s", "no network given");
    if (is_topology_path(o.net)) return refuse_topology(USAGE_INFO, o.net);
    qsim_net *net;
    qsim_error e;
    char *text;
    if (qsim_net_load(o.net, &net, &e)) return fail(&e);
    if (qsim_net_describe(net, &text, &e)) {
        qsim_net_free(net);
        return fail(&e);
    }
    put_text(text);
    qsim_net_free(net);
    return 0;
}

/* --arch with every --set applied at once (a native or a SCALE-Sim configuration). */
static int load_config(const options *o, qsim_config **cfg, qsim_error *e)
{
    return qsim_config_load_set(o->arch, o->sets, o->n_sets, cfg, e) != QSIM_OK;
}

static int load_inputs(const options *o, qsim_config **cfg, qsim_net **net, qsim_error *e)
{
    if (!o->arch) {
        snprintf(e->msg, sizeof e->msg, "no --arch given (e.g. --arch models/arch/dlac.cfg)");
        return 2;
    }
    if (!o->net) {
        snprintf(e->msg, sizeof e->msg, "no network given");
        return 2;
    }
    if (load_config(o, cfg, e)) return 1;
    if (qsim_net_load(o->net, net, e)) {
        qsim_config_free(*cfg);
        *cfg = NULL;
        return 1;
    }
    return 0;
}

static int cmd_compile(int argc, char **argv)
{
    options o;
    memset(&o, 0, sizeof o);
    int rc = parse_opts(argc, argv, USAGE_COMPILE, " --arch --set --listing --summary ", &o);
    if (rc) return rc < 0 ? 0 : rc;
    if (is_topology_path(o.net)) return refuse_topology(USAGE_COMPILE, o.net);
    qsim_config *cfg = NULL;
    qsim_net *net = NULL;
    qsim_program *p = NULL;
    qsim_error e;
    char *text = NULL;
    rc = load_inputs(&o, &cfg, &net, &e);
    if (rc == 2) return usage_error(USAGE_COMPILE, "%s", e.msg);
    if (rc) return fail(&e);
    rc = 1;
    if (qsim_compile(net, cfg, &p, &e)) goto out;
    if (o.listing || o.summary) {
        if (qsim_program_listing(p, o.listing, &text, &e)) goto out;
        put_text(text);
    } else {
        qsim_program_info info;
        if (qsim_program_get_info(p, &info, &e)) goto out;
        printf("%s: %d instructions, DRAM footprint %llu bytes\n", o.net, info.n_instructions,
               (unsigned long long)info.dram_bytes);
    }
    if (qsim_program_warnings(p, &text, &e)) goto out;
    put_messages(text);
    qsim_text_free(text);
    rc = 0;
out:
    if (rc) fail(&e);
    qsim_program_free(p);
    qsim_net_free(net);
    qsim_config_free(cfg);
    return rc;
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

/* Progress on a terminal: inferences of a batch (every 16th and the last),
 * simulated cycles of one long inference (about four times a second), layers
 * of a topology. A line ends when the run does. */
typedef struct {
    int shown;
    double last;
} progress_state;

static void show_progress(void *user, qsim_progress_kind kind, uint64_t done, uint64_t total)
{
    progress_state *p = user;
    if (kind == QSIM_PROGRESS_INFERENCE) {
        if ((done - 1) % 16 == 0 || done == total) fprintf(stderr, "\rqsim: inference %d/%d", (int)done, (int)total);
        p->shown = 1;
    } else if (kind == QSIM_PROGRESS_LAYER) {
        if (total < 2) return;
        fprintf(stderr, "\rqsim: layer %d/%d", (int)done, (int)total);
        p->shown = 1;
    } else {
        double t = now_seconds();
        if (t - p->last >= 0.25) {
            fprintf(stderr, "\rqsim: %llu cycles simulated", (unsigned long long)done);
            p->last = t;
            p->shown = 1;
        }
    }
}

static void end_progress(progress_state *p)
{
    if (p->shown) fputc('\n', stderr);
    p->shown = 0;
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

static int run_topology(const options *o, qsim_engine engine)
{
    if (o->input || o->labels || o->dump || o->fst || o->vcd || o->trace_from || o->trace_to || o->trace_layer)
        return usage_error(USAGE_RUN, "%s",
                           "--input, --labels, --dump-outputs and waveforms need a .qbin network; a topology's "
                           "operands are synthetic");
    if (!o->arch) return usage_error(USAGE_RUN, "%s", "no --arch given (e.g. --arch models/scalesim/scale.cfg)");
    if (!o->net) return usage_error(USAGE_RUN, "%s", "no topology given (a SCALE-Sim .csv)");
    qsim_topology_options opts;
    qsim_topology_options_init(&opts);
    opts.engine = engine;
    opts.gemm = o->gemm ? 1 : -1;
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
    /* the replayed figures appear only in the report files, JSON and CSV */
    opts.replay_reads = o->report_dir || o->json || o->csv || o->ss_outdir;
    opts.report_dir = o->report_dir;
    opts.scalesim_outdir = o->ss_outdir;
    opts.traces = o->traces;
    opts.timing_only = o->timing_only;
    opts.command_line = command_line;
    progress_state prog = {0, 0.0};
    if (isatty(2)) {
        opts.progress = show_progress;
        opts.progress_user = &prog;
    }
    qsim_config *cfg = NULL;
    qsim_report *rep = NULL;
    qsim_error e;
    char *text = NULL;
    const char *messages;
    int rc = 1;
    if (load_config(o, &cfg, &e)) goto out;
    if (o->traces && !o->report_dir && !o->ss_outdir) {
        rc = usage_error(USAGE_RUN, "%s", "--traces needs --report-dir (the traces go to DIR/layer<i>/)");
        qsim_config_free(cfg);
        return rc;
    }
    qsim_status st = qsim_topology_run(cfg, o->net, &opts, &rep, &e);
    end_progress(&prog);
    if (st) goto out;
    if (!o->quiet) {
        if (qsim_report_text(rep, &text, &e)) goto out;
        put_text(text);
    }
    if (o->json && qsim_report_write_json(rep, o->json, &e)) goto out;
    if (o->csv && qsim_report_write_csv(rep, o->csv, &e)) goto out;
    if ((o->report_dir || o->ss_outdir) && qsim_report_write_scalesim(rep, &e)) goto out;
    if (o->ss_outdir) {
        if (qsim_report_scalesim_stdout(rep, &text, &e)) goto out;
        put_text(text);
    }
    if (qsim_report_messages(rep, &messages, &e)) goto out;
    put_messages(messages);
    rc = 0;
out:
    if (rc) fail(&e);
    qsim_report_free(rep);
    qsim_config_free(cfg);
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
    qsim_engine engine = QSIM_ENGINE_FAST;
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
            if (!strcmp(v, "fast")) engine = QSIM_ENGINE_FAST;
            else if (!strcmp(v, "detailed")) engine = QSIM_ENGINE_DETAILED;
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

/* ---- qsim run ---------------------------------------------------------------------- */

static int online_cores(void)
{
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    return c < 1 ? 1 : c > 256 ? 256 : (int)c;
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

/* qsim run --decode N (docs/decode.md): the prompt, then N one-token steps. */
static int run_decode(const options *o, qsim_engine engine, int n_decode, const qsim_config *cfg,
                      const qsim_net *net)
{
    qsim_array x = {0}, sx = {0};
    qsim_decode_report *rep = NULL;
    qsim_error e;
    char *text = NULL;
    int rc = 1;
    qsim_net_info info;
    if (qsim_net_get_info(net, &info, &e)) goto out;
    if (o->input) {
        if (qsim_npy_load(o->input, &x, &e)) goto out;
        if (x.ndim != 3 || x.shape[0] != info.in_c || x.shape[1] != info.in_h || x.shape[2] != info.in_w) {
            snprintf(e.msg, sizeof e.msg, "%s: a decode run's prompt has shape (%d,%d,%d)", o->input, info.in_c,
                     info.in_h, info.in_w);
            goto out;
        }
    }
    qsim_decode_options d;
    qsim_decode_options_init(&d);
    d.steps = n_decode;
    if (o->decode_input) {
        if (qsim_npy_load(o->decode_input, &sx, &e)) goto out;
        int ok = sx.shape[0] == n_decode && sx.ndim >= 2 && sx.shape[1] == info.in_c &&
                 (sx.ndim == 2 || (sx.ndim == 4 && sx.shape[2] == 1 && sx.shape[3] == 1));
        if (!ok) {
            snprintf(e.msg, sizeof e.msg, "%s: the steps' inputs have shape (%d,%d) or (%d,%d,1,1) for --decode %d",
                     o->decode_input, n_decode, info.in_c, n_decode, info.in_c, n_decode);
            goto out;
        }
        d.step_inputs = sx.data;
    }
    qsim_run_options ro;
    qsim_run_options_init(&ro);
    ro.engine = engine;
    ro.net_path = o->net;
    ro.config_path = o->arch;
    if (qsim_decode(net, cfg, o->input ? x.data : NULL, o->input ? x.count : 0, &d, &ro, &rep, &e)) goto out;
    if (!o->quiet) {
        if (qsim_decode_report_text(rep, &text, &e)) goto out;
        put_text(text);
    }
    if (o->json) {
        const char *json;
        if (qsim_decode_report_json(rep, &json, &e)) goto out;
        FILE *f = fopen(o->json, "w");
        int bad = !f || fputs(json, f) < 0;
        if (f && fclose(f)) bad = 1;
        if (bad) {
            snprintf(e.msg, sizeof e.msg, "%s: cannot write the JSON report", o->json);
            goto out;
        }
    }
    if (o->decode_out && qsim_decode_report_write_outputs(rep, o->decode_out, &e)) goto out;
    rc = 0;
out:
    if (rc) fail(&e);
    qsim_decode_report_free(rep);
    qsim_array_free(&x);
    qsim_array_free(&sx);
    return rc;
}

static int cmd_run(int argc, char **argv)
{
    options o;
    memset(&o, 0, sizeof o);
    int rc = parse_opts(argc, argv, USAGE_RUN,
                        " --arch --set --engine --input --labels --json --csv --dump-outputs -q --quiet --fst --vcd"
                        " --trace-from --trace-to --trace-layer --gemm --sparsity --weight-sparsity --act-sparsity"
                        " --weight-bits --act-bits --report-dir --traces --timing-only --dram-trace --jobs --dump-index"
                        " --rtl-tiles --rtl-cache --decode --decode-input --decode-outputs ", &o);
    if (rc) return rc < 0 ? 0 : rc;
    qsim_engine engine = QSIM_ENGINE_FAST;
    int rtl = 0;
    if (o.engine) {
        if (!strcmp(o.engine, "fast")) engine = QSIM_ENGINE_FAST;
        else if (!strcmp(o.engine, "detailed")) engine = QSIM_ENGINE_DETAILED;
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
    qsim_config *cfg = NULL;
    qsim_net *net = NULL;
    qsim_program *prog = NULL;
    qsim_report *rep = NULL;
    qsim_array x = {0}, y = {0};
    qsim_error e;
    char *text = NULL;
    const char *messages;
    double t0 = now_seconds(), cpu0 = (double)clock() / CLOCKS_PER_SEC;
    char rtl_fst[4096], rtl_cmd[8192];
    if ((o.decode_input || o.decode_out) && !o.decode)
        return usage_error(USAGE_RUN, "%s", "--decode-input and --decode-outputs need --decode N");
    int n_decode = 0;
    if (o.decode) {
        if (parse_int_arg(o.decode, 1, 1000000, &n_decode))
            return usage_error(USAGE_RUN, "--decode '%s': a number of decode steps 1..1000000", o.decode);
        if (rtl || o.labels || o.dump || o.fst || o.vcd || o.dram_trace || o.csv)
            return usage_error(USAGE_RUN, "%s", "--decode runs the fast or detailed engine, without --labels, "
                                                "--dump-outputs, waveforms, --dram-trace or --csv");
    }
    rc = load_inputs(&o, &cfg, &net, &e);
    if (rc == 2) return usage_error(USAGE_RUN, "%s", e.msg);
    if (rc) return fail(&e);
    if (n_decode) {
        rc = run_decode(&o, engine, n_decode, cfg, net);
        qsim_net_free(net);
        qsim_config_free(cfg);
        return rc;
    }
    rc = 1;
    if (qsim_compile(net, cfg, &prog, &e)) goto out;
    if (rtl && o.trace_layer) {
        qsim_net_info ni;
        qsim_layer_info li;
        int32_t k = 1;
        if (qsim_net_get_info(net, &ni, &e)) goto out;
        while (k < ni.n_layers && !qsim_net_get_layer(net, k, &li, &e) && strcmp(li.name, o.trace_layer)) k++;
        if (k == ni.n_layers) {
            snprintf(e.msg, sizeof e.msg, "--trace-layer: no layer named '%s' in %s", o.trace_layer, o.net);
            goto out;
        }
    }
    qsim_net_info info;
    if (qsim_net_get_info(net, &info, &e)) goto out;
    qsim_layer_info in0;
    if (qsim_net_get_layer(net, 0, &in0, &e)) goto out;
    int32_t n = 1;
    if (o.input) {
        if (qsim_npy_load(o.input, &x, &e)) goto out;
        if (x.ndim == 3) n = 1;
        else if (x.ndim == 4) n = (int32_t)x.shape[0];
        else n = -1;
        int off = x.ndim == 4 ? 1 : 0;
        if (n < 1 || x.shape[off] != info.in_c || x.shape[off + 1] != info.in_h || x.shape[off + 2] != info.in_w) {
            snprintf(e.msg, sizeof e.msg, "%s: shape must be (%d,%d,%d) or (N,%d,%d,%d) for input layer '%s'", o.input,
                     info.in_c, info.in_h, info.in_w, info.in_c, info.in_h, info.in_w, in0.name);
            goto out;
        }
    }
    if (o.labels) {
        if (qsim_npy_load(o.labels, &y, &e)) goto out;
        if (y.count != n) {
            snprintf(e.msg, sizeof e.msg, "%s: %lld labels for %d inputs", o.labels, (long long)y.count, n);
            goto out;
        }
    }
    qsim_run_options ro;
    qsim_run_options_init(&ro);
    ro.engine = engine;
    ro.labels = o.labels ? y.data : NULL;
    ro.net_path = o.net;
    ro.config_path = o.arch;
    ro.command_line = command_line;
    qsim_run_extras rx;
    qsim_run_extras_init(&rx);
    rx.jobs = n_jobs;
    rx.input_name = o.input;
    rx.dump_dir = o.dump;
    rx.dump_index = dump_index;
    rx.dram_trace_path = o.dram_trace;
    if (rtl) {
        ro.engine = QSIM_ENGINE_RTL;
        ro.rtl_cache = o.rtl_cache;
        ro.rtl_layer = o.trace_layer;
        ro.rtl_tile_from = tile_from;
        ro.rtl_tile_to = tile_to;
        if (o.fst) { /* FILE.fst -> FILE.rtl.fst */
            size_t len = strlen(o.fst);
            int sfx = len > 4 && !strcmp(o.fst + len - 4, ".fst");
            snprintf(rtl_fst, sizeof rtl_fst, "%.*s.rtl.fst", (int)(sfx ? len - 4 : len), o.fst);
            ro.rtl_fst = rtl_fst;
        }
        rtl_repro(argc, argv, rtl_cmd, sizeof rtl_cmd);
        ro.rtl_repro = rtl_cmd;
    }
    if (o.fst || o.vcd) {
        ro.trace_format = o.fst ? QSIM_TRACE_FST : QSIM_TRACE_VCD;
        ro.trace_path = o.fst ? o.fst : o.vcd;
        ro.trace_from = tr_from;
        ro.trace_to = tr_to;
        rx.trace_layer = o.trace_layer;
    }
    progress_state progress = {0, now_seconds()};
    /* a one-thread batch shows its inferences, one long inference its cycles */
    if (isatty(2)) {
        rx.progress = show_progress;
        rx.progress_user = &progress;
    }
    qsim_status st = qsim_run_with(prog, o.input ? x.data : NULL, o.input ? x.count : 0, n, &ro, &rx, &rep, &e);
    end_progress(&progress);
    if (st) goto out;
    if (!o.quiet) {
        if (qsim_report_text(rep, &text, &e)) goto out;
        put_text(text);
    }
    if (qsim_report_messages(rep, &messages, &e)) goto out;
    put_messages(messages);
    if (rtl) {
        qsim_rtl_stats cs;
        if (qsim_report_rtl(rep, &cs, &e)) goto out;
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
    if (o.json && qsim_report_write_json(rep, o.json, &e)) goto out;
    if (o.csv && qsim_report_write_csv(rep, o.csv, &e)) goto out;
    rc = 0;
out:
    if (rc) fail(&e);
    qsim_report_free(rep);
    qsim_array_free(&x);
    qsim_array_free(&y);
    qsim_program_free(prog);
    qsim_net_free(net);
    qsim_config_free(cfg);
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
    char **args = calloc((size_t)argc + 3, sizeof *args);
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
    free(args);
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
        printf("qsim %s (source %s)\n", qsim_version(), qsim_source_revision());
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
