//! The pace of probes sent in bulk (a census): evenly spaced, and never more than `rate` in
//! any second. The window is 5% longer than a second, for the delay between the pace and the
//! wire, so that a peer counting what it receives never sees more than `rate` in a second.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

const WINDOW: Duration = Duration::from_millis(1050);

pub struct Pace {
    rate: usize,
    every: Duration,
    /// When the last `rate` probes were let go, oldest first.
    sent: Mutex<VecDeque<Instant>>,
}

impl Pace {
    /// `rate` probes a second at most (at least one).
    pub fn per_second(rate: u32) -> Pace {
        let rate = rate.max(1) as usize;
        Pace {
            rate,
            every: WINDOW / rate as u32,
            sent: Mutex::new(VecDeque::with_capacity(rate)),
        }
    }

    /// Waits until one more probe may go, and counts it. Waiters go in turn.
    pub async fn wait(&self) {
        let mut sent = self.sent.lock().await;
        let mut at = Instant::now();
        if let Some(last) = sent.back() {
            at = at.max(*last + self.every);
        }
        if sent.len() == self.rate
            && let Some(oldest) = sent.front()
        {
            at = at.max(*oldest + WINDOW);
        }
        tokio::time::sleep_until(at).await;
        if sent.len() == self.rate {
            sent.pop_front();
        }
        sent.push_back(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_the_rate_in_any_second() {
        let pace = std::sync::Arc::new(Pace::per_second(20));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let pace = pace.clone();
            tasks.push(tokio::spawn(async move {
                pace.wait().await;
                Instant::now()
            }));
        }
        let mut times = Vec::new();
        for t in tasks {
            times.push(t.await.expect("task"));
        }
        times.sort();
        for (i, t) in times.iter().enumerate() {
            let within = times[i..]
                .iter()
                .take_while(|u| **u < *t + Duration::from_secs(1))
                .count();
            assert!(within <= 20, "{within} in the second from probe {i}");
        }
        // And not much slower than the rate either.
        assert!(started.elapsed() < Duration::from_secs(6), "{:?}", started.elapsed());
    }
}
