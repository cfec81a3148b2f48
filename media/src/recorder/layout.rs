//! Where a recording's files go: `<dir>/<room>/<start time>/`, the start time in UTC as
//! `YYYY-MM-DDTHH-MM-SS.mmmZ` (sorts by time, no `:` for the file systems and object stores
//! that dislike it); a tenant room `acme/standup` is two directories.
use std::path::{Path, PathBuf};

use super::sink::safe_file_stem;

pub fn recording_dir(root: &Path, room: &str, started_wall_ms: u64) -> PathBuf {
    let mut p = root.to_path_buf();
    for part in room.split('/').filter(|s| !s.is_empty()) {
        p.push(safe_file_stem(part));
    }
    p.push(start_time(started_wall_ms));
    p
}

/// `YYYY-MM-DDTHH-MM-SS.mmmZ` for ms since the Unix epoch (UTC).
pub fn start_time(wall_ms: u64) -> String {
    let secs = wall_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}-{:02}-{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        wall_ms % 1000
    )
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_paths() {
        assert_eq!(start_time(0), "1970-01-01T00-00-00.000Z");
        assert_eq!(start_time(951_782_400_000), "2000-02-29T00-00-00.000Z");
        assert_eq!(start_time(1_796_554_161_042), "2026-12-06T10-49-21.042Z");
        let p = recording_dir(Path::new("/rec"), "acme/standup", 0);
        assert_eq!(p, Path::new("/rec/acme/standup/1970-01-01T00-00-00.000Z"));
        assert!(recording_dir(Path::new("/rec"), "../x", 0).starts_with("/rec"));
    }
}
