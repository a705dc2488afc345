# Shared by scripts/serve and scripts/test: install what a fresh Debian/Ubuntu machine lacks.
# Sourced, not run.

# Runs apt-get as root, or through sudo.
apt_get() {
    if [ "$(id -u)" -eq 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get "$@"
    else
        sudo DEBIAN_FRONTEND=noninteractive apt-get "$@"
    fi
}

APT_UPDATED=""
# need COMMAND PACKAGE: installs PACKAGE with apt when COMMAND is missing.
need() {
    if command -v "$1" >/dev/null 2>&1; then
        return
    fi
    echo "==> installing $2 (for $1)"
    if [ -z "$APT_UPDATED" ]; then
        apt_get update -qq
        APT_UPDATED=1
    fi
    apt_get install -y -qq --no-install-recommends "$2"
}

# The Rust toolchain: rustup's, as Debian's own is older than docgate's minimum (1.95).
ensure_rust() {
    need cc build-essential
    need curl curl
    if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
        . "$HOME/.cargo/env"
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        echo "==> installing the Rust toolchain with rustup"
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
            sh -s -- -y --profile minimal --default-toolchain 1.95.0 -c rustfmt -c clippy
        . "$HOME/.cargo/env"
    fi
}
