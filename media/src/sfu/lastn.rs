//! Last-N: whose video a receiver gets.
use std::collections::HashSet;

/// Candidates for a receiver's video, best first: pinned endpoints, then by speech activity
/// (most recently dominant first), then in join order; each once, never the receiver itself,
/// only members (`is_member`). Lazy: a caller that stops after `k` pays for about `k`, not for
/// the conference (it runs for every receiver on every re-allocation).
pub fn candidates<'a>(
    receiver: &'a str,
    pinned: &'a [String],
    speech_order: &'a [String],
    join_order: &'a [String],
    is_member: impl Fn(&str) -> bool + 'a,
) -> impl Iterator<Item = &'a str> + 'a {
    let mut taken: HashSet<&str> = HashSet::new();
    pinned
        .iter()
        .chain(speech_order)
        .chain(join_order)
        .map(String::as_str)
        .filter(move |e| *e != receiver && is_member(e) && taken.insert(e))
}

/// At most `last_n` (`< 0` = all) of the [`candidates`].
pub fn select<'a>(
    receiver: &'a str,
    last_n: i32,
    pinned: &'a [String],
    speech_order: &'a [String],
    join_order: &'a [String],
) -> Vec<&'a str> {
    let limit = if last_n < 0 { usize::MAX } else { last_n as usize };
    let members: HashSet<&str> = join_order.iter().map(String::as_str).collect();
    candidates(receiver, pinned, speech_order, join_order, move |e| members.contains(e)).take(limit).collect()
}

#[cfg(test)]
mod tests {

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn select(r: &str, n: i32, p: &[String], sp: &[String], j: &[String]) -> Vec<String> {
        super::select(r, n, p, sp, j).into_iter().map(String::from).collect()
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

    #[test]
    fn a_hidden_receiver_takes_pins_then_join_order() {
        // A recorder is not a member and is given no speech order (`allocate::speech_order`):
        // everyone, pinned first, and the order stays put when speakers change.
        let joined = s(&["a", "b", "c"]);
        assert_eq!(select("rec", -1, &[], &[], &joined), s(&["a", "b", "c"]));
        assert_eq!(select("rec", -1, &s(&["c"]), &[], &joined), s(&["c", "a", "b"]));
    }
}
