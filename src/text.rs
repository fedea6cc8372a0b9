//! Text for people: durations to the second and messages cut on a character boundary.
//!
//! Every message an operator reads (errors, logs, CLI output) shows durations through [`human`] and bounded
//! quotes of outside text through [`truncate`], so they read the same everywhere.

use std::time::Duration;

/// A duration for people, to the second ("10m", "1m 30s"); sub-second durations keep milliseconds.
pub fn human(d: Duration) -> String {
    let d = if d.as_secs() >= 1 {
        Duration::from_secs(d.as_secs())
    } else {
        Duration::from_millis(d.as_millis() as u64)
    };
    humantime::format_duration(d).to_string()
}

/// Shortens a text for an error message, on a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_to_the_second_or_the_millisecond() {
        assert_eq!(human(Duration::from_millis(90_500)), "1m 30s");
        assert_eq!(human(Duration::from_millis(250)), "250ms");
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("élan", 2), "él");
        assert_eq!(truncate("ok", 10), "ok");
    }
}
