//! Records the compiler that builds this SDK, for the toolchain fingerprint every native
//! plugin embeds and the host compares at load.
fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(rustc)
        .arg("-V")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "rustc unknown".into());
    println!("cargo:rustc-env=ASTROCLIP_SDK_RUSTC={version}");
    println!("cargo:rustc-env=ASTROCLIP_SDK_TARGET={}", std::env::var("TARGET").unwrap_or_default());
    println!("cargo:rerun-if-env-changed=RUSTC");
}
