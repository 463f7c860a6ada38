//! `astroclip-wasm-host`: runs one WASM plugin for the `astroclip` process, over a pipe.
//!
//! The trainer does not link wasmtime (in one cargo graph with burn it would rebuild burn with
//! other features, and a process boundary also keeps a wasmtime failure away from a training
//! run). `astroclip` spawns `astroclip-wasm-host serve <plugin dir>` and talks to it in frames
//! on stdin/stdout:
//!
//! ```text
//! frame   = u32 LE header length, header (JSON), u32 LE payload length, payload (f32 LE)
//! request : {"op":"output_len","shape":[..]}
//!           {"op":"tokenize","shape":[..],"n":N}    payload: N inputs of prod(shape) values
//! reply   : {"ok":true,"len":L} | {"ok":true,"n":N} + N·L outputs
//!           {"ok":false,"index":k,"error":"…"}      (k: the object that failed, if any)
//! ```
//! The first reply (before any request) describes the plugin: `{"ok":true,"id","version"}` or
//! the load error. A trapped instance is replaced by a fresh one before the next request.
//!
//! Encoders (tensor interface 1.1): `{"op":"encode","input":h,"embed_dim":e}` runs the
//! module's `encoder_forward`; each tensor operation it imports is forwarded to `astroclip` as
//! `{"call": op, "args": [..]}` and the answer frame (`{"h": n}` / `{"shape": [..]}` /
//! `{"error": ..}`) is returned to the guest; the final reply is `{"ok":true,"out":h}`.
//!
//! `astroclip-wasm-host bench <plugin dir> --len L --n N` times the plugin in-process.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::time::Instant;

use astroclip_plugin_host::PluginDir;
use astroclip_plugin_wasm::WasmPlugin;

fn read_frame(r: &mut impl Read) -> std::io::Result<Option<(serde_json::Value, Vec<u8>)>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut header = vec![0u8; u32::from_le_bytes(len) as usize];
    r.read_exact(&mut header)?;
    r.read_exact(&mut len)?;
    let mut payload = vec![0u8; u32::from_le_bytes(len) as usize];
    r.read_exact(&mut payload)?;
    let header = serde_json::from_slice(&header).map_err(|e| std::io::Error::other(format!("bad header: {e}")))?;
    Ok(Some((header, payload)))
}

fn write_frame(w: &mut impl Write, header: &serde_json::Value, payload: &[u8]) -> std::io::Result<()> {
    let h = serde_json::to_vec(header)?;
    w.write_all(&(h.len() as u32).to_le_bytes())?;
    w.write_all(&h)?;
    w.write_all(&(payload.len() as u32).to_le_bytes())?;
    w.write_all(payload)?;
    w.flush()
}

fn shape_of(h: &serde_json::Value) -> Option<Vec<usize>> {
    h.get("shape")?.as_array()?.iter().map(|v| v.as_u64().map(|x| x as usize)).collect()
}

type Io = std::sync::Arc<std::sync::Mutex<(BufReader<std::io::Stdin>, BufWriter<std::io::Stdout>)>>;

/// `{"op":"encode","input":h,"embed_dim":e}`: runs the WASM encoder; each tensor call it makes
/// goes to `astroclip` as `{"call": op, "args": [..]}` and waits for the answer frame.
fn encode(plugin: &WasmPlugin, io: &Io, h: &serde_json::Value) -> serde_json::Value {
    let (Some(input), Some(embed_dim)) = (h["input"].as_u64(), h["embed_dim"].as_u64()) else {
        return serde_json::json!({"ok": false, "error": "encode needs input and embed_dim"});
    };
    let rpc = io.clone();
    let host: astroclip_plugin_wasm::TensorHost = Box::new(move |op, args| {
        let mut g = rpc.lock().unwrap_or_else(|p| p.into_inner());
        let (r, w) = &mut *g;
        if write_frame(w, &serde_json::json!({"call": op, "args": args}), &[]).is_err() {
            return serde_json::json!({"error": "the trainer closed the pipe"});
        }
        match read_frame(r) {
            Ok(Some((answer, _))) => answer,
            _ => serde_json::json!({"error": "the trainer closed the pipe"}),
        }
    });
    let result = plugin.encoder_session(host).and_then(|mut s| s.forward(input, embed_dim as usize));
    match result {
        Ok(out) => serde_json::json!({"ok": true, "out": out}),
        Err(e) => serde_json::json!({"ok": false, "error": e.to_string()}),
    }
}

fn serve(dir: &Path) -> std::io::Result<()> {
    let io: Io = std::sync::Arc::new(std::sync::Mutex::new((
        BufReader::new(std::io::stdin()),
        BufWriter::new(std::io::stdout()),
    )));
    let send = |v: &serde_json::Value, payload: &[u8]| -> std::io::Result<()> {
        let mut g = io.lock().unwrap_or_else(|p| p.into_inner());
        write_frame(&mut g.1, v, payload)
    };
    let plugin = match PluginDir::open(dir).and_then(|d| WasmPlugin::load(&d)) {
        Ok(p) => p,
        Err(e) => return send(&serde_json::json!({"ok": false, "error": e.to_string()}), &[]),
    };
    // An encoder module imports the tensor interface; a tokenizer imports nothing.
    let mut session = if plugin.is_encoder() {
        None
    } else {
        match plugin.session() {
            Ok(s) => Some(s),
            Err(e) => return send(&serde_json::json!({"ok": false, "error": e.to_string()}), &[]),
        }
    };
    send(
        &serde_json::json!({"ok": true, "id": plugin.id, "version": plugin.version, "encoder": plugin.is_encoder()}),
        &[],
    )?;
    loop {
        let frame = {
            let mut g = io.lock().unwrap_or_else(|p| p.into_inner());
            read_frame(&mut g.0)?
        };
        let Some((h, payload)) = frame else { break };
        if h.get("op").and_then(|o| o.as_str()) == Some("encode") {
            send(&encode(&plugin, &io, &h), &[])?;
            continue;
        }
        let Some(session) = session.as_mut() else {
            send(
                &serde_json::json!({"ok": false, "error": "this plugin is an encoder; it only answers `encode`"}),
                &[],
            )?;
            continue;
        };
        let fail =
            |index: Option<usize>, error: String| serde_json::json!({"ok": false, "index": index, "error": error});
        let Some(shape) = shape_of(&h) else {
            send(&fail(None, "request without a shape".into()), &[])?;
            continue;
        };
        let mut trapped = false;
        match h.get("op").and_then(|o| o.as_str()) {
            Some("output_len") => match session.output_len(&shape) {
                Ok(len) => send(&serde_json::json!({"ok": true, "len": len.unwrap_or(0)}), &[])?,
                Err(e) => {
                    trapped = true;
                    send(&fail(None, e.to_string()), &[])?
                }
            },
            Some("tokenize") => {
                let n = h.get("n").and_then(|v| v.as_u64()).unwrap_or(0) as usize;
                let per: usize = shape.iter().product();
                let values: Vec<f32> =
                    payload.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
                if values.len() != n * per {
                    send(&fail(None, format!("payload has {} values for {n} × {shape:?}", values.len())), &[])?;
                    continue;
                }
                let len = match session.output_len(&shape) {
                    Ok(Some(l)) => l,
                    Ok(None) => {
                        send(&fail(None, format!("the plugin does not take input shape {shape:?}")), &[])?;
                        continue;
                    }
                    Err(e) => {
                        *session = plugin.session().map_err(std::io::Error::other)?;
                        send(&fail(None, e.to_string()), &[])?;
                        continue;
                    }
                };
                let mut result = vec![0f32; n * len];
                let mut error = None;
                for i in 0..n {
                    if let Err(e) =
                        session.tokenize(&values[i * per..(i + 1) * per], &shape, &mut result[i * len..(i + 1) * len])
                    {
                        error = Some((i, e.to_string()));
                        break;
                    }
                }
                match error {
                    None => {
                        let bytes = astroclip_plugin_wasm::le_bytes(&result);
                        send(&serde_json::json!({"ok": true, "n": n, "len": len}), &bytes)?
                    }
                    Some((i, e)) => {
                        trapped = !e.contains("refused the input");
                        send(&fail(Some(i), e), &[])?
                    }
                }
            }
            other => send(&fail(None, format!("unknown op {other:?}")), &[])?,
        }
        if trapped {
            // A trap may leave the instance's memory inconsistent: start a fresh one.
            *session = plugin.session().map_err(std::io::Error::other)?;
        }
    }
    Ok(())
}

fn bench(dir: &Path, len: usize, n: usize) -> Result<(), String> {
    let plugin = PluginDir::open(dir).and_then(|d| WasmPlugin::load(&d)).map_err(|e| e.to_string())?;
    let mut session = plugin.session().map_err(|e| e.to_string())?;
    let shape = [len];
    let out_len = session.output_len(&shape).map_err(|e| e.to_string())?.ok_or("shape not supported")?;
    // 256 distinct inputs, cycled: a batch's worth of data, as `serve` sees it.
    let input: Vec<f32> = (0..256 * len).map(|i| (i as f32 * 0.37).sin()).collect();
    let mut out = vec![0f32; out_len];
    let t = Instant::now();
    for k in 0..n {
        let j = k % 256;
        session.tokenize(&input[j * len..(j + 1) * len], &shape, &mut out).map_err(|e| e.to_string())?;
    }
    let dt = t.elapsed().as_secs_f64();
    println!("{} {}: {n} inputs of {len} values in {dt:.3} s: {:.0} per s", plugin.id, plugin.version, n as f64 / dt);
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: astroclip-wasm-host serve <plugin dir> | bench <plugin dir> --len L --n N";
    let result = match args.get(1).map(String::as_str) {
        Some("serve") if args.len() == 3 => serve(Path::new(&args[2])).map_err(|e| e.to_string()),
        Some("bench") if args.len() >= 3 => {
            let get = |flag: &str, default: usize| {
                args.iter()
                    .position(|a| a == flag)
                    .and_then(|i| args.get(i + 1))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(default)
            };
            bench(Path::new(&args[2]), get("--len", 7781), get("--n", 20000))
        }
        _ => Err(usage.to_string()),
    };
    if let Err(e) = result {
        eprintln!("astroclip-wasm-host: {e}");
        std::process::exit(2);
    }
}
