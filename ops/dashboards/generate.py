"""Writes Convene's Grafana dashboards, charts/convene/dashboards/*.json (the source of truth is
this file: edit here, run `python3 ops/dashboards/generate.py`; ops/check-dashboards.sh fails
when the JSON is out of date, and evaluates every query).

Only metrics Convene exports (plus `up` and the kube-state-metrics series of the TURN
dashboard, said on its panels). Target labels as in charts/convene/files/alerts.yaml:
namespace, pod, component, shard, pool, image. Standard library only.

  python3 ops/dashboards/generate.py           # write the JSON
  python3 ops/dashboards/generate.py --check   # exit 1 if a file differs
"""
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "charts" / "convene" / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
RI = "$__rate_interval"


class Board:
    def __init__(self, uid, title, description, variables):
        self.uid, self.title, self.description = uid, title, description
        self.variables = variables
        self.panels = []
        self.y = 0
        self.x = 0
        self.next_id = 1

    def row(self, title):
        if self.x:
            self.y += 8
            self.x = 0
        self.panels.append({"type": "row", "title": title, "id": self._id(), "collapsed": False,
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": []})
        self.y += 1

    def _id(self):
        i = self.next_id
        self.next_id += 1
        return i

    def _place(self, w=12, h=8):
        if self.x + w > 24:
            self.x = 0
            self.y += h
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        if self.x >= 24:
            self.x = 0
            self.y += h
        return pos

    def graph(self, title, targets, unit="short", description="", w=12, stack=False, thresholds=None,
              minimum=None, maximum=None):
        """targets: [(expr, legend)]"""
        defaults = {"unit": unit, "custom": {"lineWidth": 1, "fillOpacity": 10 if not stack else 40,
                                             "stacking": {"mode": "normal" if stack else "none"},
                                             "showPoints": "never", "spanNulls": False}}
        if minimum is not None:
            defaults["min"] = minimum
        if maximum is not None:
            defaults["max"] = maximum
        if thresholds:
            defaults["thresholds"] = {"mode": "absolute", "steps": [{"color": "green", "value": None}] + [
                {"color": c, "value": v} for v, c in thresholds]}
            defaults["custom"]["thresholdsStyle"] = {"mode": "line"}
        self.panels.append({
            "type": "timeseries", "title": title, "description": description, "id": self._id(),
            "datasource": DS, "gridPos": self._place(w),
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "desc"}},
            "targets": [{"datasource": DS, "expr": e, "legendFormat": l, "refId": chr(65 + i), "range": True}
                        for i, (e, l) in enumerate(targets)],
        })

    def table(self, title, expr, description="", w=24):
        self.panels.append({
            "type": "table", "title": title, "description": description, "id": self._id(),
            "datasource": DS, "gridPos": self._place(w),
            "fieldConfig": {"defaults": {}, "overrides": []},
            "options": {"showHeader": True},
            "transformations": [{"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True,
                                                                                 "__name__": True}}}],
            "targets": [{"datasource": DS, "expr": expr, "refId": "A", "format": "table", "instant": True,
                         "range": False}],
        })

    def text(self, title, content, w=24, h=5):
        if self.x:
            self.y += 8
            self.x = 0
        self.panels.append({"type": "text", "title": title, "id": self._id(),
                            "gridPos": {"h": h, "w": w, "x": 0, "y": self.y},
                            "options": {"mode": "markdown", "content": content}})
        self.y += h

    def json(self):
        templating = [{"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
                       "current": {}, "hide": 0, "refresh": 1, "regex": "", "options": []}]
        for name, label, query in self.variables:
            templating.append({
                "name": name, "label": label, "type": "query", "datasource": DS,
                "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
                "definition": query, "refresh": 2, "includeAll": True, "multi": True, "allValue": ".*",
                "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
                "hide": 0, "sort": 1, "regex": "", "options": [],
            })
        return {
            "uid": self.uid, "title": self.title, "description": self.description,
            "tags": ["convene"], "editable": True, "graphTooltip": 1, "schemaVersion": 39,
            "time": {"from": "now-3h", "to": "now"}, "refresh": "30s", "timezone": "",
            "annotations": {"list": []}, "links": [], "fiscalYearStartMonth": 0, "liveNow": False,
            "templating": {"list": templating}, "panels": self.panels, "version": 1,
        }


def shard():
    S = 'namespace=~"$namespace", shard=~"$shard"'
    b = Board("convene-shard", "Convene / Shard",
              "One shard: participants, conferences, joins and media quality (signaling and its bridges).",
              [("namespace", "Namespace", "label_values(convene_signaling_participants, namespace)"),
               ("shard", "Shard", 'label_values(convene_signaling_participants{namespace=~"$namespace"}, shard)')])
    b.row("Participants and conferences")
    b.graph("Participants", [(f"sum by (namespace, shard) (convene_signaling_participants{{{S}}})", "{{shard}}")],
            description="Participants in rooms (signaling).")
    b.graph("Rooms and conferences", [
        (f"sum by (namespace, shard) (convene_signaling_rooms{{{S}}})", "{{shard}} rooms (signaling)"),
        (f"sum by (namespace, shard) (convene_bridge_conferences{{{S}}})", "{{shard}} conferences (bridges)"),
    ])
    b.graph("Connections and lobby", [
        (f"sum by (namespace, shard) (convene_signaling_websocket_connections{{{S}}})", "{{shard}} WebSockets"),
        (f"sum by (namespace, shard) (convene_signaling_lobby_waiting{{{S}}})", "{{shard}} waiting in lobbies"),
    ])
    b.graph("Largest conference", [
        (f"max by (namespace, shard) (convene_bridge_largest_conference{{{S}}})", "{{shard}}")],
        description="Endpoints in the largest conference on any bridge of the shard.")
    b.row("Joins")
    b.graph("Joins", [(f"sum by (namespace, shard) (rate(convene_signaling_joins_total{{{S}}}[{RI}]))", "{{shard}}")],
            unit="reqps")
    joins = f"sum by (namespace, shard) (rate(convene_signaling_joins_total{{{S}}}[{RI}]))"
    b.graph("Join success", [(
        f"{joins} / ({joins}"
        f" + (sum by (namespace, shard) (rate(convene_signaling_auth_failures_total{{{S}}}[{RI}])) or {joins} * 0)"
        f" + sum by (namespace, shard) (rate(convene_signaling_allocation_failures_total{{{S}}}[{RI}])))",
        "{{shard}}")], unit="percentunit", minimum=0, maximum=1,
        description="Joins against joins + refused tokens/guests + failed endpoint allocations.")
    b.graph("Refused tokens and guests", [
        (f"sum by (namespace, shard, reason) (rate(convene_signaling_auth_failures_total{{{S}}}[{RI}]))",
         "{{shard}} {{reason}}")], unit="reqps", description="No series until the first refusal.")
    b.graph("Errors sent to clients and allocation failures", [
        (f"sum by (namespace, shard, code) (rate(convene_signaling_refusals_total{{{S}}}[{RI}]))", "{{shard}} {{code}}"),
        (f"sum by (namespace, shard) (rate(convene_signaling_allocation_failures_total{{{S}}}[{RI}]))",
         "{{shard}} allocation failed"),
    ], unit="reqps")
    b.graph("Connections closed by signaling", [
        (f"sum by (namespace, shard, reason) (rate(convene_signaling_disconnects_total{{{S}}}[{RI}]))",
         "{{shard}} {{reason}}")], unit="reqps")
    b.graph("Signaling send queues", [
        (f"sum by (namespace, shard, peer) (convene_signaling_queued_frames{{{S}}})", "{{shard}} {{peer}} frames"),
    ])
    b.row("Media quality")
    b.graph("Packet loss reported by peers", [
        (f"max by (namespace, pod) (convene_bridge_packet_loss_ratio{{{S}}})", "{{pod}}")],
        unit="percentunit", thresholds=[(0.05, "red")])
    b.graph("Round-trip time to endpoints", [
        (f"histogram_quantile(0.5, sum by (namespace, shard, le) (rate(convene_bridge_rtt_seconds_bucket{{{S}}}[{RI}])))",
         "{{shard}} p50"),
        (f"histogram_quantile(0.9, sum by (namespace, shard, le) (rate(convene_bridge_rtt_seconds_bucket{{{S}}}[{RI}])))",
         "{{shard}} p90"),
    ], unit="s", thresholds=[(0.4, "red")])
    b.graph("Forwarding delay (receive to send) p99", [
        (f"histogram_quantile(0.99, sum by (namespace, pod, le) "
         f"(rate(convene_bridge_forward_latency_seconds_bucket{{{S}}}[{RI}])))", "{{pod}}")],
        unit="s", thresholds=[(0.005, "red")])
    b.graph("NACKs and keyframe requests", [
        (f"sum by (namespace, shard) (rate(convene_bridge_nacks_received_total{{{S}}}[{RI}]))", "{{shard}} NACKs received"),
        (f"sum by (namespace, shard) (rate(convene_bridge_nacks_sent_total{{{S}}}[{RI}]))", "{{shard}} NACKs sent"),
        (f"sum by (namespace, shard) (rate(convene_bridge_keyframe_requests_total{{{S}}}[{RI}]))",
         "{{shard}} keyframe requests"),
    ], unit="reqps")
    b.graph("Simulcast layer switches", [
        (f"sum by (namespace, shard) (rate(convene_bridge_layer_switches_total{{{S}}}[{RI}]))", "{{shard}}")],
        unit="reqps")
    b.graph("Dropped input", [
        (f"sum by (namespace, shard, reason) (rate(convene_bridge_dropped_packets_total{{{S}}}[{RI}]))",
         "{{shard}} {{reason}}")], unit="pps", description="No series until the first drop.")
    b.row("Bridges of the shard")
    b.graph("Bridges registered with signaling", [
        (f"sum by (namespace, shard) (convene_signaling_bridges{{{S}}})", "{{shard}}")])
    b.graph("Participants moved to another bridge", [
        (f"sum by (namespace, shard) (increase(convene_signaling_migrations_total{{{S}}}[{RI}]))", "{{shard}}")],
        description="Bridge lost or drain deadline passed.")
    b.graph("Bridge stress", [(f"max by (namespace, pod) (convene_bridge_stress_level{{{S}}})", "{{pod}}")],
            unit="percentunit", minimum=0, maximum=1, thresholds=[(0.8, "red")])
    b.graph("Endpoints per bridge", [(f"sum by (namespace, pod) (convene_bridge_endpoints{{{S}}})", "{{pod}}")],
            stack=True)
    b.row("Clients' connections to the bridges (ICE)")
    ice = "convene_signaling_ice_total"
    b.graph("Peer connections by outcome and candidate type (10 min)", [
        (f"sum by (namespace, shard, outcome, candidate) (increase({ice}{{{S}}}[10m]))", "{{outcome}} {{candidate}}")],
        stack=True,
        description="The web app's report of each peer connection to a bridge: connected (with the type of the "
                    "selected pair's local candidate: relay means through TURN) or failed (ICE failed, or no "
                    "connection within 30 s).")
    b.graph("Share relayed through TURN (15 min)", [
        (f'sum by (namespace, shard) (increase({ice}{{outcome="connected", candidate="relay", {S}}}[15m])) '
         f'/ sum by (namespace, shard) (increase({ice}{{outcome="connected", {S}}}[15m]))', "{{shard}}")],
        unit="percentunit", minimum=0, maximum=1, thresholds=[(0.5, "red")],
        description="Over half: UDP to the bridges is probably blocked for many clients (alert ConveneTurnRelayShareHigh).")
    b.graph("Peer connections per bridge (10 min)", [
        (f'sum by (namespace, shard, bridge) (increase({ice}{{outcome="connected", {S}}}[10m]))', "{{bridge}} connected"),
        (f'sum by (namespace, shard, bridge) (increase({ice}{{outcome="failed", {S}}}[10m]))', "{{bridge}} failed"),
    ], w=24, description="A bridge with failures and nothing connected while others connect: its advertised address "
                         "is wrong or UDP does not reach its node (alert ConveneBridgeIceFailing; the BridgePool's "
                         "Degraded condition says IceFailing).")
    return b


def pool():
    P = 'namespace=~"$namespace", pool=~"$pool"'
    B = f'component="bridge", {P}'
    b = Board("convene-bridge-pool", "Convene / Bridge pool",
              "One BridgePool: its bridges' load and media quality, and the operator's autoscaler.",
              [("namespace", "Namespace", "label_values(convene_bridge_endpoints, namespace)"),
               ("pool", "BridgePool", 'label_values(convene_bridge_endpoints{namespace=~"$namespace"}, pool)')])
    b.row("Load")
    b.graph("Endpoints", [
        (f"sum by (namespace, pod) (convene_bridge_endpoints{{{P}}})", "{{pod}}"),
        (f"max by (namespace, pool) (convene_operator_bridgepool_endpoints{{{P}}})", "{{pool}} (operator's view)"),
    ])
    b.graph("Conferences", [
        (f"sum by (namespace, pod) (convene_bridge_conferences{{{P}}})", "{{pod}}"),
        (f"max by (namespace, pod) (convene_bridge_largest_conference{{{P}}})", "{{pod}} largest"),
    ])
    b.graph("Endpoints per media worker", [
        (f"sum by (namespace, pod, worker) (convene_bridge_worker_endpoints{{{P}}})", "{{pod}} worker {{worker}}")],
        description="A bridge runs a media worker per core it may use; each conference lives whole on one worker. "
                    "One busy worker beside idle ones: one large conference (it cannot be split).")
    b.graph("Conferences per media worker", [
        (f"sum by (namespace, pod, worker) (convene_bridge_worker_conferences{{{P}}})", "{{pod}} worker {{worker}}")],
        description="Conferences the bridge's dispatcher assigns to each worker (bridges with several workers). "
                    "Growing while endpoints do not: conferences not given back to the dispatcher.")
    b.graph("Mbps in", [(f"sum by (namespace, pod) (convene_bridge_bitrate_in_bps{{{P}}}) / 1e6", "{{pod}}")],
            unit="Mbits", stack=True)
    b.graph("Mbps out", [
        (f"sum by (namespace, pod) (convene_bridge_bitrate_out_bps{{{P}}}) / 1e6", "{{pod}}"),
        (f"max by (namespace, pool) (convene_operator_bridgepool_mbps{{{P}}})", "{{pool}} in+out (operator's view)"),
    ], unit="Mbits")
    b.graph("Packets per second", [
        (f"sum by (namespace, pod) (rate(convene_bridge_packets_in_total{{{P}}}[{RI}]))", "{{pod}} in"),
        (f"sum by (namespace, pod) (rate(convene_bridge_packets_out_total{{{P}}}[{RI}]))", "{{pod}} out"),
    ], unit="pps")
    b.graph("Bytes per second", [
        (f"sum by (namespace, pod) (rate(convene_bridge_bytes_in_total{{{P}}}[{RI}]))", "{{pod}} in"),
        (f"sum by (namespace, pod) (rate(convene_bridge_bytes_out_total{{{P}}}[{RI}]))", "{{pod}} out"),
    ], unit="Bps")
    b.graph("Stress", [(f"max by (namespace, pod) (convene_bridge_stress_level{{{P}}})", "{{pod}}")],
            unit="percentunit", minimum=0, maximum=1, thresholds=[(0.8, "red")],
            description="Endpoints or bitrate against the bridge's configured capacity.")
    b.graph("Dropped input", [
        (f"sum by (namespace, pod, reason) (rate(convene_bridge_dropped_packets_total{{{P}}}[{RI}]))",
         "{{pod}} {{reason}}")], unit="pps", description="No series until the first drop.")
    b.row("Quality")
    b.graph("Packet loss reported by peers", [
        (f"max by (namespace, pod) (convene_bridge_packet_loss_ratio{{{P}}})", "{{pod}}")],
        unit="percentunit", thresholds=[(0.05, "red")])
    b.graph("Round-trip time p90", [
        (f"histogram_quantile(0.9, sum by (namespace, pod, le) (rate(convene_bridge_rtt_seconds_bucket{{{P}}}[{RI}])))",
         "{{pod}}")], unit="s", thresholds=[(0.4, "red")])
    b.graph("Forwarding delay p99", [
        (f"histogram_quantile(0.99, sum by (namespace, pod, le) "
         f"(rate(convene_bridge_forward_latency_seconds_bucket{{{P}}}[{RI}])))", "{{pod}}")],
        unit="s", thresholds=[(0.005, "red")])
    b.graph("NACKs and keyframe requests", [
        (f"sum by (namespace, pod) (rate(convene_bridge_nacks_received_total{{{P}}}[{RI}]))", "{{pod}} NACKs received"),
        (f"sum by (namespace, pod) (rate(convene_bridge_keyframe_requests_total{{{P}}}[{RI}]))",
         "{{pod}} keyframe requests"),
    ], unit="reqps")
    b.row("Autoscaler and bridges")
    b.graph("Desired and rendered bridges", [
        (f"max by (namespace, pool) (convene_operator_bridgepool_desired_replicas{{{P}}})", "{{pool}} desired"),
        (f"max by (namespace, pool) (convene_operator_bridgepool_replicas{{{P}}})", "{{pool}} in the StatefulSet"),
    ], description="The autoscaler's decision (or spec.replicas) and the replicas the StatefulSet is given "
                   "(higher while a scale-down drains). Each change is a ScalingDecision Event on the pool.")
    b.graph("Autoscaler decisions", [
        (f"max by (namespace, pool) (changes(convene_operator_bridgepool_desired_replicas{{{P}}}[10m]))", "{{pool}}")],
        description="Changes of the desired replica count in the last 10 minutes.")
    b.graph("Bridges by state", [
        (f"sum by (namespace, pool) (convene_bridge_signaling_connected{{{P}}})", "{{pool}} registered with signaling"),
        (f"sum by (namespace, pool) (convene_bridge_draining{{{P}}})", "{{pool}} draining"),
        (f"max by (namespace, pool) (convene_operator_bridgepool_unknown_bridges{{{P}}})",
         "{{pool}} not answering the operator"),
        (f"sum by (namespace, pool) (up{{{B}}})", "{{pool}} answering Prometheus"),
    ])
    b.graph("Bridge images", [(f"count by (namespace, pool, image) (up{{{B}}})", "{{image}}")],
            description="More than one for long: a rolling update is stuck (alert ConveneBridgePoolMixedVersions).")
    b.table("Advertised addresses", f"max by (namespace, pod, address, source) "
                                    f"(convene_bridge_advertised_address_info{{{P}}})",
            description="The address each bridge gives clients and how it found it (node, static, STUN).")
    return b


def turn():
    b = Board("convene-turn", "Convene / TURN",
              "TurnPools: the operator's reconciles and the coturn relays' readiness.",
              [("namespace", "Namespace", 'label_values(kube_statefulset_replicas{statefulset=~".+-turn"}, namespace)')])
    b.text("What this dashboard cannot show yet",
           "Relay traffic is not exported yet: coturn's Prometheus exporter is not enabled in the "
           "turnserver.conf the operator renders. The share of clients on a relayed path and the allocations "
           "the relays refused come from the web app's ICE reports, counted by signaling. The readiness panels need **kube-state-metrics**. "
           "See ops/README.md.", h=4)
    b.row("Clients through TURN")
    b.graph("Share of clients' connections relayed through TURN (15 min)", [
        ('sum by (namespace, shard) (increase(convene_signaling_ice_total{outcome="connected", candidate="relay", '
         'namespace=~"$namespace"}[15m])) / sum by (namespace, shard) (increase(convene_signaling_ice_total'
         '{outcome="connected", namespace=~"$namespace"}[15m]))', "{{shard}}")],
        unit="percentunit", minimum=0, maximum=1, thresholds=[(0.5, "red")],
        description="Per shard, from the web app's ICE reports (alert ConveneTurnRelayShareHigh over half).")
    b.graph("Relayed connections (10 min)", [
        ('sum by (namespace, shard) (increase(convene_signaling_ice_total{outcome="connected", candidate="relay", '
         'namespace=~"$namespace"}[10m]))', "{{shard}}")])
    b.graph("Allocations the relays refused, as clients report (10 min)", [
        ('sum by (namespace, shard, reason) (increase(convene_signaling_turn_errors_total{namespace=~"$namespace"}'
         '[10m]))', "{{shard}} {{reason}}")],
        description="auth: the relays refuse the credentials signaling mints (secret mismatch); refused: quota or "
                    "capacity; unreachable: no answer (alert ConveneTurnAllocationFailures at 3 in 10 min).")
    b.row("Relays")
    b.graph("Ready relays (kube-state-metrics)", [
        ('sum by (namespace, statefulset) (kube_statefulset_status_replicas_ready{namespace=~"$namespace", '
         'statefulset=~".+-turn"})', "{{statefulset}} ready"),
        ('sum by (namespace, statefulset) (kube_statefulset_replicas{namespace=~"$namespace", statefulset=~".+-turn"})',
         "{{statefulset}} wanted"),
    ])
    b.row("Operator")
    b.graph("TurnPool reconciles", [
        (f'sum by (kind) (rate(convene_operator_reconciles_total{{kind="TurnPool"}}[{RI}]))', "reconciles"),
        (f'sum by (kind, reason) (rate(convene_operator_reconcile_errors_total{{kind="TurnPool"}}[{RI}]))',
         "errors {{reason}}"),
    ], unit="reqps")
    b.graph("TurnPool reconcile time", [
        (f'histogram_quantile(0.99, sum by (le) (rate(convene_operator_reconcile_duration_seconds_bucket'
         f'{{kind="TurnPool"}}[{RI}])))', "p99"),
    ], unit="s")
    return b


def operator():
    b = Board("convene-operator", "Convene / Operator",
              "convene-operator: replicas, leadership, reconciles and the bridge pools it scales.",
              [("namespace", "Operator namespace", 'label_values(up{component="operator"}, namespace)')])
    O = 'component="operator", namespace=~"$namespace"'
    b.row("Replicas")
    b.graph("Replicas answering Prometheus", [(f"sum by (namespace) (up{{{O}}})", "{{namespace}}")])
    b.graph("Leader", [(f"max by (namespace, pod) (convene_operator_leader{{{O}}})", "{{pod}}")],
            description="1 on the replica that holds the leader Lease.")
    b.row("Reconciles")
    b.graph("Reconciles by kind", [
        (f"sum by (kind) (rate(convene_operator_reconciles_total{{{O}}}[{RI}]))", "{{kind}}")], unit="reqps")
    b.graph("Reconcile errors by kind and reason", [
        (f"sum by (kind, reason) (rate(convene_operator_reconcile_errors_total{{{O}}}[{RI}]))", "{{kind}} {{reason}}")],
        unit="reqps", description="No series until the first error.")
    b.graph("Reconcile time p50 and p99", [
        (f"histogram_quantile(0.5, sum by (kind, le) (rate(convene_operator_reconcile_duration_seconds_bucket"
         f"{{{O}}}[{RI}])))", "{{kind}} p50"),
        (f"histogram_quantile(0.99, sum by (kind, le) (rate(convene_operator_reconcile_duration_seconds_bucket"
         f"{{{O}}}[{RI}])))", "{{kind}} p99"),
    ], unit="s")
    b.row("Bridge pools (all namespaces)")
    b.graph("Desired and rendered bridges", [
        ("max by (namespace, pool) (convene_operator_bridgepool_desired_replicas)", "{{namespace}}/{{pool}} desired"),
        ("max by (namespace, pool) (convene_operator_bridgepool_replicas)", "{{namespace}}/{{pool}} rendered"),
    ])
    b.graph("Pool load", [
        ("max by (namespace, pool) (convene_operator_bridgepool_endpoints)", "{{namespace}}/{{pool}} endpoints"),
        ("max by (namespace, pool) (convene_operator_bridgepool_mbps)", "{{namespace}}/{{pool}} Mbps"),
    ])
    b.graph("Bridges not answering the load scrape", [
        ("max by (namespace, pool) (convene_operator_bridgepool_unknown_bridges)", "{{namespace}}/{{pool}}")])
    return b


BOARDS = {"convene-shard.json": shard, "convene-bridge-pool.json": pool, "convene-turn.json": turn,
          "convene-operator.json": operator}


def render():
    return {name: json.dumps(f().json(), indent=2, sort_keys=False) + "\n" for name, f in BOARDS.items()}


def main(argv):
    files = render()
    if argv[:1] == ["--check"]:
        stale = [n for n, text in files.items() if not (OUT / n).exists() or (OUT / n).read_text() != text]
        extra = [p.name for p in OUT.glob("*.json") if p.name not in files]
        for n in stale:
            print(f"charts/convene/dashboards/{n} is out of date: run python3 ops/dashboards/generate.py",
                  file=sys.stderr)
        for n in extra:
            print(f"charts/convene/dashboards/{n} is not generated by ops/dashboards/generate.py", file=sys.stderr)
        return 1 if stale or extra else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for n, text in files.items():
        (OUT / n).write_text(text)
        print(f"wrote charts/convene/dashboards/{n}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
