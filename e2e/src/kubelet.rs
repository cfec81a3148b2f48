//! A stand-in for the kubelet on kwok nodes, for host-network media pods: for every Running pod
//! that matches a selector it starts the workspace binary the pod's container names, with the
//! pod's environment resolved as the kubelet would (values, field refs, Secret keys), bound to
//! the pod's (= its node's) address. It stops the process when the pod goes away, restarts it
//! (after a back-off) when it dies, and can kill one on demand to simulate a crash.

use crate::{Process, cluster_dir, workspace_binary};
use anyhow::{Context as _, Result, anyhow};
use k8s_openapi::api::core::v1::{Container, Pod, Secret};
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use std::collections::{BTreeMap, HashMap};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a crashed container waits before it is started again (kubelet back-off).
const RESTART_BACKOFF: Duration = Duration::from_secs(3);

struct Managed {
    pod: String,
    process: Option<Process>,
    /// When the process was found dead (restart after the back-off).
    died: Option<Instant>,
    env: Vec<(String, String)>,
    binary: std::path::PathBuf,
}

#[derive(Default)]
struct State {
    /// By pod UID: a re-created pod with the same name is a new container.
    containers: HashMap<String, Managed>,
    starts: u32,
    /// Pods stopped because they went away, with the endpoints their bridge still carried.
    stopped: Vec<(String, Option<u64>)>,
}

/// Runs until dropped; every process it started is stopped then.
pub struct Kubelet {
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Kubelet {
    /// Run the pods of `ns` matching `selector`; `overrides` replace environment variables
    /// (e.g. the signaling URL, whose in-cluster DNS name does not resolve here).
    pub fn start(client: Client, ns: &str, selector: &str, overrides: &[(&str, &str)]) -> Kubelet {
        let state = Arc::new(Mutex::new(State::default()));
        let overrides: BTreeMap<String, String> =
            overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let (ns, selector, st) = (ns.to_string(), selector.to_string(), state.clone());
        let task = tokio::spawn(async move {
            let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let secrets: Api<Secret> = Api::namespaced(client, &ns);
            loop {
                if let Err(e) = sync(&pods, &secrets, &selector, &overrides, &st).await {
                    eprintln!("kubelet stand-in: {e:#}");
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
        Kubelet { state, task }
    }

    /// UIDs of the pods whose process runs now, sorted.
    pub fn running(&self) -> Vec<String> {
        let mut st = lock(&self.state);
        let mut uids: Vec<String> = st
            .containers
            .iter_mut()
            .filter_map(|(uid, c)| {
                let alive = c.process.as_mut().is_some_and(|p| matches!(p.0.try_wait(), Ok(None)));
                alive.then(|| uid.clone())
            })
            .collect();
        uids.sort();
        uids
    }

    /// Pods whose process was stopped because the pod went away, each with the endpoints its
    /// bridge still carried just before the SIGTERM (None: it did not answer).
    pub fn stopped(&self) -> Vec<(String, Option<u64>)> {
        lock(&self.state).stopped.clone()
    }

    /// Processes started so far (restarts included).
    pub fn starts(&self) -> u32 {
        lock(&self.state).starts
    }

    /// SIGKILL the process of `pod`, as a crash would; it is restarted after the back-off.
    pub fn kill(&self, pod: &str) -> bool {
        let mut st = lock(&self.state);
        let Some(c) = st.containers.values_mut().find(|c| c.pod == pod) else { return false };
        let Some(mut p) = c.process.take() else { return false };
        let _ = p.0.kill();
        let _ = p.0.wait();
        c.died = Some(Instant::now());
        true
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.task.abort();
        let mut st = lock(&self.state);
        for (_, c) in st.containers.drain() {
            stop(c);
        }
    }
}

fn lock(s: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

async fn sync(
    pods: &Api<Pod>,
    secrets: &Api<Secret>,
    selector: &str,
    overrides: &BTreeMap<String, String>,
    state: &Mutex<State>,
) -> Result<()> {
    let list = pods.list(&ListParams::default().labels(selector)).await?.items;
    let live: Vec<&Pod> = list
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .filter(|p| p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some())
        .collect();
    // Pods gone (or terminating): stop their processes, as the kubelet sends SIGTERM.
    let gone: Vec<Managed> = {
        let mut st = lock(state);
        let uids: Vec<String> = st
            .containers
            .keys()
            .filter(|uid| !live.iter().any(|p| p.uid().as_deref() == Some(uid.as_str())))
            .cloned()
            .collect();
        uids.iter().filter_map(|u| st.containers.remove(u)).collect()
    };
    for c in gone {
        let endpoints = bridge_endpoints(&c).await;
        lock(state).stopped.push((c.pod.clone(), endpoints));
        tokio::task::spawn_blocking(move || stop(c));
    }
    for pod in live {
        let uid = pod.uid().unwrap_or_default();
        let known = lock(state).containers.contains_key(&uid);
        if !known {
            let (binary, env) = resolve(pod, secrets, overrides).await?;
            lock(state)
                .containers
                .insert(uid.clone(), Managed { pod: pod.name_any(), process: None, died: None, env, binary });
        }
        let mut st = lock(state);
        let State { containers, starts, .. } = &mut *st;
        let c = containers.get_mut(&uid).expect("inserted above");
        if let Some(p) = c.process.as_mut()
            && !matches!(p.0.try_wait(), Ok(None))
        {
            c.process = None;
            c.died = Some(Instant::now());
        }
        if c.process.is_none() && c.died.is_none_or(|t| t.elapsed() >= RESTART_BACKOFF) {
            c.process = Some(spawn(c)?);
            c.died = None;
            *starts += 1;
        }
    }
    Ok(())
}

fn spawn(c: &Managed) -> Result<Process> {
    let log = cluster_dir().join("logs").join(format!("{}.log", c.pod));
    let file = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
    let child = Command::new(&c.binary)
        .envs(c.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .with_context(|| format!("starting {} for pod {}", c.binary.display(), c.pod))?;
    Ok(Process(child))
}

/// The endpoints a bridge carries right now, scraped exactly as the operator scrapes it.
async fn bridge_endpoints(c: &Managed) -> Option<u64> {
    c.process.as_ref()?;
    let var = |k: &str| c.env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let (ip, port) = (var("CONVENE_BRIDGE_BIND")?, var("CONVENE_BRIDGE_HTTP_PORT")?.parse().ok()?);
    convene_operator::reconcile::scrape::load(&ip, port).await.endpoints
}

/// SIGTERM, then SIGKILL after a few seconds (the pod's grace period, shortened for tests).
fn stop(c: Managed) {
    let Some(mut p) = c.process else { return };
    let _ = Command::new("kill").arg("-TERM").arg(p.0.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && matches!(p.0.try_wait(), Ok(None)) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The container's volumes as host directories under the cluster's `volumes/<namespace>/`: a
/// claim's is named for the claim (it outlives the pod, as the volume would), an emptyDir's
/// for the pod. No mount namespace here, so an environment value naming a path under a mount
/// is pointed at the directory instead.
fn mount_volumes(pod: &Pod, container: &Container, env: &mut BTreeMap<String, String>) -> Result<()> {
    let spec = pod.spec.as_ref().ok_or_else(|| anyhow!("pod without spec"))?;
    let base = cluster_dir().join("volumes").join(pod.namespace().unwrap_or_default());
    let mut mounts = vec![];
    for m in container.volume_mounts.iter().flatten() {
        let Some(v) = spec.volumes.iter().flatten().find(|v| v.name == m.name) else {
            anyhow::bail!("volume {} is mounted but not defined", m.name)
        };
        let dir = if let Some(c) = &v.persistent_volume_claim {
            base.join(&c.claim_name)
        } else if v.empty_dir.is_some() {
            base.join(format!("{}-{}", pod.uid().unwrap_or_default(), v.name))
        } else {
            continue;
        };
        std::fs::create_dir_all(&dir).with_context(|| format!("volume {}", dir.display()))?;
        mounts.push((m.mount_path.trim_end_matches('/').to_string(), dir));
    }
    // Each value once, by the deepest mount it is under (a path is not mapped twice).
    for value in env.values_mut() {
        let under = |p: &str| value.strip_prefix(p).is_some_and(|r| r.is_empty() || r.starts_with('/'));
        if let Some((path, dir)) = mounts.iter().filter(|(p, _)| under(p)).max_by_key(|(p, _)| p.len()) {
            *value = format!("{}{}", dir.display(), &value[path.len()..]);
        }
    }
    Ok(())
}

/// The binary and environment the pod's first container would run with on a real node.
async fn resolve(
    pod: &Pod,
    secrets: &Api<Secret>,
    overrides: &BTreeMap<String, String>,
) -> Result<(std::path::PathBuf, Vec<(String, String)>)> {
    let spec = pod.spec.as_ref().ok_or_else(|| anyhow!("pod without spec"))?;
    let container: &Container = spec.containers.first().ok_or_else(|| anyhow!("pod without containers"))?;
    let command = container.command.as_ref().and_then(|c| c.first()).ok_or_else(|| anyhow!("no command"))?;
    let name = command.rsplit('/').next().unwrap_or(command);
    let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default();
    let mut env = BTreeMap::new();
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(v), _) => v.clone(),
            (None, Some(from)) => {
                if let Some(f) = &from.field_ref {
                    match f.field_path.as_str() {
                        "spec.nodeName" => spec.node_name.clone().unwrap_or_default(),
                        "metadata.name" => pod.name_any(),
                        "metadata.namespace" => pod.namespace().unwrap_or_default(),
                        "status.podIP" | "status.hostIP" => ip.clone(),
                        other => anyhow::bail!("field ref {other} is not supported by the stand-in"),
                    }
                } else if let Some(k) = &from.secret_key_ref {
                    let s = secrets.get(&k.name).await.with_context(|| format!("secret {}", k.name))?;
                    let bytes = s.data.and_then(|d| d.get(&k.key).cloned()).unwrap_or_default();
                    String::from_utf8_lossy(&bytes.0).into_owned()
                } else {
                    anyhow::bail!("env {} has a source the stand-in does not support", var.name)
                }
            }
            (None, None) => String::new(),
        };
        env.insert(var.name.clone(), value);
    }
    mount_volumes(pod, container, &mut env)?;
    // A shared loopback: bind the pod's own address (a host-network bridge's is its node's; a
    // recorder's its pod IP, from the cluster's loopback pod CIDR), not 0.0.0.0.
    env.insert("CONVENE_BRIDGE_BIND".into(), ip.clone());
    env.insert(convene_proto::recorder::env::BIND.into(), ip);
    env.extend(overrides.clone());
    Ok((workspace_binary(name), env.into_iter().collect()))
}
