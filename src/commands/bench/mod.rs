//! `postrunner bench <what>`: benchmarks that print a table and a last line of
//! `key=value` figures (recorded in docs/bench/).

pub mod events;
pub mod lanes;
pub mod load;
pub mod metrics;
pub mod queue;
pub mod route;
pub mod send;
pub mod unsubscribe;
pub mod verify;

use crate::config::BenchWhat;

/// `postrunner bench <what>`, on `DATABASE_URL`'s server or the embedded default.
pub async fn run(cx: &super::Context, what: &BenchWhat) -> anyhow::Result<()> {
    let url = cx.database_url.clone();
    match what {
        BenchWhat::Queue(args) => queue::run(url, args.clone()).await,
        BenchWhat::Route(args) => route::run(url, args.clone()).await,
        BenchWhat::Send(args) => send::run(url, args.clone()).await,
        BenchWhat::Events(args) => events::run(url, args.clone()).await,
        BenchWhat::Metrics(args) => metrics::run(url, args.clone()).await,
        BenchWhat::Verify(args) => verify::run(url, args.clone()).await,
        BenchWhat::Lanes(args) => lanes::run(url, args.clone()).await,
        BenchWhat::Unsubscribe(args) => unsubscribe::run(url, args.clone()).await,
    }
}

/// The p-th percentile (0..=100) of sorted `values`, or 0 when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    #[test]
    fn percentiles_of_a_small_sample() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(super::percentile(&v, 50.0), 3.0);
        assert_eq!(super::percentile(&v, 100.0), 5.0);
        assert_eq!(super::percentile(&[], 50.0), 0.0);
    }
}
