//! `kubectl convene`: what an admin asks first when a shard misbehaves. [`facts`] reads the
//! live cluster once (with the admin's own credentials); [`checks`] walks the production guide's
//! failure-mode table over those facts ("symptom → component → what to check"); [`status`]
//! prints one screen of a shard. Both are pure, so they are unit-tested on built facts.
pub mod checks;
pub mod facts;
pub mod probe;
pub mod status;
#[cfg(test)]
mod tests;

pub use checks::{Finding, Level, diagnose};
pub use facts::{Facts, Lookup, SecretFacts};
