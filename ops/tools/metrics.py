"""The metric names Convene's code exports, and the metric names a PromQL expression uses.

Used by ops/promtool.sh and ops/check-dashboards.sh so alerts and dashboards only name metrics
that exist:
  python3 ops/tools/metrics.py exported            # one name a line (histograms: _bucket/_sum/_count)
  python3 ops/tools/metrics.py check-alerts FILE   # every metric an alert expr names exists
Standard library only.
"""
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Series that are not Convene's own, each with where it comes from. Alerts and dashboards may
# name these and nothing else outside `exported()`.
EXTERNAL = {
    "up": "Prometheus itself, one per scrape target",
    "container_cpu_usage_seconds_total": "cAdvisor (kubelet /metrics/cadvisor)",
    "kube_pod_container_resource_limits": "kube-state-metrics",
    "kube_pod_info": "kube-state-metrics",
    "kube_node_status_capacity": "kube-state-metrics",
    "kube_pod_container_status_restarts_total": "kube-state-metrics",
    "kube_statefulset_replicas": "kube-state-metrics",
    "kube_statefulset_status_replicas_ready": "kube-state-metrics",
}

HIST_SUFFIXES = ("_bucket", "_sum", "_count")


def _code(path):
    text = (REPO / path).read_text()
    # Unit tests below #[cfg(test)] quote metric text; only definitions count.
    return text.split("#[cfg(test)]", 1)[0]


def exported():
    """{name: 'histogram' | 'other'} for every series family the Rust code registers."""
    names = {}
    # convene-bridge: names are constants of convene_proto::load::metric, registered in
    # media/src/metrics.rs (histograms through HistogramOpts::new(metric::X ...)).
    consts = dict(re.findall(r'pub const ([A-Z_]+): &str = "([a-z_:][a-z0-9_:]*)";', _code("proto/src/load.rs")))
    media = _code("media/src/metrics.rs")
    hist = set(re.findall(r"HistogramOpts::new\(\s*metric::([A-Z_]+)", media))
    for const in set(re.findall(r"metric::([A-Z_]+)", media)):
        if const not in consts:
            raise SystemExit(f"media/src/metrics.rs uses metric::{const}, not in proto/src/load.rs")
        names[consts[const]] = "histogram" if const in hist else "other"
    # signaling and operator: a registry prefix plus literal names, the first argument of a
    # constructor or helper call; the help text is the second.
    for path in ("signaling/src/metrics.rs", "operator/src/metrics.rs"):
        code = _code(path)
        prefix = re.search(r'new_custom\(\s*Some\("([a-z_]+)"', code).group(1)
        hist = set(re.findall(r'HistogramOpts::new\(\s*"([a-z][a-z0-9_]*)"', code))
        for n in re.findall(r'\(\s*"([a-z][a-z0-9_]*)"\s*,\s*"', code):
            if n == "invalid":  # signaling's fallback for a name the registry refused
                continue
            names[f"{prefix}_{n}"] = "histogram" if n in hist else "other"
    return names


def exported_series_names():
    out = set()
    for n, kind in exported().items():
        if kind == "histogram":
            out.update(n + s for s in HIST_SUFFIXES)
        else:
            out.add(n)
    return out


KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "inf", "nan", "atan2", "start", "end",
}


def promql_metric_names(expr):
    """Metric names a PromQL expression selects (a lexer, not a parser: enough for our rules)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)  # strings
    e = re.sub(r"\{[^}]*\}", "", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)  # ranges and subqueries
    # label lists of grouping and matching modifiers
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"#[^\n]*", "", e)
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", e):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in KEYWORDS:
            continue
        if re.fullmatch(r"\d.*", word):
            continue
        names.add(word)
    return names


def known():
    return exported_series_names() | set(EXTERNAL)


def check_exprs(exprs):
    """[(where, expr)] -> list of error strings for names neither exported nor external."""
    ok = known()
    errors = []
    for where, expr in exprs:
        for n in sorted(promql_metric_names(expr) - ok):
            errors.append(f"{where}: metric {n!r} is exported by no Convene component "
                          f"(and is not one of the external series in ops/tools/metrics.py)")
    return errors


def alert_exprs(path):
    """(alert name, expr) of a rule file, read without a YAML library: `expr: |` blocks."""
    lines = Path(path).read_text().split("\n")
    out, name, i = [], None, 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"\s*- (?:alert|record): (\S+)", line)
        if m:
            name = m.group(1)
        m = re.match(r"(\s*)expr: (.*)$", line)
        if m:
            indent, rest = len(m.group(1)), m.group(2).strip()
            if rest in ("|", "|-", ">", ">-"):
                body = []
                i += 1
                while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                    body.append(lines[i])
                    i += 1
                out.append((name, "\n".join(body)))
                continue
            out.append((name, rest.strip("'\"")))
        i += 1
    return out


def main(argv):
    if argv[:1] == ["exported"]:
        for n in sorted(exported_series_names()):
            print(n)
        return 0
    if argv[:1] == ["check-alerts"]:
        exprs = []
        for p in argv[1:]:
            exprs += [(f"{p}: {n}", e) for n, e in alert_exprs(p)]
        if not exprs:
            print("no alert expressions found", file=sys.stderr)
            return 1
        errors = check_exprs(exprs)
        for e in errors:
            print(e, file=sys.stderr)
        used = set().union(*(promql_metric_names(e) for _, e in exprs))
        print(f"metric names: {len(exprs)} expressions use {len(used)} metrics, "
              f"{len(used - set(EXTERNAL))} of them Convene's; {len(errors)} unknown", file=sys.stderr)
        return 1 if errors else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
