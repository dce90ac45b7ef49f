//! A token bucket per plugin instance: requests go out at the rate the remote allows,
//! bursts included, however the plugin loops.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

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
        let wait = {
            let mut state = lock(&self.state);
            let now = Instant::now();
            let refill = now.duration_since(state.refilled_at).as_secs_f64() * self.limit.requests_per_second;
            state.tokens = (state.tokens + refill).min(f64::from(self.limit.burst));
            state.refilled_at = now;
            state.tokens -= 1.0;
            if state.tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-state.tokens / self.limit.requests_per_second) }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_goes_at_once_and_the_rest_at_the_rate() {
        let bucket = TokenBucket::new(RateLimit { requests_per_second: 4.0, burst: 2 });
        let start = Instant::now();
        let mut sent = Vec::new();
        for _ in 0..6 {
            bucket.acquire().await;
            sent.push(start.elapsed());
        }
        let ms: Vec<u128> = sent.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, vec![0, 0, 250, 500, 750, 1000]);
        // A quiet period refills up to the burst, not beyond.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let before = Instant::now();
        for _ in 0..3 {
            bucket.acquire().await;
        }
        assert_eq!(before.elapsed().as_millis(), 250);
    }
}
