//! Bridge-control protocol: defined in the contract crate (`convene_proto::control`).
pub use convene_proto::control::*;
