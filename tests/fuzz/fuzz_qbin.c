/* libFuzzer harness of the .qbin loader (models/net.c, docs/qbin.md).
 *
 * Built twice: fuzz_qbin takes the bytes as they are; fuzz_qbin_crc
 * (QS_FUZZ_FIX_CRC) first rewrites the file_size field, every section CRC
 * that lies inside the file and the header CRC, so that mutated payloads get
 * past the CRCs to the structural and semantic checks behind them.
 *
 * Properties of an accepted file: it validates again; the writer's bytes
 * load back and write the same bytes again (the writer is canonical), and
 * are the file's own when its sections are the writers' three in their
 * order (the layout is canonical); a
 * network small enough compiles on a small array or is refused with a
 * reason, and then simulates (fast engine) without error. A refused file
 * gets a message. The same bytes read from a pipe (qs_net_load's stream
 * path, bounded by the header's file_size) give the same answer: accepted
 * with the same network, or refused. ASan/UBSan catch the rest. */
#include <zlib.h>

#include "qs_alloc.h"
#include "compiler.h"
#include "fuzz_util.h"
#include "qs_arch.h"
#include "qs_net.h"
#include "sim.h"

static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

/* An accepted file with exactly the three required sections: docs/qbin.md's
 * canonical layout (one section order, table in file order, no free bytes)
 * says it saves back to the same bytes. (A file with optional sections saves
 * without them.) */
static int without_optional_sections(const uint8_t *b) { return rd32(b + 24) == 3; }

#ifdef QS_FUZZ_FIX_CRC
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

static void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* The integrity fields of docs/qbin.md ("Header", "Section table entry")
 * recomputed for the bytes at hand. */
static void fix_integrity(uint8_t *b, size_t len)
{
    if (len < 32 || memcmp(b, "QSIMNET", 8) != 0) return;
    for (int i = 0; i < 8; i++) b[16 + i] = (uint8_t)((uint64_t)len >> (8 * i));
    uint32_t n = rd32(b + 24);
    if (n < 1 || n > 16 || 32 + 24 * (uint64_t)n > len) return;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t *e = b + 32 + 24 * i;
        uint64_t off = rd64(e + 8), size = rd64(e + 16);
        if (off <= len && size <= len - off) wr32(e + 4, (uint32_t)crc32(0, b + off, (uInt)size));
    }
    uLong crc = crc32(0, b, 28);
    crc = crc32(crc, b + 32, (uInt)(24 * n));
    wr32(b + 28, (uint32_t)crc);
}
#endif

/* Compile + simulate budget: the harness stays fast; bigger networks are
 * the deep harness's and the tests' business. */
enum { MAX_MACS = 200000, MAX_ELEMS = 100000 };

static void compile_and_run(const qs_net *net)
{
    int64_t macs = 0, elems = 0;
    for (int32_t i = 0; i < net->n_layers; i++) {
        const qs_layer *L = &net->layers[i];
        macs += qs_layer_macs(net, i);
        elems += (int64_t)L->out_c * L->out_h * L->out_w;
    }
    if (macs > MAX_MACS || elems > MAX_ELEMS) return;
    static qs_arch arch;
    static int have_arch;
    qs_error e;
    if (!have_arch) {
        static const char ini[] = "[array]\nrows = 4\ncols = 4\nweight_path_bits = 2\nmax_act_bits = 16\n"
                                  "zero_skip = both\nskip_group = 2\n[buffer.ifmap]\nsize_kib = 16\n"
                                  "[buffer.weight]\nsize_kib = 16\n[buffer.accum]\nsize_kib = 16\n";
        FZ_CHECK(qs_arch_parse(ini, "fuzz.cfg", NULL, 0, &arch, &e) == QS_OK, "%s", e.msg);
        have_arch = 1;
    }
    qs_prog *prog = NULL;
    qs_status st = qs_compile(net, &arch, &prog, &e);
    if (st != QS_OK) {
        fz_check_error(st, &e);
        FZ_CHECK(st == QS_ERR_NOFIT || st == QS_ERR_UNSUPPORTED || st == QS_ERR_NOMEM,
                 "compile of a valid network: unexpected status %d: %s", (int)st, e.msg);
        return;
    }
    qs_sim *sim = NULL;
    st = qs_sim_create(net, prog, QS_ENGINE_FAST, &sim, &e);
    FZ_CHECK(st == QS_OK, "sim_create: %s", e.msg);
    st = qs_sim_run(sim, &e);
    FZ_CHECK(st == QS_OK, "run: %s", e.msg);
    qs_sim_destroy(sim);
    qs_prog_destroy(prog);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *bytes = data;
#ifdef QS_FUZZ_FIX_CRC
    uint8_t *copy = qs_malloc(size ? size : 1);
    if (!copy) abort();
    memcpy(copy, data, size);
    fix_integrity(copy, size);
    bytes = copy;
#endif
    qs_net *net = (qs_net *)1;
    qs_error e;
    qs_status st = qs_net_parse(bytes, size, "fuzz.qbin", &net, &e);
    char path[64];
    const int fd = fz_pipe_of(bytes, size, path, sizeof path);
    if (fd >= 0) {
        qs_net *streamed = NULL;
        qs_error es;
        const qs_status ss = qs_net_load(path, &streamed, &es);
        close(fd);
        fz_same_answer(ss, &es, st, &e);
        if (ss == QS_OK) {
            uint8_t *a = NULL, *c = NULL;
            size_t na = 0, nc = 0;
            FZ_CHECK(qs_net_serialize(net, &a, &na, &es) == QS_OK && qs_net_serialize(streamed, &c, &nc, &es) == QS_OK,
                     "serialize: %s", es.msg);
            FZ_CHECK(na == nc && memcmp(a, c, na) == 0, "the network read from a pipe differs from the one in memory");
            qs_free(a);
            qs_free(c);
            qs_net_destroy(streamed);
        }
    }
    if (st != QS_OK) {
        fz_check_error(st, &e);
        FZ_CHECK(net == NULL, "a refused file still gives a network");
        goto out;
    }
    FZ_CHECK(qs_net_validate(net, "fuzz.qbin", &e) == QS_OK, "accepted, then invalid: %s", e.msg);
    for (int32_t i = 0; i < net->n_layers; i++) FZ_CHECK(qs_layer_macs(net, i) >= 0, "layer %d: negative MACs", i);

    uint8_t *b1 = NULL, *b2 = NULL;
    size_t n1 = 0, n2 = 0;
    qs_net *again = NULL;
    st = qs_net_serialize(net, &b1, &n1, &e);
    FZ_CHECK(st == QS_OK, "serialize an accepted network: %s", e.msg);
    FZ_CHECK(n1 <= size, "the writer's file (%zu bytes) is longer than the file read (%zu)", n1, size);
    if (without_optional_sections(bytes))
        FZ_CHECK(n1 == size && memcmp(b1, bytes, size) == 0, "a canonical file does not save back to its bytes");
    st = qs_net_parse(b1, n1, "written.qbin", &again, &e);
    FZ_CHECK(st == QS_OK, "the writer's bytes do not load: %s", e.msg);
    st = qs_net_serialize(again, &b2, &n2, &e);
    FZ_CHECK(st == QS_OK && n1 == n2 && memcmp(b1, b2, n1) == 0, "save(load(save(x))) != save(x)");
    qs_free(b1);
    qs_free(b2);
    qs_net_destroy(again);

    compile_and_run(net);
    qs_net_destroy(net);
out:
#ifdef QS_FUZZ_FIX_CRC
    qs_free(copy);
#endif
    return 0;
}
