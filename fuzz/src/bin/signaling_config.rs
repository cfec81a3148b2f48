//! Fuzz target `signaling_config`: see `convene_fuzz::config`. Under AFL++ with `--features afl`
//! (`fuzz/run.sh signaling_config`); otherwise it replays the files or directories given.
#[cfg(feature = "afl")]
fn main() {
    afl::fuzz!(|data: &[u8]| convene_fuzz::config::run(data));
}

#[cfg(not(feature = "afl"))]
fn main() {
    convene_fuzz::replay_main("signaling_config", convene_fuzz::config::run);
}
