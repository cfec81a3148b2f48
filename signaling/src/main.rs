//! convene-signaling: placeholder until the signaling issue lands; it exits with an error so a
//! deployment never mistakes it for a working server.
fn main() -> std::process::ExitCode {
    eprintln!("convene-signaling is not implemented yet (see the signaling issue)");
    std::process::ExitCode::FAILURE
}
