//! Text pieces in the grammar users of vite-task already read.

use std::time::Duration;

use crate::run::events::{CacheStatus, CommandHeader};

/// `~/packages/a$ node build.js ◉ cache hit, replaying`
pub(crate) fn header_line(h: &CommandHeader) -> String {
    let status = match &h.status {
        CacheStatus::Disabled => " ⊘ cache disabled".to_owned(),
        CacheStatus::Hit => " ◉ cache hit, replaying".to_owned(),
        CacheStatus::Miss { reasons } if reasons.is_empty() => " ○ cache miss, executing".to_owned(),
        CacheStatus::Miss { reasons } => format!(" ○ cache miss: {}, executing", reasons.join(", ")),
        CacheStatus::Unavailable { reason } => format!(" ⊘ cache unavailable: {reason}"),
    };
    format!("{}$ {}{status}", h.cwd, h.command)
}

/// `850ms`, `1.2s`, `2m03s`
pub(crate) fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_grammar() {
        let h = |cwd: &str, status| header_line(&CommandHeader { cwd: cwd.into(), command: "node build.js".into(), status });
        assert_eq!(h("~/packages/a", CacheStatus::Hit), "~/packages/a$ node build.js ◉ cache hit, replaying");
        assert_eq!(
            h("", CacheStatus::Miss { reasons: vec!["'test.txt' modified".into(), "args changed".into()] }),
            "$ node build.js ○ cache miss: 'test.txt' modified, args changed, executing"
        );
        assert_eq!(h("", CacheStatus::Disabled), "$ node build.js ⊘ cache disabled");
    }

    #[test]
    fn durations() {
        assert_eq!(format_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(format_duration(Duration::from_millis(1250)), "1.2s");
        assert_eq!(format_duration(Duration::from_secs(123)), "2m03s");
    }
}
