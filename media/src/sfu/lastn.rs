//! Last-N: which sources' video a receiver gets.
use std::collections::HashSet;

/// Choose at most `last_n` endpoints (`< 0` = all) whose video `receiver` gets: pinned first,
/// then by speech activity (most recently dominant first), then in join order.
/// The receiver itself is never chosen. Linear in the conference size (it runs for every
/// receiver on every re-allocation).
pub fn select<'a>(
    receiver: &str,
    last_n: i32,
    pinned: &'a [String],
    speech_order: &'a [String],
    join_order: &'a [String],
) -> Vec<&'a str> {
    let limit = if last_n < 0 { usize::MAX } else { last_n as usize };
    let mut out: Vec<&str> = Vec::new();
    if limit == 0 {
        return out;
    }
    let members: HashSet<&str> = join_order.iter().map(String::as_str).collect();
    let mut taken: HashSet<&str> = HashSet::new();
    for e in pinned.iter().chain(speech_order).chain(join_order) {
        if out.len() >= limit {
            break;
        }
        let e = e.as_str();
        if e != receiver && members.contains(e) && taken.insert(e) {
            out.push(e);
        }
    }
    out
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
}
