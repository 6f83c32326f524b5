//! Embeds the sample records: every conformance case expected to be accepted
//! (`conformance/cases/*/case.toml` with `expect = "accept"`), in name order,
//! as `(case, source, input bytes)` in `$OUT_DIR/samples.rs`.

use std::path::{Path, PathBuf};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for path in [
        "deploy/gateway.example.toml",
        "deploy/locations",
        "mappings",
        "policies",
        "conformance/cases",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    let cases = root.join("conformance/cases");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&cases)
        .expect("conformance/cases is readable")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("case.toml").is_file())
        .collect();
    dirs.sort();
    let mut out = String::from("pub const SAMPLES: &[Sample] = &[\n");
    for dir in dirs {
        let text = std::fs::read_to_string(dir.join("case.toml")).expect("case.toml is readable");
        let meta: toml::Table = text.parse().expect("case.toml is TOML");
        if meta.get("expect").and_then(|v| v.as_str()) != Some("accept") {
            continue;
        }
        let source = meta["source"].as_str().expect("case.toml names its source");
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let input = dir
            .join("input.json")
            .canonicalize()
            .expect("input.json exists");
        out.push_str(&format!(
            "    Sample {{ case: {name:?}, source: {source:?}, body: include_bytes!({input:?}) }},\n"
        ));
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("samples.rs");
    std::fs::write(dest, out).expect("OUT_DIR is writable");
}
