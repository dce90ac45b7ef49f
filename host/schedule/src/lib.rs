//! Cron schedules in a time zone, the clock they run against, and the scheduler that says
//! which jobs are due. Built once for whatever runs on a schedule (plugin instances, and
//! rules later).
//!
//! - A [`Schedule`] is a standard 5-field cron expression read in an IANA time zone, so
//!   "30 2 * * *" means 02:30 on the wall clock there: on the day the clock springs past
//!   02:30 it runs once, as the clock lands after the gap (03:00); on the day 01:30 happens
//!   twice it runs once, the first time. (`croner`, chosen over `cron` for exactly this.)
//! - A job's [`Plan`] (next and last run) is the caller's to persist. A run missed while
//!   the daemon was down is done once at start, however many were missed.
//! - The [`Clock`] is injected, so tests move time by hand instead of waiting.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde::{Deserialize, Serialize};

/// A schedule cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The cron expression is malformed.
    #[error(
        "`{expression}` is not a cron expression ({message}): expected 5 fields, minute hour day-of-month month \
         day-of-week, such as \"*/15 * * * *\" or \"30 2 * * 1-5\""
    )]
    Expression {
        /// What was given.
        expression: String,
        /// What the parser said.
        message: String,
    },
    /// The time zone is unknown.
    #[error("`{0}` is not a time zone: use an IANA name such as \"Europe/Paris\", \"America/New_York\" or \"UTC\"")]
    TimeZone(String),
    /// The expression never matches a real date (`0 0 31 2 *`).
    #[error("`{0}` never matches a date")]
    Never(String),
}

/// A cron expression read in a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    expression: String,
    timezone: Tz,
    cron: Cron,
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression && self.timezone == other.timezone
    }
}

impl Schedule {
    /// Reads a standard 5-field expression in an IANA time zone.
    pub fn parse(expression: &str, timezone: &str) -> Result<Self, ScheduleError> {
        let parser = CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build();
        let cron = parser
            .parse(expression.trim())
            .map_err(|e| ScheduleError::Expression { expression: expression.to_owned(), message: e.to_string() })?;
        let timezone = Tz::from_str(timezone.trim()).map_err(|_| ScheduleError::TimeZone(timezone.to_owned()))?;
        let schedule = Self { expression: expression.trim().to_owned(), timezone, cron };
        if schedule.next_after(DateTime::<Utc>::UNIX_EPOCH).is_none() {
            return Err(ScheduleError::Never(schedule.expression));
        }
        Ok(schedule)
    }

    /// The expression, as given.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The time zone's IANA name.
    pub fn timezone(&self) -> &str {
        self.timezone.name()
    }

    /// The first time strictly after `after` that the schedule names.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.timezone);
        self.cron.find_next_occurrence(&local, false).ok().map(|next| next.with_timezone(&Utc))
    }
}

/// When a job runs next and when it last ran; persisted by the job's owner.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Plan {
    /// The next time it is due (none: not planned yet).
    pub next: Option<DateTime<Utc>>,
    /// The last time it was started by its schedule.
    pub last: Option<DateTime<Utc>>,
}

impl Plan {
    /// The plan at `now`: whether the job is due, and the plan to keep. A new job is
    /// planned for its next time; a job past its time is due once, and planned for the
    /// first time after `now`, so runs missed while the daemon was down collapse into one.
    pub fn at(self, schedule: &Schedule, now: DateTime<Utc>) -> (bool, Self) {
        match self.next {
            Some(next) if next <= now => (true, Self { next: schedule.next_after(now), last: Some(now) }),
            Some(_) => (false, self),
            None => (false, Self { next: schedule.next_after(now), ..self }),
        }
    }
}

/// The time, and a way to wait for a later one.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
    /// Resolves at or after `when` (at once if it has passed).
    fn sleep_until(&self, when: DateTime<Utc>) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, when: DateTime<Utc>) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let wait = (when - Utc::now()).to_std().unwrap_or_default();
        Box::pin(tokio::time::sleep(wait))
    }
}

/// A clock that moves only when told to: tests (and benchmarks) of schedules run in
/// microseconds whatever the times involved.
#[derive(Debug)]
pub struct ManualClock {
    now: tokio::sync::watch::Sender<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock showing `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self { now: tokio::sync::watch::Sender::new(now) }
    }

    /// Moves the clock to `now`, waking the sleepers it passes.
    pub fn set(&self, now: DateTime<Utc>) {
        self.now.send_replace(now);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.borrow()
    }

    fn sleep_until(&self, when: DateTime<Utc>) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let mut changes = self.now.subscribe();
        Box::pin(async move {
            // The sender lives as long as the clock, which outlives this borrow of it.
            let _ = changes.wait_for(|now| *now >= when).await;
        })
    }
}

/// Jobs on schedules, keyed by `K`: which are due now, and when the next one is.
#[derive(Debug)]
pub struct Scheduler<K: Ord> {
    jobs: Mutex<BTreeMap<K, (Schedule, Plan)>>,
    changed: tokio::sync::Notify,
}

impl<K: Ord + Clone> Default for Scheduler<K> {
    fn default() -> Self {
        Self { jobs: Mutex::new(BTreeMap::new()), changed: tokio::sync::Notify::new() }
    }
}

impl<K: Ord + Clone> Scheduler<K> {
    fn jobs(&self) -> std::sync::MutexGuard<'_, BTreeMap<K, (Schedule, Plan)>> {
        // A panic elsewhere cannot leave a half-written entry: entries are replaced whole.
        self.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Schedules `key` (replacing its schedule), starting from its persisted plan.
    pub fn set(&self, key: K, schedule: Schedule, plan: Plan) {
        self.jobs().insert(key, (schedule, plan));
        self.changed.notify_one();
    }

    /// Unschedules `key` (a disabled or removed job).
    pub fn remove(&self, key: &K) {
        self.jobs().remove(key);
        self.changed.notify_one();
    }

    /// The plan of `key`.
    pub fn plan(&self, key: &K) -> Option<Plan> {
        self.jobs().get(key).map(|(_, plan)| *plan)
    }

    /// Advances every job to `now`: the jobs due, each with its new plan (already kept
    /// here; the caller persists it), and the plans of new jobs just planned.
    pub fn due(&self, now: DateTime<Utc>) -> Vec<(K, bool, Plan)> {
        let mut changed = Vec::new();
        for (key, (schedule, plan)) in self.jobs().iter_mut() {
            let (due, next) = plan.at(schedule, now);
            if next != *plan {
                *plan = next;
                changed.push((key.clone(), due, next));
            }
        }
        changed
    }

    /// The earliest next run of any job.
    pub fn next_wake(&self) -> Option<DateTime<Utc>> {
        self.jobs().values().filter_map(|(_, plan)| plan.next).min()
    }

    /// Runs forever: at each job's time, `on_changes` gets the jobs whose plan changed,
    /// each with whether it is due (to be started) and its new plan (to be persisted), in
    /// one batch per wake. Wakes early when jobs change.
    pub async fn run(&self, clock: &dyn Clock, mut on_changes: impl FnMut(Vec<(K, bool, Plan)>)) {
        loop {
            // Registered before reading the jobs, so a change made meanwhile is not missed.
            let changed = self.changed.notified();
            let changes = self.due(clock.now());
            if !changes.is_empty() {
                on_changes(changes);
            }
            match self.next_wake() {
                Some(when) => {
                    tokio::select! {
                        () = clock.sleep_until(when) => {}
                        () = changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    /// Every run of `schedule` from `from` (exclusive) to `to`, in local time.
    fn runs(schedule: &Schedule, from: &str, to: &str) -> Vec<String> {
        let tz: Tz = schedule.timezone().parse().unwrap();
        let (mut at, to) = (utc(from), utc(to));
        let mut out = Vec::new();
        while let Some(next) = schedule.next_after(at).filter(|n| *n < to) {
            assert!(next > at, "runs go forward");
            out.push(next.with_timezone(&tz).format("%m-%d %H:%M %Z").to_string());
            at = next;
        }
        out
    }

    #[test]
    fn a_wall_clock_time_runs_once_a_day_across_both_dst_changes() {
        let new_york = Schedule::parse("30 2 * * *", "America/New_York").unwrap();
        // 2026-03-08: clocks jump from 02:00 to 03:00; 02:30 does not exist that day, so the
        // run happens as the clock lands after the gap.
        let spring = runs(&new_york, "2026-03-06T12:00:00Z", "2026-03-10T12:00:00Z");
        assert_eq!(spring, ["03-07 02:30 EST", "03-08 03:00 EDT", "03-09 02:30 EDT", "03-10 02:30 EDT"]);
        // 2026-11-01: clocks fall back from 02:00 to 01:00; 01:30 happens twice.
        let twice = Schedule::parse("30 1 * * *", "America/New_York").unwrap();
        let fall = runs(&twice, "2026-10-30T12:00:00Z", "2026-11-03T12:00:00Z");
        assert_eq!(fall, ["10-31 01:30 EDT", "11-01 01:30 EDT", "11-02 01:30 EST", "11-03 01:30 EST"]);
    }

    #[test]
    fn missed_runs_collapse_into_one_at_start() {
        let daily = Schedule::parse("0 9 * * *", "Europe/Paris").unwrap();
        // Down from before Monday 09:00 until Thursday 12:00: three runs missed.
        let plan = Plan { next: Some(utc("2026-06-01T07:00:00Z")), last: Some(utc("2026-05-31T07:00:00Z")) };
        let now = utc("2026-06-04T10:00:00Z");
        let (due, plan) = plan.at(&daily, now);
        assert!(due);
        assert_eq!(plan, Plan { next: Some(utc("2026-06-05T07:00:00Z")), last: Some(now) });
        // Asked again at once: nothing more to do.
        assert_eq!(plan.at(&daily, now), (false, plan));
        // A new job is planned, not run.
        assert_eq!(Plan::default().at(&daily, now), (false, Plan { next: Some(utc("2026-06-05T07:00:00Z")), last: None }));
    }

    #[test]
    fn bad_schedules_say_what_is_expected() {
        let err = Schedule::parse("61 * * * *", "UTC").unwrap_err().to_string();
        assert!(err.contains("`61 * * * *`") && err.contains("5 fields"), "{err}");
        let err = Schedule::parse("0 0 * * * *", "UTC").unwrap_err().to_string();
        assert!(err.contains("5 fields"), "{err}");
        let err = Schedule::parse("0 9 * * *", "Mars/Olympus").unwrap_err().to_string();
        assert!(err.contains("Mars/Olympus") && err.contains("IANA"), "{err}");
        assert_eq!(Schedule::parse("0 0 31 2 *", "UTC").unwrap_err(), ScheduleError::Never("0 0 31 2 *".to_owned()));
    }

    #[tokio::test]
    async fn the_scheduler_wakes_at_each_time_and_when_jobs_change() {
        let clock = std::sync::Arc::new(ManualClock::new(utc("2026-06-01T08:59:30Z")));
        let scheduler = std::sync::Arc::new(Scheduler::default());
        scheduler.set("crm", Schedule::parse("0 9 * * *", "UTC").unwrap(), Plan::default());
        let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
        let driver = {
            let (clock, scheduler) = (std::sync::Arc::clone(&clock), std::sync::Arc::clone(&scheduler));
            tokio::spawn(async move {
                scheduler.run(clock.as_ref(), |changes| changes.into_iter().for_each(|change| events.send(change).unwrap())).await;
            })
        };
        // Planned at start, not run.
        assert_eq!(received.recv().await.unwrap(), ("crm", false, Plan { next: Some(utc("2026-06-01T09:00:00Z")), last: None }));
        clock.set(utc("2026-06-01T09:00:00Z"));
        let (key, due, plan) = received.recv().await.unwrap();
        assert_eq!((key, due, plan.next), ("crm", true, Some(utc("2026-06-02T09:00:00Z"))));
        // A job added while the scheduler sleeps is planned at once.
        scheduler.set("mail", Schedule::parse("*/5 * * * *", "UTC").unwrap(), Plan::default());
        assert_eq!(received.recv().await.unwrap().0, "mail");
        // A removed job is not run.
        scheduler.remove(&"crm");
        clock.set(utc("2026-06-02T09:00:00Z"));
        let (key, due, _) = received.recv().await.unwrap();
        assert_eq!((key, due), ("mail", true));
        assert!(received.try_recv().is_err());
        driver.abort();
    }
}
