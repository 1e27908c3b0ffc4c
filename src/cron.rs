//! When a job fires: next fire times of its cron schedule in its time zone, correct across
//! daylight-saving changes, and the report date each fire implies. Pure: no clock, no IO.
//!
//! tokio-cron-scheduler turns a job's time zone into a fixed UTC offset when the job is created,
//! so a 06:00 Europe/Berlin job would fire at 05:00 or 07:00 local time after a change. The
//! service therefore computes each next fire instant here, with `croner` (the parser
//! tokio-cron-scheduler itself uses, with the same required seconds field) evaluated in the
//! named zone, and hands tokio-cron-scheduler a one-shot job for that instant, re-armed after
//! every fire.
//!
//! Local times a change makes special follow croner's rules (the Open Cron Pattern
//! Specification):
//! - a time that does not exist (02:30 on a spring-forward day in Europe/Berlin) fires once at
//!   the first valid time after the gap (03:00 local);
//! - a time that happens twice (02:30 on a fall-back day) fires once, at its first occurrence
//!   (02:30 summer time). This holds for every schedule: an interval schedule (`0 */30 * * * *`)
//!   fires in the first pass of the repeated hour and not in the second, so no local time of a
//!   day ever runs twice;
//! - interval schedules skip the hour that does not exist.

use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// A parsed schedule in its time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    tz: Tz,
    expr: String,
}

/// A schedule that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error(
    "schedule `{expr}` is not a cron expression with seconds (`sec min hour day month weekday [year]`, e.g. `0 0 6 * * *`): {cause}"
)]
pub struct ScheduleError {
    /// The expression as written.
    pub expr: String,
    /// The parser's complaint.
    pub cause: String,
}

impl Schedule {
    /// Parses `expr` the way tokio-cron-scheduler does (seconds field required).
    pub fn parse(expr: &str, tz: Tz) -> Result<Self, ScheduleError> {
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .build()
            .parse(expr)
            .map_err(|e| ScheduleError { expr: expr.to_string(), cause: e.to_string() })?;
        Ok(Self { cron, tz, expr: expr.to_string() })
    }

    /// The expression as written.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The time zone the expression is read in.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The first fire instant strictly after `after`, or `None` when the schedule never fires
    /// again (a year field in the past).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Fires are whole seconds; searching from the whole second keeps sub-second parts of
        // `after` (a clock reading) out of the results.
        let mut cursor = after.with_nanosecond(0).unwrap_or(after);
        // croner searches in local wall-clock time and resolves a time that happens twice to
        // its first occurrence. When `after` lies in the second pass of a repeated hour, that
        // first occurrence is already over: skip the second pass (each local time fires once)
        // and search on from its end.
        for _ in 0..4 {
            let candidate = self.cron.find_next_occurrence(&cursor.with_timezone(&self.tz), false).ok()?;
            let candidate = candidate.with_timezone(&Utc);
            if candidate > after {
                return Some(candidate);
            }
            let local = candidate.with_timezone(&self.tz).naive_local();
            let second_pass = self.tz.from_local_datetime(&local).latest()?.with_timezone(&Utc);
            cursor = second_pass.max(cursor);
        }
        None
    }

    /// Fire instants in `[from, to)`, at most one per local day: the first fire of each day.
    /// This is what catch-up needs (one run per report date), and it costs a few searches per
    /// day even for a schedule that fires every second.
    pub fn first_fire_per_day(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let mut fires = Vec::new();
        let mut day = from.with_timezone(&self.tz).date_naive();
        let last_day = to.with_timezone(&self.tz).date_naive();
        while day <= last_day {
            let day_start = start_of_day(self.tz, day).max(from);
            let Some(next_day) = day.checked_add_days(Days::new(1)) else { break };
            let day_end = start_of_day(self.tz, next_day).min(to);
            // `next_after` is strict; step back a nanosecond so a fire exactly at the start of
            // the day counts.
            let probe = day_start - chrono::Duration::nanoseconds(1);
            if let Some(fire) = self.next_after(probe).filter(|fire| *fire < day_end) {
                fires.push(fire);
            }
            day = next_day;
        }
        fires
    }
}

/// The report date a fire at `fire` implies: the day before the fire's local date in `tz`
/// (the same rule as `abreport run` without `--date`).
pub fn report_date(fire: DateTime<Utc>, tz: Tz) -> NaiveDate {
    let local = fire.with_timezone(&tz).date_naive();
    local.pred_opt().unwrap_or(local)
}

/// The first instant of a local day (midnight, or the end of a gap when midnight does not
/// exist that day, as in zones that change clocks at midnight).
fn start_of_day(tz: Tz, day: NaiveDate) -> DateTime<Utc> {
    let mut time = NaiveTime::MIN;
    for _ in 0..=24 * 4 {
        if let Some(start) = tz.from_local_datetime(&day.and_time(time)).earliest() {
            return start.with_timezone(&Utc);
        }
        time += chrono::Duration::minutes(15);
    }
    // No zone has a gap this long; fall back to UTC midnight rather than panic.
    Utc.from_utc_datetime(&day.and_time(NaiveTime::MIN))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BERLIN: Tz = chrono_tz::Europe::Berlin;

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().expect("an RFC 3339 instant")
    }

    /// The next `n` fires of `expr` in `tz` after `after`, as RFC 3339 UTC strings.
    fn fires(expr: &str, tz: Tz, after: &str, n: usize) -> Vec<String> {
        let schedule = Schedule::parse(expr, tz).expect("valid schedule");
        let mut out = Vec::new();
        let mut cursor = utc(after);
        for _ in 0..n {
            let next = schedule.next_after(cursor).expect("fires again");
            out.push(next.format("%Y-%m-%dT%H:%M:%SZ").to_string());
            cursor = next;
        }
        out
    }

    #[test]
    fn six_in_the_morning_berlin_stays_six_local_across_spring_forward() {
        // 2026-03-29: clocks go from 02:00 CET (+01) to 03:00 CEST (+02).
        assert_eq!(
            fires("0 0 6 * * *", BERLIN, "2026-03-27T12:00:00Z", 4),
            ["2026-03-28T05:00:00Z", "2026-03-29T04:00:00Z", "2026-03-30T04:00:00Z", "2026-03-31T04:00:00Z"]
        );
    }

    #[test]
    fn six_in_the_morning_berlin_stays_six_local_across_fall_back() {
        // 2026-10-25: clocks go from 03:00 CEST (+02) back to 02:00 CET (+01).
        assert_eq!(
            fires("0 0 6 * * *", BERLIN, "2026-10-23T12:00:00Z", 4),
            ["2026-10-24T04:00:00Z", "2026-10-25T05:00:00Z", "2026-10-26T05:00:00Z", "2026-10-27T05:00:00Z"]
        );
    }

    #[test]
    fn a_time_that_does_not_exist_fires_once_at_the_end_of_the_gap() {
        // 02:30 does not exist on 2026-03-29 in Berlin: it fires at 03:00 CEST (01:00Z), once.
        assert_eq!(
            fires("0 30 2 * * *", BERLIN, "2026-03-28T12:00:00Z", 2),
            ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]
        );
    }

    #[test]
    fn a_time_that_happens_twice_fires_once_at_its_first_occurrence() {
        // 02:30 happens at 00:30Z (CEST) and 01:30Z (CET) on 2026-10-25: only the first fires.
        assert_eq!(
            fires("0 30 2 * * *", BERLIN, "2026-10-24T12:00:00Z", 2),
            ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
        );
        // Searching from inside the second pass does not go back to the first one.
        assert_eq!(fires("0 30 2 * * *", BERLIN, "2026-10-25T01:10:00Z", 1), ["2026-10-26T01:30:00Z"]);
    }

    #[test]
    fn an_interval_schedule_fires_only_in_the_first_pass_of_the_repeated_hour() {
        // Every 30 minutes on the fall-back day: 02:00 and 02:30 CEST (00:00Z, 00:30Z) fire,
        // their repeats in CET (01:00Z, 01:30Z) do not, then 03:00 CET (02:00Z).
        assert_eq!(
            fires("0 */30 * * * *", BERLIN, "2026-10-24T23:50:00Z", 5),
            [
                "2026-10-25T00:00:00Z",
                "2026-10-25T00:30:00Z",
                "2026-10-25T02:00:00Z",
                "2026-10-25T02:30:00Z",
                "2026-10-25T03:00:00Z"
            ]
        );
        // Started inside the second pass (02:10 CET), it neither goes back to the first pass nor
        // repeats it: the next fire is 03:00 CET.
        assert_eq!(fires("0 */30 * * * *", BERLIN, "2026-10-25T01:10:00Z", 1), ["2026-10-25T02:00:00Z"]);
    }

    #[test]
    fn an_interval_schedule_skips_the_missing_hour() {
        // Every 30 minutes around the spring-forward gap: 01:30 CET (00:30Z), then 03:00 CEST.
        assert_eq!(
            fires("0 */30 * * * *", BERLIN, "2026-03-29T00:10:00Z", 3),
            ["2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z"]
        );
    }

    #[test]
    fn the_report_date_is_the_day_before_the_local_fire_date() {
        // 2026-03-29T23:30Z is already 03-30 in Berlin (01:30 CEST): report date 03-29.
        assert_eq!(report_date(utc("2026-03-29T23:30:00Z"), BERLIN).to_string(), "2026-03-29");
        assert_eq!(report_date(utc("2026-03-29T04:00:00Z"), BERLIN).to_string(), "2026-03-28");
        assert_eq!(report_date(utc("2026-11-26T23:30:00Z"), chrono_tz::UTC).to_string(), "2026-11-25");
    }

    #[test]
    fn catch_up_sees_the_first_fire_of_each_day_in_the_window() {
        let schedule = Schedule::parse("0 0 6 * * *", BERLIN).expect("valid");
        // From 03-27 12:00Z to 03-30 03:00Z: fires on 03-28 (05:00Z) and 03-29 (04:00Z, CEST);
        // 03-30's fire at 04:00Z is after the window.
        let fires = schedule.first_fire_per_day(utc("2026-03-27T12:00:00Z"), utc("2026-03-30T03:00:00Z"));
        let fires: Vec<String> = fires.iter().map(DateTime::to_rfc3339).collect();
        assert_eq!(fires, ["2026-03-28T05:00:00+00:00", "2026-03-29T04:00:00+00:00"]);

        // A schedule firing every two seconds has one first fire per local day.
        let every_two = Schedule::parse("*/2 * * * * *", chrono_tz::UTC).expect("valid");
        let fires = every_two.first_fire_per_day(utc("2026-11-23T10:00:01Z"), utc("2026-11-26T10:00:00Z"));
        let fires: Vec<String> = fires.iter().map(DateTime::to_rfc3339).collect();
        assert_eq!(
            fires,
            [
                "2026-11-23T10:00:02+00:00",
                "2026-11-24T00:00:00+00:00",
                "2026-11-25T00:00:00+00:00",
                "2026-11-26T00:00:00+00:00"
            ]
        );
    }

    #[test]
    fn a_five_field_crontab_is_rejected_with_the_expected_form() {
        let err = Schedule::parse("0 6 * * 1", BERLIN).expect_err("no seconds field");
        assert!(err.to_string().contains("`0 0 6 * * *`"), "{err}");
        assert!(Schedule::parse("0 0 6 * * Mon", BERLIN).is_ok());
    }
}
