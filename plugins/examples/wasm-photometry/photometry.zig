//! WASM photometry tokenizer (astroclip plugin interface 1.1, data level), in Zig.
//!
//! Input: shape [2, B] — row 0 fluxes (nanomaggies), row 1 inverse variances — for B ≥ 2
//! bands in wavelength order with r second (g, r, z, W1, W2 for the synthetic survey).
//! Output: 2B features —
//!   * (m_r − 18) / 2 and the B−1 colours m_k − m_{k+1}, in asinh magnitudes
//!     ("luptitudes", Lupton, Gunn & Szalay 1999, AJ 118, 1406): m = 22.5 − 2.5/ln10 ·
//!     (asinh(f / 2b) + ln b), softening b = σ = 1/√ivar, so faint and negative fluxes stay finite;
//!   * the B magnitude errors σ_m = 2.5/ln10 · σ / (2b · √(1 + (f/2b)²)), scaled by 10.
//! Refuses (code 1, message via `last_error`) a non-finite flux or an ivar ≤ 0.
//!
//! Build (registry-only toolchain, Zig from PyPI `ziglang`):
//!   ./build.sh   (python -m ziglang build-exe … -target wasm32-freestanding, then the interface
//!   version section; see build.sh)
const std = @import("std");


var heap: [256 * 1024]u8 align(8) = undefined;
var top: usize = 0;
var err_buf: [256]u8 = undefined;
var err_len: usize = 0;

export fn alloc(n: i32) i32 {
    const size: usize = (@as(usize, @intCast(n)) + 7) & ~@as(usize, 7);
    if (top + size > heap.len) top = 0; // a fresh arena per call: the host allocates per call
    const p = @intFromPtr(&heap[top]);
    top += size;
    return @intCast(p);
}

fn fail(comptime fmt: []const u8, args: anytype) i32 {
    const s = std.fmt.bufPrint(&err_buf, fmt, args) catch err_buf[0..0];
    err_len = s.len;
    return 1;
}

export fn last_error(buf: [*]u8, cap: i32) i32 {
    const n = @min(err_len, @as(usize, @intCast(cap)));
    @memcpy(buf[0..n], err_buf[0..n]);
    return @intCast(n);
}

export fn output_len(shape: [*]const u32, ndim: i32) i32 {
    top = 0;
    if (ndim != 2 or shape[0] != 2 or shape[1] < 2) return 0;
    return @intCast(2 * shape[1]);
}

const k_mag: f32 = 2.5 / std.math.ln10;

export fn tokenize(input: [*]const f32, n: i32, shape: [*]const u32, ndim: i32, out: [*]f32, out_n: i32) i32 {
    defer top = 0;
    if (ndim != 2 or shape[0] != 2 or shape[1] < 2) return fail("input shape must be [2, bands >= 2]", .{});
    const b: usize = shape[1];
    if (@as(usize, @intCast(n)) != 2 * b or @as(usize, @intCast(out_n)) != 2 * b) return fail("buffer lengths do not match shape", .{});
    var mags: [16]f32 = undefined;
    if (b > mags.len) return fail("at most 16 bands", .{});
    for (0..b) |k| {
        const f = input[k];
        const ivar = input[b + k];
        if (!std.math.isFinite(f)) return fail("band {d}: flux is not finite", .{k});
        if (!(ivar > 0) or !std.math.isFinite(ivar)) return fail("band {d}: ivar {d} must be positive", .{ k, ivar });
        const sigma = 1.0 / @sqrt(ivar);
        const x = f / (2.0 * sigma);
        mags[k] = 22.5 - k_mag * (std.math.asinh(x) + @log(sigma));
        out[b + k] = 10.0 * k_mag * sigma / (2.0 * sigma * @sqrt(1.0 + x * x));
    }
    out[0] = (mags[1] - 18.0) / 2.0;
    for (0..b - 1) |k| out[1 + k] = mags[k] - mags[k + 1];
    return 0;
}
