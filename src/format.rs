//! How sizes and dates read on pages and in summaries, in one place so both
//! say the same thing the same way.

use time::OffsetDateTime;
use time::macros::format_description;

/// A byte count in binary units, as upload limits are set: "512 bytes",
/// "45.3 KiB", "650.0 MiB".
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return if bytes == 1 {
            "1 byte".to_owned()
        } else {
            format!("{bytes} bytes")
        };
    }
    // Floating point is fine: the figure is rounded for reading anyway.
    let mut value = bytes as f64 / 1024.0;
    let mut unit = UNITS[0];
    for next in &UNITS[1..] {
        if value < 1023.95 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

/// A Unix time as "2024-05-01 14:03 UTC".
pub fn date_time(unix_seconds: i64) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    OffsetDateTime::from_unix_timestamp(unix_seconds)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "unknown date".to_owned())
}

/// A Unix time as the day "2024-05-01" (UTC).
pub fn day(unix_seconds: i64) -> Option<String> {
    let date = OffsetDateTime::from_unix_timestamp(unix_seconds).ok()?;
    date.format(format_description!("[year]-[month]-[day]"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(human_size(1), "1 byte");
        assert_eq!(human_size(1000), "1000 bytes");
        assert_eq!(human_size(45_300), "44.2 KiB");
        assert_eq!(human_size(1_048_575), "1.0 MiB");
        assert_eq!(human_size(650 * 1024 * 1024), "650.0 MiB");
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(date_time(1_657_036_044), "2022-07-05 15:47 UTC");
        assert_eq!(day(1_657_036_044).as_deref(), Some("2022-07-05"));
    }
}
