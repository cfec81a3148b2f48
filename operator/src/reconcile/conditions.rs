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
}
