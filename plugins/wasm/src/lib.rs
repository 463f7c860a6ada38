//! The WASM carrier: a plugin module run by wasmtime 48 in a sandbox that is on by default.
//!
//! * **Version first.** The interface version is read from the module's custom section
//!   `astroclip_plugin_interface` (parsed, not executed) and checked by the caret rule before
//!   the module is compiled or instantiated.
//! * **No host access.** The module is instantiated with no imports at all: no WASI, no
//!   filesystem, no network, no clock. A module that imports anything is refused by name.
//! * **Deadline.** Epoch interruption: a ticker thread advances the engine's epoch every
//!   [`TICK_MS`] ms and every call gets a deadline of `capabilities.deadline_ms`; an infinite
//!   loop traps instead of hanging the host.
//! * **Memory cap.** `StoreLimits` caps linear memory at `capabilities.max_memory_mb` and traps
//!   on a failed `memory.grow`, so a memory bomb stops at the cap.
//! * **Stack.** wasmtime's stack limit turns unbounded recursion into a trap.
//! * **Pointers.** Every guest pointer and length is checked against the guest memory by
//!   `Memory::read`/`Memory::write`; a pointer out of range is an error naming the plugin.
//!
//! Guest ABI (interface v1, data-level tokenizer; see `plugins/examples/wasm-*/`):
//! exports `memory`, `alloc(bytes: i32) -> i32`, `output_len(shape_ptr: i32, ndim: i32) -> i32`,
//! `tokenize(in_ptr, in_len, shape_ptr, ndim, out_ptr, out_len: i32) -> i32` (0 = ok; shapes
//! are u32 little-endian, values f32 little-endian), and optionally `last_error(buf, cap: i32)
//! -> i32` which writes the message of the last refusal (the error as data).
//!
//! The `astroclip-wasm-host` binary (`src/bin/`) serves a plugin to the `astroclip` process over
//! stdin/stdout, so the trainer never links wasmtime (see `docs/plugins.md`).

use astroclip_carrier_protocol::{TensorAnswer, TensorCall};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use astroclip_plugin_host::{Carrier, PluginDir, PluginError};
use astroclip_plugin_sdk::{INTERFACE_VERSION as PLUGIN_INTERFACE_VERSION, api_compatible};
use wasmtime::{
    Config, Engine, Instance, Linker, Memory, Module, Store, StoreLimits, StoreLimitsBuilder, Trap, TypedFunc,
};

/// Epoch tick of the deadline clock.
pub const TICK_MS: u64 = 10;
/// The import module of the tensor interface for WASM encoders (interface 1.1).
pub const TENSOR_MODULE: &str = "astroclip_tensor_v1";
/// Its functions (same operations and argument order as the native `TensorApiV1`; handles
/// are `i64`, dims `i32`, strings and shapes as guest pointer + length).
pub const TENSOR_IMPORTS: [&str; 15] = [
    "last_error",
    "param",
    "shape",
    "unary",
    "binary",
    "scalar",
    "along",
    "reshape",
    "transpose",
    "slice",
    "concat",
    "linear",
    "layer_norm",
    "conv2d",
    "log",
];

/// The custom section holding the interface version.
pub const VERSION_SECTION: &str = "astroclip_plugin_interface";

/// One engine for the process, with its epoch ticker.
fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut cfg = Config::new();
        cfg.epoch_interruption(true);
        cfg.max_wasm_stack(512 * 1024);
        let engine = Engine::new(&cfg).expect("wasmtime engine with epoch interruption");
        let ticker = engine.clone();
        static RUNNING: AtomicBool = AtomicBool::new(false);
        if !RUNNING.swap(true, Ordering::SeqCst) {
            std::thread::Builder::new()
                .name("astroclip-wasm-epoch".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(Duration::from_millis(TICK_MS));
                        ticker.increment_epoch();
                    }
                })
                .expect("spawning the epoch ticker");
        }
        engine
    })
}

/// The interface version in a module's custom section, if any.
pub fn embedded_version(bytes: &[u8]) -> Option<String> {
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        if let Ok(wasmparser::Payload::CustomSection(c)) = payload
            && c.name() == VERSION_SECTION
        {
            return Some(String::from_utf8_lossy(c.data()).trim().to_string());
        }
    }
    None
}

pub struct WasmPlugin {
    pub id: String,
    pub version: String,
    module: Module,
    deadline_ticks: u64,
    memory_bytes: usize,
}

/// `f32`s as little-endian bytes (preallocated: `flat_map` + `collect` cannot size the vector).
pub fn le_bytes(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * 4);
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

struct State {
    limits: StoreLimits,
}

/// One instance of the module with its exports (a fresh store per plugin session).
pub struct Session<'a> {
    plugin: &'a WasmPlugin,
    store: Store<State>,
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    output_len: TypedFunc<(i32, i32), i32>,
    tokenize: TypedFunc<(i32, i32, i32, i32, i32, i32), i32>,
    /// Optional `last_error(buf, cap) -> len`: the message of a refused input.
    last_error: Option<TypedFunc<(i32, i32), i32>>,
}

fn call_err(p: &WasmPlugin, call: &str, detail: String) -> PluginError {
    PluginError::Call { id: p.id.clone(), version: p.version.clone(), call: call.into(), detail }
}

/// Turns a wasmtime error into what happened, in words.
fn describe(p: &WasmPlugin, e: &wasmtime::Error) -> String {
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => {
            format!("deadline of {} ms exceeded; the call was stopped", p.deadline_ticks * TICK_MS)
        }
        Some(Trap::StackOverflow) => "stack overflow (unbounded recursion?); the call was stopped".into(),
        Some(Trap::MemoryOutOfBounds) => "the plugin accessed memory out of bounds".into(),
        Some(t) => format!("trap: {t}"),
        None if format!("{e:#}").contains("growing memory") => {
            let detail = format!("{e:#}");
            let what = detail.lines().last().unwrap_or("").split(": ").last().unwrap_or("").trim().to_string();
            format!("memory cap of {} MiB reached ({what}); the call was stopped", p.memory_bytes >> 20)
        }
        None => format!("{e:#}"),
    }
}

impl WasmPlugin {
    pub fn load(dir: &PluginDir) -> Result<Self, PluginError> {
        if dir.manifest.entry.carrier != Carrier::Wasm {
            return Err(PluginError::Invalid {
                id: dir.id().into(),
                version: dir.version().into(),
                path: dir.dir.display().to_string(),
                detail: "entry.carrier is not `wasm`".into(),
            });
        }
        dir.verify()?;
        let invalid = |detail: String| PluginError::Invalid {
            id: dir.id().into(),
            version: dir.version().into(),
            path: dir.dir.display().to_string(),
            detail,
        };
        let path = dir.entry_path();
        let text = std::fs::read(&path).map_err(|e| invalid(format!("{}: {e}", path.display())))?;
        // `.wat` entries are compiled to binary first, so the version section is read the same way.
        let bytes = if path.extension().is_some_and(|e| e == "wat") {
            wat::parse_bytes(&text).map_err(|e| invalid(format!("{}: {e}", path.display())))?.into_owned()
        } else {
            text
        };
        let iface = embedded_version(&bytes).ok_or_else(|| {
            invalid(format!("{} has no `{VERSION_SECTION}` custom section with its interface version", path.display()))
        })?;
        if !api_compatible(PLUGIN_INTERFACE_VERSION, &iface) {
            return Err(invalid(format!(
                "the module was built for plugin interface {iface}, which this host (interface \
                 {PLUGIN_INTERFACE_VERSION}) cannot run"
            )));
        }
        if iface != dir.manifest.plugin.api_version {
            return Err(invalid(format!(
                "the module embeds interface {iface} but plugin.toml declares api_version {}",
                dir.manifest.plugin.api_version
            )));
        }
        let module = Module::new(engine(), &bytes).map_err(|e| invalid(format!("invalid module: {e:#}")))?;
        // The only host functions a module may import: the tensor interface (for encoders),
        // each with its exact signature (checked again by the linker at instantiation).
        if let Some(imp) =
            module.imports().find(|i| !(i.module() == TENSOR_MODULE && TENSOR_IMPORTS.contains(&i.name())))
        {
            let (m, n) = (imp.module().to_string(), imp.name().to_string());
            return Err(invalid(format!(
                "the module imports {m}::{n}; plugins get no host functions (no WASI, filesystem or network) \
                 beyond the tensor interface"
            )));
        }
        let caps = &dir.manifest.capabilities;
        Ok(Self {
            id: dir.id().into(),
            version: dir.version().into(),
            module,
            deadline_ticks: caps.deadline_ms.div_ceil(TICK_MS).max(1),
            memory_bytes: (caps.max_memory_mb as usize) << 20,
        })
    }

    /// Instantiates the module in a fresh sandboxed store.
    pub fn session(&self) -> Result<Session<'_>, PluginError> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.memory_bytes)
            .instances(1)
            .memories(1)
            .tables(4)
            .trap_on_grow_failure(true)
            .build();
        let mut store = Store::new(engine(), State { limits });
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(self.deadline_ticks);
        store.epoch_deadline_trap();
        let linker: Linker<State> = Linker::new(engine());
        let instance: Instance = linker
            .instantiate(&mut store, &self.module)
            .map_err(|e| call_err(self, "instantiate", describe(self, &e)))?;
        let missing =
            |what: &str| call_err(self, "instantiate", format!("the module does not export `{what}` (interface v1)"));
        let memory = instance.get_memory(&mut store, "memory").ok_or_else(|| missing("memory"))?;
        let alloc = instance.get_typed_func(&mut store, "alloc").map_err(|_| missing("alloc(i32) -> i32"))?;
        let output_len =
            instance.get_typed_func(&mut store, "output_len").map_err(|_| missing("output_len(i32, i32) -> i32"))?;
        let tokenize = instance
            .get_typed_func(&mut store, "tokenize")
            .map_err(|_| missing("tokenize(i32, i32, i32, i32, i32, i32) -> i32"))?;
        let last_error = instance.get_typed_func(&mut store, "last_error").ok();
        Ok(Session { plugin: self, store, memory, alloc, output_len, tokenize, last_error })
    }
}

/// Answers a WASM encoder's tensor-interface calls (typed by the carrier protocol).
pub type TensorHost = Box<dyn FnMut(TensorCall) -> TensorAnswer + Send>;

struct EncoderState {
    limits: StoreLimits,
    host: TensorHost,
    error: String,
}

/// An instance of a WASM encoder whose tensor calls go to `host`.
pub struct EncoderSession<'a> {
    plugin: &'a WasmPlugin,
    store: Store<EncoderState>,
    forward: TypedFunc<(i64, i32), i64>,
}

fn guest_bytes(caller: &mut wasmtime::Caller<'_, EncoderState>, ptr: i32, len: i32) -> Result<Vec<u8>, String> {
    let mem = caller.get_export("memory").and_then(|e| e.into_memory()).ok_or("the module exports no memory")?;
    let mut buf = vec![0u8; len.max(0) as usize];
    mem.read(&*caller, ptr as u32 as usize, &mut buf)
        .map_err(|_| format!("pointer {:#x} + {len} bytes is outside the guest's memory", ptr as u32))?;
    Ok(buf)
}

fn guest_u32s(caller: &mut wasmtime::Caller<'_, EncoderState>, ptr: i32, n: i32) -> Result<Vec<u64>, String> {
    Ok(guest_bytes(caller, ptr, n.saturating_mul(4))?
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as u64)
        .collect())
}

fn guest_i64s(caller: &mut wasmtime::Caller<'_, EncoderState>, ptr: i32, n: i32) -> Result<Vec<u64>, String> {
    Ok(guest_bytes(caller, ptr, n.saturating_mul(8))?
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect())
}

/// Sends one call to the host; returns the handle, or 0 with the message kept for `last_error`.
fn host_call(caller: &mut wasmtime::Caller<'_, EncoderState>, op: &str, call: Result<TensorCall, String>) -> i64 {
    let answer = match call {
        Ok(c) => (caller.data_mut().host)(c),
        Err(e) => TensorAnswer::Error(format!("{op}: {e}")),
    };
    match answer {
        TensorAnswer::Handle(h) if h > 0 => h as i64,
        TensorAnswer::Error(e) => {
            caller.data_mut().error = e;
            0
        }
        other => {
            caller.data_mut().error = format!("{op}: the host answered {other:?}");
            0
        }
    }
}

/// A guest handle (i64) as the host's (u64); negative values are never valid handles.
fn handle(h: i64) -> u64 {
    u64::try_from(h).unwrap_or(u64::MAX)
}

/// A guest dimension or size (i32) as usize; negative values become an impossible size.
fn size(v: i32) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

fn tensor_linker() -> Result<Linker<EncoderState>, wasmtime::Error> {
    use wasmtime::Caller;
    type C<'a> = Caller<'a, EncoderState>;
    let mut l: Linker<EncoderState> = Linker::new(engine());
    let m = TENSOR_MODULE;
    l.func_wrap(m, "last_error", |mut c: C<'_>, buf: i32, cap: i32| -> i32 {
        let msg = c.data().error.clone().into_bytes();
        let n = msg.len().min(cap.max(0) as usize);
        match c.get_export("memory").and_then(|e| e.into_memory()) {
            Some(mem) if mem.write(&mut c, buf as u32 as usize, &msg[..n]).is_ok() => n as i32,
            _ => 0,
        }
    })?;
    l.func_wrap(
        m,
        "param",
        |mut c: C<'_>, name: i32, name_len: i32, shape: i32, ndim: i32, init: i32, scale: f32| -> i64 {
            let call = guest_bytes(&mut c, name, name_len).and_then(|n| {
                let shape = guest_u32s(&mut c, shape, ndim)?.into_iter().map(|d| d as usize).collect();
                Ok(TensorCall::Param {
                    name: String::from_utf8_lossy(&n).into_owned(),
                    shape,
                    init: init as u32,
                    scale,
                })
            });
            host_call(&mut c, "param", call)
        },
    )?;
    l.func_wrap(m, "shape", |mut c: C<'_>, h: i64, out: i32, cap: i32| -> i32 {
        let dims = match (c.data_mut().host)(TensorCall::Shape { a: handle(h) }) {
            TensorAnswer::Shape(d) => d,
            TensorAnswer::Error(e) => {
                c.data_mut().error = e;
                return 0;
            }
            other => {
                c.data_mut().error = format!("shape: the host answered {other:?}");
                return 0;
            }
        };
        if dims.len() > cap.max(0) as usize {
            c.data_mut().error = format!("shape buffer of {cap} too small for {} dims", dims.len());
            return 0;
        }
        let bytes: Vec<u8> = dims.iter().flat_map(|&d| (d as u32).to_le_bytes()).collect();
        match c.get_export("memory").and_then(|e| e.into_memory()) {
            Some(mem) if mem.write(&mut c, out as u32 as usize, &bytes).is_ok() => dims.len() as i32,
            _ => {
                c.data_mut().error = format!("shape output pointer {:#x} is outside the guest's memory", out as u32);
                0
            }
        }
    })?;
    l.func_wrap(m, "unary", |mut c: C<'_>, op: i32, a: i64| -> i64 {
        host_call(&mut c, "unary", Ok(TensorCall::Unary { op: op as u32, a: handle(a) }))
    })?;
    l.func_wrap(m, "binary", |mut c: C<'_>, op: i32, a: i64, b: i64| -> i64 {
        host_call(&mut c, "binary", Ok(TensorCall::Binary { op: op as u32, a: handle(a), b: handle(b) }))
    })?;
    l.func_wrap(m, "scalar", |mut c: C<'_>, op: i32, a: i64, v: f32| -> i64 {
        host_call(&mut c, "scalar", Ok(TensorCall::Scalar { op: op as u32, a: handle(a), v }))
    })?;
    l.func_wrap(m, "along", |mut c: C<'_>, op: i32, a: i64, dim: i32| -> i64 {
        host_call(&mut c, "along", Ok(TensorCall::Along { op: op as u32, a: handle(a), dim: size(dim) }))
    })?;
    l.func_wrap(m, "reshape", |mut c: C<'_>, a: i64, shape: i32, ndim: i32| -> i64 {
        let call = guest_u32s(&mut c, shape, ndim)
            .map(|s| TensorCall::Reshape { a: handle(a), shape: s.into_iter().map(|d| d as usize).collect() });
        host_call(&mut c, "reshape", call)
    })?;
    l.func_wrap(m, "transpose", |mut c: C<'_>, a: i64, d0: i32, d1: i32| -> i64 {
        host_call(&mut c, "transpose", Ok(TensorCall::Transpose { a: handle(a), d0: size(d0), d1: size(d1) }))
    })?;
    l.func_wrap(m, "slice", |mut c: C<'_>, a: i64, dim: i32, start: i32, end: i32| -> i64 {
        let call = TensorCall::Slice { a: handle(a), dim: size(dim), start: size(start), end: size(end) };
        host_call(&mut c, "slice", Ok(call))
    })?;
    l.func_wrap(m, "concat", |mut c: C<'_>, hs: i32, n: i32, dim: i32| -> i64 {
        let call = guest_i64s(&mut c, hs, n).map(|hs| TensorCall::Concat { hs, dim: size(dim) });
        host_call(&mut c, "concat", call)
    })?;
    l.func_wrap(m, "linear", |mut c: C<'_>, x: i64, w: i64, b: i64| -> i64 {
        host_call(&mut c, "linear", Ok(TensorCall::Linear { x: handle(x), w: handle(w), b: handle(b) }))
    })?;
    l.func_wrap(m, "layer_norm", |mut c: C<'_>, x: i64, g: i64, b: i64, eps: f32| -> i64 {
        let call = TensorCall::LayerNorm { x: handle(x), gamma: handle(g), beta: handle(b), eps };
        host_call(&mut c, "layer_norm", Ok(call))
    })?;
    l.func_wrap(m, "conv2d", |mut c: C<'_>, x: i64, w: i64, b: i64, stride: i32, pad: i32| -> i64 {
        let call =
            TensorCall::Conv2d { x: handle(x), w: handle(w), b: handle(b), stride: size(stride), padding: size(pad) };
        host_call(&mut c, "conv2d", Ok(call))
    })?;
    // Debug output from the guest goes to the host's stderr, bounded.
    l.func_wrap(m, "log", |mut c: C<'_>, ptr: i32, len: i32| {
        if let Ok(b) = guest_bytes(&mut c, ptr, len.min(1024)) {
            eprintln!("[wasm plugin] {}", String::from_utf8_lossy(&b));
        }
    })?;
    Ok(l)
}

impl WasmPlugin {
    /// Whether the module is an encoder (exports `encoder_forward`).
    pub fn is_encoder(&self) -> bool {
        self.module.get_export("encoder_forward").is_some()
    }

    /// Instantiates the module as an encoder whose tensor calls go to `host`, in a fresh
    /// sandboxed store (same memory cap, deadline per forward, stack limit).
    pub fn encoder_session(&self, host: TensorHost) -> Result<EncoderSession<'_>, PluginError> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.memory_bytes)
            .instances(1)
            .memories(1)
            .tables(4)
            .trap_on_grow_failure(true)
            .build();
        let mut store = Store::new(engine(), EncoderState { limits, host, error: String::new() });
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(self.deadline_ticks);
        store.epoch_deadline_trap();
        let linker = tensor_linker().map_err(|e| call_err(self, "instantiate", format!("{e:#}")))?;
        let instance = linker
            .instantiate(&mut store, &self.module)
            .map_err(|e| call_err(self, "instantiate", describe(self, &e)))?;
        let forward = instance.get_typed_func(&mut store, "encoder_forward").map_err(|_| {
            call_err(
                self,
                "instantiate",
                "the module does not export `encoder_forward(i64, i32) -> i64` (interface 1.1)".into(),
            )
        })?;
        Ok(EncoderSession { plugin: self, store, forward })
    }
}

impl EncoderSession<'_> {
    /// Runs the encoder on host tensor `input`; returns the output handle.
    pub fn forward(&mut self, input: u64, embed_dim: usize) -> Result<u64, PluginError> {
        let call = format!("encoder_forward (embed_dim {embed_dim})");
        self.store.set_epoch_deadline(self.plugin.deadline_ticks);
        self.store.data_mut().error.clear();
        let h = self
            .forward
            .call(&mut self.store, (input as i64, embed_dim as i32))
            .map_err(|e| call_err(self.plugin, &call, describe(self.plugin, &e)))?;
        if h <= 0 {
            let why = std::mem::take(&mut self.store.data_mut().error);
            let why = if why.is_empty() { "the plugin returned no tensor".to_string() } else { why };
            return Err(call_err(self.plugin, &call, why));
        }
        Ok(h as u64)
    }
}

impl Session<'_> {
    fn err(&self, call: &str, detail: String) -> PluginError {
        call_err(self.plugin, call, detail)
    }

    fn arm_deadline(&mut self) {
        self.store.set_epoch_deadline(self.plugin.deadline_ticks);
    }

    /// Copies `bytes` into a guest buffer from the guest's `alloc`; the pointer is checked.
    fn put(&mut self, call: &str, bytes: &[u8]) -> Result<i32, PluginError> {
        self.arm_deadline();
        let len =
            i32::try_from(bytes.len()).map_err(|_| self.err(call, "input too large for a 32-bit guest".into()))?;
        let ptr = self.alloc.call(&mut self.store, len).map_err(|e| self.err(call, describe(self.plugin, &e)))?;
        self.memory.write(&mut self.store, ptr as u32 as usize, bytes).map_err(|_| {
            self.err(
                call,
                format!(
                    "alloc({len}) returned pointer {:#x}, out of the guest's {} bytes of memory",
                    ptr as u32,
                    self.memory.data_size(&self.store)
                ),
            )
        })?;
        Ok(ptr)
    }

    /// The guest's message for its last refusal, if it exports `last_error` (bounded, checked).
    fn guest_error(&mut self) -> Option<String> {
        let f = self.last_error.clone()?;
        const CAP: usize = 512;
        let buf = self.put("last_error", &[0u8; CAP]).ok()?;
        self.arm_deadline();
        let n = f.call(&mut self.store, (buf, CAP as i32)).ok()?.clamp(0, CAP as i32) as usize;
        let mut bytes = vec![0u8; n];
        self.memory.read(&self.store, buf as u32 as usize, &mut bytes).ok()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn shape_bytes(shape: &[usize]) -> Vec<u8> {
        shape.iter().flat_map(|&d| (d as u32).to_le_bytes()).collect()
    }

    pub fn output_len(&mut self, shape: &[usize]) -> Result<Option<usize>, PluginError> {
        let sp = self.put("output_len", &Self::shape_bytes(shape))?;
        self.arm_deadline();
        let n = self
            .output_len
            .call(&mut self.store, (sp, shape.len() as i32))
            .map_err(|e| self.err("output_len", describe(self.plugin, &e)))?;
        Ok((n > 0).then_some(n as usize))
    }

    /// Runs the tokenizer on `input` (row-major, `shape`) into `out`.
    pub fn tokenize(&mut self, input: &[f32], shape: &[usize], out: &mut [f32]) -> Result<(), PluginError> {
        let call = format!("tokenize (input shape {shape:?})");
        if shape.iter().product::<usize>() != input.len() {
            return Err(self.err(&call, format!("input has {} values for shape {shape:?}", input.len())));
        }
        let ip = self.put(&call, &le_bytes(input))?;
        let sp = self.put(&call, &Self::shape_bytes(shape))?;
        let op = self.put(&call, &vec![0u8; out.len() * 4])?;
        self.arm_deadline();
        let code = self
            .tokenize
            .call(&mut self.store, (ip, input.len() as i32, sp, shape.len() as i32, op, out.len() as i32))
            .map_err(|e| self.err(&call, describe(self.plugin, &e)))?;
        if code != 0 {
            let why = self.guest_error().unwrap_or_default();
            let why = if why.is_empty() { String::new() } else { format!(": {why}") };
            return Err(self.err(&call, format!("the plugin refused the input (code {code}){why}")));
        }
        let mut buf = vec![0u8; out.len() * 4];
        self.memory
            .read(&self.store, op as u32 as usize, &mut buf)
            .map_err(|_| self.err(&call, format!("output pointer {:#x} is out of range", op as u32)))?;
        for (o, c) in out.iter_mut().zip(buf.chunks_exact(4)) {
            *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        Ok(())
    }
}
