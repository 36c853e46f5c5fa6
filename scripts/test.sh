#!/usr/bin/env bash
# The whole test suite: set-up (idempotent), formatting, lints, build, tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh --test
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
# The gst-launch tests load the plugin from target/debug, which `cargo test` alone does not refresh.
cargo build --locked
cargo test --locked
