//! A WASM encoder over the tensor interface (plugin interface 1.1), in Zig: the same network
//! and parameter names as tensor-zoo's native `mlp` — Linear(d, 16) → GELU → LayerNorm →
//! Linear(16, embed) — so the tests can compare it with the same network in direct burn.
//!
//! The module imports the tensor operations from `astroclip_tensor_v1` (the only imports a
//! WASM plugin may have) and exports `encoder_forward(input, embed_dim) -> output` (0 = error;
//! the host keeps the message). Tensors stay in the host: the guest only sees i64 handles.
//! Build: ./build.sh (Zig from PyPI `ziglang==0.17.1`, then the version section).

const H = i64;
extern "astroclip_tensor_v1" fn param(name: [*]const u8, name_len: i32, shape: [*]const u32, ndim: i32, init: i32, scale: f32) H;
extern "astroclip_tensor_v1" fn shape(h: H, out: [*]u32, cap: i32) i32;
extern "astroclip_tensor_v1" fn unary(op: i32, a: H) H;
extern "astroclip_tensor_v1" fn linear(x: H, w: H, b: H) H;
extern "astroclip_tensor_v1" fn layer_norm(x: H, g: H, b: H, eps: f32) H;

const GELU: i32 = 2;
const ZEROS: i32 = 0;
const CONSTANT: i32 = 1;
const UNIFORM_FAN_IN: i32 = 3;

fn ok(h: H) !H {
    if (h == 0) return error.Host;
    return h;
}

fn p(name: []const u8, dims: []const u32, init: i32, scale: f32) !H {
    return ok(param(name.ptr, @intCast(name.len), dims.ptr, @intCast(dims.len), init, scale));
}

fn forward(x: H, embed: u32) !H {
    var dims: [4]u32 = undefined;
    if (shape(x, &dims, 4) != 2) return error.Host;
    const d = dims[1];
    const w1 = try p("fc1.weight", &[_]u32{ d, 16 }, UNIFORM_FAN_IN, 1.0);
    const b1 = try p("fc1.bias", &[_]u32{16}, ZEROS, 0.0);
    const h = try ok(unary(GELU, try ok(linear(x, w1, b1))));
    const g = try p("norm.weight", &[_]u32{16}, CONSTANT, 1.0);
    const b = try p("norm.bias", &[_]u32{16}, ZEROS, 0.0);
    const n = try ok(layer_norm(h, g, b, 1e-5));
    const w2 = try p("fc2.weight", &[_]u32{ 16, embed }, UNIFORM_FAN_IN, 1.0);
    const b2 = try p("fc2.bias", &[_]u32{embed}, ZEROS, 0.0);
    return ok(linear(n, w2, b2));
}

export fn encoder_forward(input: H, embed_dim: i32) H {
    return forward(input, @intCast(embed_dim)) catch 0;
}
