//! `--self-signed NAMES --tls-cert C --tls-key K`: write a self-signed certificate for local
//! runs (`TLS=1 signaling/run-local.sh`) and print its SHA-256 fingerprint, so a browser's
//! warning can be checked against it. A mode of the signaling binary rather than a helper
//! binary: run-local.sh already builds this one, and the TLS test reuses the same code.
use anyhow::Context;
use sha2::{Digest, Sha256};

use crate::config::Args;

/// (certificate PEM, private key PEM, SHA-256 fingerprint `AB:CD:…`).
pub fn self_signed(names: &[String]) -> anyhow::Result<(String, String, String)> {
    let ck = rcgen::generate_simple_self_signed(names.to_vec()).context("generating a certificate")?;
    let fp = fingerprint(ck.cert.der());
    Ok((ck.cert.pem(), ck.signing_key.serialize_pem(), fp))
}

pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// Returns the fingerprint line to print.
pub fn write_self_signed(args: &Args) -> anyhow::Result<String> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        anyhow::bail!("--self-signed needs --tls-cert and --tls-key (the files to write)");
    };
    let (c, k, fp) = self_signed(&args.self_signed)?;
    std::fs::write(cert, c).with_context(|| format!("writing {}", cert.display()))?;
    write_private(key, &k).with_context(|| format!("writing {}", key.display()))?;
    Ok(format!("SHA-256 fingerprint: {fp}"))
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)?.write_all(text.as_bytes())
}
