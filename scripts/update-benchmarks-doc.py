#!/usr/bin/env python3
"""Puts each benchmark's printed table into docs/benchmarks.md (or another doc).

Usage: update-benchmarks-doc.py DOC NAME=OUTPUT_FILE...

Every `<!-- bench:NAME -->` ... `<!-- /bench:NAME -->` block of DOC is replaced
by the Markdown that `cargo bench --bench NAME` printed (OUTPUT_FILE), with the
date and the machine. The prose around the blocks is left alone. Written
atomically; a marker missing from DOC is an error, so no result is dropped.
"""
import datetime
import os
import platform
import re
import sys
import tempfile


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = f", {kb / 1024 / 1024:.0f} GB"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} cores ({cpu}){mem}, {platform.system()} {platform.release()}"


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    doc = sys.argv[1]
    with open(doc) as f:
        text = f.read()
    stamp = f"Measured {datetime.date.today().isoformat()} on {machine()}."
    for arg in sys.argv[2:]:
        name, _, path = arg.partition("=")
        with open(path) as f:
            table = f.read().strip()
        pattern = re.compile(rf"(<!-- bench:{re.escape(name)} -->\n)(?:.*?\n)?(<!-- /bench:{re.escape(name)} -->)", re.S)
        if not pattern.search(text):
            sys.exit(f"{doc} has no <!-- bench:{name} --> ... <!-- /bench:{name} --> block")
        text = pattern.sub(lambda m: m.group(1) + stamp + "\n\n" + table + "\n" + m.group(2), text)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(doc)), prefix=".cvtk-tmp-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, doc)


if __name__ == "__main__":
    main()
