//! The running kernel's version, checked against what the responder needs, so that a kernel too
//! old for it is one clear line at start instead of a confusing failure deep in `bpf()`.
//!
//! | feature | since |
//! |---|---|
//! | AF_XDP with `XDP_USE_NEED_WAKEUP` | 5.4 |
//! | XDP attached through a bpf_link (nothing left attached after a crash) | 5.9 |
//! | BPF memory charged to the cgroup, not `RLIMIT_MEMLOCK` | 5.11 (older: raise the limit) |
//!
//! The minimum is therefore 5.9; docs/testing.md lists the kernels that are tested.

use std::fmt;

/// The oldest kernel the responder runs on: XDP bpf_links arrived in 5.9.
pub const MINIMUM: KernelVersion = KernelVersion { major: 5, minor: 9 };

/// A kernel's `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl KernelVersion {
    /// Parses the start of a release string such as `6.12.118+deb13-amd64` or `5.4.0-150-generic`.
    pub fn parse(release: &str) -> Option<Self> {
        let mut parts = release.split(|c: char| !c.is_ascii_digit());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(KernelVersion { major, minor })
    }

    /// The running kernel's version (`uname -r`, from /proc/sys/kernel/osrelease), if it can be
    /// read.
    pub fn running() -> Option<(Self, String)> {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
        let release = release.trim().to_string();
        Self::parse(&release).map(|v| (v, release))
    }
}

/// `Err(message)` when the running kernel is older than [`MINIMUM`]; an unreadable version is
/// let through (the set-up then reports what fails).
pub fn check() -> Result<(), String> {
    match KernelVersion::running() {
        Some((version, release)) if version < MINIMUM => Err(too_old(&release)),
        _ => Ok(()),
    }
}

fn too_old(release: &str) -> String {
    format!(
        "Linux {release} is too old: afxdp-responder needs Linux {MINIMUM} or newer (XDP attached with a bpf_link); \
         run it on a newer kernel"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_strings_of_the_kernels_people_run() {
        let v = |s| KernelVersion::parse(s).unwrap();
        assert_eq!(v("6.12.118+deb13-amd64"), KernelVersion { major: 6, minor: 12 });
        assert_eq!(v("6.1.0-57-amd64"), KernelVersion { major: 6, minor: 1 });
        assert_eq!(v("5.4.0-150-generic"), KernelVersion { major: 5, minor: 4 });
        assert_eq!(v("7.3.4+deb13-amd64"), KernelVersion { major: 7, minor: 3 });
        assert!(KernelVersion::parse("garbage").is_none());
        assert!(v("5.4.0-150-generic") < MINIMUM);
        assert!(v("5.10.0-30-amd64") >= MINIMUM);
        assert!(v("6.1.0-57-amd64") >= MINIMUM);
        assert_eq!(
            too_old("5.4.0-150-generic"),
            "Linux 5.4.0-150-generic is too old: afxdp-responder needs Linux 5.9 or newer (XDP attached with a \
             bpf_link); run it on a newer kernel"
        );
    }

    #[test]
    fn this_kernel_passes() {
        // The machines the tests run on (6.1 and newer) are all supported.
        assert_eq!(check(), Ok(()));
    }
}
