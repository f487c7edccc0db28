//! The one error type of the lab: each variant says what failed and what to do about it.

use std::time::Duration;

/// Everything that can go wrong while building or driving a lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The process is not root; namespaces, veth and XDP need it.
    #[error("the lab needs root (network namespaces, veth, XDP): run it as root, e.g. sudo ./run.sh test")]
    NotRoot,

    /// A command-line tool the lab drives is not installed.
    #[error("`{tool}` not found: install {package} (./run.sh installs it)")]
    ToolMissing {
        /// The program name, e.g. `tcpdump`.
        tool: &'static str,
        /// The Debian/Ubuntu package that ships it.
        package: &'static str,
    },

    /// A program could not be started at all.
    #[error("could not start `{command}`: {source}")]
    Spawn {
        /// The command line, for copy-paste.
        command: String,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },

    /// A command ran but reported failure.
    #[error("{what} failed: `{command}` exited with {status}: {stderr}")]
    CommandFailed {
        /// What the lab was trying to do.
        what: String,
        /// The command line, for copy-paste.
        command: String,
        /// Exit code or signal.
        status: String,
        /// The last lines the command printed on stderr.
        stderr: String,
    },

    /// A command did not finish in time and was killed.
    #[error("{what} did not finish within {timeout:?}; `{command}` was killed")]
    Timeout {
        /// What the lab was trying to do.
        what: String,
        /// The command line, for copy-paste.
        command: String,
        /// The limit that was exceeded.
        timeout: Duration,
    },

    /// A tool printed something the lab could not understand.
    #[error("could not parse {what}: {detail}")]
    Parse {
        /// Which output, e.g. "ping summary".
        what: &'static str,
        /// What was missing or malformed.
        detail: String,
    },

    /// The requested lab or client configuration is not allowed.
    #[error("invalid lab configuration: {0}")]
    Config(String),

    /// The VM lab could not fetch a guest kernel or busybox from Debian's archive.
    #[error(
        "cannot fetch {what} from the Debian archive (deb.debian.org, or $AFXDP_LAB_MIRROR): {detail}; check the network, or see docs/testing.md to fill /var/cache/afxdp-lab by hand"
    )]
    Fetch {
        /// What was being fetched.
        what: String,
        /// The last lines apt printed.
        detail: String,
    },

    /// Reading a pipe or a file failed.
    #[error("{what}: {source}")]
    Io {
        /// What the lab was trying to do.
        what: String,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
}

/// Returns `Ok(())` when the process runs as root, [`LabError::NotRoot`] otherwise.
pub fn require_root() -> Result<(), LabError> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(LabError::NotRoot)
    }
}

/// Flattens an error and its sources into one line (for one-line messages).
pub fn one_line(err: &dyn std::error::Error) -> String {
    let mut msg = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}
