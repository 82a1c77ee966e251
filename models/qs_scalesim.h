/* SCALE-Sim's files as they are: its INI configuration (.cfg) mapped onto a
 * qs_arch under the `[timing] convention = scalesim`, its topology CSVs
 * (convolution and GEMM forms), and one topology layer turned into a small
 * qs_net with deterministic synthetic operands. What each SCALE-Sim key and
 * column means for qsim, and what is accepted but ignored: docs/scalesim.md.
 *
 * Like every qsim library call these never print: they return a qs_status
 * and fill a qs_error with "file:line: reason". */
#ifndef QS_SCALESIM_H
#define QS_SCALESIM_H

#include <stdint.h>

#include "qs_arch.h"
#include "qs_net.h"
#include "qs_status.h"

/* ---- configuration ----------------------------------------------------------- */

#define QS_SCALESIM_MAX_NOTES 8
/* ArrayHeight/ArrayWidth qsim accepts; over 1024 (the engines' limit) a run
 * gets SCALE-Sim's figures only (qs_arch.scalesim_figures_only) */
#define QS_SCALESIM_ARRAY_MAX 65536

/* What the SCALE-Sim configuration said (after checking), for reports and
 * for the notes the command prints about settings qsim does not model. */
typedef struct {
    char run_name[128];           /* [general] run_name, as written */
    int32_t array_h, array_w;     /* ArrayHeight, ArrayWidth */
    int32_t ifmap_kb, filter_kb, ofmap_kb;       /* *SramSzkB */
    int64_t ifmap_offset, filter_offset, ofmap_offset;  /* accepted, unused */
    qs_dataflow dataflow;         /* Dataflow os | ws | is */
    int32_t user_bandwidth;       /* [run_presets] InterfaceBandwidth: 1 = USER, 0 = CALC */
    int32_t bandwidth;            /* first value of Bandwidth (words/cycle), 0 if absent */
    char bandwidth_text[96];      /* every value, as SCALE-Sim prints them ("4,4") */
    int32_t n_bandwidths;         /* values in Bandwidth (one per memory bank) */
    int32_t memory_banks;         /* MemoryBanks (default 1) */
    int32_t sparsity_support;     /* v3 [sparsity] SparsitySupport (recorded, ignored) */
    /* Settings SCALE-Sim honours and qsim does not (or unknown keys): one
     * "file:line: ..." line each, for the command to print as notes. */
    int32_t n_notes;
    char notes[QS_SCALESIM_MAX_NOTES][200];
} qs_scalesim_cfg;

/* 1 if `text` is a SCALE-Sim configuration (it has an [architecture_presets]
 * section header), 0 for anything else (e.g. a native qsim .cfg). */
int qs_scalesim_is_config(const char *text);

/* Parse SCALE-Sim INI text (fuzzable). `where` names the source for messages
 * and is the base for nothing: the technology table is qsim's default one.
 * overrides: n strings "section.key=value" in qsim's native key names
 * (docs/config.md), applied after the mapping with the same meaning and
 * checks as `--set` on a native configuration. The result is validated
 * (qs_arch_validate). Errors: QS_ERR_CONFIG "where:line: reason", or
 * "where: missing section [x]". cfg may be NULL. */
qs_status qs_scalesim_parse_config(const char *text, const char *where, const char *const *overrides,
                                   int n_overrides, qs_arch *out, qs_scalesim_cfg *cfg, qs_error *err);

/* Read a file, then qs_scalesim_parse_config. */
qs_status qs_scalesim_load_config(const char *path, const char *const *overrides, int n_overrides,
                                  qs_arch *out, qs_scalesim_cfg *cfg, qs_error *err);

/* The technology table SCALE-Sim configurations get (absolute path of the
 * source tree's models/tech/default45.tech; `--set tech.table=F` overrides). */
const char *qs_scalesim_default_tech(void);

/* ---- topology ------------------------------------------------------------------ */

/* One layer as SCALE-Sim sees it. GEMM rows (M, N, K) are stored the way
 * SCALE-Sim's topology loader turns them into a convolution: an M x K
 * one-channel ifmap, a 1 x K filter, N filters, stride 1, so that the ofmap
 * is M x 1 per filter, the window is K, and M x N x K is the GEMM. */
typedef struct {
    char name[128];               /* as written (SCALE-Sim's depthwise rows: "<name>Channel_<c>") */
    int32_t line;                 /* line in the topology file */
    int32_t ifmap_h, ifmap_w, filter_h, filter_w, channels, num_filters, stride_h, stride_w;
    int32_t is_gemm;              /* from a GEMM row: gemm_m/n/k hold M, N, K */
    int32_t gemm_m, gemm_n, gemm_k;
    char sparsity[16];            /* v3 "N:M" sparsity column, "" if none (recorded, ignored) */
    int32_t no_operands;          /* too large to simulate on operands (a size over 2^20 or a tensor of
                                     more than 2^26 elements): SCALE-Sim's figures only (docs/scalesim.md) */
} qs_scalesim_layer;

typedef struct {
    int32_t gemm;                 /* 1: the file was read in GEMM form */
    int32_t n_layers;             /* 0 for a header-only file (SCALE-Sim v2 writes empty reports) */
    qs_scalesim_layer *layers;
    /* Where qsim reads the file as SCALE-Sim v2 does with a remark, or
     * differently from it: one "file:line: ..." line each, for the command
     * to print as notes. */
    int32_t n_notes;
    char notes[QS_SCALESIM_MAX_NOTES][200];
} qs_scalesim_topo;

/* Parse topology text (fuzzable). gemm_mode: 1 = GEMM form (`Layer, M, N, K,`),
 * 0 = convolution form, -1 = decide from the header (GEMM when its columns 2..4
 * are M, N, K). The first line is always the header, as in SCALE-Sim. Errors
 * (QS_ERR_FORMAT, "where:line: reason"): wrong column count, zero or negative
 * sizes, a filter larger than its input, text where a number belongs, an
 * empty file. A header-only file gives no layers and a note. On failure
 * *out is empty. */
qs_status qs_scalesim_parse_topology(const char *text, const char *where, int gemm_mode, qs_scalesim_topo *out,
                                     qs_error *err);

/* Read a file, then qs_scalesim_parse_topology. */
qs_status qs_scalesim_load_topology(const char *path, int gemm_mode, qs_scalesim_topo *out, qs_error *err);

void qs_scalesim_topo_free(qs_scalesim_topo *t);

/* SCALE-Sim's ofmap size: ceil((H - R + S) / S) per axis (no padding). */
void qs_scalesim_ofmap_dims(const qs_scalesim_layer *l, int32_t *oh, int32_t *ow);

/* SCALE-Sim's operand-matrix dimensions: ofmap pixels per filter (M), filters
 * (N) and the convolution window R*S*C (K); and its spatio-temporal mapping
 * for a dataflow: OS Sr = M, Sc = N, T = K; WS Sr = K, Sc = N, T = M;
 * IS Sr = K, Sc = M, T = N. */
void qs_scalesim_mnk(const qs_scalesim_layer *l, int64_t *m, int64_t *n, int64_t *k);
void qs_scalesim_spatiotemporal(const qs_scalesim_layer *l, qs_dataflow df, int64_t *sr, int64_t *sc, int64_t *t);

/* ---- one layer as a network ------------------------------------------------------ */

#define QS_SCALESIM_SEED 0x5CA1E5133D2A7C01ull

/* Synthetic operands (docs/scalesim.md, "Operands"). */
typedef struct {
    int32_t weight_bits;          /* 1 (bipolar +-1), 2, 4 or 8; signed; default 8 */
    int32_t act_bits;             /* 1..16, unsigned, zero point 0; default 8 */
    double weight_sparsity;       /* fraction of weights that are zero, 0..1; default 0 (dense) */
    double act_sparsity;          /* fraction of input activations that are zero, 0..1; default 0 */
    uint64_t seed;                /* default QS_SCALESIM_SEED */
    int32_t index;                /* the layer's index in the topology: keys the generator */
} qs_scalesim_opts;

void qs_scalesim_opts_default(qs_scalesim_opts *o);

/* One topology layer as a network: INPUT (C x H' x W') -> CONV (filter_h x
 * filter_w, stride, no padding in SCALE-Sim's sense) with weights from a
 * fixed-seed generator keyed by opts->index, output requantized to uint8.
 * The output is exactly SCALE-Sim's ofmap: where ceil((H - R + S)/S) exceeds
 * the unpadded windows, the missing bottom/right window positions read zeros
 * (bottom/right padding, or, when a window would lie wholly in padding, extra
 * zero input rows/columns: H' = H + that). A GEMM row becomes a 1x1
 * convolution of a K-channel M x 1 ifmap with N filters: the same M x N x K
 * GEMM, with a reduction qsim's native tiling can split. Validated with
 * qs_net_validate. */
qs_status qs_scalesim_layer_net(const qs_scalesim_layer *l, const qs_scalesim_opts *opts, qs_net **out,
                                qs_error *err);

/* The input activations for that network (CHW, malloc'd, *count values),
 * from the same generator; rows/columns added for SCALE-Sim's ofmap size
 * are zero. For qs_sim_set_input. */
qs_status qs_scalesim_layer_input(const qs_net *net, const qs_scalesim_layer *l, const qs_scalesim_opts *opts,
                                  int32_t **data, int64_t *count, qs_error *err);

#endif
