//! The guest's initramfs: busybox, the host's `ip` and `ethtool` with their libraries, the
//! program under test (the responder, or test binaries and the XDP objects), the NIC modules in
//! load order, and `/init` (`init.sh`, driven by `kmx.*` options on the kernel command line).
//!
//! The archive is written by busybox's own `cpio` (no `cpio` package needed) and gzip.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::cache::{CACHE_DIR, TempDir, io};
use crate::LabError;
use crate::exec::{run, tail, tool};

/// The guest's `/init`.
const INIT: &str = include_str!("init.sh");

static NEXT: AtomicU32 = AtomicU32::new(0);

/// What goes into one initramfs.
#[derive(Debug, Default, Clone)]
pub struct Initramfs {
    /// busybox-static.
    pub busybox: PathBuf,
    /// Modules to `insmod`, in order.
    pub modules: Vec<PathBuf>,
    /// Installed as `/usr/bin/afxdp-responder`.
    pub responder: Option<PathBuf>,
    /// Test binaries, installed as `/tests/<name>` and run in this order.
    pub tests: Vec<(String, PathBuf)>,
    /// XDP objects `(file name, bytes)`, installed in `/objs` and in each of `object_dirs`.
    pub objects: Vec<(String, &'static [u8])>,
    /// Extra directories for the objects (the `OUT_DIR` a test binary has baked in).
    pub object_dirs: Vec<PathBuf>,
}

impl Initramfs {
    /// Writes the archive to a new file in the lab's cache directory and returns it; the file is
    /// removed when the returned guard is dropped.
    pub fn build(&self) -> Result<BuiltImage, LabError> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let root = TempDir::new(Path::new(&format!("/tmp/afxdp-lab-initramfs.{pid}.{n}")))?;
        let r = &root.0;
        for dir in [
            "bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "run", "tmp", "etc", "modules", "objs", "tests",
        ] {
            fs::create_dir_all(r.join(dir)).map_err(io("creating the initramfs tree"))?;
        }
        copy(&self.busybox, &r.join("bin/busybox"))?;
        fs::write(r.join("init"), INIT).map_err(io("writing /init"))?;
        set_mode(&r.join("init"), 0o755)?;
        fs::write(r.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").map_err(io("writing /etc/passwd"))?;
        copy_binary(&tool("ip")?, r, "usr/sbin/ip")?;
        copy_binary(&tool("ethtool")?, r, "usr/sbin/ethtool")?;
        if let Some(exe) = &self.responder {
            copy_binary(exe, r, "usr/bin/afxdp-responder")?;
        }
        let mut order = String::new();
        for (name, exe) in &self.tests {
            copy_binary(exe, r, &format!("tests/{name}"))?;
            order.push_str(name);
            order.push('\n');
        }
        fs::write(r.join("tests/order"), order).map_err(io("writing /tests/order"))?;
        for dir in std::iter::once(PathBuf::from("objs")).chain(
            self.object_dirs
                .iter()
                .map(|d| d.strip_prefix("/").unwrap_or(d).to_path_buf()),
        ) {
            fs::create_dir_all(r.join(&dir)).map_err(io("creating an object directory"))?;
            for (name, bytes) in &self.objects {
                fs::write(r.join(&dir).join(name), bytes).map_err(io("writing an XDP object"))?;
            }
        }
        let mut order = String::new();
        for ko in &self.modules {
            let name = ko.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            copy(ko, &r.join("modules").join(format!("{name}.ko")))?;
            order.push_str(name);
            order.push('\n');
        }
        fs::write(r.join("modules/order"), order).map_err(io("writing /modules/order"))?;

        let out = PathBuf::from(format!("{CACHE_DIR}/initramfs.{pid}.{n}.cpio.gz"));
        let mut sh = Command::new(tool("sh")?);
        sh.args([
            "-c",
            "cd \"$1\" && find . | \"$2\" cpio -o -H newc 2>/dev/null | gzip -1 > \"$3\"",
            "sh",
        ])
        .arg(r)
        .arg(&self.busybox)
        .arg(&out);
        tool("gzip")?;
        let output = run(sh, "packing the initramfs", Duration::from_secs(120))?;
        if !output.status.success() {
            let _ = fs::remove_file(&out);
            return Err(LabError::CommandFailed {
                what: "packing the initramfs".into(),
                command: "find . | busybox cpio -o -H newc | gzip -1".into(),
                status: output.status.to_string(),
                stderr: tail(&String::from_utf8_lossy(&output.stderr)),
            });
        }
        Ok(BuiltImage(out))
    }
}

/// An initramfs file, removed when dropped.
#[derive(Debug)]
pub struct BuiltImage(PathBuf);

impl BuiltImage {
    /// Its path, for QEMU's `-initrd`.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for BuiltImage {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

fn copy(src: &Path, dst: &Path) -> Result<(), LabError> {
    if let Some(parent) = dst.parent() {
        fs::create_dir_all(parent).map_err(io("creating the initramfs tree"))?;
    }
    fs::copy(src, dst).map(drop).map_err(|source| LabError::Io {
        what: format!("copying {} into the initramfs", src.display()),
        source,
    })
}

fn set_mode(path: &Path, mode: u32) -> Result<(), LabError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io("setting a file mode"))
}

/// Copies a dynamically linked program to `dest` under `root` and every library `ldd` lists to
/// the same path as on the host.
fn copy_binary(src: &Path, root: &Path, dest: &str) -> Result<(), LabError> {
    copy(src, &root.join(dest))?;
    let mut ldd = Command::new(tool("ldd")?);
    ldd.arg(src);
    let out = run(ldd, "listing a program's libraries (ldd)", Duration::from_secs(10))?;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
        let lib = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next().filter(|w| w.starts_with('/')),
        };
        if let Some(lib) = lib.filter(|l| l.starts_with('/')) {
            let lib = Path::new(lib);
            let dst = root.join(lib.strip_prefix("/").unwrap_or(lib));
            if !dst.exists() {
                copy(lib, &dst)?;
            }
        }
    }
    Ok(())
}
