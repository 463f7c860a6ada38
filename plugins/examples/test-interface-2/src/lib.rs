//! Test plugin: claims plugin interface 2.0.0, which a 1.x host must refuse before any call —
//! before loading it, even: it has an ELF constructor (`.init_array`) that, when the library is
//! mapped, writes the file named by `ASTROCLIP_TEST_CTOR_MARKER`, so a test can tell whether
//! any of its code ran.
use astroclip_plugin_sdk::{ArrayTokenizer, TOOLCHAIN, export_plugin};

extern "C" fn constructor() {
    if let Some(path) = std::env::var_os("ASTROCLIP_TEST_CTOR_MARKER") {
        let _ = std::fs::write(path, b"the constructor ran");
    }
}

#[used]
#[unsafe(link_section = ".init_array")]
static CONSTRUCTOR: extern "C" fn() = constructor;

pub struct Never;

impl ArrayTokenizer for Never {
    const NAME: &'static str = "never";
    const MODALITY: &'static str = "spectrum";
    fn output_len(_shape: &[usize]) -> Option<usize> {
        panic!("a refused plugin must never be called");
    }
    fn tokenize(_input: &[f32], _shape: &[usize], _out: &mut [f32]) -> Result<(), String> {
        panic!("a refused plugin must never be called");
    }
}

export_plugin!(interface: "2.0.0", toolchain: TOOLCHAIN, id: "test-interface-2", version: "0.1.0", tokenizers: [Never]);
