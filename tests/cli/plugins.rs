//! `astroclip plugins`: add, verify, list, the conformance kit, the template, the tutorial in docs/plugins.md.

use std::path::Path;
use std::process::Command;

use super::common::*;

#[test]
fn plugins_add_verify_list_refuse_a_tampered_entry() {
    use sha2::{Digest, Sha256};
    let home = tempfile::tempdir().unwrap();
    let src = home.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("p.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let manifest = |sha: &str| {
        format!(
            "[plugin]\nid = \"photometry\"\nversion = \"0.1.0\"\napi_version = \"1.0.0\"\nkinds = [\"tokenizer\"]\n\
             modality = \"photometry\"\n\n[entry]\ncarrier = \"wasm\"\nfile = \"p.wasm\"\nsha256 = \"{sha}\"\n"
        )
    };
    std::fs::write(src.join("plugin.toml"), manifest(&"ab".repeat(32))).unwrap();
    let s = src.to_str().unwrap();
    let out = run(home.path(), &["plugins", "add", s]);
    let t = text(&out);
    assert!(!out.status.success() && t.contains("photometry 0.1.0") && t.contains("sha256"), "{t}");
    assert!(text(&run(home.path(), &["plugins", "list"])).contains("no plugins installed"));

    std::fs::write(src.join("plugin.toml"), manifest(&hex::encode(Sha256::digest(b"\0asm\x01\0\0\0")))).unwrap();
    let out = run(home.path(), &["plugins", "verify", s]);
    assert!(out.status.success() && text(&out).contains("entry p.wasm sha256 ok"), "{}", text(&out));
    assert!(run(home.path(), &["plugins", "add", s]).status.success());
    let rows = json(&run(home.path(), &["plugins", "list", "--json"]));
    assert_eq!(rows[0]["id"], "photometry");
    assert_eq!(rows[0]["status"], "ok");
    assert!(run(home.path(), &["plugins", "verify", "photometry"]).status.success());
}

#[test]
fn plugins_verify_handshakes_a_native_plugin() {
    use sha2::{Digest, Sha256};
    let target = repo().join("target/plugin-examples");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--offline", "--quiet", "--manifest-path"])
        .arg(repo().join("plugins/examples/band-fluxes/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("band-fluxes");
    std::fs::create_dir_all(&dir).unwrap();
    let lib = std::fs::read(target.join("debug/libastroclip_plugin_band_fluxes.so")).unwrap();
    std::fs::write(dir.join("band_fluxes.so"), &lib).unwrap();
    std::fs::write(
        dir.join("plugin.toml"),
        format!(
            "[plugin]\nid = \"band-fluxes\"\nversion = \"0.1.0\"\napi_version = \"{}\"\nkinds = [\"tokenizer\"]\n\
             modality = \"image\"\n\n[entry]\ncarrier = \"native\"\nfile = \"band_fluxes.so\"\nsha256 = \"{}\"\n",
            astroclip_plugin_sdk::INTERFACE_VERSION,
            hex::encode(Sha256::digest(&lib))
        ),
    )
    .unwrap();
    let out = run(home.path(), &["plugins", "verify", dir.to_str().unwrap()]);
    let t = text(&out);
    assert!(out.status.success() && t.contains("tokenizer band-fluxes (modality image)"), "{t}");
}

#[test]
fn conformance_kit_passes_builtins_and_catches_a_broken_plugin() {
    let home = tempfile::tempdir().unwrap();
    let out = run(home.path(), &["plugins", "test", "builtin"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    for c in [
        "tokenizer legacy-survey-rgb",
        "tokenizer specformer-tokens",
        "encoder resnet",
        "encoder specformer",
        "loss infonce",
        "probe knn",
    ] {
        assert!(t.contains(c), "{c} missing: {t}");
    }
    assert!(t.contains(" 0 failed"), "{t}");
    // tensor-zoo holds a well-behaved encoder and two that break the rules.
    let out = Command::new("bash").arg(repo().join("scripts/build-plugins.sh")).arg("tensor-zoo").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let zoo = repo().join("target/plugins/tensor-zoo");
    let out = run(home.path(), &["plugins", "test", zoo.to_str().unwrap()]);
    let t = text(&out);
    assert!(!out.status.success() && t.contains("does not pass the conformance kit"), "{t}");
    let line = |enc: &str, check: &str| {
        t.lines()
            .find(|l| l.contains(enc) && l.contains(check))
            .unwrap_or_else(|| panic!("{enc} {check}: {t}"))
            .to_string()
    };
    assert!(line("tensor-zoo/mlp", "gradient reaches every parameter").starts_with("ok"), "{t}");
    assert!(line("tensor-zoo/changing", "deterministic").starts_with("FAIL"), "{t}");
    assert!(line("bad-shapes", "builds").starts_with("FAIL") && t.contains("matmul: shapes"), "{t}");
    assert!(line("loss tensor-zoo/infonce", "matched < shuffled").starts_with("ok"), "{t}");
    // A probe from a plugin passes the same probe checks as the built-in k-NN.
    let out = Command::new("bash").arg(repo().join("scripts/build-plugins.sh")).arg("ridge-probe").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = run(home.path(), &["plugins", "test", repo().join("target/plugins/ridge-probe").to_str().unwrap()]);
    let t = text(&out);
    assert!(out.status.success() && t.contains("probe ridge-probe/ridge") && t.contains(" 0 failed"), "{t}");
}

#[test]
fn plugins_new_creates_a_native_plugin_that_passes_the_kit_and_installs() {
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    let out =
        run(&home, &["plugins", "new", "my-bands", "--dir", work.path().to_str().unwrap(), "--modality", "photometry"]);
    assert!(out.status.success(), "{}", text(&out));
    let dir = work.path().join("my-bands");
    let out = Command::new("bash").arg(dir.join("build.sh")).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let dist = dir.join("dist");
    let out = run(&home, &["plugins", "test", dist.to_str().unwrap()]);
    let t = text(&out);
    assert!(
        out.status.success()
            && t.contains("tokenizer features")
            && t.contains("encoder my-bands/mlp")
            && t.contains(" 0 failed"),
        "{t}"
    );
    let out = run(&home, &["plugins", "add", dist.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&home, &["plugins", "test", "my-bands"]);
    assert!(out.status.success(), "{}", text(&out));
    // The same id again is refused by name; a bad id is refused.
    let out = run(&home, &["plugins", "new", "my-bands", "--dir", work.path().to_str().unwrap()]);
    assert!(!out.status.success() && text(&out).contains("already exists"), "{}", text(&out));
    let out = run(&home, &["plugins", "new", "My_Bands", "--dir", work.path().to_str().unwrap()]);
    assert!(!out.status.success() && text(&out).contains("^[a-z0-9-]+$"), "{}", text(&out));
}

/// docs/plugins.md's tutorial, run as written: every ```bash block preceded by
/// `<!-- doc-test -->`, in order, in one fresh directory, with `astroclip` on PATH.
#[test]
fn docs_plugins_tutorial_runs() {
    let doc = std::fs::read_to_string(repo().join("docs/plugins.md")).unwrap();
    let mut script = String::from("set -euo pipefail\n");
    let mut blocks = 0;
    let mut rest = doc.as_str();
    while let Some(i) = rest.find("<!-- doc-test -->\n```bash\n") {
        let body = &rest[i + "<!-- doc-test -->\n```bash\n".len()..];
        let end = body.find("\n```\n").expect("unterminated block");
        script.push_str(&body[..end]);
        script.push('\n');
        blocks += 1;
        rest = &body[end..];
    }
    assert!(blocks >= 4, "only {blocks} tested blocks in docs/plugins.md");
    let work = tempfile::tempdir().unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_astroclip")).parent().unwrap();
    let mut cmd = Command::new("bash");
    for (k, _) in std::env::vars() {
        if k.starts_with("ASTROCLIP_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .arg("-c")
        .arg(&script)
        .current_dir(work.path())
        .env("PATH", format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default()))
        .env("ASTROCLIP_HOME", work.path().join("home"))
        .output()
        .unwrap();
    let t = text(&out);
    assert!(out.status.success(), "the tutorial failed:\n{t}");
    assert!(t.contains("15 checks, 0 failed") && t.contains("installed my-photometry 0.1.0"), "{t}");
    assert!(t.contains("photometry→image") && t.contains("bind-my-photometry"), "{t}");
}
