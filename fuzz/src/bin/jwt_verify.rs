//! Fuzz target `jwt_verify`: see `convene_fuzz::jwt`. Under AFL++ with `--features afl`
//! (`fuzz/run.sh jwt_verify`); otherwise it replays the files or directories given.
#[cfg(feature = "afl")]
fn main() {
    afl::fuzz!(|data: &[u8]| convene_fuzz::jwt::run(data));
}

#[cfg(not(feature = "afl"))]
fn main() {
    convene_fuzz::replay_main("jwt_verify", convene_fuzz::jwt::run);
}
