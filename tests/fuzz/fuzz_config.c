/*
 * fuzz_config.c - libFuzzer harness for the YAML config loader: any bytes
 * must give either a config or an error, never a crash or a leak.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "osc/config.h"
#include "osc/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct osc_config *cfg = NULL;
    struct osc_err err;

    if (osc_config_load_string((const char *)data, size, "fuzz.yaml", &cfg, &err) == 0)
        osc_config_free(cfg);
    osc_log_secret_clear();
    return 0;
}
