//! Convene operator: custom resources, pure renderers of the objects that run a shard, and the
//! controllers that apply them.

pub mod autoscale;
pub mod cert;
pub mod controller;
pub mod crd;
pub mod doctor;
pub mod drain;
pub mod http;
pub mod loads;
pub mod metrics;
pub mod rbac;
pub mod reconcile;
pub mod recorders;
pub mod render;
pub mod stores;
pub mod trim;
