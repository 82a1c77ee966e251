/* A network's layer outputs for one input, reused across runs (value_cache.h). */
#include "value_cache.h"

#include <pthread.h>
#include <string.h>

#include "qs_alloc.h"

struct qs_value_cache {
    const qs_net *net;
    pthread_mutex_t lock;
    size_t max_bytes;
    size_t need;          /* bytes of one set: every non-view layer's output, layer 0 included */
    int32_t *block;       /* the kept set, layer after layer (NULL: none) */
    size_t *off;          /* per layer: its first value in block; (size_t)-1: a view (FLATTEN/RESHAPE) */
    uint64_t **zbits;     /* per layer: zero bits of the kept set (NULL: not built) */
    uint64_t **wbits;     /* per layer: zero weight slices (NULL: not built), for the slicing wkey */
    int32_t *wkey;
    size_t zbytes;        /* their sum */
    int32_t holders;      /* runs using the kept set (fetch .. release) */
    uint64_t hits, stores, misses;
};

static int is_view(const qs_layer *L) { return L->kind == QS_L_FLATTEN || L->kind == QS_L_RESHAPE; }

qs_status qs_value_cache_create(const qs_net *net, size_t max_bytes, qs_value_cache **out, qs_error *err)
{
    *out = NULL;
    qs_value_cache *vc = qs_calloc(1, sizeof *vc);
    size_t *off = qs_calloc((size_t)net->n_layers + 1, sizeof *off);
    uint64_t **zb = qs_calloc(2 * ((size_t)net->n_layers + 1), sizeof *zb);
    int32_t *wkey = qs_calloc((size_t)net->n_layers + 1, sizeof *wkey);
    if (!vc || !off || !zb || !wkey) {
        qs_free(vc);
        qs_free(off);
        qs_free(zb);
        qs_free(wkey);
        return qs_fail(err, QS_ERR_NOMEM, "value cache: out of memory");
    }
    if (pthread_mutex_init(&vc->lock, NULL) != 0) {
        qs_free(vc);
        qs_free(off);
        qs_free(zb);
        qs_free(wkey);
        return qs_fail(err, QS_ERR_NOMEM, "value cache: cannot create its lock");
    }
    /* the layers' sizes were checked when the network was loaded; the sum is
     * checked here (a set that does not fit size_t is simply never kept) */
    size_t n = 0;
    int fits = 1;
    for (int32_t i = 0; i < net->n_layers; i++) {
        const qs_layer *L = &net->layers[i];
        if (is_view(L)) {
            off[i] = (size_t)-1;
            continue;
        }
        off[i] = n;
        size_t e = (size_t)L->out_c * (size_t)L->out_h * (size_t)L->out_w;
        if (e > SIZE_MAX / 8 - n) fits = 0;
        else n += e;
    }
    vc->net = net;
    vc->off = off;
    vc->zbits = zb;
    vc->wbits = zb + net->n_layers + 1;
    vc->wkey = wkey;
    vc->max_bytes = max_bytes ? max_bytes : QS_VALUE_CACHE_DEFAULT_BYTES;
    vc->need = fits ? n * sizeof(int32_t) : SIZE_MAX;
    *out = vc;
    return QS_OK;
}

/* the zero bits of the kept set (the lock held) */
static void drop_zero_bits(qs_value_cache *vc)
{
    for (int32_t i = 0; i < vc->net->n_layers; i++) {
        qs_free(vc->zbits[i]);
        qs_free(vc->wbits[i]);
        vc->zbits[i] = vc->wbits[i] = NULL;
    }
    vc->zbytes = 0;
}

void qs_value_cache_clear(qs_value_cache *vc)
{
    if (!vc) return;
    pthread_mutex_lock(&vc->lock);
    if (!vc->holders) {
        drop_zero_bits(vc);
        qs_free(vc->block);
        vc->block = NULL;
    }
    pthread_mutex_unlock(&vc->lock);
}

void qs_value_cache_destroy(qs_value_cache *vc)
{
    if (!vc) return;
    drop_zero_bits(vc);
    qs_free(vc->zbits);
    qs_free(vc->wkey);
    qs_free(vc->block);
    qs_free(vc->off);
    pthread_mutex_destroy(&vc->lock);
    qs_free(vc);
}

void qs_value_cache_get_stats(qs_value_cache *vc, qs_value_cache_stats *out)
{
    pthread_mutex_lock(&vc->lock);
    out->hits = vc->hits;
    out->stores = vc->stores;
    out->misses = vc->misses;
    out->bytes = (vc->block ? vc->need : 0) + vc->zbytes;
    out->need = vc->need;
    pthread_mutex_unlock(&vc->lock);
}

static size_t layer_values(const qs_layer *L) { return (size_t)L->out_c * (size_t)L->out_h * (size_t)L->out_w; }

int qs_value_cache_fetch(qs_value_cache *vc, int32_t *const *outputs)
{
    const qs_net *net = vc->net;
    int hit = 0;
    pthread_mutex_lock(&vc->lock);
    if (vc->block && memcmp(vc->block, outputs[0], layer_values(&net->layers[0]) * sizeof(int32_t)) == 0) {
        for (int32_t i = 1; i < net->n_layers; i++)
            if (vc->off[i] != (size_t)-1)
                memcpy(outputs[i], vc->block + vc->off[i], layer_values(&net->layers[i]) * sizeof(int32_t));
        hit = 1;
        vc->hits++;
        vc->holders++;
    } else {
        vc->misses++;
    }
    pthread_mutex_unlock(&vc->lock);
    return hit;
}

void qs_value_cache_release(qs_value_cache *vc)
{
    pthread_mutex_lock(&vc->lock);
    vc->holders--;
    pthread_mutex_unlock(&vc->lock);
}

void qs_value_cache_store(qs_value_cache *vc, const int32_t *const *outputs)
{
    const qs_net *net = vc->net;
    if (vc->need > vc->max_bytes) return;
    pthread_mutex_lock(&vc->lock);
    if (vc->holders) { /* another run uses the kept set (and its zero bits) */
        pthread_mutex_unlock(&vc->lock);
        return;
    }
    drop_zero_bits(vc); /* they describe the set being replaced */
    if (!vc->block) vc->block = qs_malloc(vc->need ? vc->need : 1);
    if (vc->block) {
        for (int32_t i = 0; i < net->n_layers; i++)
            if (vc->off[i] != (size_t)-1)
                memcpy(vc->block + vc->off[i], outputs[i], layer_values(&net->layers[i]) * sizeof(int32_t));
        vc->stores++;
    }
    pthread_mutex_unlock(&vc->lock);
}

const uint64_t *qs_value_cache_zero_bits(qs_value_cache *vc, int32_t layer)
{
    pthread_mutex_lock(&vc->lock);
    const uint64_t *z = vc->zbits[layer];
    pthread_mutex_unlock(&vc->lock);
    return z;
}

const uint64_t *qs_value_cache_put_zero_bits(qs_value_cache *vc, int32_t layer, uint64_t *bits, size_t bytes)
{
    pthread_mutex_lock(&vc->lock);
    const uint64_t *kept = vc->zbits[layer];
    if (kept) {
        qs_free(bits); /* another thread built them first */
    } else if (vc->need + vc->zbytes <= vc->max_bytes && bytes <= vc->max_bytes - vc->need - vc->zbytes) {
        vc->zbits[layer] = bits;
        vc->zbytes += bytes;
        kept = bits;
    } else {
        qs_free(bits);
    }
    pthread_mutex_unlock(&vc->lock);
    return kept;
}

const uint64_t *qs_value_cache_weight_bits(qs_value_cache *vc, int32_t layer, int32_t key)
{
    pthread_mutex_lock(&vc->lock);
    const uint64_t *z = vc->wkey[layer] == key ? vc->wbits[layer] : NULL;
    pthread_mutex_unlock(&vc->lock);
    return z;
}

const uint64_t *qs_value_cache_put_weight_bits(qs_value_cache *vc, int32_t layer, int32_t key, uint64_t *bits,
                                               size_t bytes)
{
    pthread_mutex_lock(&vc->lock);
    const uint64_t *kept = NULL;
    if (vc->wbits[layer] && vc->wkey[layer] == key) {
        qs_free(bits); /* another thread built them first */
        kept = vc->wbits[layer];
    } else if (!vc->wbits[layer] && vc->need + vc->zbytes <= vc->max_bytes &&
               bytes <= vc->max_bytes - vc->need - vc->zbytes) {
        vc->wbits[layer] = bits;
        vc->wkey[layer] = key;
        vc->zbytes += bytes;
        kept = bits;
    } else { /* another slicing's bits are kept (a run may be using them): these are not */
        qs_free(bits);
    }
    pthread_mutex_unlock(&vc->lock);
    return kept;
}
