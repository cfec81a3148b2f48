//! Writes the seed corpora (`convene_fuzz::seeds`) to `fuzz/corpus/<target>/`:
//! `cargo run -p convene-fuzz --bin gen-corpus`. Files the fuzzer added are left alone.
fn main() {
    for (target, _) in convene_fuzz::TARGETS {
        let dir = convene_fuzz::corpus_dir(target);
        std::fs::create_dir_all(&dir).expect("corpus directory");
        let seeds = convene_fuzz::seeds::seeds(target);
        for (name, data) in &seeds {
            std::fs::write(dir.join(name), data).expect("writing a seed");
        }
        println!("{target}: {} seed(s) in {}", seeds.len(), dir.display());
    }
}
