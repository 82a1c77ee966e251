/* The GTKWave view of one traced run: traces/accelerator.gtkw's signals, plus
 * what only the run knows (the dump's path, the window to open on, the layer
 * names). Format of a save file: docs/waveforms.md. */
#include "waveview.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* GTKWave trace flags (its analyzer.h): how a signal line displays */
#define GTKW_DEC 0x4
#define GTKW_BIN 0x8
#define GTKW_RJUSTIFY 0x20
#define GTKW_BLANK 0x200
#define GTKW_FTRANSLATED 0x2000
#define GTKW_ANALOG_STEP 0x8000
#define GTKW_ANALOG_BLANK_STRETCH 0x20000
#define GTKW_GRP_BEGIN 0x800000
#define GTKW_GRP_END 0x1000000

/* The window the view sets: [size] 1400 wide less the tree (220) and name
 * (300) panes leaves about 860 pixels of waves; GTKWave shows width/200 time
 * units at zoom 0 and twice as many per zoom step down, so 4 units at zoom 0
 * is a safe (slightly wide) figure. */
#define VIEW_UNITS_AT_ZOOM0 4.0

/* The path as GTKWave should find it from anywhere: absolute. */
static int absolute_path(const char *path, char *out, size_t n)
{
    char cwd[PATH_MAX];
    if (path[0] == '/') return snprintf(out, n, "%s", path) >= (int)n;
    if (!getcwd(cwd, sizeof cwd)) return 1;
    int w = snprintf(out, n, "%s/%s", cwd, path);
    return w < 0 || (size_t)w >= n;
}

/* DUMP minus a .fst/.vcd extension, plus `ext`. */
static int sibling_path(const char *dump, const char *ext, char *out, size_t n)
{
    size_t len = strlen(dump);
    if (len > 4 && (!strcmp(dump + len - 4, ".fst") || !strcmp(dump + len - 4, ".vcd"))) len -= 4;
    int w = snprintf(out, n, "%.*s%s", (int)len, dump, ext);
    return w < 0 || (size_t)w >= n;
}

static void group(FILE *f, const char *name, int begin)
{
    fprintf(f, "@%x\n-%s\n", begin ? GTKW_GRP_BEGIN | GTKW_BLANK : GTKW_GRP_END | GTKW_BLANK, name);
}

/* An analog (step) trace of a count, three rows tall. */
static void analog(FILE *f, const char *sig)
{
    fprintf(f, "@%x\n%s\n@%x\n-\n-\n", GTKW_ANALOG_STEP | GTKW_DEC | GTKW_RJUSTIFY, sig, GTKW_ANALOG_BLANK_STRETCH);
}

qs_status qs_write_wave_view(const char *dump_path, const qs_net *net, int per_clock_overflows, uint64_t from,
                             uint64_t to, char *view_path, size_t view_path_size, qs_error *err)
{
    char layers_path[PATH_MAX], dump_abs[PATH_MAX], layers_abs[PATH_MAX];
    if (sibling_path(dump_path, ".gtkw", view_path, view_path_size) ||
        sibling_path(dump_path, ".layers.txt", layers_path, sizeof layers_path))
        return qs_fail(err, QS_ERR_ARG, "%s: path too long for its GTKWave view", dump_path);
    if (absolute_path(dump_path, dump_abs, sizeof dump_abs) ||
        absolute_path(layers_path, layers_abs, sizeof layers_abs))
        return qs_fail(err, QS_ERR_IO, "%s: cannot name it from the root: %s", dump_path, strerror(errno));

    FILE *f = fopen(layers_path, "w");
    if (!f) return qs_fail(err, QS_ERR_IO, "%s: cannot open for writing: %s", layers_path, strerror(errno));
    /* a translate file: the value as displayed (decimal), a space, the text */
    for (int32_t i = 0; i < net->n_layers; i++) fprintf(f, "%d %s\n", (int)i, net->layers[i].name);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return qs_fail(err, QS_ERR_IO, "%s: write failed", layers_path);

    f = fopen(view_path, "w");
    if (!f) return qs_fail(err, QS_ERR_IO, "%s: cannot open for writing: %s", view_path, strerror(errno));
    double span = (double)(to - from) * 1.05 + 2.0;
    double zoom = -log2(span / VIEW_UNITS_AT_ZOOM0);
    if (zoom > 0.0) zoom = 0.0;
    fprintf(f, "[*] qsim: GTKWave view of %s, written by qsim run: gtkwave %s\n", dump_path, view_path);
    fprintf(f, "[*] time axis: one 'ns' is one clock cycle, numbered as in the run (this window: cycles %llu..%llu)\n",
            (unsigned long long)from, (unsigned long long)to);
    fprintf(f, "[*] qsim.array.layer shows layer names through %s; signals: docs/waveforms.md\n", layers_path);
    fprintf(f, "[dumpfile] \"%s\"\n", dump_abs);
    fprintf(f, "[timestart] %llu\n[size] 1400 900\n[pos] -1 -1\n*%.6f -1\n", (unsigned long long)from, zoom);
    fprintf(f, "[treeopen] qsim.\n[sst_width] 220\n[signals_width] 300\n[sst_expanded] 1\n[sst_vpaned_height] 250\n");
    group(f, "queues", 1);
    fprintf(f, "@%x\n", GTKW_DEC | GTKW_RJUSTIFY);
    fprintf(f, "qsim.queues.load_pc[31:0]\nqsim.queues.compute_pc[31:0]\nqsim.queues.store_pc[31:0]\n");
    fprintf(f, "@%x\n", GTKW_BIN | GTKW_RJUSTIFY);
    fprintf(f, "qsim.queues.load_busy\nqsim.queues.compute_busy\nqsim.queues.store_busy\n");
    fprintf(f, "@%x\n", GTKW_DEC | GTKW_RJUSTIFY);
    fprintf(f, "qsim.queues.tok_ld_cmp[7:0]\nqsim.queues.tok_cmp_ld[7:0]\nqsim.queues.tok_cmp_st[7:0]\n"
               "qsim.queues.tok_st_cmp[7:0]\nqsim.queues.tok_st_ld[7:0]\n");
    group(f, "queues", 0);
    group(f, "dma", 1);
    fprintf(f, "@%x\nqsim.dma.dram_busy\n@%x\nqsim.dma.dram_bytes_in_flight[31:0]\n", GTKW_BIN | GTKW_RJUSTIFY,
            GTKW_DEC | GTKW_RJUSTIFY);
    group(f, "dma", 0);
    group(f, "array", 1);
    fprintf(f, "@%x\n^1 %s\nqsim.array.layer[15:0]\n", GTKW_DEC | GTKW_RJUSTIFY | GTKW_FTRANSLATED, layers_abs);
    analog(f, "qsim.array.active_pes[31:0]");
    analog(f, "qsim.array.gated_pes[31:0]");
    analog(f, "qsim.array.idle_pes[31:0]");
    if (per_clock_overflows) fprintf(f, "@%x\nqsim.array.overflows[31:0]\n", GTKW_DEC | GTKW_RJUSTIFY);
    group(f, "array", 0);
    group(f, "ppu", 1);
    fprintf(f, "@%x\nqsim.ppu.busy\n", GTKW_BIN | GTKW_RJUSTIFY);
    group(f, "ppu", 0);
    bad = ferror(f);
    if (fclose(f) != 0 || bad) return qs_fail(err, QS_ERR_IO, "%s: write failed", view_path);
    return QS_OK;
}
