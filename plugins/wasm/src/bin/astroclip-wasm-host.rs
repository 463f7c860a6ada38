//! `astroclip-wasm-host`: runs one WASM plugin for the `astroclip` process, over a pipe.
//!
//! The trainer does not link wasmtime (in one cargo graph with burn it would rebuild burn with
//! other features, and a process boundary also keeps a wasmtime failure away from a training
//! run). `astroclip` spawns `astroclip-wasm-host serve <plugin dir>` and talks to it in the
//! typed frames of `astroclip_carrier_protocol` (one module both sides compile): a handshake
//! on the protocol version, then tokenize batches or encoder forwards whose tensor operations
//! are executed by the trainer. A trapped instance is replaced by a fresh one before the next
//! request.
//!
//! `astroclip-wasm-host bench <plugin dir> --len L --n N` times the plugin in-process.

use std::io::{BufReader, BufWriter};
use std::path::Path;
use std::time::Instant;

use astroclip_carrier_protocol::{
    PROTOCOL_VERSION, Reply, Request, TensorAnswer, read_frame, version_mismatch, write_frame,
};
use astroclip_plugin_host::PluginDir;
use astroclip_plugin_wasm::WasmPlugin;

type Io = std::sync::Arc<std::sync::Mutex<(BufReader<std::io::Stdin>, BufWriter<std::io::Stdout>)>>;

fn failed(error: impl Into<String>, index: Option<usize>) -> Reply {
    Reply::Failed { error: error.into(), index }
}

/// [`Request::Encode`]: runs the WASM encoder; each tensor call it makes goes to `astroclip`
/// as [`Reply::Tensor`] and waits for the [`Request::Answer`].
fn encode(plugin: &WasmPlugin, io: &Io, input: u64, embed_dim: usize) -> Reply {
    let rpc = io.clone();
    let host: astroclip_plugin_wasm::TensorHost = Box::new(move |call| {
        let mut g = rpc.lock().unwrap_or_else(|p| p.into_inner());
        let (r, w) = &mut *g;
        if write_frame(w, &Reply::Tensor { call }, &[]).is_err() {
            return TensorAnswer::Error("the trainer closed the pipe".into());
        }
        match read_frame::<Request>(r) {
            Ok(Some((Request::Answer { answer }, _))) => answer,
            Ok(Some((other, _))) => TensorAnswer::Error(format!("expected a tensor answer, got {other:?}")),
            _ => TensorAnswer::Error("the trainer closed the pipe".into()),
        }
    });
    match plugin.encoder_session(host).and_then(|mut s| s.forward(input, embed_dim)) {
        Ok(out) => Reply::Encoded { out },
        Err(e) => failed(e.to_string(), None),
    }
}

fn serve(dir: &Path) -> std::io::Result<()> {
    let io: Io = std::sync::Arc::new(std::sync::Mutex::new((
        BufReader::new(std::io::stdin()),
        BufWriter::new(std::io::stdout()),
    )));
    let send = |v: &Reply, payload: &[f32]| -> std::io::Result<()> {
        let mut g = io.lock().unwrap_or_else(|p| p.into_inner());
        write_frame(&mut g.1, v, payload)
    };
    let recv = || -> std::io::Result<Option<(Request, Vec<f32>)>> {
        let mut g = io.lock().unwrap_or_else(|p| p.into_inner());
        read_frame(&mut g.0)
    };
    match recv()? {
        Some((Request::Hello { protocol }, _)) if protocol == PROTOCOL_VERSION => {}
        Some((Request::Hello { protocol }, _)) => return send(&failed(version_mismatch(protocol), None), &[]),
        Some((other, _)) => return send(&failed(format!("expected the protocol handshake, got {other:?}"), None), &[]),
        None => return Ok(()),
    }
    let plugin = match PluginDir::open(dir).and_then(|d| WasmPlugin::load(&d)) {
        Ok(p) => p,
        Err(e) => return send(&failed(e.to_string(), None), &[]),
    };
    // An encoder module imports the tensor interface; a tokenizer imports nothing.
    let mut session = if plugin.is_encoder() {
        None
    } else {
        match plugin.session() {
            Ok(s) => Some(s),
            Err(e) => return send(&failed(e.to_string(), None), &[]),
        }
    };
    let hello = Reply::Hello {
        protocol: PROTOCOL_VERSION,
        id: plugin.id.clone(),
        version: plugin.version.clone(),
        encoder: plugin.is_encoder(),
    };
    send(&hello, &[])?;
    while let Some((request, payload)) = recv()? {
        let (shape, n) = match request {
            Request::Encode { input, embed_dim } => {
                send(&encode(&plugin, &io, input, embed_dim), &[])?;
                continue;
            }
            Request::OutputLen { shape } => (shape, None),
            Request::Tokenize { shape, n } => (shape, Some(n)),
            other => {
                send(&failed(format!("unexpected request {other:?}"), None), &[])?;
                continue;
            }
        };
        let Some(session) = session.as_mut() else {
            send(&failed("this plugin is an encoder; it only answers `encode`", None), &[])?;
            continue;
        };
        let mut trapped = false;
        match n {
            None => match session.output_len(&shape) {
                Ok(len) => send(&Reply::Len { len }, &[])?,
                Err(e) => {
                    trapped = true;
                    send(&failed(e.to_string(), None), &[])?
                }
            },
            Some(n) => {
                let per: usize = shape.iter().product();
                if Some(payload.len()) != n.checked_mul(per) {
                    send(&failed(format!("payload has {} values for {n} × {shape:?}", payload.len()), None), &[])?;
                    continue;
                }
                let len = match session.output_len(&shape) {
                    Ok(Some(l)) => l,
                    Ok(None) => {
                        send(&failed(format!("the plugin does not take input shape {shape:?}"), None), &[])?;
                        continue;
                    }
                    Err(e) => {
                        *session = plugin.session().map_err(std::io::Error::other)?;
                        send(&failed(e.to_string(), None), &[])?;
                        continue;
                    }
                };
                let mut result = vec![0f32; n * len];
                let mut error = None;
                for i in 0..n {
                    if let Err(e) =
                        session.tokenize(&payload[i * per..(i + 1) * per], &shape, &mut result[i * len..(i + 1) * len])
                    {
                        error = Some((i, e.to_string()));
                        break;
                    }
                }
                match error {
                    None => send(&Reply::Tokens { n, len }, &result)?,
                    Some((i, e)) => {
                        trapped = !e.contains("refused the input");
                        send(&failed(e, Some(i)), &[])?
                    }
                }
            }
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
