//! The pipe protocol between `astroclip` and `astroclip-wasm-host`, the process that runs one
//! WASM plugin (wasmtime stays out of the trainer's build and address space).
//!
//! ```text
//! frame = u32 LE header length, header (JSON of Request or Reply), u32 LE payload length, payload
//! ```
//! Payloads are `f32` little-endian values (the inputs of a tokenize batch, its outputs).
//!
//! 1. `astroclip` sends [`Request::Hello`] with its [`PROTOCOL_VERSION`]; the carrier answers
//!    [`Reply::Hello`] (its own version, the plugin's id and version, encoder or tokenizer) or
//!    [`Reply::Failed`] (protocol mismatch, or the plugin failed its checks). Each side refuses
//!    another protocol version with a message saying to rebuild the carrier from the same
//!    checkout.
//! 2. Tokenizers: [`Request::OutputLen`] → [`Reply::Len`]; [`Request::Tokenize`] (payload: `n`
//!    inputs) → [`Reply::Tokens`] (payload: `n × len` outputs) or [`Reply::Failed`] with the
//!    failing object's index.
//! 3. Encoders: [`Request::Encode`] runs the module's `encoder_forward`; every tensor operation
//!    it imports comes back to `astroclip` as [`Reply::Tensor`] and is answered with
//!    [`Request::Answer`], until [`Reply::Encoded`] (the output handle) or [`Reply::Failed`].
//!
//! Frames are bounded ([`MAX_HEADER`], [`MAX_PAYLOAD`]): a corrupt length is an error, never a
//! huge allocation.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

/// Version of this protocol; both ends must speak the same one.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest header accepted (JSON).
pub const MAX_HEADER: usize = 1 << 20;
/// Largest payload accepted (1 GiB of `f32`s).
pub const MAX_PAYLOAD: usize = 1 << 30;

/// `astroclip` → carrier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Hello {
        protocol: u32,
    },
    OutputLen {
        shape: Vec<usize>,
    },
    /// Payload: `n` inputs of `prod(shape)` values.
    Tokenize {
        shape: Vec<usize>,
        n: usize,
    },
    Encode {
        input: u64,
        embed_dim: usize,
    },
    /// The answer to a [`Reply::Tensor`] call.
    Answer {
        answer: TensorAnswer,
    },
}

/// Carrier → `astroclip`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case", deny_unknown_fields)]
pub enum Reply {
    Hello {
        protocol: u32,
        id: String,
        version: String,
        encoder: bool,
    },
    Len {
        len: Option<usize>,
    },
    /// Payload: `n × len` outputs.
    Tokens {
        n: usize,
        len: usize,
    },
    Encoded {
        out: u64,
    },
    /// A tensor operation of the running encoder, to execute on the trainer's tensors.
    Tensor {
        call: TensorCall,
    },
    /// `index`: the object of a tokenize batch that failed, when one did.
    Failed {
        error: String,
        index: Option<usize>,
    },
}

/// One operation of tensor interface 1.1 (op codes in `astroclip_plugin_sdk::tensor`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case", deny_unknown_fields)]
pub enum TensorCall {
    Param { name: String, shape: Vec<usize>, init: u32, scale: f32 },
    Shape { a: u64 },
    Unary { op: u32, a: u64 },
    Binary { op: u32, a: u64, b: u64 },
    Scalar { op: u32, a: u64, v: f32 },
    Along { op: u32, a: u64, dim: usize },
    Reshape { a: u64, shape: Vec<usize> },
    Transpose { a: u64, d0: usize, d1: usize },
    Slice { a: u64, dim: usize, start: usize, end: usize },
    Concat { hs: Vec<u64>, dim: usize },
    Linear { x: u64, w: u64, b: u64 },
    LayerNorm { x: u64, gamma: u64, beta: u64, eps: f32 },
    Conv2d { x: u64, w: u64, b: u64, stride: usize, padding: usize },
}

impl TensorCall {
    /// The operation's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Param { .. } => "param",
            Self::Shape { .. } => "shape",
            Self::Unary { .. } => "unary",
            Self::Binary { .. } => "binary",
            Self::Scalar { .. } => "scalar",
            Self::Along { .. } => "along",
            Self::Reshape { .. } => "reshape",
            Self::Transpose { .. } => "transpose",
            Self::Slice { .. } => "slice",
            Self::Concat { .. } => "concat",
            Self::Linear { .. } => "linear",
            Self::LayerNorm { .. } => "layer_norm",
            Self::Conv2d { .. } => "conv2d",
        }
    }
}

/// The trainer's answer to a [`TensorCall`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TensorAnswer {
    Handle(u64),
    Shape(Vec<usize>),
    Error(String),
}

/// The error both ends give for another protocol version.
pub fn version_mismatch(theirs: u32) -> String {
    format!(
        "astroclip and astroclip-wasm-host speak different carrier protocols ({theirs} and {PROTOCOL_VERSION}); \
         build astroclip-wasm-host from the same checkout as astroclip"
    )
}

/// Writes one frame: `header` and `payload` values.
pub fn write_frame(w: &mut impl Write, header: &impl Serialize, payload: &[f32]) -> std::io::Result<()> {
    let h = serde_json::to_vec(header)?;
    let bytes: Vec<u8> = payload.iter().flat_map(|v| v.to_le_bytes()).collect();
    if h.len() > MAX_HEADER || bytes.len() > MAX_PAYLOAD {
        return Err(std::io::Error::other(format!("frame of {} + {} bytes exceeds the limits", h.len(), bytes.len())));
    }
    w.write_all(&(h.len() as u32).to_le_bytes())?;
    w.write_all(&h)?;
    w.write_all(&(bytes.len() as u32).to_le_bytes())?;
    w.write_all(&bytes)?;
    w.flush()
}

/// Reads one frame; `Ok(None)` at a clean end of stream (before a frame starts).
pub fn read_frame<T: for<'de> Deserialize<'de>>(r: &mut impl Read) -> std::io::Result<Option<(T, Vec<f32>)>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let n = u32::from_le_bytes(len) as usize;
    if n > MAX_HEADER {
        return Err(std::io::Error::other(format!("frame header of {n} bytes exceeds {MAX_HEADER}")));
    }
    let mut header = vec![0u8; n];
    r.read_exact(&mut header)?;
    r.read_exact(&mut len)?;
    let n = u32::from_le_bytes(len) as usize;
    if n > MAX_PAYLOAD || !n.is_multiple_of(4) {
        return Err(std::io::Error::other(format!("frame payload of {n} bytes is not a bounded f32 array")));
    }
    let mut payload = vec![0u8; n];
    r.read_exact(&mut payload)?;
    let header =
        serde_json::from_slice(&header).map_err(|e| std::io::Error::other(format!("bad frame header: {e}")))?;
    let values = payload.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Ok(Some((header, values)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_bad_lengths_are_errors() {
        let mut buf = Vec::new();
        let req = Request::Tokenize { shape: vec![2, 3], n: 1 };
        write_frame(&mut buf, &req, &[1.0, -2.5, 3.0, 0.0, 5.0, 6.0]).unwrap();
        let call = Reply::Tensor { call: TensorCall::Conv2d { x: 1, w: 2, b: 0, stride: 2, padding: 1 } };
        write_frame(&mut buf, &call, &[]).unwrap();
        let mut r = buf.as_slice();
        let (got, p): (Request, _) = read_frame(&mut r).unwrap().unwrap();
        assert_eq!((got, p), (req, vec![1.0, -2.5, 3.0, 0.0, 5.0, 6.0]));
        let (got, _): (Reply, _) = read_frame(&mut r).unwrap().unwrap();
        assert_eq!(got, call);
        assert!(read_frame::<Reply>(&mut r).unwrap().is_none());
        // A header length beyond the bound is refused before allocating.
        let mut bad = (u32::MAX).to_le_bytes().to_vec();
        bad.extend([0u8; 8]);
        assert!(read_frame::<Reply>(&mut bad.as_slice()).unwrap_err().to_string().contains("exceeds"));
        // Unknown fields and ops are errors, not silently ignored.
        let mut buf = Vec::new();
        write_frame(&mut buf, &serde_json::json!({"op": "tokenize", "shape": [1], "n": 1, "x": 2}), &[]).unwrap();
        assert!(read_frame::<Request>(&mut buf.as_slice()).is_err());
    }
}
