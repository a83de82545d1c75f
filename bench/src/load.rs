//! A closed-loop load of one request, in process: a number of clients, each
//! sending the request again as soon as its answer is in and checked, for a
//! fixed time. Unlike oha, every answer's body is read and judged.

use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::header::CONTENT_TYPE;

use super::oha::Figures;

/// What to send, and what counts as a good answer.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    pub url: &'a str,
    pub api_key: &'a str,
    pub body: &'static str,
    /// Whether an answer (its status and body) is the one expected.
    pub check: fn(reqwest::StatusCode, &[u8]) -> bool,
}

/// The clients' runtime and connection pool, kept across runs.
pub struct Loader {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
}

/// What the clients measured: latency of the good answers, rate of good
/// answers, and the rest as errors; with the first error, as a hint.
pub struct Outcome {
    pub figures: Figures,
    pub first_error: Option<String>,
}

/// One client's tally.
#[derive(Default)]
struct Tally {
    ms: Vec<f64>,
    errors: u64,
    first_error: Option<String>,
}

impl Loader {
    pub fn new() -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("cannot start the load runtime")?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self { runtime, client })
    }

    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// `clients` clients sending `request` for `duration`.
    pub fn run(&self, request: Request<'_>, clients: usize, duration: Duration) -> Outcome {
        self.runtime.block_on(async {
            let started = Instant::now();
            let until = started + duration;
            let tallies =
                futures::future::join_all((0..clients).map(|_| self.client_loop(request, until))).await;
            let elapsed = started.elapsed().as_secs_f64();
            let mut all = Tally::default();
            for tally in tallies {
                all.ms.extend(tally.ms);
                all.errors += tally.errors;
                all.first_error = all.first_error.or(tally.first_error);
            }
            let rps = all.ms.len() as f64 / elapsed;
            let figures = Figures { ms: percentiles(&mut all.ms), rps, errors: all.errors };
            Outcome { figures, first_error: all.first_error }
        })
    }

    async fn client_loop(&self, request: Request<'_>, until: Instant) -> Tally {
        let mut tally = Tally::default();
        while Instant::now() < until {
            let started = Instant::now();
            match self.send(request).await {
                Ok(()) => tally.ms.push(started.elapsed().as_secs_f64() * 1e3),
                Err(error) => {
                    tally.errors += 1;
                    tally.first_error.get_or_insert(error);
                }
            }
        }
        tally
    }

    /// One request, its whole answer read; an error says what was wrong.
    async fn send(&self, request: Request<'_>) -> Result<(), String> {
        let answer = self
            .client
            .post(request.url)
            .bearer_auth(request.api_key)
            .header(CONTENT_TYPE, "application/json")
            .body(request.body)
            .send()
            .await
            .map_err(|error| error.to_string())?;
        let status = answer.status();
        let body = answer.bytes().await.map_err(|error| error.to_string())?;
        if (request.check)(status, &body) {
            Ok(())
        } else {
            Err(format!("{status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)])))
        }
    }
}

/// p50, p90 and p99 (nearest rank) of `ms`; NaN when empty.
fn percentiles(ms: &mut [f64]) -> [f64; 3] {
    ms.sort_by(f64::total_cmp);
    [0.50, 0.90, 0.99].map(|p: f64| {
        let rank = (p * ms.len() as f64).ceil() as usize;
        ms.get(rank.saturating_sub(1)).copied().unwrap_or(f64::NAN)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut ms: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentiles(&mut ms), [50.0, 90.0, 99.0]);
        let mut one = [7.0];
        assert_eq!(percentiles(&mut one), [7.0; 3]);
        assert!(percentiles(&mut []).iter().all(|t| t.is_nan()));
    }
}
