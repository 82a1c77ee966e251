/* Small driver that lets Python tests exercise the C .qbin code through files:
 *   qbin_roundtrip_tool roundtrip IN OUT   parse IN, serialize to OUT
 *   qbin_roundtrip_tool check IN           parse IN; print "ok" and per-layer MACs,
 *                                          or the error message (exit 1)
 *   qbin_roundtrip_tool requant            lines "acc mult shift zp lo hi" on stdin ->
 *                                          qs_requant_apply results on stdout
 * Exit codes: 0 ok, 1 the library refused, 2 usage. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "qs_net.h"

static int cmd_roundtrip(const char *in, const char *out)
{
    qs_net *net = NULL;
    qs_error err;
    if (qs_net_load(in, &net, &err) != QS_OK || qs_net_save(net, out, &err) != QS_OK) {
        fprintf(stderr, "%s\n", err.msg);
        qs_net_destroy(net);
        return 1;
    }
    qs_net_destroy(net);
    return 0;
}

static int cmd_check(const char *in)
{
    qs_net *net = NULL;
    qs_error err;
    qs_status st = qs_net_load(in, &net, &err);
    if (st != QS_OK) {
        printf("%s: %s\n", qs_status_name(st), err.msg);
        return 1;
    }
    printf("ok\n");
    for (int32_t i = 0; i < net->n_layers; i++)
        printf("%d %" PRId64 "\n", (int)i, qs_layer_macs(net, i));
    qs_net_destroy(net);
    return 0;
}

static int cmd_requant(void)
{
    long long acc, mult, shift, zp, lo, hi;
    while (scanf("%lld %lld %lld %lld %lld %lld", &acc, &mult, &shift, &zp, &lo, &hi) == 6)
        printf("%d\n", (int)qs_requant_apply((int64_t)acc, (int32_t)mult, (int8_t)shift,
                                             (int32_t)zp, (int32_t)lo, (int32_t)hi));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "roundtrip") == 0)
        return cmd_roundtrip(argv[2], argv[3]);
    if (argc == 3 && strcmp(argv[1], "check") == 0)
        return cmd_check(argv[2]);
    if (argc == 2 && strcmp(argv[1], "requant") == 0)
        return cmd_requant();
    fprintf(stderr, "usage: %s roundtrip IN OUT | check IN | requant\n", argv[0]);
    return 2;
}
