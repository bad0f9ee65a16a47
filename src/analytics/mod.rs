//! Analytics for support leads and BI tools: ticket volume and backlog, resolution and first-response
//! times, breakdowns, AI and credit usage — computed by PostgreSQL under the caller's RLS context
//! from the rows themselves (exact; no rollups to drift), for owners, admins and analyst keys.
//!
//! Buckets are computed here, in the caller's time zone (`chrono-tz`, DST-correct), and handed to
//! SQL as an array of instants that `width_bucket` sorts rows into; a request that would need too
//! many buckets is refused before anything is queried.

pub mod graphql;
/// The statements (public for the tests that call them past the resolvers' checks).
pub mod repo;

use chrono::{
    DateTime, Datelike as _, Duration, NaiveDate, NaiveDateTime, TimeZone as _, Timelike as _, Utc,
};
use chrono_tz::Tz;

use crate::error::{AppError, AppResult};

/// Most buckets one series may have.
pub const MAX_BUCKETS: usize = 1_000;

/// How long each point of a series covers, in the caller's time zone.
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[graphql(name = "AnalyticsInterval")]
pub enum Interval {
    /// Clock hours.
    Hour,
    /// Local days, from midnight.
    #[default]
    Day,
    /// Local weeks, from Monday midnight.
    Week,
    /// Local calendar months, from the 1st at midnight.
    Month,
}

/// The window every figure is computed over: `[from, to)`, in a time zone.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub tz: Tz,
}

impl Window {
    /// Validates the window: `to` after `from`, and a known IANA time zone.
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>, time_zone: &str) -> AppResult<Self> {
        if to <= from {
            return Err(AppError::invalid_field(
                "to",
                "`to` must be later than `from`",
            ));
        }
        let tz: Tz = time_zone.parse().map_err(|_| {
            AppError::invalid_field(
                "timeZone",
                "timeZone must be an IANA time zone name, such as `Europe/Berlin` or `UTC`",
            )
        })?;
        Ok(Self { from, to, tz })
    }

    /// The start instants of the buckets of `interval` that cover the window: the first is `from`
    /// truncated to the interval in the window's time zone, the last starts before `to`.
    pub fn buckets(&self, interval: Interval) -> AppResult<Vec<DateTime<Utc>>> {
        let too_many = || {
            AppError::invalid_field(
                "interval",
                format!(
                    "the window holds more than {MAX_BUCKETS} {} buckets; choose a longer interval or a shorter window",
                    match interval {
                        Interval::Hour => "hour",
                        Interval::Day => "day",
                        Interval::Week => "week",
                        Interval::Month => "month",
                    }
                ),
            )
        };
        let zoned = self.from.with_timezone(&self.tz);
        let local = zoned.naive_local();
        let mut starts = Vec::new();
        match interval {
            // Hours are absolute: the instant the local hour of `from` began, then 3,600 s each (a
            // repeated local hour at the end of summer time is two buckets, a skipped one none).
            Interval::Hour => {
                let into_hour = Duration::minutes(i64::from(zoned.minute()))
                    + Duration::seconds(i64::from(zoned.second()))
                    + Duration::nanoseconds(i64::from(zoned.nanosecond()));
                let mut at = self.from - into_hour;
                while at < self.to {
                    if starts.len() == MAX_BUCKETS {
                        return Err(too_many());
                    }
                    starts.push(at);
                    at += Duration::hours(1);
                }
            }
            Interval::Day | Interval::Week | Interval::Month => {
                let mut day = match interval {
                    Interval::Week => {
                        local.date()
                            - Duration::days(i64::from(local.weekday().num_days_from_monday()))
                    }
                    Interval::Month => local.date().with_day(1).unwrap_or(local.date()),
                    _ => local.date(),
                };
                loop {
                    let at = self.instant(day.and_time(chrono::NaiveTime::MIN))?;
                    if at >= self.to {
                        break;
                    }
                    if starts.len() == MAX_BUCKETS {
                        return Err(too_many());
                    }
                    starts.push(at);
                    day = next_day(day, interval).ok_or_else(too_many)?;
                }
            }
        }
        Ok(starts)
    }

    /// The instant of a local time: the earlier of two (clocks turned back), or the moment clocks
    /// jumped past it (clocks turned forward, e.g. zones whose DST starts at midnight).
    fn instant(&self, local: NaiveDateTime) -> AppResult<DateTime<Utc>> {
        if let Some(at) = self.tz.from_local_datetime(&local).earliest() {
            return Ok(at.with_timezone(&Utc));
        }
        // In a gap: the first local minute after it that exists.
        (1..=180)
            .filter_map(|m| {
                self.tz
                    .from_local_datetime(&(local + Duration::minutes(m)))
                    .earliest()
            })
            .next()
            .map(|at| at.with_timezone(&Utc))
            .ok_or_else(|| anyhow::anyhow!("no instant for local time {local}").into())
    }
}

fn next_day(day: NaiveDate, interval: Interval) -> Option<NaiveDate> {
    match interval {
        Interval::Week => day.checked_add_signed(Duration::days(7)),
        Interval::Month => day.checked_add_months(chrono::Months::new(1)),
        _ => day.succ_opt(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn window(from: &str, to: &str, tz: &str) -> Window {
        Window::new(at(from), at(to), tz).unwrap()
    }

    #[test]
    fn days_start_at_local_midnight_across_a_dst_change() {
        // Berlin leaves summer time on 2026-10-25: that day has 25 hours.
        let w = window(
            "2026-10-24T10:00:00Z",
            "2026-10-27T00:00:00Z",
            "Europe/Berlin",
        );
        let starts = w.buckets(Interval::Day).unwrap();
        assert_eq!(
            starts,
            vec![
                at("2026-10-23T22:00:00Z"),
                at("2026-10-24T22:00:00Z"),
                at("2026-10-25T23:00:00Z"),
                at("2026-10-26T23:00:00Z"),
            ]
        );
    }

    #[test]
    fn weeks_start_on_local_monday_and_months_on_the_first() {
        let w = window(
            "2026-03-04T12:00:00Z",
            "2026-04-02T00:00:00Z",
            "America/New_York",
        );
        let weeks = w.buckets(Interval::Week).unwrap();
        // Monday 2026-03-02 00:00 EST, then 03-09 (EDT from 03-08), …
        assert_eq!(weeks[0], at("2026-03-02T05:00:00Z"));
        assert_eq!(weeks[1], at("2026-03-09T04:00:00Z"));
        assert_eq!(weeks.len(), 5);
        let months = w.buckets(Interval::Month).unwrap();
        assert_eq!(
            months,
            vec![at("2026-03-01T05:00:00Z"), at("2026-04-01T04:00:00Z")]
        );
    }

    #[test]
    fn an_hour_bucket_in_the_repeated_hour_starts_at_that_hour() {
        // 01:30Z is the second 02:30 in Berlin (clocks went back at 01:00Z).
        let w = window(
            "2026-10-25T01:30:00Z",
            "2026-10-25T03:00:00Z",
            "Europe/Berlin",
        );
        let starts = w.buckets(Interval::Hour).unwrap();
        assert_eq!(
            starts,
            vec![at("2026-10-25T01:00:00Z"), at("2026-10-25T02:00:00Z")]
        );
    }

    #[test]
    fn hours_follow_local_boundaries_of_half_hour_zones() {
        let w = window(
            "2026-01-01T00:10:00Z",
            "2026-01-01T02:00:00Z",
            "Asia/Kolkata",
        );
        let starts = w.buckets(Interval::Hour).unwrap();
        // 05:40 local truncates to 05:00 local = 23:30Z the day before.
        assert_eq!(starts[0], at("2025-12-31T23:30:00Z"));
        assert_eq!(starts.len(), 3);
    }

    /// The field a refusal names.
    fn refused<T>(result: AppResult<T>) -> Option<&'static str> {
        match result {
            Err(AppError::BadInput { field, .. }) => field,
            _ => None,
        }
    }

    #[test]
    fn bad_windows_zones_and_too_many_buckets_are_refused() {
        let (jan1, jan2) = (at("2026-01-01T00:00:00Z"), at("2026-01-02T00:00:00Z"));
        assert_eq!(refused(Window::new(jan2, jan1, "UTC")), Some("to"));
        assert_eq!(refused(Window::new(jan1, jan1, "UTC")), Some("to"));
        assert_eq!(
            refused(Window::new(jan1, jan2, "Mars/Olympus")),
            Some("timeZone")
        );
        let year = window("2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z", "UTC");
        assert_eq!(refused(year.buckets(Interval::Hour)), Some("interval"));
        assert_eq!(year.buckets(Interval::Day).unwrap().len(), 365);
        // Exactly 1,000 is allowed.
        let edge = window("2026-01-01T00:00:00Z", "2026-02-11T16:00:00Z", "UTC");
        assert_eq!(edge.buckets(Interval::Hour).unwrap().len(), 1_000);
    }
}
