//! Compiles the XDP programs in this directory (`*.c`) with clang into `OUT_DIR`.
//!
//! Each `NAME.c` becomes `$OUT_DIR/NAME.o`, which `src/lib.rs` embeds as bytes, so
//! the binaries that use them need neither clang nor the C sources at run time.
//!
//! Set `CLANG` to use another compiler binary (for example `clang-14`).

use std::{
    env,
    ffi::OsStr,
    path::{Path, PathBuf},
    process::Command,
};

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let src_dir = manifest_dir.clone();
    let src_dir = src_dir
        .canonicalize()
        .unwrap_or_else(|e| panic!("cannot find the eBPF sources in {}: {e}", src_dir.display()));

    // A new or removed file changes the directory; an edited one is watched below.
    println!("cargo:rerun-if-changed={}", src_dir.display());
    println!("cargo:rerun-if-env-changed=CLANG");

    let mut sources = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&src_dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", src_dir.display()))
        .map(|entry| entry.expect("readable directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        match path.extension().and_then(OsStr::to_str) {
            Some("c") => {
                println!("cargo:rerun-if-changed={}", path.display());
                sources.push(path);
            }
            Some("h") => println!("cargo:rerun-if-changed={}", path.display()),
            _ => {}
        }
    }
    assert!(!sources.is_empty(), "no eBPF sources (*.c) in {}", src_dir.display());

    let clang = env::var_os("CLANG").unwrap_or_else(|| "clang".into());
    for source in &sources {
        compile(&clang, source, &src_dir, &out_dir);
    }
}

/// What to install, for both Debian-like and Fedora-like systems (also in the README's "On a real
/// host").
const INSTALL: &str = "Install clang and the libbpf headers: apt-get install clang llvm libbpf-dev \
                       (Debian, Ubuntu) or dnf install clang llvm libbpf-devel (Fedora); ./run.sh installs them";

/// `clang -O2 -g -target bpf -c SOURCE -o OUT_DIR/NAME.o`.
///
/// `-g` is needed: it emits the BTF that describes the maps (`SEC(".maps")`)
/// to the loader. The kernel's UAPI headers (`<linux/bpf.h>` ...) include
/// `<asm/types.h>`, which lives in the multiarch include directory that clang
/// does not search for `-target bpf`, so that directory is added by hand.
fn compile(clang: &OsStr, source: &Path, include_dir: &Path, out_dir: &Path) {
    let stem = source.file_stem().expect("a *.c file has a stem");
    let object = out_dir.join(stem).with_extension("o");

    let mut cmd = Command::new(clang);
    cmd.args(["-O2", "-g", "-Wall", "-Wextra", "-target", "bpf", "-c"])
        .arg("-I")
        .arg(include_dir);
    if let Some(dir) = multiarch_include_dir() {
        cmd.arg("-I").arg(dir);
    }
    cmd.arg(source).arg("-o").arg(&object);

    let output = match cmd.output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`{}` not found: the XDP program is C compiled by clang. {INSTALL} \
             (or set CLANG to the clang binary to use)",
            clang.to_string_lossy()
        ),
        Err(e) => panic!("cannot run `{}`: {e}", clang.to_string_lossy()),
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let hint = if stderr.contains("bpf/bpf_helpers.h") || stderr.contains("asm/types.h") {
            "\nhint: the libbpf headers are missing. "
        } else {
            ""
        };
        let install = if hint.is_empty() { "" } else { INSTALL };
        panic!(
            "clang failed to compile {} ({}):\n{stderr}{hint}{install}",
            source.display(),
            output.status
        );
    }
    // Warnings do not fail the build, but they must not go unseen.
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        println!("cargo:warning={line}");
    }
}

/// `/usr/include/<arch>-linux-gnu` (Debian/Ubuntu multiarch layout) for the
/// target being built, if it exists.
fn multiarch_include_dir() -> Option<PathBuf> {
    let arch = env::var("CARGO_CFG_TARGET_ARCH").ok()?;
    let triple_arch = match arch.as_str() {
        "x86" => "i386",
        other => other,
    };
    let dir = PathBuf::from(format!("/usr/include/{triple_arch}-linux-gnu"));
    dir.is_dir().then_some(dir)
}
