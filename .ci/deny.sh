#!/usr/bin/env bash
# cargo-deny against the checked-in deny.toml: licences, banned and duplicate crates, sources.
# Installs a pinned cargo-deny from crates.io when it is missing. Advisories need the RustSec
# database, which is cloned from GitHub: they are checked when it can be fetched, and the log says
# plainly when it cannot (CI machines here reach package registries only).
set -euo pipefail
cd "$(dirname "$0")/.."
version=0.20.2
if ! cargo deny --version 2>/dev/null | grep -q "$version"; then
  cargo install cargo-deny --locked --version "$version" --quiet
fi
cargo deny --log-level error check licenses bans sources
if cargo deny --log-level error fetch db >/dev/null 2>&1; then
  cargo deny --log-level error check advisories
else
  echo "NOT CHECKED: advisories (the RustSec advisory database could not be fetched)"
fi
