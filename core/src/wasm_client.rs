//! Client of `astroclip-wasm-host`: runs a WASM data-level plugin (a tokenizer) in a child
//! process and exchanges batches with it over a pipe (protocol in
//! `plugins/wasm/src/bin/astroclip-wasm-host.rs`).
//!
//! Why a process: wasmtime and burn in one cargo graph unify shared dependencies' features
//! differently and rebuild burn; the process boundary also keeps any wasmtime failure out of a
//! training run. Batches amortise the round trip (one frame per batch, not per object).

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum WasmClientError {
    #[error(
        "the WASM plugin host `astroclip-wasm-host` was not found ({0}); build it with \
         `cargo build --release --manifest-path plugins/wasm/Cargo.toml` and put it next to `astroclip` \
         or set ASTROCLIP_WASM_HOST to its path"
    )]
    NoHost(String),
    #[error("WASM plugin in {dir}: {detail}")]
    Load { dir: String, detail: String },
    /// `detail` names the plugin, its version and the call (prefixed here when the host did not).
    #[error("{detail}")]
    Call { id: String, version: String, detail: String, index: Option<usize> },
    #[error("WASM plugin host for {dir} stopped answering: {source}")]
    Io { dir: String, source: std::io::Error },
}

/// Where the host binary is: `ASTROCLIP_WASM_HOST`, else next to the running executable
/// (or one level up, for test binaries in `target/*/deps`), else `PATH`.
pub fn host_binary() -> PathBuf {
    if let Ok(p) = std::env::var("ASTROCLIP_WASM_HOST") {
        return PathBuf::from(p);
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        for d in [dir, dir.parent().unwrap_or(dir)] {
            let c = d.join("astroclip-wasm-host");
            if c.is_file() {
                return c;
            }
        }
    }
    PathBuf::from("astroclip-wasm-host")
}

pub struct WasmTokenizer {
    pub id: String,
    pub version: String,
    /// The module is an encoder over the tensor interface (not a tokenizer).
    pub is_encoder: bool,
    dir: String,
    child: Child,
    input: BufWriter<ChildStdin>,
    output: BufReader<ChildStdout>,
}

fn frame(w: &mut impl Write, header: &serde_json::Value, payload: &[f32]) -> std::io::Result<()> {
    let h = serde_json::to_vec(header)?;
    w.write_all(&(h.len() as u32).to_le_bytes())?;
    w.write_all(&h)?;
    w.write_all(&((payload.len() * 4) as u32).to_le_bytes())?;
    w.write_all(bytemuck::cast_slice(payload))?;
    w.flush()
}

fn reply(r: &mut impl Read) -> std::io::Result<(serde_json::Value, Vec<f32>)> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let mut h = vec![0u8; u32::from_le_bytes(len) as usize];
    r.read_exact(&mut h)?;
    r.read_exact(&mut len)?;
    let mut p = vec![0u8; u32::from_le_bytes(len) as usize];
    r.read_exact(&mut p)?;
    let header = serde_json::from_slice(&h).map_err(std::io::Error::other)?;
    Ok((header, p.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()))
}

impl WasmTokenizer {
    /// Starts the host on the plugin directory (manifest, sha256, interface version and
    /// sandbox are checked there, before the plugin runs).
    pub fn spawn(dir: &Path) -> Result<Self, WasmClientError> {
        Self::spawn_with(&host_binary(), dir)
    }

    /// As [`WasmTokenizer::spawn`], with an explicit host binary.
    pub fn spawn_with(bin: &Path, dir: &Path) -> Result<Self, WasmClientError> {
        let d = dir.display().to_string();
        let mut child = Command::new(bin)
            .arg("serve")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| WasmClientError::NoHost(format!("{}: {e}", bin.display())))?;
        let input = BufWriter::new(child.stdin.take().expect("piped stdin"));
        let mut output = BufReader::new(child.stdout.take().expect("piped stdout"));
        let (hello, _) = reply(&mut output).map_err(|source| WasmClientError::Io { dir: d.clone(), source })?;
        if hello["ok"] != true {
            let _ = child.wait();
            return Err(WasmClientError::Load { dir: d, detail: hello["error"].as_str().unwrap_or("?").to_string() });
        }
        let s = |k: &str| hello[k].as_str().unwrap_or("?").to_string();
        let is_encoder = hello["encoder"] == true;
        Ok(Self { id: s("id"), version: s("version"), is_encoder, dir: d, child, input, output })
    }

    fn call(
        &mut self,
        header: serde_json::Value,
        payload: &[f32],
    ) -> Result<(serde_json::Value, Vec<f32>), WasmClientError> {
        let io = |source| WasmClientError::Io { dir: self.dir.clone(), source };
        frame(&mut self.input, &header, payload).map_err(io)?;
        let (h, p) = reply(&mut self.output).map_err(|source| WasmClientError::Io { dir: self.dir.clone(), source })?;
        if h["ok"] != true {
            return Err(self.failure(&h));
        }
        Ok((h, p))
    }

    /// Output length for one input of `shape`, `None` when the plugin does not take it.
    pub fn output_len(&mut self, shape: &[usize]) -> Result<Option<usize>, WasmClientError> {
        let (h, _) = self.call(serde_json::json!({"op": "output_len", "shape": shape}), &[])?;
        Ok(h["len"].as_u64().filter(|&l| l > 0).map(|l| l as usize))
    }

    /// Tokenizes `n` inputs of `shape` (concatenated) in one round trip; returns `n × len`
    /// values. An error carries the index of the object that failed.
    pub fn tokenize_batch(&mut self, inputs: &[f32], shape: &[usize], n: usize) -> Result<Vec<f32>, WasmClientError> {
        let (_, out) = self.call(serde_json::json!({"op": "tokenize", "shape": shape, "n": n}), inputs)?;
        Ok(out)
    }
}

impl WasmTokenizer {
    /// Runs the plugin's encoder on host tensor `input`: the WASM module's tensor-interface
    /// calls arrive here as `{"call": op, "args": [..]}` frames, are answered by `dispatch`
    /// (which executes them on the host's tensors), until the plugin returns its output handle.
    pub fn encode(
        &mut self,
        input: u64,
        embed_dim: usize,
        mut dispatch: impl FnMut(&str, &serde_json::Value) -> serde_json::Value,
    ) -> Result<u64, WasmClientError> {
        let io = |dir: &str| {
            let dir = dir.to_string();
            move |source| WasmClientError::Io { dir: dir.clone(), source }
        };
        frame(&mut self.input, &serde_json::json!({"op": "encode", "input": input, "embed_dim": embed_dim}), &[])
            .map_err(io(&self.dir))?;
        loop {
            let (h, _) = reply(&mut self.output).map_err(io(&self.dir))?;
            if let Some(call) = h.get("call").and_then(|c| c.as_str()) {
                let answer = dispatch(call, &h["args"]);
                frame(&mut self.input, &answer, &[]).map_err(io(&self.dir))?;
                continue;
            }
            if h["ok"] == true {
                return h["out"].as_u64().ok_or_else(|| WasmClientError::Call {
                    id: self.id.clone(),
                    version: self.version.clone(),
                    detail: format!("plugin {} {}: encode returned no handle", self.id, self.version),
                    index: None,
                });
            }
            return Err(self.failure(&h));
        }
    }

    /// The error of a failed reply, naming the plugin (once) and the failing object if any.
    fn failure(&self, h: &serde_json::Value) -> WasmClientError {
        let msg = h["error"].as_str().unwrap_or("?");
        let named = format!("plugin {} {}", self.id, self.version);
        WasmClientError::Call {
            id: self.id.clone(),
            version: self.version.clone(),
            detail: if msg.contains(&named) { msg.to_string() } else { format!("{named}: {msg}") },
            index: h["index"].as_u64().map(|i| i as usize),
        }
    }
}

impl Drop for WasmTokenizer {
    fn drop(&mut self) {
        // Closing stdin ends the host's loop; kill in case it is stuck.
        let _ = self.input.flush();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
