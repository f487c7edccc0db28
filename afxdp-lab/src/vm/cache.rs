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
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::LabError;
use crate::exec::{run, run_ok, tail, tool};

/// The cache directory of the lab's downloads.
pub const CACHE_DIR: &str = "/var/cache/afxdp-lab";

/// The private sources list: Debian 12 and 13 with their security and backports suites, from
/// `MIRROR` (`http://deb.debian.org` unless `$AFXDP_LAB_MIRROR` names another). Never sid (it
/// would upgrade the host's libc and apt if it ever reached the system's sources).
const SOURCES: &str = "\
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] MIRROR/debian bookworm main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] MIRROR/debian-security bookworm-security main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] MIRROR/debian bookworm-backports main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] MIRROR/debian trixie main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] MIRROR/debian-security trixie-security main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] MIRROR/debian trixie-backports main
";

/// The archive the lab fetches from by default.
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org";

/// Environment variable naming another archive (a local mirror: `http://mirror.example/`, or
/// `file:///srv/debian-mirror`), with `debian/` and `debian-security/` below it.
pub const MIRROR_ENV: &str = "AFXDP_LAB_MIRROR";

/// Modules kept from each kernel (those that are built in are simply absent): veth for the
/// matrix, the virtio-net stack, igb and what it depends on.
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
    "igb",
    "dca",
    "i2c_algo_bit",
    "pps_core",
    "ptp",
    "hwmon",
];

/// The file in a cached kernel's directory that lists the modules kept: an entry kept with an
/// older list is unpacked again.
const KEPT: &str = "modules/.kept";

/// A guest kernel series the lab boots: the default kernels of Debian 12 and 13 and the newest
/// backports kernel. Which exact package of the series is resolved when it is fetched (the
/// newest in the archive: Debian bumps the ABI with each security update and removes the old
/// packages), then cached and used offline from then on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum GuestKernel {
    /// Debian 12 (bookworm, bookworm-security): the newest 6.1.0-N.
    #[value(name = "6.1")]
    V6_1,
    /// Debian 13 (trixie, trixie-security): the newest 6.12.N+deb13.
    #[value(name = "6.12")]
    V6_12,
    /// Debian 13 backports (trixie-backports): the newest 7.x (7.3.4 when this was written).
    #[value(name = "7", alias = "7.3", alias = "backports")]
    V7,
}

impl GuestKernel {
    /// Every kernel, oldest first.
    pub const ALL: [GuestKernel; 3] = [GuestKernel::V6_1, GuestKernel::V6_12, GuestKernel::V7];

    /// `6.1`, `6.12`, `7` (the `--kernel` value).
    pub fn label(self) -> &'static str {
        match self {
            GuestKernel::V6_1 => "6.1",
            GuestKernel::V6_12 => "6.12",
            GuestKernel::V7 => "7",
        }
    }

    /// Where the series comes from, for messages.
    pub fn suites(self) -> &'static str {
        match self {
            GuestKernel::V6_1 => "bookworm/bookworm-security",
            GuestKernel::V6_12 => "trixie/trixie-security",
            GuestKernel::V7 => "trixie-backports",
        }
    }

    /// The download size, roughly, for the up-front message.
    fn download_mib(self) -> u32 {
        match self {
            GuestKernel::V6_1 => 70,
            GuestKernel::V6_12 => 110,
            GuestKernel::V7 => 115,
        }
    }

    /// Whether `abi` (e.g. `6.1.0-57`, `6.12.118+deb13`, `7.3.4+deb13`: a package name without
    /// its `linux-image-` and flavour) is of this series, in the `amd64` flavour (not `cloud`,
    /// `rt`, and not bookworm-backports' `+deb12` builds of 6.12).
    pub fn matches_abi(self, abi: &str) -> bool {
        let flavoured = abi
            .split(['-', '+', '.'])
            .any(|seg| !seg.is_empty() && seg.chars().all(|c| c.is_ascii_alphabetic()));
        if flavoured || abi.is_empty() {
            return false;
        }
        match self {
            GuestKernel::V6_1 => abi.starts_with("6.1.0-") && !abi.contains('+'),
            GuestKernel::V6_12 => abi.starts_with("6.12.") && abi.contains("+deb13"),
            GuestKernel::V7 => abi.starts_with("7.") && abi.contains("+deb13"),
        }
    }

    /// The newest package of this series among the archive's package `names` (both of Debian's
    /// schemes: `linux-image-ABI-amd64-unsigned`, or `linux-binary-unsigned-ABI-amd64` with its
    /// `linux-modules-ABI-amd64`).
    pub fn newest<'a>(self, names: impl IntoIterator<Item = &'a str>) -> Option<KernelPackage> {
        let names: Vec<&str> = names.into_iter().collect();
        let mut best: Option<KernelPackage> = None;
        for name in &names {
            let candidate = if let Some(abi) = name
                .strip_prefix("linux-image-")
                .and_then(|s| s.strip_suffix("-amd64-unsigned"))
            {
                KernelPackage {
                    abi: abi.to_string(),
                    packages: vec![(*name).to_string()],
                }
            } else if let Some(abi) = name
                .strip_prefix("linux-binary-unsigned-")
                .and_then(|s| s.strip_suffix("-amd64"))
            {
                let modules = format!("linux-modules-{abi}-amd64");
                if !names.contains(&modules.as_str()) {
                    continue;
                }
                KernelPackage {
                    abi: abi.to_string(),
                    packages: vec![(*name).to_string(), modules],
                }
            } else {
                continue;
            };
            if !self.matches_abi(&candidate.abi) {
                continue;
            }
            if best
                .as_ref()
                .is_none_or(|b| version_key(&candidate.abi) > version_key(&b.abi))
            {
                best = Some(candidate);
            }
        }
        best
    }
}

impl std::fmt::Display for GuestKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Linux {} ({})", self.label(), self.suites())
    }
}

/// One kernel's packages in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelPackage {
    /// `6.1.0-57`, `7.3.4+deb13`.
    pub abi: String,
    /// The packages that hold its `vmlinuz` and modules.
    pub packages: Vec<String>,
}

impl KernelPackage {
    /// `uname -r` of the kernel: `6.1.0-57-amd64`.
    pub fn release(&self) -> String {
        format!("{}-amd64", self.abi)
    }
}

/// The numbers in an ABI string, for ordering: `6.12.118+deb13` → `[6, 12, 118, 13]`.
fn version_key(abi: &str) -> Vec<u64> {
    abi.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or(u64::MAX))
        .collect()
}

/// `(major, minor)` of a release such as `6.12.118+deb13-amd64`.
pub fn release_version(release: &str) -> (u32, u32) {
    let mut nums = release
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or(0));
    (nums.next().unwrap_or(0), nums.next().unwrap_or(0))
}

/// What `--nic igb` needs from bookworm-backports: QEMU 10 (the `igb` device is in QEMU >= 8),
/// its firmware files, and the SeaBIOS it was built for.
const QEMU_PACKAGES: &[&str] = &[
    "qemu-system-x86/bookworm-backports",
    "qemu-system-data/bookworm-backports",
    "seabios/bookworm-backports",
];

/// A QEMU to run: the host's, or QEMU 10 unpacked in the cache.
#[derive(Debug, Clone)]
pub struct Qemu {
    /// `qemu-system-x86_64`.
    pub exe: PathBuf,
    /// Firmware directories, each given with `-L`.
    pub data_dirs: Vec<PathBuf>,
    /// `QEMU_MODULE_DIR` for an unpacked QEMU.
    pub module_dir: Option<PathBuf>,
}

impl Qemu {
    /// The host's `qemu-system-x86_64` (package qemu-system-x86).
    pub fn host() -> Result<Self, LabError> {
        Ok(Qemu {
            exe: tool("qemu-system-x86_64")?,
            data_dirs: Vec::new(),
            module_dir: None,
        })
    }

    /// A command that runs this QEMU (through `wrapper`, e.g. `ip netns exec NS`, if given).
    pub fn command(&self, wrapper: Option<Command>) -> Command {
        let mut cmd = match wrapper {
            Some(mut w) => {
                w.arg(&self.exe);
                w
            }
            None => Command::new(&self.exe),
        };
        for dir in &self.data_dirs {
            cmd.arg("-L").arg(dir);
        }
        if let Some(dir) = &self.module_dir {
            cmd.env("QEMU_MODULE_DIR", dir);
        }
        cmd
    }

    /// `QEMU emulator version 10.0.2 (...)` → `10.0.2`.
    pub fn version(&self) -> String {
        let Ok(out) = Command::new(&self.exe).arg("--version").output() else {
            return "?".into();
        };
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .skip_while(|w| *w != "version")
            .nth(1)
            .unwrap_or("?")
            .to_string()
    }
}

/// A kernel ready to boot: its image and its modules (decompressed), by name.
#[derive(Debug, Clone)]
pub struct KernelFiles {
    /// Which series.
    pub kernel: GuestKernel,
    /// The exact release (`uname -r`), e.g. `6.1.0-57-amd64`.
    pub release: String,
    /// The `vmlinuz` to give QEMU's `-kernel`.
    pub vmlinuz: PathBuf,
    /// `.ko` files present as modules (built-in ones are absent), by module name.
    pub modules: BTreeMap<String, PathBuf>,
}

impl KernelFiles {
    /// `(major, minor)` of the release.
    pub fn version(&self) -> (u32, u32) {
        release_version(&self.release)
    }

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
    mirror: String,
    refresh: bool,
    /// Whether this run already refreshed the private package lists.
    updated: Arc<AtomicBool>,
}

impl Default for Cache {
    /// `/var/cache/afxdp-lab`, fetching from `$AFXDP_LAB_MIRROR` or deb.debian.org.
    fn default() -> Self {
        let mirror = std::env::var(MIRROR_ENV).unwrap_or_else(|_| DEFAULT_MIRROR.to_string());
        Cache::new(PathBuf::from(CACHE_DIR), &mirror)
    }
}

impl Cache {
    /// A cache in `root` that fetches from `mirror` (see [`MIRROR_ENV`]).
    pub fn new(root: PathBuf, mirror: &str) -> Self {
        Cache {
            root,
            mirror: mirror.trim_end_matches('/').to_string(),
            refresh: false,
            updated: Arc::new(AtomicBool::new(false)),
        }
    }

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
            if self.refresh || self.cached_release(k).is_none() {
                parts.push(format!(
                    "the newest Linux {} of {} ({} MiB)",
                    k.label(),
                    k.suites(),
                    k.download_mib()
                ));
                mib += k.download_mib();
            }
        }
        (!parts.is_empty()).then(|| {
            format!(
                "fetching from {} into {}: {} — about {mib} MiB, once; later runs use the cache",
                self.mirror,
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

    /// With `refresh`, look in the archive for a newer kernel of each series even when one is
    /// cached (`afxdp-lab vm --refresh`); without it a cached kernel is used and no network is
    /// needed.
    pub fn with_refresh(mut self, refresh: bool) -> Self {
        self.refresh = refresh;
        self
    }

    /// The files of the newest kernel of `series`: from the cache, or (when none is cached, or
    /// with `refresh`) resolved from the archive's package lists, downloaded and unpacked. Says
    /// which exact release it uses.
    pub fn kernel(&self, series: GuestKernel) -> Result<KernelFiles, LabError> {
        let release = match (self.refresh, self.cached_release(series)) {
            (false, Some(release)) => {
                println!("vm: Linux {}: {release} (cached)", series.label());
                release
            }
            _ => {
                let what = format!("the newest Linux {} of {}", series.label(), series.suites());
                self.update_lists(&what)?;
                let names = self.package_names("linux-")?;
                let pkg = series
                    .newest(names.iter().map(String::as_str))
                    .ok_or_else(|| LabError::Fetch {
                        what: what.clone(),
                        detail: "the archive's package lists name no such kernel package".into(),
                    })?;
                let release = pkg.release();
                println!(
                    "vm: Linux {}: newest in {} is {release} ({})",
                    series.label(),
                    series.suites(),
                    pkg.packages.join(" + ")
                );
                if !self.kernel_cached(&release) {
                    let refs: Vec<&str> = pkg.packages.iter().map(String::as_str).collect();
                    let debs = self.download(&refs, &format!("Linux {release}"))?;
                    println!(
                        "vm: unpacking Linux {release} (vmlinuz and up to {} network modules)",
                        MODULES.len()
                    );
                    self.extract_kernel(&release, &debs)?;
                }
                release
            }
        };
        let dir = self.kernel_dir(&release);
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
            kernel: series,
            vmlinuz: dir.join("vmlinuz"),
            release,
            modules,
        })
    }

    /// QEMU 10 from bookworm-backports (the host's Debian 12 QEMU 7.2 has no `igb` device),
    /// fetched and unpacked on first use into `qemu/`; never installed.
    pub fn qemu_backports(&self) -> Result<Qemu, LabError> {
        let dir = self.root.join("qemu");
        let exe = dir.join("x/usr/bin/qemu-system-x86_64");
        if !(exe.is_file() && dir.join(".complete").is_file()) {
            let debs = self.download(QEMU_PACKAGES, "QEMU 10 (bookworm-backports)")?;
            let staging = TempDir::new(&self.root.join(format!("qemu.{}", std::process::id())))?;
            for deb in &debs {
                unpack(deb, &staging.0.join("x"))?;
            }
            fs::create_dir_all(staging.0.join("modules")).map_err(io("creating QEMU's module directory"))?;
            fs::write(staging.0.join(".complete"), "").map_err(io("marking the QEMU cache complete"))?;
            let _ = fs::remove_dir_all(&dir);
            fs::rename(&staging.0, &dir).map_err(io("moving QEMU into the cache"))?;
        }
        let qemu = Qemu {
            exe,
            data_dirs: vec![dir.join("x/usr/share/qemu"), dir.join("x/usr/share/seabios")],
            // Empty: QEMU would otherwise load the host QEMU's modules, which refuse to load.
            module_dir: Some(dir.join("modules")),
        };
        let mut ldd = Command::new(tool("ldd")?);
        ldd.arg(&qemu.exe);
        let out = run(ldd, "listing QEMU 10's libraries (ldd)", Duration::from_secs(10))?;
        let missing: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("not found"))
            .filter_map(|l| l.split_whitespace().next().map(String::from))
            .collect();
        if !missing.is_empty() {
            return Err(LabError::Config(format!(
                "QEMU 10 needs libraries this host lacks: {}; install their Debian 12 packages (apt-get install qemu-system-x86 brings them)",
                missing.join(", ")
            )));
        }
        Ok(qemu)
    }

    /// `bin/busybox` (Debian 12's package) or `usr/bin/busybox` (Debian 13's, merged /usr).
    fn busybox_path(&self) -> PathBuf {
        let x = self.root.join("busybox/x");
        let merged = x.join("usr/bin/busybox");
        if merged.is_file() {
            merged
        } else {
            x.join("bin/busybox")
        }
    }

    fn kernels_dir(&self) -> PathBuf {
        self.root.join("kernels")
    }

    fn kernel_dir(&self, release: &str) -> PathBuf {
        self.kernels_dir().join(release)
    }

    /// Whether `release` is unpacked with the current module list.
    fn kernel_cached(&self, release: &str) -> bool {
        let dir = self.kernel_dir(release);
        dir.join("vmlinuz").is_file() && fs::read_to_string(dir.join(KEPT)).is_ok_and(|k| k == MODULES.join("\n"))
    }

    /// The newest release of `series` in the cache, if any.
    pub fn cached_release(&self, series: GuestKernel) -> Option<String> {
        fs::read_dir(self.kernels_dir())
            .ok()?
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| {
                name.strip_suffix("-amd64").is_some_and(|abi| series.matches_abi(abi)) && self.kernel_cached(name)
            })
            .max_by_key(|name| version_key(name))
    }

    /// Refreshes the private package lists, once per run; an archive that cannot be reached is
    /// an error naming what was being fetched.
    fn update_lists(&self, what: &str) -> Result<(), LabError> {
        if self.updated.load(Ordering::Relaxed) {
            return Ok(());
        }
        println!("vm: apt-get update (private lists in {}/apt)", self.root.display());
        let mut update = self.apt()?;
        update.arg("update");
        let out = run(update, "apt-get update", Duration::from_secs(180))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let failure = |l: &str| {
            l.contains("Failed to fetch")
                || l.contains("Could not resolve")
                || l.starts_with("Err:")
                || l.starts_with("E:")
        };
        if !out.status.success() || stderr.lines().any(failure) {
            // apt exits 0 when it cannot connect; its first warning says why.
            let first = stderr.lines().find(|l| failure(l));
            return Err(LabError::Fetch {
                what: what.to_string(),
                detail: first.map_or_else(|| tail(&stderr), |l| l.trim().to_string()),
            });
        }
        self.updated.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Every package name in the private lists that starts with `prefix`.
    fn package_names(&self, prefix: &str) -> Result<Vec<String>, LabError> {
        let mut cmd = self.apt_tool("apt-cache")?;
        cmd.args(["pkgnames", prefix]);
        let out = run(cmd, "apt-cache pkgnames", Duration::from_secs(60))?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect())
    }

    /// apt-get with the lab's private configuration (never /etc/apt, never /var/lib/apt).
    fn apt(&self) -> Result<Command, LabError> {
        self.apt_tool("apt-get")
    }

    /// `apt-get` or `apt-cache` with the private configuration.
    fn apt_tool(&self, program: &'static str) -> Result<Command, LabError> {
        let apt = self.root.join("apt");
        for sub in ["lists/partial", "cache/archives/partial"] {
            fs::create_dir_all(apt.join(sub)).map_err(io("creating the private apt directory"))?;
        }
        let sources = apt.join("sources.list");
        let list = SOURCES.replace("MIRROR", &self.mirror);
        if fs::read_to_string(&sources).ok().as_deref() != Some(list.as_str()) {
            fs::write(&sources, list).map_err(io("writing the private sources list"))?;
        }
        let mut cmd = Command::new(tool(program)?);
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
            let name = pkg.split('/').next().unwrap_or(pkg);
            let prefix = format!("{}_", name.replace(':', "%3a"));
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
            self.update_lists(what)?;
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
    fn extract_kernel(&self, release: &str, debs: &[PathBuf]) -> Result<(), LabError> {
        let tmp = TempDir::new(&self.root.join(format!("unpack.{}", std::process::id())))?;
        for deb in debs {
            unpack(deb, &tmp.0)?;
        }
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
        let out = self.kernel_dir(release);
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
        fs::write(staging.join(KEPT), MODULES.join("\n")).map_err(io("writing the module list"))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Package names as the archive listed them on 2 Dec 2026 (a selection).
    const NAMES: &[&str] = &[
        "linux-image-6.1.0-47-amd64-unsigned",
        "linux-image-6.1.0-57-amd64-unsigned",
        "linux-image-6.1.0-57-cloud-amd64-unsigned",
        "linux-image-6.1.0-57-rt-amd64-unsigned",
        "linux-image-6.1.0-9-amd64-unsigned",
        "linux-image-6.12.95+deb12-amd64-unsigned",
        "linux-image-6.12.117+deb12-amd64-unsigned",
        "linux-image-6.12.107+deb13-amd64-unsigned",
        "linux-image-6.12.115+deb13.1-amd64-unsigned",
        "linux-image-6.12.118+deb13-amd64-unsigned",
        "linux-image-6.12.118+deb13-cloud-amd64-unsigned",
        "linux-image-amd64",
        "linux-binary-unsigned-7.2.12+deb13-amd64",
        "linux-modules-7.2.12+deb13-amd64",
        "linux-binary-unsigned-7.3.4+deb13-amd64",
        "linux-binary-unsigned-7.3.4+deb13-rt-amd64",
        "linux-modules-7.3.4+deb13-amd64",
        "linux-binary-unsigned-7.10.1+deb13-amd64",
    ];

    #[test]
    fn newest_of_each_series_is_resolved_from_the_names() {
        let newest = |k: GuestKernel| k.newest(NAMES.iter().copied()).unwrap();
        assert_eq!(
            newest(GuestKernel::V6_1),
            KernelPackage {
                abi: "6.1.0-57".into(),
                packages: vec!["linux-image-6.1.0-57-amd64-unsigned".into()],
            }
        );
        assert_eq!(newest(GuestKernel::V6_12).release(), "6.12.118+deb13-amd64");
        // 7.10.1 has no modules package: it is not a bootable candidate.
        assert_eq!(
            newest(GuestKernel::V7).packages,
            [
                "linux-binary-unsigned-7.3.4+deb13-amd64",
                "linux-modules-7.3.4+deb13-amd64"
            ]
        );
    }

    #[test]
    fn a_bumped_abi_wins_and_a_missing_series_is_none() {
        let mut names = NAMES.to_vec();
        names.push("linux-image-6.1.0-58-amd64-unsigned");
        names.push("linux-binary-unsigned-7.4.1+deb13-amd64");
        names.push("linux-modules-7.4.1+deb13-amd64");
        assert_eq!(GuestKernel::V6_1.newest(names.iter().copied()).unwrap().abi, "6.1.0-58");
        assert_eq!(
            GuestKernel::V7.newest(names.iter().copied()).unwrap().abi,
            "7.4.1+deb13"
        );
        assert_eq!(
            GuestKernel::V6_12.newest(["linux-image-6.12.95+deb12-amd64-unsigned"]),
            None
        );
    }

    #[test]
    fn flavours_and_other_series_do_not_match() {
        assert!(GuestKernel::V6_1.matches_abi("6.1.0-57"));
        assert!(!GuestKernel::V6_1.matches_abi("6.1.0-57-cloud"));
        assert!(!GuestKernel::V6_1.matches_abi("6.12.118+deb13"));
        assert!(!GuestKernel::V6_12.matches_abi("6.12.117+deb12"));
        assert!(!GuestKernel::V7.matches_abi("7.3.4+deb13-rt"));
        assert_eq!(release_version("6.12.118+deb13-amd64"), (6, 12));
        assert_eq!(release_version("7.3.4+deb13-amd64"), (7, 3));
    }

    #[test]
    fn the_newest_cached_release_of_a_series_is_used() {
        let root = TempDir::new(Path::new(&format!("/tmp/afxdp-lab-cache-test.{}", std::process::id()))).unwrap();
        let cache = Cache::new(root.0.clone(), DEFAULT_MIRROR);
        for (release, complete) in [
            ("6.1.0-50-amd64", true),
            ("6.1.0-57-amd64", true),
            ("6.1.0-58-amd64", false),
            ("6.12.118+deb13-amd64", true),
        ] {
            let dir = cache.kernel_dir(release);
            fs::create_dir_all(dir.join("modules")).unwrap();
            fs::write(dir.join("vmlinuz"), "").unwrap();
            if complete {
                fs::write(dir.join(KEPT), MODULES.join("\n")).unwrap();
            }
        }
        assert_eq!(
            cache.cached_release(GuestKernel::V6_1).as_deref(),
            Some("6.1.0-57-amd64")
        );
        assert_eq!(
            cache.cached_release(GuestKernel::V6_12).as_deref(),
            Some("6.12.118+deb13-amd64")
        );
        assert_eq!(cache.cached_release(GuestKernel::V7), None);
        assert!(
            cache
                .missing(&[GuestKernel::V6_1])
                .is_some_and(|m| m.contains("busybox"))
        );
    }
}
