//! A token bucket per plugin instance: requests go out at the rate the remote allows,
//! bursts included, however the plugin loops.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::RateLimit;
use crate::lock;

/// Hands out one token per request at `requests_per_second`, holding up to `burst`.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    limit: RateLimit,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Tokens available; negative when callers have reserved tokens not yet refilled.
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    pub fn new(limit: RateLimit) -> Self {
        Self { limit, state: Mutex::new(State { tokens: f64::from(limit.burst), refilled_at: Instant::now() }) }
    }

    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Takes a token, waiting for it if there is none; returns how long it waited. A
    /// caller reserves its token before waiting, so concurrent callers queue in order.
    pub async fn acquire(&self) -> Duration {
        let wait = self.reserve(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        wait
    }

    /// Takes a token at `now` and says how long until it is really there (zero when it was).
    fn reserve(&self, now: Instant) -> Duration {
        let mut state = lock(&self.state);
        let refill = now.saturating_duration_since(state.refilled_at).as_secs_f64() * self.limit.requests_per_second;
        state.tokens = (state.tokens + refill).min(f64::from(self.limit.burst));
        state.refilled_at = state.refilled_at.max(now);
        state.tokens -= 1.0;
        if state.tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-state.tokens / self.limit.requests_per_second) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each caller asks at the moment the previous one got its token, as a plugin looping
    /// over requests does; the clock is the test's, so the figures are exact.
    #[test]
    fn a_burst_goes_at_once_and_the_rest_at_the_rate() {
        let bucket = TokenBucket::new(RateLimit { requests_per_second: 4.0, burst: 2 });
        let start = lock(&bucket.state).refilled_at;
        let mut now = start;
        let mut sent = Vec::new();
        for _ in 0..6 {
            now += bucket.reserve(now);
            sent.push(now.duration_since(start).as_millis());
        }
        assert_eq!(sent, vec![0, 0, 250, 500, 750, 1000]);
        // A quiet period refills up to the burst, not beyond.
        let before = now + Duration::from_secs(10);
        let mut now = before;
        for _ in 0..3 {
            now += bucket.reserve(now);
        }
        assert_eq!(now.duration_since(before).as_millis(), 250);
    }

    #[tokio::test]
    async fn acquire_waits_for_the_token_it_reserved() {
        let bucket = TokenBucket::new(RateLimit { requests_per_second: 50.0, burst: 1 });
        assert_eq!(bucket.acquire().await, Duration::ZERO);
        let started = Instant::now();
        let waited = bucket.acquire().await;
        assert!(waited > Duration::ZERO && waited <= Duration::from_millis(20), "{waited:?}");
        assert!(started.elapsed() >= waited, "it slept for the wait it reported");
    }
}
