//! The operator as an admin lives with it (issue 11): run under the chart's own ServiceAccount,
//! off the happy path. Each test reproduces one thing that went wrong silently before. Run
//! through the cluster tier:
//!
//!   e2e/cluster/with-cluster.sh cargo test -p convene-e2e --test admin -- --ignored --test-threads=1
//!
//! Every operator here runs with a token of the chart's ServiceAccount and the chart's Roles
//! (never admin).

use anyhow::anyhow;
use convene_e2e::*;
use convene_operator::crd::{BridgePool, Shard};
use convene_operator::rbac::{self, Scope};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::ListParams;
use kube::{Api, Client};
use std::sync::Once;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(90);

/// CRDs and four nodes of their own (addresses apart from the other suites' nodes), tainted so
/// that the other suites' pods never land on them when the suites share a cluster.
fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        install_crds();
        for i in 0..4u8 {
            let name = format!("admin-{i}");
            add_node(&name, &format!("127.0.4.{}", 2 + i), None, &[("convene.dev/admin", "true")]);
            kubectl_ok(&["taint", "node", &name, "convene.dev/admin=true:NoSchedule", "--overwrite"]);
        }
    });
}

/// A trial-like shard with `replicas` bridges on the admin nodes; `shard_extra` is YAML added
/// to the Shard's spec.
fn apply_trial(ns: &str, shard_extra: &str, replicas: i32) {
    let manifest = format!(
        r#"apiVersion: convene.dev/v1alpha1
kind: Shard
metadata: {{name: trial}}
spec:
  domain: meet.localhost
  signaling:
    placement:
      tolerations: [{{key: convene.dev/admin, operator: Exists}}]
{shard_extra}
---
apiVersion: convene.dev/v1alpha1
kind: BridgePool
metadata: {{name: trial}}
spec:
  shardRef: {{name: trial}}
  replicas: {replicas}
  publicAddress: {{source: NodeInternalIP}}
  ports: {{http: 18180, media: 10400, tcpFallback: 4743}}
  bridge:
    placement:
      nodeSelector: {{convene.dev/admin: "true"}}
      tolerations: [{{key: convene.dev/admin, operator: Exists}}]
"#
    );
    let out = kubectl(&["apply", "-n", ns, "-f", "-"], Some(&manifest));
    assert!(out.status.success(), "apply: {}\n{manifest}", String::from_utf8_lossy(&out.stderr));
}

async fn wait_shard<F: Fn(&Shard) -> bool>(client: &Client, ns: &str, what: &str, f: F) -> Shard {
    eventually(what, TIMEOUT, || async {
        let s: Shard = get(client, ns, "trial").await?.ok_or_else(|| anyhow!("no shard"))?;
        Ok(f(&s).then_some(s))
    })
    .await
}

async fn wait_pool<F: Fn(&BridgePool) -> bool>(client: &Client, ns: &str, what: &str, f: F) -> BridgePool {
    eventually(what, TIMEOUT, || async {
        let p: BridgePool = get(client, ns, "trial").await?.ok_or_else(|| anyhow!("no pool"))?;
        Ok(f(&p).then_some(p))
    })
    .await
}

fn is(conds: &[Condition], t: &str, status: &str) -> bool {
    condition(conds, t).is_some_and(|c| c.status == status)
}

fn events(ns: &str, name: &str, reason: &str) -> Vec<String> {
    let out = kubectl_ok(&[
        "get",
        "events",
        "-n",
        ns,
        "--field-selector",
        &format!("involvedObject.name={name},reason={reason}"),
        "-o",
        "jsonpath={range .items[*]}{.type}|{.message}{\"\\n\"}{end}",
    ]);
    out.lines().map(str::to_string).filter(|l| !l.is_empty()).collect()
}

// ---- item 1: least privilege, proven ----

/// `kubectl auth can-i` as the chart's ServiceAccount.
fn can(sa: &str, sa_ns: &str, verb: &str, resource: &[String], ns: Option<&str>) -> bool {
    let user = format!("--as=system:serviceaccount:{sa_ns}:{sa}");
    let mut args = vec!["auth", "can-i", verb];
    args.extend(resource.iter().map(String::as_str));
    args.push(user.as_str());
    if let Some(ns) = ns {
        args.extend(["-n", ns]);
    }
    let out = kubectl(&args, None);
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

/// Every (verb, resource) the code calls, against the rules the chart renders.
fn missing_rights(chart: &ChartIdentity, watched: &str) -> Vec<String> {
    let mut missing = vec![];
    for need in rbac::NEEDS {
        let res = rbac::can_i_args(need);
        let ns = match need.scope {
            Scope::Cluster => None,
            Scope::Watched => Some(watched),
            Scope::Own => Some(chart.namespace.as_str()),
        };
        for verb in need.verbs {
            if !can(&chart.service_account, &chart.namespace, verb, &res, ns) {
                missing.push(format!("{verb} {} in {ns:?} ({})", res.join(" "), need.why));
            }
        }
    }
    missing
}

#[tokio::test]
#[ignore = "cluster tier: run via e2e/cluster/with-cluster.sh (see .ci/run)"]
async fn the_chart_grants_every_call_the_code_makes_and_a_rollout_finishes_under_it() {
    setup();
    // Namespaced install (watchNamespaces) and cluster-wide install: both grant every call.
    let _lp = fresh_namespace("lp");
    let _lp_system = fresh_namespace("lp-system");
    let namespaced = install_chart_rbac("op-lp", "lp", &["lp"]);
    let missing = missing_rights(&namespaced, "lp");
    assert!(missing.is_empty(), "watchNamespaces install lacks:\n{}", missing.join("\n"));
    let wide = install_chart_rbac("lp-all", "lp-system", &[]);
    let missing = missing_rights(&wide, "lp");
    assert!(missing.is_empty(), "cluster-wide install lacks:\n{}", missing.join("\n"));
    // And nothing the code never does.
    for (verb, res) in [("update", "secrets"), ("delete", "secrets"), ("patch", "nodes"), ("delete", "nodes")]
    {
        let r = [res.to_string()];
        assert!(!can(&wide.service_account, "lp-system", verb, &r, Some("lp")), "{verb} {res} is granted");
    }
    let roles = ["clusterroles.rbac.authorization.k8s.io".to_string()];
    assert!(!can(&wide.service_account, "lp-system", "create", &roles, None));

    // The cluster-wide operator, as the chart runs it, rolls a bridge pool to a new template:
    // that deletes drained pods, which the chart did not allow before.
    let client = client().await;
    let op = Operator::start_as(&wide, None, "op-lp", "convene-operator", 15).unwrap();
    apply_trial("lp", "", 2);
    wait_pool(&client, "lp", "two bridges ready", |p| {
        p.status.as_ref().is_some_and(|s| s.ready_replicas == 2) && is(&p.conditions(), "Ready", "True")
    })
    .await;
    let before: StatefulSet = get(&client, "lp", "trial-bridge").await.unwrap().unwrap();
    let old_rev = before.status.unwrap().update_revision.unwrap();
    kubectl_ok(&[
        "patch",
        "-n",
        "lp",
        "bridgepool/trial",
        "--type=merge",
        "-p",
        r#"{"spec":{"bridge":{"logLevel":"debug"}}}"#,
    ]);
    let started = Instant::now();
    let dump = tokio::spawn(async {
        tokio::time::sleep(Duration::from_secs(100)).await;
        println!("{}", kubectl_ok(&["get", "-n", "lp", "bridgepool/trial", "-o", "yaml"]));
        println!("{}", kubectl_ok(&["get", "-n", "lp", "pods,events", "-o", "wide"]));
    });
    eventually("both bridges replaced with the new template", Duration::from_secs(150), || async {
        let sts: StatefulSet = get(&client, "lp", "trial-bridge").await?.ok_or_else(|| anyhow!("no sts"))?;
        let rev = sts.status.and_then(|s| s.update_revision).unwrap_or_default();
        if rev == old_rev {
            return Ok(None);
        }
        let pods = Api::<Pod>::namespaced(client.clone(), "lp")
            .list(
                &ListParams::default()
                    .labels("app.kubernetes.io/instance=trial,app.kubernetes.io/component=bridge"),
            )
            .await?;
        let all_new = pods.items.len() == 2
            && pods.items.iter().all(|p| {
                p.metadata.labels.as_ref().and_then(|l| l.get("controller-revision-hash")) == Some(&rev)
            });
        let p: BridgePool = get(&client, "lp", "trial").await?.ok_or_else(|| anyhow!("no pool"))?;
        Ok((all_new && is(&p.conditions(), "Progressing", "False")).then_some(()))
    })
    .await;
    dump.abort();
    println!("rolling update under the chart's RBAC finished in {:.1} s", started.elapsed().as_secs_f64());
    let log = std::fs::read_to_string(&op.log).unwrap();
    assert!(!log.contains("forbidden"), "no Forbidden answer in the operator log");
    drop(op);
    // Remove the pool while an operator can still run its finalizer.
    let op = Operator::start_as(&wide, None, "op-lp2", "convene-operator", 15).unwrap();
    delete_namespace("lp");
    drop(op);
    delete_namespace("lp-system");
}

// ---- item 2: every failure in status and Events ----

const DENY_PDB: &str = r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: convene-e2e-no-pdb}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups: [policy]
      apiVersions: [v1]
      operations: [CREATE, UPDATE]
      resources: [poddisruptionbudgets]
  validations:
  - expression: "false"
    message: PodDisruptionBudgets are managed by the platform team
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: convene-e2e-no-pdb}
spec:
  policyName: convene-e2e-no-pdb
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels: {kubernetes.io/metadata.name: applyfail}
"#;

#[tokio::test]
#[ignore = "cluster tier: run via e2e/cluster/with-cluster.sh (see .ci/run)"]
async fn a_child_the_api_server_refuses_is_in_status_and_a_warning_event() {
    setup();
    let ns = "applyfail";
    let _ns = fresh_namespace(ns);
    let client = client().await;
    let _op = Operator::start(ns, "op-a", "convene-operator", 15).unwrap();
    // Passes admission, refused when the operator applies the Ingress.
    apply_trial(ns, "  ingress: {annotations: {\"bad key!\": \"x\"}}", 1);
    let s = wait_shard(&client, ns, "Shard Degraded with ApplyFailed", |s| {
        condition(&s.conditions(), "Degraded")
            .is_some_and(|c| c.status == "True" && c.reason == "ApplyFailed")
    })
    .await;
    let st = s.status.clone().unwrap();
    let msg = &condition(&st.conditions, "Degraded").unwrap().message;
    assert!(
        msg.contains("Ingress trial") && msg.contains("bad key!"),
        "names the child and the API's message: {msg}"
    );
    assert_eq!(st.observed_generation, s.metadata.generation, "the status is written");
    assert_eq!(st.url.as_deref(), Some("http://meet.localhost/"));
    // Unrelated conditions keep being computed: the signaling pod and the bridge still come up.
    wait_shard(&client, ns, "Shard Ready despite the refused Ingress", |s| {
        is(&s.conditions(), "Ready", "True")
    })
    .await;
    let warnings = events(ns, "trial", "ApplyFailed");
    assert!(
        warnings.iter().any(|e| e.starts_with("Warning|") && e.contains("Ingress trial")),
        "{warnings:?}"
    );
    // Fixed by the admin: Degraded clears.
    kubectl_ok(&[
        "patch",
        "-n",
        ns,
        "shard/trial",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/spec/ingress/annotations"}]"#,
    ]);
    wait_shard(&client, ns, "Degraded cleared", |s| is(&s.conditions(), "Degraded", "False")).await;

    // A cluster policy refuses the pool's PodDisruptionBudget while its bridges cannot be
    // placed: both are reported, and the status keeps following the pods.
    kubectl_ok(&["delete", "-n", ns, "bridgepool/trial", "--wait=true"]);
    let out = kubectl(&["apply", "-f", "-"], Some(DENY_PDB));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    tokio::time::sleep(Duration::from_secs(2)).await; // the policy becomes active
    apply_trial(ns, "", 6);
    let p = wait_pool(&client, ns, "pool Degraded naming the PDB and the unplaceable bridges", |p| {
        condition(&p.conditions(), "Degraded").is_some_and(|c| {
            c.status == "True"
                && c.reason == "ApplyFailed"
                && c.message.contains("PodDisruptionBudget trial-bridge")
                && c.message.contains("cannot be placed")
        })
    })
    .await;
    let msg = condition(&p.conditions(), "Degraded").unwrap().message.clone();
    assert!(msg.contains("managed by the platform team"), "{msg}");
    assert_eq!(p.status.as_ref().unwrap().ready_replicas, 4, "four admin nodes, four bridges running");
    let warnings = events(ns, "trial", "ApplyFailed");
    assert!(warnings.iter().any(|e| e.contains("PodDisruptionBudget trial-bridge")), "{warnings:?}");
    kubectl_ok(&[
        "delete",
        "validatingadmissionpolicybinding,validatingadmissionpolicy",
        "convene-e2e-no-pdb",
    ]);
    delete_namespace(ns);
}

// ---- item 4: edits reach signaling ----

#[tokio::test]
#[ignore = "cluster tier: run via e2e/cluster/with-cluster.sh (see .ci/run)"]
async fn a_shard_edit_changes_the_signaling_pod_template() {
    setup();
    let ns = "confighash";
    let _ns = fresh_namespace(ns);
    let client = client().await;
    let _op = Operator::start(ns, "op-a", "convene-operator", 15).unwrap();
    apply_trial(ns, "", 1);
    wait_shard(&client, ns, "Shard Ready", |s| is(&s.conditions(), "Ready", "True")).await;
    let hash = |sts: &StatefulSet| {
        sts.spec
            .as_ref()?
            .template
            .metadata
            .as_ref()?
            .annotations
            .as_ref()?
            .get("convene.dev/config-hash")
            .cloned()
    };
    let sts: StatefulSet = get(&client, ns, "trial-signaling").await.unwrap().unwrap();
    let before = hash(&sts).expect("the pod template carries the config hash");
    let pod_before: Pod = get(&client, ns, "trial-signaling-0").await.unwrap().unwrap();
    kubectl_ok(&[
        "patch",
        "-n",
        ns,
        "shard/trial",
        "--type=merge",
        "-p",
        r#"{"spec":{"web":{"maxResolution":360}}}"#,
    ]);
    let _: StatefulSet = eventually("the template hash follows the config", TIMEOUT, || async {
        let sts: StatefulSet = get(&client, ns, "trial-signaling").await?.ok_or_else(|| anyhow!("none"))?;
        Ok((hash(&sts).is_some_and(|h| h != before)).then_some(sts))
    })
    .await;
    let cm: ConfigMap = get(&client, ns, "trial-signaling").await.unwrap().unwrap();
    assert!(cm.data.unwrap()["signaling.yaml"].contains("360"));
    // The StatefulSet controller replaces the pod with the new template. (Its status may not
    // name the new revision yet when the hash changes, so compare with the old pod's revision.)
    let revision =
        |p: &Pod| p.metadata.labels.as_ref().and_then(|l| l.get("controller-revision-hash").cloned());
    let old_revision = revision(&pod_before);
    eventually("the signaling pod was replaced", TIMEOUT, || async {
        let p: Option<Pod> = get(&client, ns, "trial-signaling-0").await?;
        Ok(p.filter(|p| p.metadata.uid != pod_before.metadata.uid && revision(p) != old_revision).map(|_| ()))
    })
    .await;
    delete_namespace(ns);
}

// ---- item 5: deletion is complete ----

#[tokio::test]
#[ignore = "cluster tier: run via e2e/cluster/with-cluster.sh (see .ci/run)"]
async fn deleting_a_shard_removes_its_bridges_and_recorders() {
    setup();
    let ns = "delshard";
    let _ns = fresh_namespace(ns);
    let client = client().await;
    let _op = Operator::start(ns, "op-a", "convene-operator", 15).unwrap();
    apply_trial(ns, "", 1);
    let rec = r#"apiVersion: convene.dev/v1alpha1
kind: RecorderPool
metadata: {name: rec}
spec:
  shardRef: {name: trial}
  replicas: 1
  storage: {volume: {size: 1Gi}}
  recorder:
    placement:
      tolerations: [{key: convene.dev/admin, operator: Exists}]
"#;
    assert!(kubectl(&["apply", "-n", ns, "-f", "-"], Some(rec)).status.success());
    wait_shard(&client, ns, "Shard Ready", |s| is(&s.conditions(), "Ready", "True")).await;
    eventually("recorder StatefulSet exists", TIMEOUT, || async {
        Ok(get::<StatefulSet>(&client, ns, "rec-recorder").await?.map(|_| ()))
    })
    .await;
    kubectl_ok(&["delete", "-n", ns, "shard/trial", "--wait=true"]);
    eventually("bridge and recorder workloads and pods gone with the shard", TIMEOUT, || async {
        let pods = Api::<Pod>::namespaced(client.clone(), ns).list(&ListParams::default()).await?;
        let left = (
            get::<StatefulSet>(&client, ns, "trial-bridge").await?.is_some(),
            get::<StatefulSet>(&client, ns, "rec-recorder").await?.is_some(),
            pods.items.len(),
        );
        Ok((left == (false, false, 0)).then_some(()))
    })
    .await;
    let p = wait_pool(&client, ns, "pool says its shard is gone", |p| {
        condition(&p.conditions(), "Degraded").is_some_and(|c| c.reason == "ShardNotFound")
    })
    .await;
    assert_eq!(p.status.unwrap().ready_replicas, 0);
    // Re-creating the shard brings the bridges back.
    apply_trial(ns, "", 1);
    wait_shard(&client, ns, "Shard Ready again", |s| is(&s.conditions(), "Ready", "True")).await;
    delete_namespace(ns);
}

// ---- item 6: Secrets are watched; missing Secret vs missing key ----

#[tokio::test]
#[ignore = "cluster tier: run via e2e/cluster/with-cluster.sh (see .ci/run)"]
async fn a_referenced_secret_is_picked_up_within_seconds_and_a_missing_key_is_named() {
    setup();
    let ns = "secretwatch";
    let _ns = fresh_namespace(ns);
    let client = client().await;
    let _op = Operator::start(ns, "op-a", "convene-operator", 15).unwrap();
    apply_trial(
        ns,
        "  auth: {jwt: {algorithm: HS256, issuer: app, audience: meet, secretRef: {name: app-jwt, key: secret}}}",
        1,
    );
    let s = wait_shard(&client, ns, "SecretNotFound", |s| {
        condition(&s.conditions(), "Degraded").is_some_and(|c| c.reason == "SecretNotFound")
    })
    .await;
    assert!(
        condition(&s.conditions(), "Degraded")
            .unwrap()
            .message
            .contains("Secret app-jwt (auth.jwt.secretRef) does not exist")
    );
    // The Secret appears without the key: said so, not "does not exist".
    kubectl_ok(&["create", "secret", "generic", "-n", ns, "app-jwt", "--from-literal=token=x"]);
    let s = eventually("SecretKeyNotFound within seconds", Duration::from_secs(15), || async {
        let s: Shard = get(&client, ns, "trial").await?.ok_or_else(|| anyhow!("none"))?;
        Ok(condition(&s.conditions(), "Degraded")
            .is_some_and(|c| c.reason == "SecretKeyNotFound")
            .then_some(s))
    })
    .await;
    let msg = condition(&s.conditions(), "Degraded").unwrap().message.clone();
    assert!(msg.contains("has no key secret") && msg.contains("only token"), "{msg}");
    // The key is added: Ready within seconds, no nudge, no 5-minute wait.
    let fixed = kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "-n",
        ns,
        "app-jwt",
        "--from-literal=secret=s3cret",
        "--dry-run=client",
        "-o",
        "yaml",
    ]);
    let added = Instant::now();
    assert!(kubectl(&["apply", "-n", ns, "-f", "-"], Some(&fixed)).status.success());
    eventually("Ready within seconds of the key appearing", Duration::from_secs(15), || async {
        let s: Shard = get(&client, ns, "trial").await?.ok_or_else(|| anyhow!("none"))?;
        Ok(is(&s.conditions(), "Ready", "True").then_some(()))
    })
    .await;
    println!("Ready {:.1} s after the Secret got its key", added.elapsed().as_secs_f64());
    delete_namespace(ns);
}

// ---- item 8: one Event per real transition ----

#[tokio::test]
#[ignore = "cluster tier: run via e2e/cluster/with-cluster.sh (see .ci/run)"]
async fn a_normal_start_says_ready_once() {
    setup();
    let ns = "quiet";
    let _ns = fresh_namespace(ns);
    let client = client().await;
    let _op = Operator::start(ns, "op-a", "convene-operator", 15).unwrap();
    apply_trial(ns, "", 1);
    wait_shard(&client, ns, "Shard Ready", |s| is(&s.conditions(), "Ready", "True")).await;
    // Several reconciles later (status writes, pod changes), still one Event per transition.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let all = kubectl_ok(&[
        "get",
        "events",
        "-n",
        ns,
        "--field-selector",
        "involvedObject.name=trial,involvedObject.kind=Shard",
        "-o",
        "jsonpath={range .items[*]}{.reason}{\"\\n\"}{end}",
    ]);
    let mut reasons: Vec<&str> = all.lines().filter(|l| !l.is_empty()).collect();
    reasons.sort();
    assert_eq!(reasons, vec!["Ready", "SecretCreated"], "a normal start: the generated secret, then Ready");
    let wide = kubectl_ok(&["get", "-n", ns, "bridgepool/trial", "-o", "wide"]);
    println!("{wide}");
    assert!(wide.contains("NODES") && wide.contains("ADDRESSES") && wide.contains("admin-"), "{wide}");
    // Without autoscaling MIN and MAX are spec.replicas, and each bridge's image tag shows.
    // Columns by their header's position (empty cells are blank, not a word).
    let row = |col: &str| {
        let header = wide.lines().next().unwrap_or_default();
        let at = header.find(&format!(" {col} ")).unwrap_or_else(|| panic!("{col} column: {wide}")) + 1;
        let line = wide.lines().nth(1).unwrap_or_default();
        line.get(at..).unwrap_or_default().split_whitespace().next().unwrap_or_default().to_string()
    };
    assert_eq!((row("MIN"), row("MAX")), ("1".to_string(), "1".to_string()), "{wide}");
    let tag =
        convene_operator::render::RenderConfig::default().media_image.rsplit(':').next().unwrap().to_string();
    assert_eq!(row("VERSION"), tag, "{wide}");
    delete_namespace(ns);
}

// ---- item 7: helm uninstall leaves nothing of the operator's behind ----

#[tokio::test]
#[ignore = "cluster tier: run via e2e/cluster/with-cluster.sh (see .ci/run)"]
async fn helm_uninstall_after_the_operator_ran_leaves_no_cluster_role_or_lease() {
    setup();
    let ns = "convene-uninstall";
    let _ns = fresh_namespace(ns);
    let chart = repo().join("charts/convene");
    let helm = |args: &[&str]| {
        let out = std::process::Command::new("helm").args(args).output().expect("helm on PATH");
        assert!(out.status.success(), "helm {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    // (Its one Deployment pod is a kwok fake that does nothing; the real operator runs below.)
    helm(&["install", "convene", chart.to_str().unwrap(), "-n", ns, "--wait=false", "--set", "replicas=1"]);
    // The operator as the chart runs it: its ServiceAccount, its Lease name, its node-reader role.
    let id = ChartIdentity {
        release: "convene".into(),
        namespace: ns.into(),
        service_account: "convene".into(),
        kubeconfig: token_kubeconfig("convene", ns, "uninstall"),
        node_reader_role: "convene-bridge-node-reader".into(),
    };
    let client = client().await;
    let work = "uninstall-work";
    let _ns = fresh_namespace(work);
    let op = Operator::start_as(&id, None, "op-u", "convene-operator", 15).unwrap();
    apply_trial(work, "", 1);
    wait_shard(&client, work, "Shard Ready", |s| is(&s.conditions(), "Ready", "True")).await;
    assert!(
        Api::<Lease>::namespaced(client.clone(), ns).get_opt("convene-operator").await.unwrap().is_some()
    );
    delete_namespace(work);
    drop(op);
    helm(&["uninstall", "convene", "-n", ns, "--wait"]);
    let roles = Api::<ClusterRole>::all(client.clone()).list(&ListParams::default()).await.unwrap();
    let left: Vec<String> = roles
        .items
        .iter()
        .filter_map(|r| r.metadata.name.clone())
        .filter(|n| n.starts_with("convene-") || n == "convene")
        .collect();
    assert!(left.is_empty(), "ClusterRoles left after uninstall: {left:?}");
    let leases = Api::<Lease>::namespaced(client.clone(), ns).list(&ListParams::default()).await.unwrap();
    assert!(
        leases.items.is_empty(),
        "Leases left after uninstall: {:?}",
        leases.items.iter().map(|l| &l.metadata.name).collect::<Vec<_>>()
    );
    delete_namespace(ns);
}
