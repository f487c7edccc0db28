//! The Debian package (`[package.metadata.deb]` in afxdp-responder/Cargo.toml, built with
//! cargo-deb): it lists every file it must install with the right modes, its units, manual page,
//! completions and example configuration are the committed ones byte for byte, postinst creates
//! the user the units run as, the example configuration is a conffile, and `lintian` reports no
//! error (the accepted warnings are listed in docs/deploy.md).
//!
//! The package is made from the binary this test run built (`cargo deb --profile dev --no-build`,
//! bounded by `timeout`), not a release build: the contents and the checks are the same, and a
//! release build does not fit in a test. `./run.sh test` installs cargo-deb and lintian.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const EXE: &str = env!("CARGO_BIN_EXE_afxdp-responder");
const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// Every file the package must hold: (path, mode, the committed file it must equal, if any).
const FILES: &[(&str, &str, Option<&str>)] = &[
    ("./usr/bin/afxdp-responder", "-rwxr-xr-x", None),
    (
        "./usr/lib/systemd/system/afxdp-responder.service",
        "-rw-r--r--",
        Some("config/afxdp-responder.service"),
    ),
    (
        "./usr/lib/systemd/system/afxdp-responder@.service",
        "-rw-r--r--",
        Some("config/afxdp-responder@.service"),
    ),
    (
        "./etc/afxdp-responder/afxdp-responder.toml",
        "-rw-r--r--",
        Some("config/afxdp-responder.toml"),
    ),
    (
        "./usr/share/doc/afxdp-responder/examples/afxdp-responder.toml",
        "-rw-r--r--",
        Some("config/afxdp-responder.toml"),
    ),
    ("./usr/share/man/man1/afxdp-responder.1.gz", "-rw-r--r--", None),
    (
        "./usr/share/bash-completion/completions/afxdp-responder",
        "-rw-r--r--",
        Some("config/completions/afxdp-responder.bash"),
    ),
    (
        "./usr/share/zsh/vendor-completions/_afxdp-responder",
        "-rw-r--r--",
        Some("config/completions/_afxdp-responder"),
    ),
    (
        "./usr/share/fish/vendor_completions.d/afxdp-responder.fish",
        "-rw-r--r--",
        Some("config/completions/afxdp-responder.fish"),
    ),
    (
        "./usr/share/doc/afxdp-responder/README.md",
        "-rw-r--r--",
        Some("README.md"),
    ),
    (
        "./usr/share/doc/afxdp-responder/deploy.md",
        "-rw-r--r--",
        Some("docs/deploy.md"),
    ),
    (
        "./usr/share/doc/afxdp-responder/security.md",
        "-rw-r--r--",
        Some("docs/security.md"),
    ),
    (
        "./usr/share/doc/afxdp-responder/metrics.md",
        "-rw-r--r--",
        Some("docs/metrics.md"),
    ),
    (
        "./usr/share/doc/afxdp-responder/json-output.md",
        "-rw-r--r--",
        Some("docs/json-output.md"),
    ),
    ("./usr/share/doc/afxdp-responder/copyright", "-rw-r--r--", None),
    (
        "./usr/share/doc/afxdp-responder/changelog.Debian.gz",
        "-rw-r--r--",
        None,
    ),
];

/// A temporary directory, removed on drop (also when the test fails).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn repo() -> PathBuf {
    Path::new(MANIFEST_DIR).parent().unwrap().to_path_buf()
}

/// Runs `cmd`, panics with its stderr unless it succeeds, returns stdout.
#[track_caller]
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (./run.sh test installs what is missing)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds the .deb into `dir` and returns its path.
fn build_deb(dir: &Path) -> PathBuf {
    let have_cargo_deb = Command::new("cargo")
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        have_cargo_deb,
        "cargo-deb is not installed: cargo install cargo-deb --locked (./run.sh test does it)"
    );
    // target/debug/afxdp-responder -> target: the binary this test run built.
    let target_dir = Path::new(EXE).parent().unwrap().parent().unwrap();
    run(Command::new("timeout")
        .args([
            "300",
            "cargo",
            "deb",
            "-q",
            "-p",
            "afxdp-responder",
            "--profile",
            "dev",
            "--no-build",
            "-o",
        ])
        .arg(dir)
        .current_dir(repo())
        .env("CARGO_TARGET_DIR", target_dir));
    let debs: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "{debs:?}");
    debs.into_iter().next().unwrap()
}

#[test]
fn the_package_holds_every_file_and_lintian_finds_no_error() {
    let dir = TempDir(std::env::temp_dir().join(format!("afxdp-deb-{}", std::process::id())));
    let _ = fs::remove_dir_all(&dir.0);
    fs::create_dir_all(&dir.0).unwrap();
    let deb = build_deb(&dir.0);

    // dpkg-deb -c: every file, with its mode, owned by root.
    let listing = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
    for (path, mode, _) in FILES {
        let line = listing
            .lines()
            .find(|l| l.split_whitespace().last() == Some(*path))
            .unwrap_or_else(|| panic!("{path} missing from the package:\n{listing}"));
        assert!(line.starts_with(&format!("{mode} 0/0 ")), "{line}");
    }

    // The files are the committed ones, byte for byte.
    let root = dir.0.join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    for (path, _, source) in FILES {
        if let Some(source) = source {
            let packaged = fs::read(root.join(path)).unwrap();
            assert!(
                packaged == fs::read(repo().join(source)).unwrap(),
                "{path} differs from {source}"
            );
        }
    }
    let man = run(Command::new("gzip")
        .arg("-dc")
        .arg(root.join("usr/share/man/man1/afxdp-responder.1.gz")));
    assert_eq!(
        man,
        fs::read_to_string(repo().join("docs/man/man1/afxdp-responder.1")).unwrap()
    );
    let version = run(Command::new(root.join("usr/bin/afxdp-responder")).arg("--version"));
    assert_eq!(version.trim(), format!("afxdp-responder {}", env!("CARGO_PKG_VERSION")));

    // Control: depends on adduser (postinst uses it), the example is a conffile, postinst
    // creates the units' User=, the units are known to deb-systemd-helper.
    let control = dir.0.join("control");
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    let depends = run(Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Depends"));
    assert!(depends.contains("adduser"), "{depends}");
    let conffiles = fs::read_to_string(control.join("conffiles")).unwrap();
    assert!(
        conffiles
            .lines()
            .any(|l| l == "/etc/afxdp-responder/afxdp-responder.toml"),
        "{conffiles}"
    );
    let postinst = fs::read_to_string(control.join("postinst")).unwrap();
    let unit = fs::read_to_string(repo().join("config/afxdp-responder@.service")).unwrap();
    let user = unit
        .lines()
        .find_map(|l| l.strip_prefix("User="))
        .expect("User= in the template unit");
    assert!(
        postinst.contains("adduser --system") && postinst.contains(&format!(" {user} >/dev/null")),
        "postinst does not create {user}:\n{postinst}"
    );
    assert!(
        postinst.contains("try-restart 'afxdp-responder@*.service'"),
        "{postinst}"
    );

    // lintian: no error (E:) line; warnings are printed for the log.
    let out = Command::new("lintian")
        .arg(&deb)
        .output()
        .expect("lintian (Debian package) must be installed: apt-get install lintian (./run.sh test does it)");
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!("lintian:\n{report}");
    assert!(
        out.status.success(),
        "lintian failed: {report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("E:")).collect();
    assert!(errors.is_empty(), "lintian errors: {errors:#?}");
}
