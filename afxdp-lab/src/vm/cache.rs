//! What the VM lab downloads, and where it keeps it: Debian's guest kernels and busybox, fetched
//! once into `/var/cache/afxdp-lab` with a private apt configuration.
//!
//! The host's apt configuration is never read or changed: apt runs with its own sources list,
//! lists, cache and an empty dpkg status, all under `/var/cache/afxdp-lab/apt`, and only
//! `apt-get download` (no install). Packages are unpacked with `dpkg-deb -x`; of a kernel only the
//! `vmlinuz` and the few network modules the guest loads are kept, decompressed (busybox `insmod`
//! reads plain `.ko` files only).
//!
//! ```text
//! /var/cache/afxdp-lab/apt/sources.list      bookworm(-security, -backports), trixie(-security, -backports)
//! /var/cache/afxdp-lab/debs/*.deb            what apt-get download fetched
//! /var/cache/afxdp-lab/busybox/x/bin/busybox busybox-static, unpacked
//! /var/cache/afxdp-lab/kernels/<release>/    vmlinuz, modules/<name>.ko
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::LabError;
use crate::exec::{run, run_ok, tail, tool};

/// The cache directory of the lab's downloads.
pub const CACHE_DIR: &str = "/var/cache/afxdp-lab";

/// The private sources list: Debian 12 and 13 with their security and backports suites. Never
/// sid (it would upgrade the host's libc and apt if it ever reached the system's sources).
const SOURCES: &str = "\
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bookworm-security main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security trixie-security main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie-backports main
";

/// Modules kept from each kernel (those that are built in are simply absent).
const MODULES: &[&str] = &[
    "veth",
    "failover",
    "net_failover",
    "virtio",
    "virtio_ring",
    "virtio_pci_modern_dev",
    "virtio_pci_legacy_dev",
    "virtio_pci",
    "virtio_net",
];

/// The guest kernels the lab boots: the default kernels of Debian 12 and 13 and the newest
/// backports kernel. Exact package versions, so a run is reproducible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum GuestKernel {
    /// Debian 12 (bookworm-security): 6.1.0-57.
    #[value(name = "6.1")]
    V6_1,
    /// Debian 13 (trixie): 6.12.118.
    #[value(name = "6.12")]
    V6_12,
    /// Debian 13 backports (trixie-backports): 7.3.4.
    #[value(name = "7.3")]
    V7_3,
}

impl GuestKernel {
    /// Every kernel, oldest first.
    pub const ALL: [GuestKernel; 3] = [GuestKernel::V6_1, GuestKernel::V6_12, GuestKernel::V7_3];

    /// `6.1`, `6.12`, `7.3`.
    pub fn label(self) -> &'static str {
        match self {
            GuestKernel::V6_1 => "6.1",
            GuestKernel::V6_12 => "6.12",
            GuestKernel::V7_3 => "7.3",
        }
    }

    /// `uname -r` of the guest, the directory name under `/lib/modules`.
    pub fn release(self) -> &'static str {
        match self {
            GuestKernel::V6_1 => "6.1.0-57-amd64",
            GuestKernel::V6_12 => "6.12.118+deb13-amd64",
            GuestKernel::V7_3 => "7.3.4+deb13-amd64",
        }
    }

    /// The Debian packages that hold its `vmlinuz` and modules.
    fn packages(self) -> &'static [&'static str] {
        match self {
            GuestKernel::V6_1 => &["linux-image-6.1.0-57-amd64-unsigned"],
            GuestKernel::V6_12 => &["linux-image-6.12.118+deb13-amd64-unsigned"],
            GuestKernel::V7_3 => &[
                "linux-binary-unsigned-7.3.4+deb13-amd64",
                "linux-modules-7.3.4+deb13-amd64",
            ],
        }
    }

    /// The download size, roughly, for the up-front message.
    fn download_mib(self) -> u32 {
        match self {
            GuestKernel::V6_1 => 70,
            GuestKernel::V6_12 => 110,
            GuestKernel::V7_3 => 115,
        }
    }

    /// Whether its virtio-net driver has AF_XDP zero-copy (Linux >= 6.13).
    pub fn virtio_zero_copy(self) -> bool {
        self == GuestKernel::V7_3
    }
}

impl std::fmt::Display for GuestKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.release())
    }
}

/// A kernel ready to boot: its image and its modules (decompressed), by name.
#[derive(Debug, Clone)]
pub struct KernelFiles {
    /// Which kernel.
    pub kernel: GuestKernel,
    /// The `vmlinuz` to give QEMU's `-kernel`.
    pub vmlinuz: PathBuf,
    /// `.ko` files present as modules (built-in ones are absent), by module name.
    pub modules: BTreeMap<String, PathBuf>,
}

impl KernelFiles {
    /// The modules to `insmod` for `wanted`, dependencies first; names that are not modules of
    /// this kernel are built in and skipped.
    pub fn load_order(&self, wanted: &[&str]) -> Vec<PathBuf> {
        fn visit(files: &KernelFiles, name: &str, seen: &mut Vec<String>, out: &mut Vec<PathBuf>) {
            let Some(path) = files.modules.get(name) else { return };
            if seen.iter().any(|s| s == name) {
                return;
            }
            seen.push(name.to_string());
            for dep in module_depends(path) {
                visit(files, &dep, seen, out);
            }
            out.push(path.clone());
        }
        let (mut seen, mut out) = (Vec::new(), Vec::new());
        for name in wanted {
            visit(self, name, &mut seen, &mut out);
        }
        out
    }
}

/// The `depends=` list in a module's `.modinfo` section (busybox has no `modinfo`).
fn module_depends(ko: &Path) -> Vec<String> {
    let Ok(bytes) = fs::read(ko) else { return Vec::new() };
    let key = b"depends=";
    let Some(start) = bytes.windows(key.len()).position(|w| w == key) else {
        return Vec::new();
    };
    let value = &bytes[start + key.len()..];
    let end = value.iter().position(|&b| b == 0).unwrap_or(0);
    String::from_utf8_lossy(&value[..end])
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.replace('-', "_"))
        .collect()
}

/// The lab's download cache (see the module documentation for the layout).
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Default for Cache {
    fn default() -> Self {
        Cache {
            root: PathBuf::from(CACHE_DIR),
        }
    }
}

impl Cache {
    /// What is still missing for `kernels` (and busybox), as one line for the user; `None` if
    /// everything is cached.
    pub fn missing(&self, kernels: &[GuestKernel]) -> Option<String> {
        let mut parts = Vec::new();
        let mut mib = 0;
        if !self.busybox_path().is_file() {
            parts.push("busybox-static (1 MiB)".to_string());
            mib += 1;
        }
        for &k in kernels {
            if !self.kernel_cached(k) {
                parts.push(format!("Linux {} ({} MiB)", k.release(), k.download_mib()));
                mib += k.download_mib();
            }
        }
        (!parts.is_empty()).then(|| {
            format!(
                "fetching from deb.debian.org into {}: {} — about {mib} MiB, once; later runs use the cache",
                self.root.display(),
                parts.join(", ")
            )
        })
    }

    /// The busybox-static binary, fetched and unpacked on first use.
    pub fn busybox(&self) -> Result<PathBuf, LabError> {
        let path = self.busybox_path();
        if !path.is_file() {
            let debs = self.download(&["busybox-static"], "busybox-static")?;
            let dir = self.root.join("busybox/x");
            fs::create_dir_all(&dir).map_err(io("creating the busybox directory"))?;
            for deb in debs {
                unpack(&deb, &dir)?;
            }
            if !path.is_file() {
                return Err(LabError::Config(format!("busybox-static has no {}", path.display())));
            }
        }
        Ok(path)
    }

    /// The files of `kernel`, fetched and unpacked on first use.
    pub fn kernel(&self, kernel: GuestKernel) -> Result<KernelFiles, LabError> {
        let dir = self.kernel_dir(kernel);
        if !self.kernel_cached(kernel) {
            let debs = self.download(kernel.packages(), &format!("Linux {}", kernel.release()))?;
            println!(
                "vm: unpacking Linux {} (vmlinuz and {} network modules)",
                kernel.release(),
                MODULES.len()
            );
            self.extract_kernel(kernel, &debs)?;
        }
        let mut modules = BTreeMap::new();
        let entries = fs::read_dir(dir.join("modules")).map_err(io("reading the cached modules"))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if let Some(name) = path.file_stem().and_then(|s| s.to_str())
                && path.extension().is_some_and(|e| e == "ko")
            {
                modules.insert(name.replace('-', "_"), path);
            }
        }
        Ok(KernelFiles {
            kernel,
            vmlinuz: dir.join("vmlinuz"),
            modules,
        })
    }

    fn busybox_path(&self) -> PathBuf {
        self.root.join("busybox/x/bin/busybox")
    }

    fn kernel_dir(&self, kernel: GuestKernel) -> PathBuf {
        self.root.join("kernels").join(kernel.release())
    }

    fn kernel_cached(&self, kernel: GuestKernel) -> bool {
        let dir = self.kernel_dir(kernel);
        dir.join("vmlinuz").is_file() && dir.join("modules/veth.ko").is_file()
    }

    /// apt-get with the lab's private configuration (never /etc/apt, never /var/lib/apt).
    fn apt(&self) -> Result<Command, LabError> {
        let apt = self.root.join("apt");
        for sub in ["lists/partial", "cache/archives/partial"] {
            fs::create_dir_all(apt.join(sub)).map_err(io("creating the private apt directory"))?;
        }
        let sources = apt.join("sources.list");
        if !sources.is_file() {
            fs::write(&sources, SOURCES).map_err(io("writing the private sources list"))?;
        }
        let mut cmd = Command::new(tool("apt-get")?);
        let opt = |k: &str, v: &Path| format!("{k}={}", v.display());
        cmd.args(["-o", &opt("Dir::Etc::SourceList", &sources)])
            .args(["-o", "Dir::Etc::SourceParts=-"])
            .args(["-o", &opt("Dir::State::Lists", &apt.join("lists"))])
            .args(["-o", &opt("Dir::Cache", &apt.join("cache"))])
            .args(["-o", "Dir::State::status=/dev/null"])
            .args(["-o", "APT::Architecture=amd64", "-o", "Debug::NoLocking=1"])
            .env("LC_ALL", "C");
        Ok(cmd)
    }

    /// Downloads `packages` into `debs/` (reusing what is there) and returns their files.
    fn download(&self, packages: &[&str], what: &str) -> Result<Vec<PathBuf>, LabError> {
        let debs = self.root.join("debs");
        fs::create_dir_all(&debs).map_err(io("creating the download directory"))?;
        let find = |pkg: &str| -> Option<PathBuf> {
            let prefix = format!("{}_", pkg.replace(':', "%3a"));
            let mut found: Vec<PathBuf> = fs::read_dir(&debs)
                .ok()?
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
                })
                .collect();
            found.sort();
            found.pop()
        };
        let missing: Vec<&str> = packages.iter().copied().filter(|p| find(p).is_none()).collect();
        if !missing.is_empty() {
            let fetch_err = |detail: String| LabError::Fetch {
                what: what.to_string(),
                detail,
            };
            println!("vm: apt-get update (private lists in {}/apt)", self.root.display());
            let mut update = self.apt()?;
            update.arg("update");
            let out = run(update, "apt-get update", Duration::from_secs(180))?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            if !out.status.success() || stderr.contains("Failed to fetch") || stderr.contains("Could not resolve") {
                // apt exits 0 when it cannot connect; its first warning says why.
                let first = stderr
                    .lines()
                    .find(|l| l.contains("Failed to fetch") || l.contains("Could not resolve"));
                return Err(fetch_err(first.map_or_else(|| tail(&stderr), |l| l.trim().to_string())));
            }
            println!("vm: downloading {} ({what})", missing.join(" "));
            let mut download = self.apt()?;
            download.arg("download").args(&missing).current_dir(&debs);
            let out = run(download, "apt-get download", Duration::from_secs(1200))?;
            for line in String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.starts_with("Get:"))
            {
                println!("vm:   {line}");
            }
            if !out.status.success() {
                return Err(fetch_err(tail(&String::from_utf8_lossy(&out.stderr))));
            }
        }
        packages
            .iter()
            .map(|p| {
                find(p).ok_or_else(|| LabError::Fetch {
                    what: what.to_string(),
                    detail: format!("apt-get download left no {p}_*.deb in {}", debs.display()),
                })
            })
            .collect()
    }

    /// Unpacks the kernel packages and keeps `vmlinuz` and the [`MODULES`], decompressed.
    fn extract_kernel(&self, kernel: GuestKernel, debs: &[PathBuf]) -> Result<(), LabError> {
        let tmp = TempDir::new(&self.root.join(format!("unpack.{}", std::process::id())))?;
        for deb in debs {
            unpack(deb, &tmp.0)?;
        }
        let release = kernel.release();
        let moddir = ["lib/modules", "usr/lib/modules"]
            .iter()
            .map(|d| tmp.0.join(d).join(release))
            .find(|d| d.is_dir())
            .ok_or_else(|| LabError::Config(format!("the packages of {release} have no modules directory")))?;
        let vmlinuz = [
            tmp.0.join(format!("boot/vmlinuz-{release}")),
            moddir.join("vmlinuz"),
            moddir.join("vmlinuz.unsigned"),
        ]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| LabError::Config(format!("the packages of {release} have no vmlinuz")))?;
        let out = self.kernel_dir(kernel);
        let staging = self.root.join(format!("kernels/.{release}.{}", std::process::id()));
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(staging.join("modules")).map_err(io("creating the kernel directory"))?;
        fs::copy(&vmlinuz, staging.join("vmlinuz")).map_err(io("copying vmlinuz"))?;
        let mut found = Vec::new();
        find_modules(&moddir.join("kernel"), &mut found);
        for name in MODULES {
            let Some(src) = found.iter().find(|p| {
                module_name(p) == Some(name.replace('_', "-")) || module_name(p) == Some((*name).to_string())
            }) else {
                continue; // built in
            };
            let dst = staging.join("modules").join(format!("{name}.ko"));
            let src_s = src.to_string_lossy();
            let decompress = if src_s.ends_with(".xz") {
                Some("xz -dc")
            } else if src_s.ends_with(".zst") {
                Some("zstd -qdc")
            } else {
                None
            };
            match decompress {
                Some(prog) => {
                    let mut sh = Command::new(tool("sh")?);
                    sh.args(["-c", &format!("{prog} \"$1\" > \"$2\""), "sh"])
                        .arg(src)
                        .arg(&dst);
                    run_ok(sh, "decompressing a kernel module")?;
                }
                None => {
                    fs::copy(src, &dst).map_err(io("copying a kernel module"))?;
                }
            }
        }
        let _ = fs::remove_dir_all(&out);
        fs::rename(&staging, &out).map_err(io("moving the unpacked kernel into the cache"))?;
        Ok(())
    }
}

/// `veth` for `.../veth.ko.xz`.
fn module_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    Some(name.split(".ko").next()?.to_string())
}

fn find_modules(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            find_modules(&path, out);
        } else if path.to_string_lossy().contains(".ko") {
            out.push(path);
        }
    }
}

/// `dpkg-deb -x DEB DIR`.
fn unpack(deb: &Path, dir: &Path) -> Result<(), LabError> {
    let mut cmd = Command::new(tool("dpkg-deb")?);
    cmd.arg("-x").arg(deb).arg(dir);
    run(cmd, "dpkg-deb -x", Duration::from_secs(300)).and_then(|out| {
        if out.status.success() {
            Ok(())
        } else {
            Err(LabError::CommandFailed {
                what: "unpacking a package".into(),
                command: format!("dpkg-deb -x {} {}", deb.display(), dir.display()),
                status: out.status.to_string(),
                stderr: tail(&String::from_utf8_lossy(&out.stderr)),
            })
        }
    })
}

/// A directory removed with everything in it when dropped.
#[derive(Debug)]
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(path: &Path) -> Result<Self, LabError> {
        let _ = fs::remove_dir_all(path);
        fs::create_dir_all(path).map_err(io("creating a scratch directory"))?;
        Ok(TempDir(path.to_path_buf()))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Maps an I/O error to [`LabError::Io`] saying what was being done.
pub(crate) fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> LabError {
    move |source| LabError::Io {
        what: what.into(),
        source,
    }
}
