//! Fuzz target `signaling_rooms`: see `convene_fuzz::rooms`. Under AFL++ with `--features afl`
//! (`fuzz/run.sh signaling_rooms`); otherwise it replays the files or directories given.
#[cfg(feature = "afl")]
fn main() {
    afl::fuzz!(|data: &[u8]| convene_fuzz::rooms::run(data));
}

#[cfg(not(feature = "afl"))]
fn main() {
    convene_fuzz::replay_main("signaling_rooms", convene_fuzz::rooms::run);
}
