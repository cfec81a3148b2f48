//! Client protocol: defined in the contract crate (`convene_proto::client`).
pub use convene_proto::client::*;
