//! Reading the mapped tree: typed look-ups whose errors name the tree path
//! (and the rule it breaks), never the value found there.

use serde_json::{Number, Value};

use crate::mapping::formats::EncodeError;

pub struct Tree<'a>(pub &'a Value);

pub fn invalid(path: &str, reason: &str) -> EncodeError {
    EncodeError::Invalid {
        path: path.to_string(),
        reason: reason.to_string(),
    }
}

impl<'a> Tree<'a> {
    /// The value at `a/b/0/c` (numeric segments index arrays), if any.
    pub fn get(&self, path: &str) -> Option<&'a Value> {
        path.split('/').try_fold(self.0, |v, seg| match v {
            Value::Array(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => v.get(seg),
        })
    }

    pub fn has(&self, path: &str) -> bool {
        self.get(path).is_some_and(|v| !v.is_null())
    }

    /// Non-empty text at `path`.
    pub fn text(&self, path: &str) -> Result<Option<&'a str>, EncodeError> {
        match self.get(path) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => {
                Err(invalid(path, "must not be empty or blank"))
            }
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(invalid(path, "must be text")),
        }
    }

    pub fn required_text(&self, path: &str) -> Result<&'a str, EncodeError> {
        self.text(path)?
            .ok_or_else(|| EncodeError::Missing(path.to_string()))
    }

    /// A FHIR code: non-empty, no leading, trailing or doubled whitespace.
    pub fn code(&self, path: &str) -> Result<Option<&'a str>, EncodeError> {
        let code = self.text(path)?;
        if code.is_some_and(|c| {
            c.split(' ')
                .any(|w| w.is_empty() || w.contains(char::is_whitespace))
        }) {
            return Err(invalid(
                path,
                "a FHIR code has no leading, trailing or doubled whitespace",
            ));
        }
        Ok(code)
    }

    pub fn required_code(&self, path: &str) -> Result<&'a str, EncodeError> {
        self.code(path)?
            .ok_or_else(|| EncodeError::Missing(path.to_string()))
    }

    pub fn required_uri(&self, path: &str) -> Result<&'a str, EncodeError> {
        self.uri(path)?
            .ok_or_else(|| EncodeError::Missing(path.to_string()))
    }

    /// A URI: non-empty, no whitespace.
    pub fn uri(&self, path: &str) -> Result<Option<&'a str>, EncodeError> {
        let uri = self.text(path)?;
        if uri.is_some_and(|u| u.contains(char::is_whitespace)) {
            return Err(invalid(path, "a URI has no whitespace"));
        }
        Ok(uri)
    }

    /// A whole number at least `min`.
    pub fn integer(&self, path: &str, min: i64) -> Result<Option<i64>, EncodeError> {
        match self.get(path) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(i) if i >= min => Ok(Some(i)),
                _ => Err(invalid(
                    path,
                    &format!("must be a whole number of at least {min}"),
                )),
            },
            Some(_) => Err(invalid(path, "must be a number")),
        }
    }

    /// A positive decimal.
    pub fn positive_decimal(&self, path: &str) -> Result<Option<&'a Number>, EncodeError> {
        match self.get(path) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) if n.as_f64().is_some_and(|f| f > 0.0) => Ok(Some(n)),
            Some(_) => Err(invalid(path, "must be a number greater than 0")),
        }
    }

    /// How many elements the array at `path` has (none when absent).
    pub fn count(&self, path: &str) -> Result<usize, EncodeError> {
        match self.get(path) {
            Some(Value::Array(items)) => Ok(items.len()),
            Some(Value::Null) | None => Ok(0),
            Some(_) => Err(invalid(path, "must be a list")),
        }
    }
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// FHIR `date`: `YYYY`, `YYYY-MM` or `YYYY-MM-DD`, a real calendar date.
pub fn is_date(s: &str) -> bool {
    let year_ok = s.get(..4).is_some_and(|y| digits(y) && y != "0000");
    let calendar = |full: &str| chrono::NaiveDate::parse_from_str(full, "%Y-%m-%d").is_ok();
    year_ok
        && match s.len() {
            4 => true,
            7 => calendar(&format!("{s}-01")),
            10 => calendar(s),
            _ => false,
        }
}

/// A full date `YYYY-MM-DD`.
pub fn is_full_date(s: &str) -> bool {
    s.len() == 10 && is_date(s)
}

/// A local time `HH:MM:SS` with optional fractional seconds.
pub fn is_time(s: &str) -> bool {
    let (hms, frac) = s.split_once('.').unwrap_or((s, "0"));
    let parts: Vec<&str> = hms.split(':').collect();
    let in_range =
        |p: &str, max: u32| p.len() == 2 && digits(p) && p.parse::<u32>().is_ok_and(|v| v <= max);
    parts.len() == 3
        && in_range(parts[0], 23)
        && in_range(parts[1], 59)
        && in_range(parts[2], 59)
        && digits(frac)
}

/// A UTC offset: `Z` or `+HH:MM` / `-HH:MM` (at most 14:00).
pub fn is_offset(s: &str) -> bool {
    if s == "Z" {
        return true;
    }
    let Some(rest) = s.strip_prefix('+').or_else(|| s.strip_prefix('-')) else {
        return false;
    };
    let Some((h, m)) = rest.split_once(':') else {
        return false;
    };
    h.len() == 2 && m.len() == 2 && digits(h) && digits(m) && {
        let (h, m) = (
            h.parse::<u32>().unwrap_or(99),
            m.parse::<u32>().unwrap_or(99),
        );
        (h < 14 && m < 60) || (h == 14 && m == 0)
    }
}

/// FHIR `instant`: a full date, `T`, a time to the second and an offset.
pub fn is_instant(s: &str) -> bool {
    let Some((date, rest)) = s.split_once('T') else {
        return false;
    };
    let offset_at = rest.find(['Z', '+', '-']).unwrap_or(rest.len());
    let (time, offset) = rest.split_at(offset_at);
    is_full_date(date) && is_time(time) && is_offset(offset)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lookups_type_check_and_name_the_path_only() {
        let v = json!({"a": {"b": [{"c": "x"}, {"c": 3}]}, "blank": " ", "code": "a  b"});
        let t = Tree(&v);
        assert_eq!(t.text("a/b/0/c").unwrap(), Some("x"));
        let err = t.text("a/b/1/c").unwrap_err();
        assert_eq!(err, invalid("a/b/1/c", "must be text"));
        assert!(t.text("blank").is_err());
        assert!(t.code("code").is_err());
        assert_eq!(
            t.required_text("nope").unwrap_err(),
            EncodeError::Missing("nope".into())
        );
        assert_eq!(t.integer("a/b/1/c", 1).unwrap(), Some(3));
        assert!(t.integer("a/b/1/c", 4).is_err());
        assert_eq!(t.count("a/b").unwrap(), 2);
        assert_eq!(t.count("nope").unwrap(), 0);
        assert!(t.count("blank").is_err());
    }

    #[test]
    fn fhir_dates_times_and_instants() {
        for ok in ["2026", "2026-02", "2026-02-28", "2024-02-29"] {
            assert!(is_date(ok), "{ok}");
        }
        for bad in [
            "26",
            "2026-13",
            "ab\u{20ac}-01",
            "2026-\u{20ac}",
            "2026-02-30",
            "2023-02-29",
            "2026-1-01",
            "+026-01-01",
            "",
        ] {
            assert!(!is_date(bad), "{bad}");
        }
        assert!(is_time("23:48:00") && is_time("00:40:05.25"));
        assert!(!is_time("24:00:00") && !is_time("23:48") && !is_time("1:00:00"));
        assert!(is_offset("Z") && is_offset("+02:00") && is_offset("-14:00"));
        assert!(!is_offset("+2:00") && !is_offset("+14:30") && !is_offset("02:00"));
        assert!(is_instant("2026-10-22T09:12:05+02:00") && is_instant("2026-10-22T07:12:05.120Z"));
        assert!(!is_instant("2026-10-22T09:12+02:00") && !is_instant("2026-10-22 09:12:05Z"));
        assert!(!is_instant("2026-10-22T09:12:05"));
    }
}
