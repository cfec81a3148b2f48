//! Fuzz target `bridge_datagrams`: see `convene_fuzz::datagrams`. Under AFL++ with `--features afl`
//! (`fuzz/run.sh bridge_datagrams`); otherwise it replays the files or directories given.
#[cfg(feature = "afl")]
fn main() {
    afl::fuzz!(|data: &[u8]| convene_fuzz::datagrams::run(data));
}

#[cfg(not(feature = "afl"))]
fn main() {
    convene_fuzz::replay_main("bridge_datagrams", convene_fuzz::datagrams::run);
}
