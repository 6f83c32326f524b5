//! `[audit]`: who signs the exchange log's checkpoints, how often, and how
//! long the gateway may go on accepting records without a signed checkpoint.

use std::time::Duration;

use super::Errors;
use super::destination::secret;
use super::raw::RawAudit;
use crate::audit::checkpoint::NoteSigner;

pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(60);
pub const DEFAULT_MAX_UNSIGNED: Duration = Duration::from_secs(600);

/// The checkpoint signing key.
#[derive(Debug, Clone)]
pub enum AuditKey {
    /// Loaded from a file or the environment (a `PRIVATE+KEY+...` line).
    Loaded(Box<NoteSigner>),
    /// `generate`: a fresh key at every start (the demo; never in production,
    /// since no auditor can pin a key that changes).
    Generate,
}

#[derive(Debug, Clone)]
pub struct AuditConfig {
    pub signing_key: AuditKey,
    /// The log's name, the first line of every checkpoint.
    pub origin: String,
    /// The signing key's name (defaults to the origin).
    pub key_name: String,
    pub checkpoint_interval: Duration,
    /// Past this without a stored checkpoint, submissions are refused (503).
    pub max_unsigned: Duration,
}

pub(super) fn validate(raw: RawAudit, errors: &mut Errors) -> Option<AuditConfig> {
    let origin = raw.origin.unwrap_or_default();
    let origin_ok = !origin.is_empty() && !origin.chars().any(|c| c.is_control());
    if !origin_ok {
        errors.push(
            "audit.origin",
            "is required: the log's name, e.g. gateway.example.org/log",
        );
    }
    let key_name = raw.key_name.unwrap_or_else(|| origin.clone());
    let name_ok = !key_name.is_empty()
        && !key_name
            .chars()
            .any(|c| c == '+' || c.is_whitespace() || c.is_control());
    if !name_ok {
        errors.push("audit.key_name", "must be non-empty, without spaces or '+'");
    }
    let interval = seconds(
        raw.checkpoint_interval_secs,
        DEFAULT_CHECKPOINT_INTERVAL,
        1,
        86_400,
        "audit.checkpoint_interval_secs",
        errors,
    )?;
    let max_unsigned = seconds(
        raw.max_unsigned_secs,
        DEFAULT_MAX_UNSIGNED,
        1,
        7 * 86_400,
        "audit.max_unsigned_secs",
        errors,
    )?;
    if max_unsigned <= interval {
        errors.push(
            "audit.max_unsigned_secs",
            "must be longer than checkpoint_interval_secs",
        );
        return None;
    }
    let signing_key = signing_key(raw.signing_key, &key_name, errors)?;
    (origin_ok && name_ok).then_some(AuditConfig {
        signing_key,
        origin,
        key_name,
        checkpoint_interval: interval,
        max_unsigned,
    })
}

fn seconds(
    value: Option<u64>,
    default: Duration,
    min: u64,
    max: u64,
    path: &str,
    errors: &mut Errors,
) -> Option<Duration> {
    match value {
        None => Some(default),
        Some(s) if (min..=max).contains(&s) => Some(Duration::from_secs(s)),
        Some(_) => {
            errors.push(path, format!("must be between {min} and {max}"));
            None
        }
    }
}

fn signing_key(value: Option<String>, key_name: &str, errors: &mut Errors) -> Option<AuditKey> {
    const PATH: &str = "audit.signing_key";
    match value.as_deref() {
        None => {
            errors.push(
                PATH,
                "is required: \"file:PATH\", \"env:NAME\" or \"generate\"",
            );
            None
        }
        Some("generate") => {
            errors.warn(
                PATH,
                "is \"generate\": a new key at every start, which no auditor can pin; for a demo only",
            );
            Some(AuditKey::Generate)
        }
        Some(v) if v.starts_with("file:") || v.starts_with("env:") => {
            let text = secret(value, PATH.into(), errors)?;
            match NoteSigner::parse(text.expose()) {
                Ok(signer) if signer.verifier().name() == key_name => {
                    Some(AuditKey::Loaded(Box::new(signer)))
                }
                Ok(_) => {
                    errors.push(PATH, "the key's name is not audit.key_name");
                    None
                }
                // The error names the format problem, never the key.
                Err(e) => {
                    errors.push(PATH, format!("not a signing key: {e}"));
                    None
                }
            }
        }
        Some(_) => {
            errors.push(
                PATH,
                "must be \"file:PATH\", \"env:NAME\" or \"generate\" (never the key itself)",
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: RawAudit) -> (Option<AuditConfig>, Vec<String>, Vec<String>) {
        let mut errors = Errors::default();
        let config = validate(raw, &mut errors);
        let show = |v: &[super::super::ConfigError]| v.iter().map(|e| e.to_string()).collect();
        (config, show(&errors.errors), show(&errors.warnings))
    }

    #[test]
    fn every_problem_is_reported_by_path_and_generate_warns() {
        let (config, errors, _) = check(RawAudit {
            signing_key: Some("PRIVATE+KEY+x+00000000+AAAA".into()),
            origin: None,
            key_name: Some("a b".into()),
            checkpoint_interval_secs: Some(60),
            max_unsigned_secs: Some(600),
        });
        assert!(config.is_none());
        let joined = errors.join("\n");
        assert!(joined.contains("audit.origin: is required"), "{joined}");
        assert!(joined.contains("audit.key_name: "), "{joined}");
        assert!(
            joined.contains("audit.signing_key: must be \"file:PATH\""),
            "{joined}"
        );
        assert!(
            !joined.contains("AAAA"),
            "the key is never echoed: {joined}"
        );

        let (_, errors, _) = check(RawAudit {
            signing_key: Some("generate".into()),
            origin: Some("log".into()),
            checkpoint_interval_secs: Some(600),
            max_unsigned_secs: Some(60),
            ..RawAudit::default()
        });
        assert_eq!(
            errors,
            ["audit.max_unsigned_secs: must be longer than checkpoint_interval_secs"]
        );

        let (config, errors, warnings) = check(RawAudit {
            signing_key: Some("generate".into()),
            origin: Some("example.org/log".into()),
            ..RawAudit::default()
        });
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(warnings.len(), 1);
        let config = config.unwrap();
        assert_eq!(config.key_name, "example.org/log");
        assert!(matches!(config.signing_key, AuditKey::Generate));
    }

    #[test]
    fn a_key_file_is_read_and_its_name_must_match() {
        let dir = tempfile::tempdir().unwrap();
        let signer = NoteSigner::from_seed("example.org/log", &[5; 32]).unwrap();
        let path = dir.path().join("audit.key");
        std::fs::write(&path, format!("{}\n", signer.to_private_line())).unwrap();
        let raw = |name: &str| RawAudit {
            signing_key: Some(format!("file:{}", path.display())),
            origin: Some("example.org/log".into()),
            key_name: Some(name.into()),
            ..RawAudit::default()
        };
        let (config, errors, _) = check(raw("example.org/log"));
        assert!(errors.is_empty(), "{errors:?}");
        match config.unwrap().signing_key {
            AuditKey::Loaded(s) => assert_eq!(s.verifier(), signer.verifier()),
            AuditKey::Generate => panic!("loaded key expected"),
        }
        let (_, errors, _) = check(raw("other"));
        assert_eq!(
            errors,
            ["audit.signing_key: the key's name is not audit.key_name"]
        );
    }
}
