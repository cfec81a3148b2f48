//! A RecorderPool's children: a StatefulSet of recorders with a volume claim per pod, or
//! scratch space and S3 credentials.

use super::meta::{Component, Owner};
use super::pod::{self, env, env_from_field, env_from_secret, http_probe};
use super::{RenderConfig, SIGNALING_PORT, bridge_control_secret, signaling_host};
use crate::crd::RecorderPool;
use convene_proto::paths;
use convene_proto::recorder::env as renv;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PodSpec, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

const RECORDINGS_DIR: &str = "/recordings";
const HTTP_PORT: i32 = 8080;

pub fn owner(pool: &RecorderPool) -> Owner {
    Owner::new(pool, &pool.spec.shard_ref.name, Component::Recorder)
}

pub fn render(pool: &RecorderPool, cfg: &RenderConfig) -> StatefulSet {
    let o = owner(pool);
    let _name = o.child_name();
    let s = &pool.spec;
    let mut vars = vec![
        env_from_field(renv::ID, "metadata.name"),
        env(
            renv::SIGNALING_URL,
            format!(
                "ws://{}:{SIGNALING_PORT}{}",
                signaling_host(&o.shard, &o.namespace),
                paths::SIGNALING_RECORDER_WS
            ),
        ),
        env_from_secret(renv::SECRET, &bridge_control_secret(&o.shard), "secret"),
        env(renv::MAX_RECORDINGS, s.recordings_per_pod.to_string()),
        env(renv::RECORDING_DIR, RECORDINGS_DIR),
        env(renv::HTTP_PORT, HTTP_PORT.to_string()),
        env("CONVENE_LOG_FORMAT", "json"),
        env("RUST_LOG", s.recorder.log_level.clone()),
    ];
    let mut volumes = vec![];
    let mut claims = None;
    if let Some(v) = &s.storage.volume {
        claims = Some(vec![PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some("recordings".into()),
                labels: Some(o.labels()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                storage_class_name: v.storage_class_name.clone(),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([("storage".to_string(), Quantity(v.size.clone()))])),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]);
    }
    if let Some(s3) = &s.storage.s3 {
        // Recordings are staged on local scratch space and uploaded when they finish.
        volumes.push(Volume {
            name: "recordings".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        });
        vars.push(env("CONVENE_S3_ENDPOINT", s3.endpoint.clone()));
        vars.push(env("CONVENE_S3_BUCKET", s3.bucket.clone()));
        if let Some(region) = &s3.region {
            vars.push(env("CONVENE_S3_REGION", region.clone()));
        }
        vars.push(env_from_secret("AWS_ACCESS_KEY_ID", &s3.credentials_secret_name, "accessKeyId"));
        vars.push(env_from_secret("AWS_SECRET_ACCESS_KEY", &s3.credentials_secret_name, "secretAccessKey"));
    }
    let pod = PodSpec {
        automount_service_account_token: Some(false),
        // Let running recordings finish and upload.
        termination_grace_period_seconds: Some(300),
        containers: vec![Container {
            name: "recorder".into(),
            image: Some(s.recorder.image.clone().unwrap_or_else(|| cfg.media_image.clone())),
            command: Some(vec!["/usr/local/bin/convene-recorder".into()]),
            env: Some(vars),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: HTTP_PORT,
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            readiness_probe: Some(http_probe("/ready", "http", 5, 2, 1)),
            liveness_probe: Some(http_probe("/health", "http", 10, 3, 10)),
            resources: Some(pod::resources(&s.recorder, "500m", "1Gi")),
            security_context: Some(pod::container_security(&[])),
            volume_mounts: Some(vec![VolumeMount {
                name: "recordings".into(),
                mount_path: RECORDINGS_DIR.into(),
                ..Default::default()
            }]),
            ..Default::default()
        }],
        volumes: Some(volumes),
        ..Default::default()
    };
    let mut sts = pod::stateful_set(&o, s.replicas, true, &s.recorder.placement, pod::RUN_AS_USER, pod);
    if let Some(spec) = sts.spec.as_mut() {
        spec.volume_claim_templates = claims;
    }
    sts
}

/// Pure: the recorders dial signaling over TLS in the cluster, as bridges do.
pub fn dial_signaling_over_tls(sts: &mut StatefulSet, tls_secret: &str) {
    pod::dial_signaling_over_tls(sts, tls_secret, renv::SIGNALING_URL, renv::CONTROL_CA_FILE);
}
