"""Checks every query of the Grafana dashboards in charts/convene/dashboards/ (run by
ops/check-dashboards.sh, which passes promtool's path).

Offline (always):
  1. the JSON is what ops/dashboards/generate.py writes;
  2. every metric a query names is exported by Convene's code, or is a documented external
     series (ops/tools/metrics.py);
  3. every panel query and every variable's label_values() selector returns at least one
     series from a fixture with a series for every metric Convene exports (labelled as the
     chart's monitors label them): each query becomes an alert `count(<query>)` that
     `promtool test rules` must see firing. A typo in a name, label or function fails here.
Live (when CONVENE_PROM_URL is set, e.g. http://127.0.0.1:9090): every query must also return
a series from that Prometheus (the cluster tier's).

  python3 ops/dashboards/check.py PROMTOOL WORKDIR
  python3 ops/dashboards/check.py fake-targets WORKDIR PORT   (for ops/check-dashboards.sh --live-selftest)
  python3 ops/dashboards/check.py live URL                   (only the live check: the cluster tier's)
Standard library only.
"""
import json
import os
import re
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.dont_write_bytecode = True  # no __pycache__ in the work tree
sys.path.insert(0, str(REPO / "ops" / "tools"))
import metrics  # noqa: E402

BOARDS = REPO / "charts" / "convene" / "dashboards"
STEP = "15s"
STEPS = 240  # one hour of samples
EVAL = "30m"


def substitute(expr):
    """Grafana's variables. A variable on "All" sends `.*`; `.+` here, so a matcher on a
    misspelt label (which `.*` would also match) selects nothing and fails the check."""
    e = expr.replace("$__rate_interval", "1m").replace("$__interval", "30s").replace("$__range", "1h")
    e = re.sub(r"\$\{?(namespace|shard|pool)\}?", ".+", e)
    if "$" in e:
        raise SystemExit(f"unhandled Grafana variable in: {expr}")
    return e


def queries():
    """[(where, promql)] for every panel target and every label_values() variable."""
    out = []
    for path in sorted(BOARDS.glob("*.json")):
        board = json.loads(path.read_text())

        def walk(panels):
            for p in panels:
                for t in p.get("targets", []):
                    out.append((f"{path.name}: {p['title']} [{t['refId']}]", substitute(t["expr"])))
                walk(p.get("panels", []))

        walk(board["panels"])
        for v in board.get("templating", {}).get("list", []):
            if v.get("type") != "query":
                continue
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            m = re.fullmatch(r"\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*", q)
            if not m:
                raise SystemExit(f"{path.name}: variable {v['name']}: only label_values(selector, label) is checked")
            sel, label = substitute(m.group(1)), m.group(2)
            sel = sel[:-1] + f', {label}!=""}}' if sel.endswith("}") else sel + f'{{{label}!=""}}'
            out.append((f"{path.name}: variable ${v['name']}", sel))
    return out


# ---- the fixture: a series for every metric Convene exports --------------------------------------
BRIDGE = {"namespace": "meet", "component": "bridge", "shard": "alpha", "pool": "main", "container": "bridge"}
SIGNALING = {"namespace": "meet", "component": "signaling", "shard": "alpha", "pool": "alpha",
             "pod": "alpha-signaling-0", "container": "signaling", "image": "convene-media:0.1.0"}
OPERATOR = {"namespace": "convene-system", "component": "operator", "pod": "convene-operator-0"}
BRIDGE_PODS = [("main-bridge-0", "convene-media:0.1.0"), ("main-bridge-1", "convene-media:0.1.0")]
KINDS = ["Shard", "BridgePool", "TurnPool", "RecorderPool"]

# Labels a metric carries itself (its Vec labels), as the code sets them.
OWN_LABELS = {
    "convene_bridge_dropped_packets_total": [{"reason": "flood"}],
    "convene_bridge_advertised_address_info": [{"address": "192.0.2.10", "source": "node"}],
    "convene_signaling_auth_failures_total": [{"reason": "bad_token"}],
    "convene_signaling_refusals_total": [{"code": "room_full"}],
    "convene_signaling_disconnects_total": [{"reason": "slow_consumer"}],
    "convene_signaling_queued_frames": [{"peer": "client"}, {"peer": "bridge"}],
    "convene_signaling_queued_bytes": [{"peer": "client"}, {"peer": "bridge"}],
    "convene_signaling_ice_total": [
        {"bridge": "main-bridge-0", "outcome": "connected", "candidate": "host"},
        {"bridge": "main-bridge-0", "outcome": "connected", "candidate": "relay"},
        {"bridge": "main-bridge-1", "outcome": "failed", "candidate": "none"},
    ],
    "convene_operator_reconciles_total": [{"kind": k} for k in KINDS],
    "convene_operator_reconcile_errors_total": [{"kind": k, "reason": "api_409"} for k in KINDS],
    "convene_operator_reconcile_duration_seconds": [{"kind": k} for k in KINDS],
}
POOL_GAUGE = {"namespace": "meet", "pool": "main"}  # the operator's per-pool gauges (honorLabels)
GAUGE_VALUES = {"convene_bridge_stress_level": "0.5", "convene_bridge_packet_loss_ratio": "0.01",
                "convene_bridge_draining": "0", "convene_operator_leader": "1"}


def series_line(name, labels, values):
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"      - series: '{name}{{{inner}}}'\n        values: '{values}'\n"


KSM = {"job": "kube-state-metrics", "instance": "kube-state-metrics"}


def fixture_series():
    """[(name, labels, promtool values, target)]: a series for every metric Convene exports, as
    scraped from `target` (the target's labels; None for `up`, which Prometheus writes)."""
    out = []
    for name, kind in sorted(metrics.exported().items()):
        if name.startswith("convene_bridge_"):
            targets = [dict(BRIDGE, pod=p, image=i) for p, i in BRIDGE_PODS]
        elif name.startswith("convene_signaling_"):
            targets = [dict(SIGNALING)]
        elif name.startswith("convene_operator_"):
            targets = [dict(OPERATOR)]
        else:
            raise SystemExit(f"fixture: no target labels for {name}")
        for t in targets:
            for own in OWN_LABELS.get(name, [{}]):
                labels = dict(t, **own)
                if name.startswith("convene_operator_bridgepool_"):
                    labels.update(POOL_GAUGE)
                if kind == "histogram":
                    for le, per_step in (("0.001", 1), ("0.05", 5), ("1", 9), ("+Inf", 10)):
                        out.append((name + "_bucket", dict(labels, le=le), f"0+{per_step}x{STEPS}", t))
                    out.append((name + "_count", labels, f"0+10x{STEPS}", t))
                    out.append((name + "_sum", labels, f"0+0.2x{STEPS}", t))
                elif name.endswith("_total"):
                    out.append((name, labels, f"0+10x{STEPS}", t))
                else:
                    out.append((name, labels, f"{GAUGE_VALUES.get(name, '3')}x{STEPS}", t))
    # Series from elsewhere: `up` of every target, kube-state-metrics for the TURN dashboard.
    for p, i in BRIDGE_PODS:
        out.append(("up", dict(BRIDGE, pod=p, image=i), f"1x{STEPS}", None))
    out.append(("up", dict(SIGNALING), f"1x{STEPS}", None))
    out.append(("up", dict(OPERATOR), f"1x{STEPS}", None))
    relay = {"namespace": "meet", "statefulset": "relay-turn"}
    out.append(("kube_statefulset_replicas", relay, f"2x{STEPS}", KSM))
    out.append(("kube_statefulset_status_replicas_ready", relay, f"2x{STEPS}", KSM))
    return out


def fixture():
    """(promtool input_series YAML text, set of metric names in it)."""
    series = fixture_series()
    return "".join(series_line(n, l, v) for n, l, v, _ in series), {n for n, _, _, _ in series}


def fake_targets(work, port):
    """For the live self-test: the fixture as one exposition file per pod under work/www/
    (served from 127.0.0.1:port), file_sd target groups that carry the `__meta_kubernetes_*`
    labels Kubernetes discovery would give those pods (plus two pods the config must drop),
    and work/prometheus.yml: ops/prometheus/prometheus-convene.yml with file_sd instead of
    kubernetes_sd, so its relabeling makes the target labels, plus a kube-state-metrics job.
    Counters and histograms are served at their value after 10 steps (constant: queries still
    return a series)."""
    files = {}
    for name, labels, values, target in fixture_series():
        if target is None:
            continue
        key = target.get("pod") or target["job"]
        head = values.split("x")[0]
        start, _, step = head.partition("+")
        value = float(start) + 10 * float(step or 0)
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        files.setdefault(key, (target, []))[1].append(f"{name}{{{inner}}} {value:g}")
    www = work / "www"
    www.mkdir(parents=True, exist_ok=True)
    groups = []
    for key, (target, lines) in sorted(files.items()):
        (www / key).write_text("\n".join(lines) + "\n")
        if key == KSM["job"]:
            continue
        meta = {
            "__meta_kubernetes_namespace": target["namespace"],
            "__meta_kubernetes_pod_name": target["pod"],
            "__meta_kubernetes_pod_phase": "Running",
            "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
            "__meta_kubernetes_pod_annotation_prometheus_io_port": str(port),
            "__meta_kubernetes_pod_annotation_prometheus_io_path": f"/{key}",
        }
        if target["component"] == "operator":
            meta["__meta_kubernetes_pod_label_app_kubernetes_io_name"] = "convene-operator"
            meta["__meta_kubernetes_pod_container_name"] = "operator"
        else:
            meta.update({
                "__meta_kubernetes_pod_label_app_kubernetes_io_name": "convene",
                "__meta_kubernetes_pod_label_app_kubernetes_io_managed_by": "convene-operator",
                "__meta_kubernetes_pod_label_app_kubernetes_io_component": target["component"],
                "__meta_kubernetes_pod_label_convene_dev_shard": target["shard"],
                "__meta_kubernetes_pod_label_convene_dev_owner": target["pool"],
                "__meta_kubernetes_pod_container_name": target["container"],
                "__meta_kubernetes_pod_container_image": target["image"],
            })
        # A pod with several container ports is one discovered target per port: the bridge's
        # media and TCP-fallback ports become the same scrape target.
        ports = [10000, 4443, 8080] if target["component"] == "bridge" else [8080]
        for p in ports:
            groups.append({"targets": [f"127.0.0.1:{p}"], "labels": meta})
    # To be dropped: a Convene pod without the scrape annotation, and someone else's pod with it.
    groups.append({"targets": [f"127.0.0.1:{port}"], "labels": {
        "__meta_kubernetes_namespace": "meet", "__meta_kubernetes_pod_name": "quiet-bridge-0",
        "__meta_kubernetes_pod_phase": "Running",
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": "convene",
        "__meta_kubernetes_pod_label_app_kubernetes_io_managed_by": "convene-operator"}})
    groups.append({"targets": [f"127.0.0.1:{port}"], "labels": {
        "__meta_kubernetes_namespace": "meet", "__meta_kubernetes_pod_name": "web-0",
        "__meta_kubernetes_pod_phase": "Running",
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": "web",
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
        "__meta_kubernetes_pod_annotation_prometheus_io_port": str(port)}})
    (work / "targets.json").write_text(json.dumps(groups, indent=1))
    config = (REPO / "ops" / "prometheus" / "prometheus-convene.yml").read_text()
    for old, new in (
        ("    kubernetes_sd_configs:\n      - role: pod\n",
         f"    file_sd_configs:\n      - files: [{json.dumps(str(work / 'targets.json'))}]\n"),
        ("  scrape_interval: 15s\n", "  scrape_interval: 1s\n"),
        ("  evaluation_interval: 15s\n", "  evaluation_interval: 1s\n"),
        ("  - ../../charts/convene/files/alerts.yaml\n",
         f"  - {json.dumps(str(REPO / 'charts' / 'convene' / 'files' / 'alerts.yaml'))}\n"),
    ):
        if old not in config:
            raise SystemExit(f"ops/prometheus/prometheus-convene.yml no longer has {old!r}")
        config = config.replace(old, new)
    config += (f"  - job_name: kube-state-metrics\n    honor_labels: true\n    metrics_path: /{KSM['job']}\n"
               f"    fallback_scrape_protocol: PrometheusText0.0.4\n"
               f"    static_configs:\n      - targets: ['127.0.0.1:{port}']\n")
    config = config.replace("  - job_name: convene\n",
                            "  - job_name: convene\n    fallback_scrape_protocol: PrometheusText0.0.4\n")
    (work / "prometheus.yml").write_text(config)
    # What the relabeling must produce: one `up` per pod, labelled like the monitors label it.
    expect = [f'up{{component="{t["component"]}",namespace="{t["namespace"]}",pod="{t["pod"]}"'
              + (f',shard="{t["shard"]}",pool="{t["pool"]}",image="{t["image"]}"' if "shard" in t else "")
              + "}" for key, (t, _) in sorted(files.items()) if key != KSM["job"]]
    (work / "expect.txt").write_text("\n".join(expect) + "\n")


def offline(promtool, work):
    qs = queries()
    errors = metrics.check_exprs(qs)
    for e in errors:
        print(e, file=sys.stderr)
    fx, names = fixture()
    unknown = names - metrics.known()
    if unknown:
        print(f"fixture names series no component exports: {sorted(unknown)}", file=sys.stderr)
        return 1
    work.mkdir(parents=True, exist_ok=True)
    rules = {"groups": [{"name": "dashboard-queries", "rules": [
        {"alert": f"Query{i:03d}", "expr": f"count({q})", "labels": {"query": str(i)}}
        for i, (_, q) in enumerate(qs)]}]}
    (work / "queries.rules.json").write_text(json.dumps(rules, indent=1))
    index = "\n".join(f"  Query{i:03d}  {w}" for i, (w, _) in enumerate(qs))
    (work / "queries.index.txt").write_text(index + "\n")
    test = [f"rule_files: [queries.rules.json]\nevaluation_interval: {STEP}\ntests:\n",
            f"  - name: every dashboard query returns a series from the fixture\n    interval: {STEP}\n",
            "    input_series:\n", fx, "    alert_rule_test:\n"]
    for i, _ in enumerate(qs):
        test.append(f"      - eval_time: {EVAL}\n        alertname: Query{i:03d}\n"
                    f"        exp_alerts: [{{exp_labels: {{query: \"{i}\"}}}}]\n")
    (work / "queries.test.yaml").write_text("".join(test))
    rc = subprocess.run([promtool, "check", "rules", str(work / "queries.rules.json")]).returncode
    if rc == 0:
        rc = subprocess.run([promtool, "test", "rules", str(work / "queries.test.yaml")]).returncode
    if rc != 0:
        print("failed queries are named QueryNNN above; which panel each is:\n" + index, file=sys.stderr)
    print(f"dashboards: {len(qs)} queries of {len(list(BOARDS.glob('*.json')))} dashboards over "
          f"{len(names)} metrics; metric-name errors: {len(errors)}", file=sys.stderr)
    return 1 if errors or rc else 0


def live(url):
    """Every query returns a series from a running Prometheus."""
    empty = 0
    for where, q in queries():
        data = urllib.parse.urlencode({"query": q}).encode()
        with urllib.request.urlopen(f"{url.rstrip('/')}/api/v1/query", data=data, timeout=30) as r:
            body = json.load(r)
        if body.get("status") != "success":
            print(f"ERROR {where}: {body}", file=sys.stderr)
            empty += 1
        elif not body["data"]["result"]:
            print(f"NO DATA {where}: {q}", file=sys.stderr)
            empty += 1
    print(f"live {url}: {len(queries()) - empty} queries with data, {empty} without", file=sys.stderr)
    return 1 if empty else 0


def main(argv):
    if argv[:1] == ["fake-targets"]:
        fake_targets(Path(argv[1]), int(argv[2]))
        return 0
    if argv[:1] == ["live"] and len(argv) == 2:
        return live(argv[1])
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    promtool, work = argv[0], Path(argv[1])
    rc = subprocess.run([sys.executable, str(HERE / "generate.py"), "--check"]).returncode
    rc |= offline(promtool, work)
    if os.environ.get("CONVENE_PROM_URL"):
        rc |= live(os.environ["CONVENE_PROM_URL"])
    return 1 if rc else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
