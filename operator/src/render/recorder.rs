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
pub const HTTP_PORT: i32 = 8080;

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
        // The first part of every object key (and the recordings' place in the bucket).
        env(renv::SHARD, o.shard.clone()),
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
        // Recordings are staged on local scratch space and uploaded while they are written.
        volumes.push(Volume {
            name: "recordings".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        });
        vars.push(env(renv::S3_ENDPOINT, s3.endpoint.clone()));
        vars.push(env(renv::S3_BUCKET, s3.bucket.clone()));
        if let Some(region) = &s3.region {
            vars.push(env(renv::S3_REGION, region.clone()));
        }
        let secret = &s3.credentials_secret_name;
        vars.push(env_from_secret(renv::S3_ACCESS_KEY_ID, secret, "accessKeyId"));
        vars.push(env_from_secret(renv::S3_SECRET_ACCESS_KEY, secret, "secretAccessKey"));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorders_know_their_shard_and_bucket() {
        let pool: RecorderPool = serde_json::from_value(serde_json::json!({
            "apiVersion": "convene.dev/v1alpha1",
            "kind": "RecorderPool",
            "metadata": { "name": "r", "namespace": "ns" },
            "spec": {
                "shardRef": { "name": "meet-a" },
                "storage": { "s3": {
                    "endpoint": "http://minio:9000",
                    "bucket": "rec",
                    "credentialsSecretName": "s3"
                } }
            }
        }))
        .expect("a RecorderPool");
        let sts = render(&pool, &RenderConfig::default());
        let c = &sts.spec.unwrap().template.spec.unwrap().containers[0];
        let vars = c.env.as_ref().unwrap();
        let value = |n: &str| vars.iter().find(|v| v.name == n).and_then(|v| v.value.clone());
        assert_eq!(value(renv::SHARD).as_deref(), Some("meet-a"));
        assert_eq!(value(renv::S3_ENDPOINT).as_deref(), Some("http://minio:9000"));
        assert_eq!(value(renv::S3_BUCKET).as_deref(), Some("rec"));
        let key = vars.iter().find(|v| v.name == renv::S3_ACCESS_KEY_ID).unwrap();
        let key = key.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap();
        assert_eq!((key.name.as_str(), key.key.as_str()), ("s3", "accessKeyId"));
    }
}
