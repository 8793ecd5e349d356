//! What is measured during a run, and the summary it reduces to.
//!
//! The measurement window opens at the first arrival after the warm-up and closes at
//! the last arrival. Throughput, the time-averaged number in system and the balance
//! samples cover the window; latencies and rejections cover every request that arrived
//! in it, each followed to completion (the run drains after the last arrival), so
//! slow requests are not cut off.

/// Running measurements of one strategy's run.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    times_in_system: Vec<f64>,
    wait_total: f64,
    waits: u64,
    arrivals: u64,
    rejected: u64,
    window: Option<(f64, Option<f64>)>,
    last_time: f64,
    area: f64,
    window_completions: u64,
    samples: u64,
    max_over_mean_total: f64,
    cv_total: f64,
}

/// The statistics of one run.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Summary {
    /// Requests that arrived in the window.
    pub measured: u64,
    /// Of those, completed (admitted; every admitted request completes).
    pub completed: u64,
    /// Of those, refused by the router.
    pub rejected: u64,
    /// Length of the window, simulated seconds.
    pub window_seconds: f64,
    /// Completions per simulated second inside the window.
    pub throughput: f64,
    /// Mean time in system (queueing + service), seconds.
    pub mean_time_in_system: f64,
    /// Median time in system, seconds (nearest rank).
    pub p50_time_in_system: f64,
    /// 99th percentile of time in system, seconds (nearest rank, exact).
    pub p99_time_in_system: f64,
    /// Mean time spent queued before a slot took the request, seconds.
    pub mean_wait: f64,
    /// Time-averaged number of requests in the system over the window.
    pub mean_in_system: f64,
    /// Mean over samples of max utilisation / mean utilisation.
    pub max_over_mean: f64,
    /// Mean over samples of the coefficient of variation of utilisation.
    pub load_cv: f64,
    /// Number of balance samples taken (samples of an idle fleet are skipped).
    pub balance_samples: u64,
}

/// The `q`-quantile (`0 < q <= 1`) by nearest rank: the smallest value with at least
/// `q * n` values at or below it. Reorders `values`; 0 for an empty slice.
pub fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    *values
        .select_nth_unstable_by(rank - 1, |a, b| a.total_cmp(b))
        .1
}

impl Recorder {
    /// A recorder expecting about `measured` requests in the window.
    pub fn with_capacity(measured: usize) -> Self {
        Recorder {
            times_in_system: Vec::with_capacity(measured),
            ..Recorder::default()
        }
    }

    /// Opens the window at `time`.
    pub fn open_window(&mut self, time: f64) {
        self.window = Some((time, None));
        self.last_time = time;
    }

    /// Closes the window at `time` (after [`Recorder::advance`] to it).
    pub fn close_window(&mut self, time: f64) {
        if let Some((start, None)) = self.window {
            self.window = Some((start, Some(time)));
        }
    }

    fn window_open(&self) -> bool {
        matches!(self.window, Some((_, None)))
    }

    /// Moves the clock to `time` with `in_system` requests held since the last call.
    #[inline]
    pub fn advance(&mut self, time: f64, in_system: u64) {
        if self.window_open() {
            self.area += in_system as f64 * (time - self.last_time);
            self.last_time = time;
        }
    }

    /// Counts a measured arrival, admitted or refused.
    #[inline]
    pub fn arrival(&mut self, admitted: bool) {
        self.arrivals += 1;
        if !admitted {
            self.rejected += 1;
        }
    }

    /// A measured request got a slot after queueing `wait` seconds.
    #[inline]
    pub fn service_start(&mut self, wait: f64) {
        self.wait_total += wait;
        self.waits += 1;
    }

    /// A request finished after `time_in_system` seconds.
    #[inline]
    pub fn completion(&mut self, measured: bool, time_in_system: f64) {
        if self.window_open() {
            self.window_completions += 1;
        }
        if measured {
            self.times_in_system.push(time_in_system);
        }
    }

    /// Records one balance sample from the utilisation of every accelerator. A sample
    /// of an idle fleet (mean 0) carries no balance information and is skipped.
    pub fn balance(&mut self, utilisations: impl Iterator<Item = f64>) {
        let (mut n, mut sum, mut sum_sq, mut max) = (0usize, 0.0, 0.0, 0.0_f64);
        for u in utilisations {
            n += 1;
            sum += u;
            sum_sq += u * u;
            max = max.max(u);
        }
        if n == 0 || sum <= 0.0 {
            return;
        }
        let mean = sum / n as f64;
        let variance = (sum_sq / n as f64 - mean * mean).max(0.0);
        self.samples += 1;
        self.max_over_mean_total += max / mean;
        self.cv_total += variance.sqrt() / mean;
    }

    /// Reduces the measurements to their summary.
    pub fn finish(mut self) -> Summary {
        let window_seconds = match self.window {
            Some((start, Some(end))) => end - start,
            Some((start, None)) => self.last_time - start,
            None => 0.0,
        };
        let per_second = |x: f64| {
            if window_seconds > 0.0 {
                x / window_seconds
            } else {
                0.0
            }
        };
        let mean = |total: f64, n: u64| if n == 0 { 0.0 } else { total / n as f64 };
        let completed = self.times_in_system.len() as u64;
        let total_time: f64 = self.times_in_system.iter().sum();
        let p50 = percentile(&mut self.times_in_system, 0.50);
        let p99 = percentile(&mut self.times_in_system, 0.99);
        Summary {
            measured: self.arrivals,
            completed,
            rejected: self.rejected,
            window_seconds,
            throughput: per_second(self.window_completions as f64),
            mean_time_in_system: mean(total_time, completed),
            p50_time_in_system: p50,
            p99_time_in_system: p99,
            mean_wait: mean(self.wait_total, self.waits),
            mean_in_system: per_second(self.area),
            max_over_mean: mean(self.max_over_mean_total, self.samples),
            load_cv: mean(self.cv_total, self.samples),
            balance_samples: self.samples,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<f64> = (1..=100).rev().map(|x| x as f64).collect();
        assert_eq!(percentile(&mut v, 0.99), 99.0);
        assert_eq!(percentile(&mut v, 0.50), 50.0);
        assert_eq!(percentile(&mut v, 1.0), 100.0);
        assert_eq!(percentile(&mut [3.0], 0.99), 3.0);
        assert_eq!(percentile(&mut [], 0.99), 0.0);
        let mut w = vec![1.0, 2.0, 3.0];
        assert_eq!(percentile(&mut w, 0.5), 2.0);
    }

    #[test]
    fn balance_of_even_and_skewed_fleets() {
        let mut r = Recorder::default();
        r.balance([0.5, 0.5, 0.5, 0.5].into_iter());
        r.balance([0.0, 0.0].into_iter());
        r.balance([1.0, 0.0, 0.0, 0.0].into_iter());
        let s = r.finish();
        assert_eq!(s.balance_samples, 2);
        // (1 + 4) / 2 and (0 + sqrt(3)) / 2.
        assert!((s.max_over_mean - 2.5).abs() < 1e-12);
        assert!((s.load_cv - 3f64.sqrt() / 2.0).abs() < 1e-12);
    }

    #[test]
    fn window_area_and_throughput() {
        let mut r = Recorder::default();
        r.advance(0.5, 3); // before the window: ignored
        r.open_window(1.0);
        r.advance(2.0, 2);
        r.completion(true, 1.5);
        r.advance(4.0, 1);
        r.close_window(4.0);
        r.completion(false, 9.0); // after the window: not counted in throughput
        r.arrival(true);
        r.arrival(false);
        r.service_start(0.25);
        let s = r.finish();
        assert_eq!(s.window_seconds, 3.0);
        assert!((s.mean_in_system - (2.0 + 2.0) / 3.0).abs() < 1e-12);
        assert!((s.throughput - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!((s.measured, s.completed, s.rejected), (2, 1, 1));
        assert_eq!(s.mean_time_in_system, 1.5);
        assert_eq!(s.mean_wait, 0.25);
    }
}
