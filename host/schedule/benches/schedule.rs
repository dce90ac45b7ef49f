//! Scheduler benchmark: 1,000 jobs due every minute, in a mix of time zones, advanced one
//! minute per tick for a simulated day on a manual clock. Prints the time one tick takes
//! (every job due: planning its next run included) against the same jobs' bare
//! next-time computations as the baseline. Asserts nothing.
//!
//! Run with `cargo xtask bench --bench schedule`.

// A benchmark is a test harness: a panic with a location is the right failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use rapport_schedule::{Plan, Schedule, Scheduler};

const JOBS: usize = 1000;
const TICKS: i64 = 24 * 60;
const ZONES: &[&str] = &["UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo", "Australia/Sydney"];

fn main() {
    let start: DateTime<Utc> = "2026-11-01T00:00:30Z".parse().unwrap();
    let scheduler = Scheduler::default();
    let schedules: Vec<Schedule> = (0..JOBS).map(|i| Schedule::parse("* * * * *", ZONES[i % ZONES.len()]).unwrap()).collect();
    for (i, schedule) in schedules.iter().enumerate() {
        scheduler.set(i, schedule.clone(), Plan::default());
    }
    assert_eq!(scheduler.due(start).len(), JOBS, "every job planned");

    let started = Instant::now();
    let mut started_runs = 0;
    for tick in 1..=TICKS {
        started_runs += scheduler.due(start + Duration::minutes(tick)).iter().filter(|(_, due, _)| *due).count();
    }
    let per_tick = started.elapsed().as_secs_f64() / TICKS as f64;
    assert_eq!(started_runs, JOBS * TICKS as usize);

    let started = Instant::now();
    for tick in 1..=TICKS {
        let now = start + Duration::minutes(tick);
        for schedule in &schedules {
            std::hint::black_box(schedule.next_after(now));
        }
    }
    let bare = started.elapsed().as_secs_f64() / TICKS as f64;

    println!("schedule: {JOBS} jobs due every minute, {TICKS} ticks (a day, across the 2026-11-01 fall-back in New York)");
    println!("  one tick, every job due       {:>8.1} µs ({:.2} µs per job)", per_tick * 1e6, per_tick * 1e6 / JOBS as f64);
    println!("  bare next-time computations   {:>8.1} µs per tick", bare * 1e6);
    println!("  ratio, scheduler/bare         {:>8.2}", per_tick / bare);
    println!("  CPU share of one core         {:>8.4} % (a tick a minute)", per_tick / 60.0 * 100.0);
}
