//! Fuzz target `bridge_control`: see `convene_fuzz::bridge_control`. Under AFL++ with `--features afl`
//! (`fuzz/run.sh bridge_control`); otherwise it replays the files or directories given.
#[cfg(feature = "afl")]
fn main() {
    afl::fuzz!(|data: &[u8]| convene_fuzz::bridge_control::run(data));
}

#[cfg(not(feature = "afl"))]
fn main() {
    convene_fuzz::replay_main("bridge_control", convene_fuzz::bridge_control::run);
}
