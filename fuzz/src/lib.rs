//! Coverage-guided fuzz targets for Convene (issue 12, item 6), run by AFL++ through cargo-afl
//! (`fuzz/run.sh`), and the same functions over the seed corpora under `cargo test`.
//!
//! One module per target; each has `run(&[u8])`, which must never panic on any input (a panic
//! is a crash to AFL++), and checks the invariants named in its docs with `assert!`:
//!
//! | target | module | what it drives |
//! | --- | --- | --- |
//! | `signaling_rooms` | [`rooms`] | client frames of several simulated clients through the decoder into the rooms, with a fake bridge |
//! | `bridge_control` | [`bridge_control`] | control messages decoded and applied to the bridge's sans-IO core |
//! | `bridge_datagrams` | [`datagrams`] | datagrams classified, demultiplexed and handed to endpoints |
//! | `jwt_verify` | [`jwt`] | JWT verification of arbitrary tokens, and of correctly signed arbitrary claims |
//! | `signaling_config` | [`config`] | the signaling config parser, the operator's re-rendering, settings resolution |
//!
//! Each binary in `src/bin/` runs its target under AFL++ when built with `--features afl`
//! (`cargo afl build`), and otherwise replays the files and directories it is given.
use std::path::{Path, PathBuf};

pub mod bridge_control;
pub mod config;
pub mod datagrams;
pub mod jwt;
pub mod rooms;
pub mod seeds;

/// A target's entry point: any input, never a panic.
pub type Target = fn(&[u8]);

/// The targets, by name (binary name and corpus folder), with their entry points.
pub const TARGETS: [(&str, Target); 5] = [
    ("signaling_rooms", rooms::run),
    ("bridge_control", bridge_control::run),
    ("bridge_datagrams", datagrams::run),
    ("jwt_verify", jwt::run),
    ("signaling_config", config::run),
];

/// `fuzz/corpus/<target>`.
pub fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target)
}

/// The files of a directory (sorted), or the file itself.
pub fn files(path: &Path) -> Vec<PathBuf> {
    if path.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(path)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect())
            .unwrap_or_default();
        v.sort();
        v
    } else {
        vec![path.to_path_buf()]
    }
}

/// Feed every file of `target`'s seed corpus through `f`; returns how many there were.
pub fn run_corpus(target: &str, f: fn(&[u8])) -> usize {
    let paths = files(&corpus_dir(target));
    for p in &paths {
        let data = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        f(&data);
    }
    paths.len()
}

/// The binaries' `main` without AFL++: run `f` over each file or directory named on the
/// command line (stdin when none), e.g. to reproduce a crash from `fuzz/out/<target>/…/crashes`.
pub fn replay_main(target: &str, f: fn(&[u8])) {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if args.is_empty() {
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut data).expect("reading stdin");
        f(&data);
        println!("{target}: 1 input (stdin) ran without a crash");
        return;
    }
    let mut n = 0;
    for a in &args {
        for p in files(a) {
            let data = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            eprintln!("{target}: {}", p.display());
            f(&data);
            n += 1;
        }
    }
    println!("{target}: {n} input(s) ran without a crash");
}

/// Split `data` at `\n` into lines (a trailing `\r` is kept: it is input too).
pub(crate) fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split(|b| *b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of the target's committed corpus (`fuzz/corpus/<target>`, which must not be
    /// empty), then the seeds as generated now (the generator that wrote the corpus).
    fn corpus(target: &str, f: fn(&[u8])) {
        let n = run_corpus(target, f);
        assert!(n > 0, "{target}: empty corpus {}", corpus_dir(target).display());
        for (file, data) in seeds::seeds(target) {
            eprintln!("{target}: generated seed {file}");
            f(&data);
        }
    }

    #[test]
    fn signaling_rooms_corpus() {
        corpus("signaling_rooms", rooms::run);
    }

    #[test]
    fn bridge_control_corpus() {
        corpus("bridge_control", bridge_control::run);
    }

    #[test]
    fn bridge_datagrams_corpus() {
        corpus("bridge_datagrams", datagrams::run);
    }

    #[test]
    fn jwt_verify_corpus() {
        corpus("jwt_verify", jwt::run);
    }

    #[test]
    fn signaling_config_corpus() {
        corpus("signaling_config", config::run);
    }

    #[test]
    fn every_target_is_listed() {
        let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
        for n in ["signaling_rooms", "bridge_control", "bridge_datagrams", "jwt_verify", "signaling_config"] {
            assert!(names.contains(&n), "{n}");
            assert!(!seeds::seeds(n).is_empty(), "{n} has seeds");
        }
    }
}
