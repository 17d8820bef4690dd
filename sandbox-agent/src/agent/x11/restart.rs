//! When a crashed host-side X helper is started again: the decision alone, a pure function of
//! the recent restarts, so it can join any supervision tree as a child slot's policy.

use std::time::{Duration, Instant};

/// At most `max` restarts within any `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub max: usize,
    pub window: Duration,
}

/// The default: 5 restarts a minute.
pub const BUDGET: Budget = Budget { max: 5, window: Duration::from_secs(60) };

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Restart,
    /// The budget is spent: leave it down.
    GiveUp,
}

/// Decide about a crash at `now`, given the times of earlier restarts (any order); on
/// `Restart` the caller records `now`.
pub fn next(budget: Budget, restarts: &[Instant], now: Instant) -> Decision {
    let recent = restarts.iter().filter(|t| now.saturating_duration_since(**t) < budget.window).count();
    if recent < budget.max {
        Decision::Restart
    } else {
        Decision::GiveUp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_until_the_budget_is_spent() {
        let b = Budget { max: 2, window: Duration::from_secs(60) };
        let t0 = Instant::now();
        assert_eq!(next(b, &[], t0), Decision::Restart);
        assert_eq!(next(b, &[t0], t0), Decision::Restart);
        assert_eq!(next(b, &[t0, t0], t0), Decision::GiveUp);
    }

    #[test]
    fn old_restarts_no_longer_count() {
        let b = Budget { max: 1, window: Duration::from_secs(10) };
        let t0 = Instant::now();
        assert_eq!(next(b, &[t0], t0 + Duration::from_secs(11)), Decision::Restart);
        assert_eq!(next(b, &[t0], t0 + Duration::from_secs(9)), Decision::GiveUp);
    }
}
