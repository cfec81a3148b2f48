//! Helpers for the cluster-tier end-to-end tests.
