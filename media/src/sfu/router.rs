//! Per-packet forwarding decision for one receive slot: which source and layer it forwards
//! now (`current`), which it should (`target`), switching only on a keyframe of the target.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Forward; `switched` when this keyframe starts a new layer (time base changes).
    Forward { switched: bool },
    /// Not wanted.
    Drop,
    /// The wanted layer is waiting for a keyframe: drop, and ask the sender for one.
    NeedKeyframe,
}

/// `current`/`target`: `None` = nothing, `Some(k)` = that source layer (the bridge uses
/// (source endpoint, m-line, rid); a non-simulcast track's rid is `None`); `layer` is the
/// frame's. Audio passes `keyframe: true` (any packet starts a stream). Returns the decision
/// and the new `current`.
pub fn decide<K: Copy + PartialEq>(
    current: Option<K>,
    target: Option<K>,
    layer: K,
    keyframe: bool,
) -> (Decision, Option<K>) {
    let Some(target) = target else {
        return (Decision::Drop, None);
    };
    if target == layer {
        if current == Some(layer) {
            (Decision::Forward { switched: false }, current)
        } else if keyframe {
            (Decision::Forward { switched: true }, Some(layer))
        } else {
            (Decision::NeedKeyframe, current)
        }
    } else if current == Some(layer) {
        // Keep the old layer flowing until the target layer's keyframe arrives.
        (Decision::Forward { switched: false }, current)
    } else {
        (Decision::Drop, current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::media::Rid;

    fn r(s: &str) -> Option<Rid> {
        Some(s.into())
    }

    #[test]
    fn switches_only_on_keyframe() {
        // Start: nothing forwarded, target "f": wait for its keyframe.
        let (d, cur) = decide(None, Some(r("f")), r("f"), false);
        assert_eq!((d, cur), (Decision::NeedKeyframe, None));
        let (d, cur) = decide(cur, Some(r("f")), r("f"), true);
        assert_eq!((d, cur), (Decision::Forward { switched: true }, Some(r("f"))));
        // Other layers are dropped.
        assert_eq!(decide(cur, Some(r("f")), r("q"), true).0, Decision::Drop);
        // Target lowered to "q": "f" keeps flowing until a "q" keyframe.
        let (d, cur) = decide(cur, Some(r("q")), r("f"), false);
        assert_eq!((d, cur), (Decision::Forward { switched: false }, Some(r("f"))));
        let (d, cur2) = decide(cur, Some(r("q")), r("q"), false);
        assert_eq!((d, cur2), (Decision::NeedKeyframe, Some(r("f"))));
        let (d, cur) = decide(cur, Some(r("q")), r("q"), true);
        assert_eq!((d, cur), (Decision::Forward { switched: true }, Some(r("q"))));
        // Deselected (last-N): drop and forget.
        assert_eq!(decide(cur, None, r("q"), true), (Decision::Drop, None));
    }

    #[test]
    fn slot_switches_source_on_its_keyframe() {
        // Keys are (source, layer): the slot moves from a's "f" to b's "f".
        let (a, b) = (("a", r("f")), ("b", r("f")));
        let cur = Some(a);
        assert_eq!(decide(cur, Some(b), a, false), (Decision::Forward { switched: false }, cur));
        assert_eq!(decide(cur, Some(b), b, false), (Decision::NeedKeyframe, cur));
        assert_eq!(decide(cur, Some(b), b, true), (Decision::Forward { switched: true }, Some(b)));
        assert_eq!(decide(Some(b), Some(b), a, true), (Decision::Drop, Some(b)), "a no longer flows");
    }

    #[test]
    fn plain_track() {
        let (d, cur) = decide::<Option<Rid>>(None, Some(None), None, true);
        assert_eq!((d, cur), (Decision::Forward { switched: true }, Some(None)));
        assert_eq!(decide(cur, Some(None), None, false).0, Decision::Forward { switched: false });
    }
}
