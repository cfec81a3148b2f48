//! Ready / Progressing / Degraded conditions, computed purely, keeping transition times.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// One condition as the reconciler sees it now.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl Observed {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self { type_, status, reason: reason.into(), message: message.into() }
    }
}

/// What a reconcile concluded, turned into the three standard conditions.
#[derive(Clone, Debug, PartialEq)]
pub struct Health {
    pub ready: Observed,
    pub progressing: Observed,
    pub degraded: Observed,
}

impl Health {
    pub fn all(&self) -> [&Observed; 3] {
        [&self.ready, &self.progressing, &self.degraded]
    }
}

/// The new conditions list: a condition whose status did not change keeps its
/// `lastTransitionTime`, so `kubectl describe` tells how long something has been true.
pub fn merge(
    previous: &[Condition],
    now: &[&Observed],
    generation: Option<i64>,
    at: &Time,
) -> Vec<Condition> {
    now.iter()
        .map(|o| {
            let status = if o.status { "True" } else { "False" }.to_string();
            let transition = previous
                .iter()
                .find(|p| p.type_ == o.type_ && p.status == status)
                .map_or_else(|| at.clone(), |p| p.last_transition_time.clone());
            Condition {
                type_: o.type_.into(),
                status,
                reason: o.reason.clone(),
                message: o.message.clone(),
                observed_generation: generation,
                last_transition_time: transition,
            }
        })
        .collect()
}

/// Conditions whose status flipped (for Events).
pub fn transitions<'a>(previous: &[Condition], now: &[&'a Observed]) -> Vec<&'a Observed> {
    now.iter()
        .filter(|o| {
            let status = if o.status { "True" } else { "False" };
            previous.iter().find(|p| p.type_ == o.type_).is_none_or(|p| p.status != status)
        })
        .copied()
        .collect()
}

/// Pure: the conditions worth an Event, each with whether it is a warning. At creation only a
/// `Degraded=True` is; afterwards `Ready` flips, `Degraded` turning true or changing reason
/// while true, and `Degraded` clearing.
pub fn events<'a>(previous: &[Condition], now: &[&'a Observed]) -> Vec<(&'a Observed, bool)> {
    let creating = previous.is_empty();
    now.iter()
        .filter_map(|o| {
            let before = previous.iter().find(|p| p.type_ == o.type_);
            let was = before.map(|p| p.status == "True");
            match o.type_ {
                "Degraded" if o.status => {
                    (was != Some(true) || before.is_some_and(|p| p.reason != o.reason)).then_some((*o, true))
                }
                "Degraded" => (was == Some(true)).then_some((*o, false)),
                "Ready" if creating => None,
                "Ready" => (was != Some(o.status)).then_some((*o, !o.status)),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Time {
        Time(jiff::Timestamp::from_second(s).unwrap())
    }

    #[test]
    fn unchanged_status_keeps_transition_time_and_changed_status_takes_now() {
        let ready = Observed::new("Ready", false, "Starting", "waiting for pods");
        let first = merge(&[], &[&ready], Some(1), &t(100));
        assert_eq!(first[0].last_transition_time, t(100));
        assert_eq!(first[0].status, "False");

        let still = Observed::new("Ready", false, "Starting", "1/2 pods");
        let second = merge(&first, &[&still], Some(2), &t(200));
        assert_eq!(second[0].last_transition_time, t(100), "same status keeps its time");
        assert_eq!(second[0].message, "1/2 pods");
        assert_eq!(second[0].observed_generation, Some(2));

        let up = Observed::new("Ready", true, "AllReady", "");
        let third = merge(&second, &[&up], Some(2), &t(300));
        assert_eq!(third[0].last_transition_time, t(300), "a flip takes the new time");
    }

    #[test]
    fn transitions_lists_only_flips_and_new_conditions() {
        let prev = merge(&[], &[&Observed::new("Ready", false, "A", "")], None, &t(1));
        let ready = Observed::new("Ready", true, "B", "");
        let degraded = Observed::new("Degraded", false, "C", "");
        let flips = transitions(&prev, &[&ready, &degraded]);
        assert_eq!(flips.len(), 2);
        let same = Observed::new("Ready", false, "D", "other message");
        assert!(transitions(&prev, &[&same]).is_empty());
    }

    #[test]
    fn events_only_for_real_transitions() {
        let starting = Health {
            ready: Observed::new("Ready", false, "Starting", ""),
            progressing: Observed::new("Progressing", true, "RollingOut", ""),
            degraded: Observed::new("Degraded", false, "AsExpected", ""),
        };
        assert!(events(&[], &starting.all()).is_empty(), "a normal start is quiet");
        let first = merge(&[], &starting.all(), Some(1), &t(1));
        let up = Health {
            ready: Observed::new("Ready", true, "Ready", ""),
            progressing: Observed::new("Progressing", false, "Stable", ""),
            ..starting.clone()
        };
        let ev = events(&first, &up.all());
        assert_eq!(ev.len(), 1, "one Event: Ready");
        assert_eq!((ev[0].0.type_, ev[0].1), ("Ready", false));
        let second = merge(&first, &up.all(), Some(1), &t(2));
        assert!(events(&second, &up.all()).is_empty(), "nothing changed, nothing said");
        let refused = Health { degraded: Observed::new("Degraded", true, "ApplyFailed", "x"), ..up.clone() };
        let ev = events(&second, &refused.all());
        assert_eq!((ev.len(), ev[0].0.reason.as_str(), ev[0].1), (1, "ApplyFailed", true));
        let third = merge(&second, &refused.all(), Some(1), &t(3));
        let other = Health { degraded: Observed::new("Degraded", true, "Unschedulable", "y"), ..up.clone() };
        assert_eq!(events(&third, &other.all()).len(), 1, "a new reason is a new problem");
        let ev = events(&third, &up.all());
        assert_eq!((ev.len(), ev[0].0.type_, ev[0].1), (1, "Degraded", false), "recovery is said once");
    }
}

/// Several versions among `(name, version)` pairs: "v1 (a, b), v2 (c)"; `None` when they all
/// run one (or none is known). Mixed versions after a rollout mean a stuck or partial one.
pub fn version_skew<'a>(named: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<String> {
    let mut by_version: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for (name, version) in named {
        by_version.entry(version).or_default().push(name);
    }
    (by_version.len() > 1).then(|| {
        by_version
            .iter()
            .map(|(v, names)| format!("{v} ({})", names.join(", ")))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

#[cfg(test)]
mod skew_tests {
    #[test]
    fn names_each_version_with_its_members() {
        assert_eq!(super::version_skew([("a", "1.2"), ("b", "1.2")]), None);
        assert_eq!(super::version_skew([]), None);
        assert_eq!(
            super::version_skew([("a", "1.2"), ("c", "1.3"), ("b", "1.2")]).as_deref(),
            Some("1.2 (a, b), 1.3 (c)")
        );
    }
}
