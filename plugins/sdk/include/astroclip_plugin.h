/*
 * astroclip plugin interface 1.1 — guest side of WASM plugins written in C (or Zig via
 * @cImport / `zig cc`). Registry-only toolchains: `python -m ziglang cc` (PyPI ziglang) or
 * Debian clang + lld:
 *
 *   python -m ziglang cc --target=wasm32-freestanding -O2 -nostdlib -Wl,--no-entry \
 *       -I plugins/sdk/include -o plugin.wasm plugin.c
 *   python3 plugins/sdk/wasm/add_version_section.py plugin.wasm 1.1.0
 *
 * (The second step adds the interface-version custom section: `zig cc` drops data placed in
 * `.custom_section.*` sections, so the version is appended after linking.)
 *
 * A module exports linear memory plus the functions below and imports nothing (the host gives
 * plugins no WASI, filesystem, network or clock unless the manifest's capabilities grant it).
 * The host reads ASTROCLIP_PLUGIN_INTERFACE from the custom section
 * `astroclip_plugin_interface` before it compiles or runs
 * anything, checks it with the caret rule, and then calls, per object:
 *
 *   alloc(input bytes), alloc(shape bytes), alloc(output bytes)   -- host copies data in
 *   tokenize(in, n, shape, ndim, out, out_n)                      -- 0 = ok
 *   last_error(buf, cap)                                          -- only after a refusal
 *
 * Every pointer the guest returns is bounds-checked by the host. Values are little-endian f32,
 * shapes little-endian u32. Each call has a wall-clock deadline and memory growth is capped
 * (plugin.toml [capabilities] deadline_ms, max_memory_mb).
 */
#ifndef ASTROCLIP_PLUGIN_H
#define ASTROCLIP_PLUGIN_H

#include <stdint.h>

#define ASTROCLIP_PLUGIN_INTERFACE "1.1.0"

/* Return codes of tokenize. */
#define ASTROCLIP_OK 0
#define ASTROCLIP_ERR_INPUT 1

#define ASTROCLIP_EXPORT(name) __attribute__((export_name(#name)))

/* What a plugin implements and exports (define them with ASTROCLIP_EXPORT(name)). */
/* Returns a pointer to `bytes` writable bytes in linear memory (a per-call arena is fine). */
int32_t alloc(int32_t bytes);
/* Output length for one input of this shape; 0 when the shape is not supported. */
int32_t output_len(const uint32_t *shape, int32_t ndim);
/* Writes out[0..out_n) from in[0..n) (row-major, shape[0..ndim)); ASTROCLIP_OK or an error. */
int32_t tokenize(const float *in, int32_t n, const uint32_t *shape, int32_t ndim, float *out, int32_t out_n);
/* Optional: copies the message of the last refusal into buf[0..cap), returns its length. */
int32_t last_error(char *buf, int32_t cap);

#endif
