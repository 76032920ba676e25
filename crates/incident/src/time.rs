//! Calendar days and timestamps from Unix milliseconds, in UTC.

/// `2026-03-02` for a time in Unix milliseconds.
pub fn day_of(time_ms: i64) -> String {
    let (year, month, day) = civil_from_days(time_ms.div_euclid(86_400_000));
    format!("{year:04}-{month:02}-{day:02}")
}

/// `2026-03-02T14:05:09Z` for a time in Unix milliseconds.
pub fn iso_time(time_ms: i64) -> String {
    let seconds = time_ms.div_euclid(1000);
    let of_day = seconds.rem_euclid(86_400);
    format!("{}T{:02}:{:02}:{:02}Z", day_of(time_ms), of_day / 3600, of_day % 3600 / 60, of_day % 60)
}

/// Howard Hinnant's `civil_from_days`: the proleptic Gregorian date of a day count.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A time given on the command line or in a request: `2026-03-02` (midnight UTC),
/// `2026-03-02T14:05Z`, `2026-03-02T14:05:09Z`, or Unix milliseconds.
pub fn parse_time(text: &str) -> Option<i64> {
    parse_instant(text).map(|(time_ms, _)| time_ms)
}

/// What `parse_time` reads, and whether the text was a date alone (no time of day), which
/// the end of a window reads as the whole day.
fn parse_instant(text: &str) -> Option<(i64, bool)> {
    let text = text.trim();
    if !text.is_empty() && text.chars().all(|character| character.is_ascii_digit()) {
        return Some((text.parse().ok()?, false));
    }
    let (date, clock) = match text.split_once(['T', ' ']) {
        Some((date, clock)) => (date, Some(clock.strip_suffix('Z').unwrap_or(clock))),
        None => (text, None),
    };
    let mut parts = date.splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    // Years a person writes; a larger one overflowed the day arithmetic (a request's
    // `since` of `99999999999999999-01-01` panicked its handler).
    if !(0..=9999).contains(&year) {
        return None;
    }
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    if day_of(days * 86_400_000) != format!("{year:04}-{month:02}-{day:02}") {
        return None;
    }
    let seconds_of_day = match clock {
        None => 0,
        Some(clock) => {
            let mut parts = clock.splitn(3, ':');
            let hours: i64 = parts.next()?.parse().ok()?;
            let minutes: i64 = parts.next()?.parse().ok()?;
            let seconds: i64 = parts.next().map_or(Some(0), |seconds| seconds.parse().ok())?;
            if hours > 23 || minutes > 59 || seconds > 60 {
                return None;
            }
            hours * 3600 + minutes * 60 + seconds
        }
    };
    Some(((days * 86_400 + seconds_of_day) * 1000, clock.is_none()))
}

/// An optional time given as `name` (a command-line option or a request field); the error
/// names the input and the accepted forms.
pub fn parse_optional_time(name: &str, text: Option<&str>) -> Result<Option<i64>, String> {
    parse_optional(name, text).map(|parsed| parsed.map(|(time_ms, _)| time_ms))
}

/// The end of a window: like `parse_optional_time`, except that a date alone means the last
/// millisecond of that day, so `--since 2026-03-05 --until 2026-03-05` is that whole day.
pub fn parse_optional_end(name: &str, text: Option<&str>) -> Result<Option<i64>, String> {
    parse_optional(name, text)
        .map(|parsed| parsed.map(|(time_ms, date_alone)| if date_alone { time_ms + 86_400_000 - 1 } else { time_ms }))
}

fn parse_optional(name: &str, text: Option<&str>) -> Result<Option<(i64, bool)>, String> {
    text.map(|text| {
        parse_instant(text).ok_or_else(|| {
            format!("{name} `{text}` is not a time: use 2026-03-02, 2026-03-02T14:05Z or Unix milliseconds")
        })
    })
    .transpose()
}

/// The inverse of `civil_from_days`.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month = i64::from(month);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}
