/* The program container shared by compiler and simulator. */
#include "qs_prog.h"
#include "qs_alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

qs_gemm_dims qs_gemm_dims_of(const qs_net *net, int32_t li)
{
    qs_gemm_dims d = {0, 0, 0, 0};
    const qs_layer *L = &net->layers[li];
    if (L->kind == QS_L_CONV) {
        const qs_layer *IN = &net->layers[L->inputs[0]];
        d.groups = L->groups;
        d.M = L->out_h * L->out_w;
        d.N = L->out_c / L->groups;
        d.K = (IN->out_c / L->groups) * L->kh * L->kw;
    } else if (L->kind == QS_L_FC) {
        const qs_layer *IN = &net->layers[L->inputs[0]];
        d.groups = 1;
        d.M = 1;
        d.N = L->out_c;
        d.K = IN->out_c * IN->out_h * IN->out_w;
    }
    return d;
}

void qs_prog_destroy(qs_prog *p)
{
    if (!p) return;
    for (int32_t i = 0; p->maps && i < p->n_layers; i++) { /* maps may be missing after an allocation failed */
        qs_free(p->maps[i].list_off);
        qs_free(p->maps[i].list);
        qs_free(p->maps[i].bias_folded);
    }
    qs_free(p->maps);
    qs_free(p->insn);
    qs_free(p);
}

static void put32(FILE *f, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    fwrite(b, 1, 4, f);
}

qs_status qs_prog_save(const qs_prog *p, const char *path, qs_error *err)
{
    FILE *f = fopen(path, "wb");
    if (!f) return qs_fail(err, QS_ERR_IO, "%s: cannot open for writing", path);
    fwrite(QS_PROG_MAGIC, 1, 8, f);
    put32(f, QS_PROG_VERSION);
    put32(f, (uint32_t)p->n_insn);
    put32(f, p->dram_bytes);
    put32(f, (uint32_t)p->init_slots);
    put32(f, (uint32_t)p->init_accum);
    put32(f, 0);
    for (int32_t i = 0; i < p->n_insn; i++) {
        uint8_t b[QS_INSN_BYTES];
        qs_insn_encode(&p->insn[i], b);
        fwrite(b, 1, sizeof b, f);
    }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return qs_fail(err, QS_ERR_IO, "%s: write failed", path);
    return QS_OK;
}
