//! Last-N: which sources' video a receiver gets.

/// Choose at most `last_n` endpoints (`< 0` = all) whose video `receiver` gets: pinned first,
/// then by speech activity (most recently dominant first), then in join order.
/// The receiver itself is never chosen.
pub fn select(
    receiver: &str,
    last_n: i32,
    pinned: &[String],
    speech_order: &[String],
    join_order: &[String],
) -> Vec<String> {
    let limit = if last_n < 0 { usize::MAX } else { last_n as usize };
    let mut out: Vec<String> = Vec::new();
    let candidates = pinned.iter().chain(speech_order).chain(join_order);
    for e in candidates {
        if out.len() >= limit {
            break;
        }
        if e != receiver && join_order.contains(e) && !out.contains(e) {
            out.push(e.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn order_and_limit() {
        let joined = s(&["a", "b", "c", "d"]);
        assert_eq!(select("a", -1, &[], &[], &joined), s(&["b", "c", "d"]));
        assert_eq!(select("a", 1, &[], &s(&["c"]), &joined), s(&["c"]));
        assert_eq!(select("a", 2, &s(&["d"]), &s(&["c", "b"]), &joined), s(&["d", "c"]));
        // The receiver is never selected, even when dominant.
        assert_eq!(select("c", 1, &[], &s(&["c", "b"]), &joined), s(&["b"]));
        assert_eq!(select("a", 0, &s(&["b"]), &[], &joined), Vec::<String>::new());
        // Pinned endpoints that left are ignored.
        assert_eq!(select("a", 1, &s(&["zz"]), &[], &joined), s(&["b"]));
    }
}
