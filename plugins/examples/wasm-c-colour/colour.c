/* Example WASM plugin in C against plugins/sdk/include/astroclip_plugin.h: a photometry
 * tokenizer giving flux ratios to the r band (input [2, bands]: fluxes, inverse variances).
 * Build (as the tests do):
 *   python -m ziglang cc --target=wasm32-freestanding -O2 -nostdlib -Wl,--no-entry \
 *       -I ../../sdk/include -o colour.wasm colour.c
 *   python3 ../../sdk/wasm/add_version_section.py colour.wasm 1.1.0
 */
#include "astroclip_plugin.h"

static unsigned char heap[64 * 1024] __attribute__((aligned(8)));
static uint32_t top;
static const char *error = "";
static int32_t error_len;

ASTROCLIP_EXPORT(alloc) int32_t alloc(int32_t bytes) {
    uint32_t size = ((uint32_t)bytes + 7u) & ~7u;
    if (top + size > sizeof heap) top = 0;
    int32_t p = (int32_t)(uintptr_t)&heap[top];
    top += size;
    return p;
}

static int32_t fail(const char *msg, int32_t len) {
    error = msg;
    error_len = len;
    return ASTROCLIP_ERR_INPUT;
}

ASTROCLIP_EXPORT(output_len) int32_t output_len(const uint32_t *shape, int32_t ndim) {
    top = 0;
    return (ndim == 2 && shape[0] == 2 && shape[1] >= 2) ? (int32_t)shape[1] : 0;
}

ASTROCLIP_EXPORT(tokenize)
int32_t tokenize(const float *in, int32_t n, const uint32_t *shape, int32_t ndim, float *out, int32_t out_n) {
    top = 0;
    if (ndim != 2 || shape[0] != 2 || n != 2 * (int32_t)shape[1] || out_n != (int32_t)shape[1])
        return fail("input shape must be [2, bands]", 30);
    float r = in[1];
    if (!(r > 0.0f)) return fail("r-band flux must be positive", 28);
    for (int32_t k = 0; k < out_n; k++) {
        float f = in[k];
        if (f != f) return fail("flux is NaN", 11);
        out[k] = f / r;
    }
    return ASTROCLIP_OK;
}

ASTROCLIP_EXPORT(last_error) int32_t last_error(char *buf, int32_t cap) {
    int32_t n = error_len < cap ? error_len : cap;
    for (int32_t i = 0; i < n; i++) buf[i] = error[i];
    return n;
}
