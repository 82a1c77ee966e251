/* qsim as a library: the public C API (docs/api.md).
 *
 * One header, opaque handles, and the core's error style: every call that can
 * fail returns a qsim_status and, on failure, writes one line into a
 * qsim_error saying what and where (file, line, layer). Nothing here prints
 * or exits. A NULL handle, an index out of range or a NULL output pointer is
 * QSIM_ERR_ARG with a message, never a crash. The `err` argument may be NULL
 * when the caller does not want the message.
 *
 * Ownership: a qsim_program keeps pointers into the qsim_net it was compiled
 * from (the net must outlive it); a qsim_config is copied into the program.
 * Handles are not shared between threads while in use; different handles
 * may be used from different threads at once.
 *
 * ABI: QSIM_API_VERSION is the soname's major number (libqsim.so.N). It
 * changes whenever a signature, a struct below, or an enum value changes.
 * Call qsim_check_version(QSIM_API_VERSION, &err) once: it fails when the
 * library loaded at run time is not the one these declarations describe. */
#ifndef QSIM_QSIM_H
#define QSIM_QSIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QSIM_API_VERSION 1

typedef enum {
    QSIM_OK = 0,
    QSIM_ERR_IO,          /* cannot open/read/write a file */
    QSIM_ERR_FORMAT,      /* malformed file contents (.qbin, .npy) */
    QSIM_ERR_CONFIG,      /* bad key, value or combination in a configuration */
    QSIM_ERR_UNSUPPORTED, /* well-formed but not supported by this configuration */
    QSIM_ERR_NOFIT,       /* a layer cannot be mapped onto the buffers/array */
    QSIM_ERR_NOMEM,       /* allocation failed */
    QSIM_ERR_ARG,         /* bad argument (NULL handle, index out of range, ...) */
    QSIM_ERR_RUN,         /* the simulation could not complete */
    QSIM_ERR_VERSION      /* the library is not the version the caller was built for */
} qsim_status;

typedef struct {
    char msg[512];
} qsim_error;

/* ---- version -------------------------------------------------------------- */

/* Release version ("0.1.0"). */
const char *qsim_version(void);
/* Exact source revision (`git describe --always --dirty --tags` at build
 * time, or the release version for a build outside git). */
const char *qsim_source_revision(void);
/* QSIM_API_VERSION of the library itself. */
int qsim_api_version(void);
/* QSIM_OK when the library implements api_version (pass QSIM_API_VERSION). */
qsim_status qsim_check_version(int api_version, qsim_error *err);
/* Short name of a status ("config error", ...). */
const char *qsim_status_name(qsim_status st);

/* ---- networks (.qbin, docs/qbin.md) --------------------------------------- */

typedef struct qsim_net qsim_net;

qsim_status qsim_net_load(const char *path, qsim_net **out, qsim_error *err);
/* From a .qbin image in memory (copied); `name` is used in messages. */
qsim_status qsim_net_from_bytes(const void *bytes, size_t len, const char *name, qsim_net **out, qsim_error *err);
void qsim_net_free(qsim_net *net);

typedef struct {
    const char *name;     /* the network's name */
    int32_t n_layers;     /* layers, the input layer (index 0) included */
    int32_t output;       /* index of the output layer */
    int32_t in_c, in_h, in_w;  /* one input: in_c * in_h * in_w integers, CHW */
    int32_t in_bits, in_signed;
} qsim_net_info;
qsim_status qsim_net_get_info(const qsim_net *net, qsim_net_info *out, qsim_error *err);

typedef struct {
    const char *name, *kind;   /* kind: "conv", "fc", "add", ... (docs/qbin.md) */
    int32_t out_c, out_h, out_w;
    int64_t macs;              /* dense MACs of one inference */
} qsim_layer_info;
/* The table `qsim info` prints: layers, shapes, bit widths, parameters, MACs. */
qsim_status qsim_net_describe(const qsim_net *net, char **text, qsim_error *err);

qsim_status qsim_net_get_layer(const qsim_net *net, int32_t index, qsim_layer_info *out, qsim_error *err);

/* ---- NumPy .npy arrays of integers (qsim run --input/--labels) ------------ */

#define QSIM_NPY_MAXDIM 8
typedef struct {
    int32_t ndim;
    int64_t shape[QSIM_NPY_MAXDIM];
    int64_t count;
    int32_t *data;   /* the values as int32 (a value out of int32's range is an error) */
} qsim_array;

/* Integer dtypes i1 u1 i2 u2 i4 u4 i8 u8, C order, format 1.0/2.0. */
qsim_status qsim_npy_load(const char *path, qsim_array *out, qsim_error *err);
void qsim_array_free(qsim_array *a);

/* ---- accelerator configurations (docs/config.md) ------------------------- */

typedef struct qsim_config qsim_config;

/* From a file (a tech table path inside resolves against the file's folder). */
qsim_status qsim_config_load(const char *path, qsim_config **out, qsim_error *err);
/* From INI text; `where` names it in messages and is the base of a relative
 * tech table path (NULL: "<config>", relative to the working directory). */
qsim_status qsim_config_parse(const char *text, const char *where, qsim_config **out, qsim_error *err);
/* Override one key, "section.key=value" as qsim's --set. The configuration is
 * re-checked as a whole; on failure it is left unchanged. */
qsim_status qsim_config_set(qsim_config *cfg, const char *assignment, qsim_error *err);
/* From a file with overrides applied at once and the whole checked once, as
 * `qsim run --arch FILE --set ...` (a file that is valid only with its
 * overrides loads; the message is the command's). */
qsim_status qsim_config_load_set(const char *path, const char *const *assignments, int n_assignments,
                                 qsim_config **out, qsim_error *err);
/* 1 when the configuration is a SCALE-Sim one (docs/scalesim.md), else 0. */
int qsim_config_is_scalesim(const qsim_config *cfg);
qsim_status qsim_config_copy(const qsim_config *cfg, qsim_config **out, qsim_error *err);
/* The effective value of "section.key" as text, into buf (size n). */
qsim_status qsim_config_get(const qsim_config *cfg, const char *key, char *buf, size_t n, qsim_error *err);
void qsim_config_free(qsim_config *cfg);

/* ---- compile and run ------------------------------------------------------- */

typedef struct qsim_program qsim_program;

/* Map the network onto the configuration (docs/compiler.md); also loads the
 * configuration's technology table. */
qsim_status qsim_compile(const qsim_net *net, const qsim_config *cfg, qsim_program **out, qsim_error *err);
void qsim_program_free(qsim_program *prog);

typedef struct {
    int32_t n_instructions;
    uint64_t dram_bytes;  /* DRAM footprint: weights, activations, program */
} qsim_program_info;
qsim_status qsim_program_get_info(const qsim_program *prog, qsim_program_info *out, qsim_error *err);

/* Text the caller owns, freed with qsim_text_free (NULL is fine). */
void qsim_text_free(char *text);
/* The mapping per layer (docs/compiler.md §10) as `qsim compile --summary`,
 * with each layer's instructions too when with_instructions (--listing). */
qsim_status qsim_program_listing(const qsim_program *prog, int with_instructions, char **text, qsim_error *err);
/* Warnings about the mapping ("warning: buffer bandwidth throttles ...",
 * one line each, "" when none), as `qsim compile` prints them. */
qsim_status qsim_program_warnings(const qsim_program *prog, char **text, qsim_error *err);

/* QSIM_ENGINE_RTL: the detailed engine with the Verilated PE array of the
 * configuration beside it, compared every clock (docs/waveforms.md, "RTL
 * co-simulation"; needs verilator at run time, builds cached); a mismatch is
 * QSIM_ERR_RUN with the cycle, PE, both values and a command that replays it. */
typedef enum { QSIM_ENGINE_FAST = 0, QSIM_ENGINE_DETAILED = 1, QSIM_ENGINE_RTL = 2 } qsim_engine;
typedef enum { QSIM_TRACE_NONE = 0, QSIM_TRACE_FST = 1, QSIM_TRACE_VCD = 2 } qsim_trace_format;

/* Called when a transfer takes the DRAM channel: direction, DRAM byte
 * address, bytes, the cycle it starts. */
typedef void (*qsim_dma_hook)(void *user, int is_write, uint32_t addr, uint32_t bytes, uint64_t start_cycle);

/* Progress of a long run, for a display: QSIM_PROGRESS_INFERENCE after each
 * inference of a one-thread batch (done of total), QSIM_PROGRESS_CYCLES every
 * 65,536 simulated cycles of a single inference (done cycles, total 0),
 * QSIM_PROGRESS_LAYER after each layer of a topology run (done of total). */
typedef enum { QSIM_PROGRESS_INFERENCE = 0, QSIM_PROGRESS_CYCLES = 1, QSIM_PROGRESS_LAYER = 2 } qsim_progress_kind;
typedef void (*qsim_progress_hook)(void *user, qsim_progress_kind kind, uint64_t done, uint64_t total);

typedef struct {
    uint32_t struct_size;        /* sizeof(qsim_run_options), set by qsim_run_options_init */
    qsim_engine engine;
    qsim_dma_hook dma_hook;      /* NULL: none */
    void *dma_user;
    qsim_trace_format trace_format;  /* waveform of the first inference */
    const char *trace_path;
    uint64_t trace_from, trace_to;   /* cycle window (inclusive) */
    int32_t keep_layer_outputs;  /* 1: every layer's output of the last inference stays readable */
    const int32_t *labels;       /* n_inputs class labels: the report gets top-1 "accuracy" (NULL: none) */
    const char *net_path, *config_path;  /* names shown in the report (NULL: the handles' own) */
    const char *command_line;    /* recorded in the JSON report (NULL: none) */
    /* QSIM_ENGINE_RTL only (docs/waveforms.md, "RTL co-simulation"): */
    const char *rtl_cache;       /* model cache (NULL: $QSIM_RTL_CACHE, $XDG_CACHE_HOME/qsim/rtl, ~/.cache/qsim/rtl) */
    const char *rtl_layer;       /* co-simulate only this layer, the others run fast (NULL: every layer) */
    int64_t rtl_tile_from, rtl_tile_to;  /* only these tiles of each co-simulated layer (init: 0, INT64_MAX) */
    const char *rtl_fst;         /* the RTL's own signals for cycles trace_from..trace_to (NULL: none) */
    const char *rtl_repro;       /* the command a mismatch message offers, without engine and window (NULL: "qsim run ...") */
} qsim_run_options;

void qsim_run_options_init(qsim_run_options *opts);

/* What `qsim run` adds to a run (a struct of its own, so qsim_run_options keeps
 * the layout callers were built with). */
typedef struct {
    uint32_t struct_size;        /* sizeof(qsim_run_extras), set by qsim_run_extras_init */
    int32_t jobs;                /* threads sharing a batch's inferences (<= 1: one); no figure depends on it.
                                    With a trace, one. With jobs > 1 the DMA hook is called from every thread. */
    const char *dump_dir;        /* every layer's output as DIR/<index>_<name>.npy; of a batch each inference's
                                    in DIR/<inference, 5 digits>/ (qsim run --dump-outputs); NULL: none */
    int32_t dump_index;          /* >= 0: of a batch, only that inference, into DIR itself; -1 (default): all */
    const char *dram_trace_path; /* every DRAM request of the first inference (DRAMsim3 format, docs/dram.md);
                                    needs a bank-level [dram] model */
    const char *trace_layer;     /* the waveform window is this layer's cycles (instead of trace_from/to) */
    qsim_progress_hook progress; /* NULL: none */
    void *progress_user;
    const char *input_name;      /* names the inputs in messages ("X.npy: inference 3: ..."); NULL: none */
} qsim_run_extras;

void qsim_run_extras_init(qsim_run_extras *extras);

typedef struct qsim_report qsim_report;

/* Run n_inputs inferences. inputs: n_inputs * in_c*in_h*in_w integers
 * (count of them), CHW per inference, within the input layer's range; NULL
 * (count 0, n_inputs 1) runs qsim's deterministic pseudo-random input.
 * opts may be NULL (defaults). */
qsim_status qsim_run(const qsim_program *prog, const int32_t *inputs, int64_t count, int32_t n_inputs,
                     const qsim_run_options *opts, qsim_report **out, qsim_error *err);
/* qsim_run with extras (NULL: the defaults of qsim_run_extras_init). */
qsim_status qsim_run_with(const qsim_program *prog, const int32_t *inputs, int64_t count, int32_t n_inputs,
                          const qsim_run_options *opts, const qsim_run_extras *extras, qsim_report **out,
                          qsim_error *err);
void qsim_report_free(qsim_report *rep);

/* ---- decoding with a KV cache (docs/decode.md) --------------------------------- */

/* A decoder network (.qbin with KVCACHE layers) run over its prompt (the
 * prefill: the file's T tokens) and then `steps` decode steps of one token
 * each, the caches growing by one row a step. */
typedef struct {
    uint32_t struct_size;        /* sizeof(qsim_decode_options), set by qsim_decode_options_init */
    int32_t steps;               /* N >= 1 decode steps */
    const int32_t *step_inputs;  /* N rows of the input's C values (teacher forcing); NULL: each step's input is
                                    the last output row before it (needs an output shaped like the input) */
} qsim_decode_options;
void qsim_decode_options_init(qsim_decode_options *d);

typedef struct qsim_decode_report qsim_decode_report;

/* prompt: the input layer's C x T x 1 values (NULL, count 0: qsim's pseudo-random input). opts: engine,
 * names (NULL: defaults; traces, hooks and labels are refused). The figures are in docs/report.md,
 * "Decode runs". */
qsim_status qsim_decode(const qsim_net *net, const qsim_config *cfg, const int32_t *prompt, int64_t count,
                        const qsim_decode_options *d, const qsim_run_options *opts, qsim_decode_report **out,
                        qsim_error *err);
void qsim_decode_report_free(qsim_decode_report *r);
/* The JSON text (owned by the report) and the plain-text summary (free with qsim_text_free). */
qsim_status qsim_decode_report_json(const qsim_decode_report *r, const char **json, qsim_error *err);
qsim_status qsim_decode_report_text(const qsim_decode_report *r, char **text, qsim_error *err);
/* The network output of step 0..N-1 (the new token's C x 1 x W' values), or with step -1 the prefill's. */
qsim_status qsim_decode_report_output(const qsim_decode_report *r, int32_t step, const int32_t **data,
                                      int64_t *count, qsim_error *err);
/* Every step's output as one .npy of shape (N, C, H, W) (the step output's shape). */
qsim_status qsim_decode_report_write_outputs(const qsim_decode_report *r, const char *path, qsim_error *err);

/* ---- the report (docs/report.md): figures per inference --------------------- */

typedef struct {
    int32_t inferences;
    double cycles, time_s;
    double macs, macs_executed, mac_slice_ops, mac_slice_gated, mac_slice_skipped;
    double dram_bytes;
    double stall_dram, stall_dependency, stall_buffer, stall_ppu;
    double sram_read_bytes[3], sram_write_bytes[3];  /* ifmap, weight, accum */
    double energy_pj;
    double utilization;
} qsim_totals;

typedef struct {
    double mac, registers, sram, dram, ppu, leakage, total;  /* pJ per inference */
} qsim_energy;

typedef struct {
    double total, array, sram_ifmap, sram_weight, sram_accum, dma, ppu, control;  /* mm^2 */
    double pe_um2;
} qsim_area;

typedef struct {
    const char *name, *kind;
    double cycles, array_busy, macs, macs_executed;
    double stall_dram, stall_dependency, stall_buffer, stall_ppu;
    double dram_read_bytes, dram_write_bytes;
    double sram_read_bytes[3], sram_write_bytes[3];
    double acc_overflows;
    qsim_energy energy;
} qsim_layer_figures;

qsim_status qsim_report_totals(const qsim_report *rep, qsim_totals *out, qsim_error *err);
qsim_status qsim_report_energy(const qsim_report *rep, qsim_energy *out, qsim_error *err);
qsim_status qsim_report_area(const qsim_report *rep, qsim_area *out, qsim_error *err);
/* Layer 1..n_layers-1 (layer 0 is the input and does no work). */
qsim_status qsim_report_layer(const qsim_report *rep, int32_t layer, qsim_layer_figures *out, qsim_error *err);
/* Of a QSIM_ENGINE_RTL run: what was compared (all zero for other engines). */
typedef struct {
    uint64_t clocks, values, tiles;  /* clocks compared, values compared, tiles co-simulated */
    int32_t models, built;           /* array configurations co-simulated; of them built by this run */
    double build_seconds;
} qsim_rtl_stats;
qsim_status qsim_report_rtl(const qsim_report *rep, qsim_rtl_stats *out, qsim_error *err);
/* The JSON report qsim run --json writes (docs/report.md); owned by rep. */
qsim_status qsim_report_json(const qsim_report *rep, const char **json, qsim_error *err);
/* The network output of inference i (0..n_inputs-1): out_c*out_h*out_w integers, CHW; owned by rep. */
qsim_status qsim_report_output(const qsim_report *rep, int32_t inference, const int32_t **data, int64_t *count,
                               qsim_error *err);
/* Layer `layer`'s output of the last inference (needs keep_layer_outputs). */
qsim_status qsim_report_layer_output(const qsim_report *rep, int32_t layer, const int32_t **data, int64_t *count,
                                     qsim_error *err);

/* ---- memory (docs/api.md, "Allocator") ------------------------------------ */
/* Every heap allocation of the library goes through one function, as Lua's
 * lua_Alloc: fn(ud, NULL, 0, n) allocates n bytes; fn(ud, p, osize, 0) frees
 * p (a block of osize bytes) and returns NULL; fn(ud, p, osize, n) resizes p
 * to n bytes, keeping its contents as realloc does. It returns NULL when it
 * cannot allocate (leaving p as it was), and malloc-aligned blocks. osize is
 * always exactly the block's size; qsim never asks for 0 bytes. A block goes
 * back to the function and ud that allocated it, so the allocator may change
 * while handles are alive. On a failed allocation a call returns
 * QSIM_ERR_NOMEM, never crashes, and leaks nothing.
 * Process-wide: call it while no other thread is inside qsim. fn NULL: the
 * default (malloc/realloc/free). It also routes cJSON (the report's JSON),
 * whose hooks are process-wide too (docs/api.md says what else allocates). */
typedef void *(*qsim_alloc_fn)(void *ud, void *ptr, size_t osize, size_t nsize);
void qsim_set_allocator(qsim_alloc_fn fn, void *ud);
/* The current allocation function and ud (the default's when none was set). */
void qsim_get_allocator(qsim_alloc_fn *fn, void **ud);
/* ---- what the qsim command prints and writes (a report keeps pointers into its
 * program and network: they must outlive it for these calls) ------------------- */

/* The terminal table `qsim run` prints. */
qsim_status qsim_report_text(const qsim_report *rep, char **text, qsim_error *err);
/* The JSON report (as qsim_report_json) and the per-layer CSV, into files. */
qsim_status qsim_report_write_json(const qsim_report *rep, const char *path, qsim_error *err);
qsim_status qsim_report_write_csv(const qsim_report *rep, const char *path, qsim_error *err);
/* Warnings and notes of the run ("warning: ...", "note: ...", where a
 * waveform's view is), one line each; "" when none; owned by rep. */
qsim_status qsim_report_messages(const qsim_report *rep, const char **text, qsim_error *err);

/* ---- SCALE-Sim topologies (docs/scalesim.md): each layer simulated on its own,
 * synthetic operands ------------------------------------------------------- */

typedef struct {
    uint32_t struct_size;        /* sizeof(qsim_topology_options), set by qsim_topology_options_init */
    qsim_engine engine;
    int32_t gemm;                /* 1: GEMM form (Layer, M, N, K); 0: convolution; -1 (default): the header says */
    double weight_sparsity, act_sparsity;  /* fraction of zero operands, 0..1 (default 0) */
    int32_t weight_bits;         /* signed weights: 1 (bipolar), 2, 4 or 8 (default 8) */
    int32_t act_bits;            /* unsigned activations: 1..16 (default 8) */
    int32_t replay_reads;        /* 1: replay SCALE-Sim's read buffers for the DRAM read columns (slower) */
    const char *report_dir;      /* SCALE-Sim's three report files go here (qsim_report_write_scalesim) */
    const char *scalesim_outdir; /* qsim scalesim -p: reports go to DIR/<run_name>/ (both made if missing) */
    int32_t traces;              /* 1: SCALE-Sim's six SRAM and DRAM trace CSVs of each layer into
                                    <report dir>/layer<i>/ (docs/scalesim.md, "Traces"); needs a report dir */
    int32_t timing_only;         /* 1: no operands, SCALE-Sim's figures only (docs/scalesim.md, "Layers without
                                    operands"); layers too large to simulate always run so */
    const char *topology_name, *config_path;  /* names shown in the report (NULL: the paths) */
    const char *command_line;    /* recorded in the JSON report (NULL: none) */
    qsim_progress_hook progress; /* QSIM_PROGRESS_LAYER; NULL: none */
    void *progress_user;
} qsim_topology_options;

void qsim_topology_options_init(qsim_topology_options *opts);
/* Run every layer of the topology file on the configuration (native or
 * SCALE-Sim). A failing layer's message starts with "TOPOLOGY:LINE:". The
 * report has text, JSON, CSV and messages; totals, layers and outputs are
 * those of networks only (QSIM_ERR_ARG). */
qsim_status qsim_topology_run(const qsim_config *cfg, const char *topology_path, const qsim_topology_options *opts,
                              qsim_report **out, qsim_error *err);
/* COMPUTE_REPORT.csv, BANDWIDTH_REPORT.csv, DETAILED_ACCESS_REPORT.csv into
 * the options' report_dir or scalesim_outdir/<run_name> (topology reports). */
qsim_status qsim_report_write_scalesim(const qsim_report *rep, qsim_error *err);
/* The lines SCALE-Sim's scale.py prints ("Compute cycles: N" per layer). */
qsim_status qsim_report_scalesim_stdout(const qsim_report *rep, char **text, qsim_error *err);

#ifdef __cplusplus
}
#endif

#endif
