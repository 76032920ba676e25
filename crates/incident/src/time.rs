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
