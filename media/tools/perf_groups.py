#!/usr/bin/env python3
"""Group a `perf record` of convene-bridge by where the time goes (media/NOTES.md, "Profile"):

    python3 media/tools/perf_groups.py perf.data

Each symbol's self time goes to one group: the kernel; crypto (aws-lc AES-GCM, SRTP);
allocation and copies; str0m; our code (convene_media); the rest. Prints each group's share
and its four biggest symbols."""
import collections
import re
import subprocess
import sys

GROUPS = [
    ("crypto (SRTP)", re.compile(r"aws_lc|aes|gcm|sha\d|hmac|ghash|srtp|crypto", re.I)),
    ("allocation and copies", re.compile(r"malloc|free|memmove|memcpy|memset|realloc|unlink_chunk|alloc::|arena")),
    ("str0m (per-endpoint polling, streams, pacer, BWE, RTCP)", re.compile(r"str0m")),
    ("our code (convene_media)", re.compile(r"convene")),
]
KERNEL = "kernel (syscalls, wake-ups, UDP stack)"
OTHER = "other (std, hashbrown, ICE, DTLS, libc)"


def group(dso, kind, sym):
    if kind == "k" or dso.startswith("[kernel"):
        return KERNEL
    return next((name for name, pattern in GROUPS if pattern.search(sym)), OTHER)


def main(path):
    report = subprocess.run(
        ["perf", "report", "-i", path, "--no-children", "--sort", "dso,symbol", "--stdio",
         "-g", "none", "--percent-limit", "0"],
        capture_output=True, text=True, check=True).stdout
    share = collections.Counter()
    tops = collections.defaultdict(list)
    for line in report.splitlines():
        m = re.match(r"\s+([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)$", line)
        if not m:
            continue
        pct, dso, kind, sym = float(m[1]), m[2], m[3], m[4].strip()
        g = group(dso, kind, sym)
        share[g] += pct
        tops[g].append((pct, sym[:80]))
    for g, pct in share.most_common():
        top = "; ".join(f"{s} {p:.1f}%" for p, s in sorted(tops[g], reverse=True)[:4])
        print(f"{pct:5.1f}%  {g}: {top}")


if __name__ == "__main__":
    main(sys.argv[1])
