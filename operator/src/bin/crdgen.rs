//! Prints the CRDs, or writes them (one file per kind) into each folder named with `--write`:
//! `crdgen --write crds/ --write charts/convene/crds/`.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        for (_, crd) in convene_operator::crd::all() {
            print!("{}", convene_operator::crd::to_yaml(&crd));
        }
        return Ok(());
    }
    let mut dirs = vec![];
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match (arg.as_str(), it.next()) {
            ("--write", Some(dir)) => dirs.push(PathBuf::from(dir)),
            _ => {
                eprintln!("usage: crdgen [--write <dir>]...");
                std::process::exit(2);
            }
        }
    }
    for dir in dirs {
        std::fs::create_dir_all(&dir)?;
        for (file, crd) in convene_operator::crd::all() {
            std::fs::write(dir.join(file), convene_operator::crd::to_yaml(&crd))?;
        }
    }
    Ok(())
}
