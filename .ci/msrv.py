#!/usr/bin/env python3
"""MSRV check without a second toolchain.

The workspace promises `rust-version` in Cargo.toml. Our own code is held to it by clippy's
`incompatible_msrv` lint (clippy reads `rust-version`); this script holds the rest: every locked
dependency must declare a rust-version no newer than ours, and the toolchain running CI must be at
least that new. Exits 1 naming each offender.
"""
import json
import re
import subprocess
import sys


def version(s):
    return tuple(int(x) for x in (s.split(".") + ["0", "0"])[:3])


def main():
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    members = set(meta["workspace_members"])
    ours = {p["rust_version"] for p in meta["packages"] if p["id"] in members}
    if len(ours) != 1 or None in ours:
        print(f"msrv: every workspace crate must inherit one rust-version, found {sorted(map(str, ours))}")
        return 1
    msrv = ours.pop()
    bad = [
        f"  {p['name']} {p['version']} needs Rust {p['rust_version']}"
        for p in meta["packages"]
        if p["id"] not in members and p.get("rust_version") and version(p["rust_version"]) > version(msrv)
    ]
    rustc = subprocess.run(["rustc", "--version"], check=True, capture_output=True, text=True).stdout
    found = re.search(r"(\d+\.\d+\.\d+)", rustc)
    if not found or version(found.group(1)) < version(msrv):
        bad.append(f"  the toolchain ({rustc.strip()}) is older than rust-version {msrv}")
    if bad:
        print(f"msrv: rust-version is {msrv}, but:\n" + "\n".join(bad))
        return 1
    print(f"msrv: rust-version {msrv}; {len(meta['packages']) - len(members)} dependencies agree; {rustc.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
