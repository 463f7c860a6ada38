//! Client of `astroclip-wasm-host`: runs a WASM plugin (a tokenizer or an encoder) in a child
//! process and exchanges typed frames with it over a pipe (`astroclip_carrier_protocol`,
//! shared with the carrier, with a version handshake).
//!
//! Why a process: wasmtime and burn in one cargo graph unify shared dependencies' features
//! differently and rebuild burn; the process boundary also keeps any wasmtime failure out of a
//! training run. Batches amortise the round trip (one frame per batch, not per object).

use std::io::{BufReader, BufWriter, Read, Write};

use astroclip_carrier_protocol::{
    PROTOCOL_VERSION, Reply, Request, TensorAnswer, TensorCall, read_frame, version_mismatch, write_frame,
};
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

fn io(dir: &str) -> impl Fn(std::io::Error) -> WasmClientError + '_ {
    move |source| WasmClientError::Io { dir: dir.to_string(), source }
}

fn next_reply(r: &mut impl Read, dir: &str) -> Result<(Reply, Vec<f32>), WasmClientError> {
    read_frame(r)
        .map_err(io(dir))?
        .ok_or_else(|| io(dir)(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the carrier closed its output")))
}

impl WasmTokenizer {
    /// Starts the host on the plugin directory (manifest, sha256, interface version and
    /// sandbox are checked there, before the plugin runs) and shakes hands on the protocol.
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
        let mut input = BufWriter::new(child.stdin.take().expect("piped stdin"));
        let mut output = BufReader::new(child.stdout.take().expect("piped stdout"));
        write_frame(&mut input, &Request::Hello { protocol: PROTOCOL_VERSION }, &[]).map_err(io(&d))?;
        let load = |detail: String| WasmClientError::Load { dir: d.clone(), detail };
        match next_reply(&mut output, &d)?.0 {
            Reply::Hello { protocol, id, version, encoder } if protocol == PROTOCOL_VERSION => {
                Ok(Self { id, version, is_encoder: encoder, dir: d, child, input, output })
            }
            Reply::Hello { protocol, .. } => {
                let _ = child.kill();
                let _ = child.wait();
                Err(load(version_mismatch(protocol)))
            }
            Reply::Failed { error, .. } => {
                let _ = child.wait();
                Err(load(error))
            }
            other => {
                let _ = child.kill();
                let _ = child.wait();
                Err(load(format!("the carrier answered the handshake with {other:?}")))
            }
        }
    }

    fn call(&mut self, request: Request, payload: &[f32]) -> Result<(Reply, Vec<f32>), WasmClientError> {
        write_frame(&mut self.input, &request, payload).map_err(io(&self.dir))?;
        match next_reply(&mut self.output, &self.dir)? {
            (Reply::Failed { error, index }, _) => Err(self.failure(&error, index)),
            ok => Ok(ok),
        }
    }

    fn unexpected(&self, what: &str, reply: &Reply) -> WasmClientError {
        self.failure(&format!("answered {what} with {reply:?}"), None)
    }

    /// Output length for one input of `shape`, `None` when the plugin does not take it.
    pub fn output_len(&mut self, shape: &[usize]) -> Result<Option<usize>, WasmClientError> {
        match self.call(Request::OutputLen { shape: shape.to_vec() }, &[])?.0 {
            Reply::Len { len } => Ok(len.filter(|&l| l > 0)),
            other => Err(self.unexpected("output_len", &other)),
        }
    }

    /// Tokenizes `n` inputs of `shape` (concatenated) in one round trip; returns `n × len`
    /// values. An error carries the index of the object that failed.
    pub fn tokenize_batch(&mut self, inputs: &[f32], shape: &[usize], n: usize) -> Result<Vec<f32>, WasmClientError> {
        match self.call(Request::Tokenize { shape: shape.to_vec(), n }, inputs)? {
            (Reply::Tokens { n: m, len }, out) if m == n && out.len() == n * len => Ok(out),
            (other, _) => Err(self.unexpected("tokenize", &other)),
        }
    }

    /// Runs the plugin's encoder on host tensor `input`: the WASM module's tensor-interface
    /// calls arrive here as [`Reply::Tensor`] frames, are answered by `dispatch` (which
    /// executes them on the host's tensors), until the plugin returns its output handle.
    pub fn encode(
        &mut self,
        input: u64,
        embed_dim: usize,
        mut dispatch: impl FnMut(TensorCall) -> TensorAnswer,
    ) -> Result<u64, WasmClientError> {
        let mut reply = self.call(Request::Encode { input, embed_dim }, &[])?.0;
        loop {
            match reply {
                Reply::Tensor { call } => {
                    let answer = dispatch(call);
                    reply = self.call(Request::Answer { answer }, &[])?.0;
                }
                Reply::Encoded { out } => return Ok(out),
                other => return Err(self.unexpected("encode", &other)),
            }
        }
    }

    /// The error of a failed reply, naming the plugin (once) and the failing object if any.
    fn failure(&self, msg: &str, index: Option<usize>) -> WasmClientError {
        let named = format!("plugin {} {}", self.id, self.version);
        WasmClientError::Call {
            id: self.id.clone(),
            version: self.version.clone(),
            detail: if msg.contains(&named) { msg.to_string() } else { format!("{named}: {msg}") },
            index,
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
