//! Typed ids. Both end up inside etcd keys, so they are validated once, at construction:
//! a `/` in a worker id would silently move its registration into another key space.

use std::fmt;

use crate::MembershipError;

/// The longest id we accept; keeps keys short and log lines readable.
pub const MAX_ID_LEN: usize = 64;

fn validate(kind: &str, raw: &str) -> Result<(), MembershipError> {
    if raw.is_empty() {
        return Err(MembershipError::InvalidId(format!(
            "{kind} id must not be empty"
        )));
    }
    if raw.len() > MAX_ID_LEN {
        return Err(MembershipError::InvalidId(format!(
            "{kind} id {raw:?} is longer than {MAX_ID_LEN} characters"
        )));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if let Some(bad) = raw.chars().find(|c| !allowed(*c)) {
        return Err(MembershipError::InvalidId(format!(
            "{kind} id {raw:?} contains {bad:?}; only [A-Za-z0-9._-] is allowed"
        )));
    }
    Ok(())
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Validates `raw`: non-empty, at most [`MAX_ID_LEN`] characters, `[A-Za-z0-9._-]`.
            pub fn new(raw: impl Into<String>) -> Result<Self, MembershipError> {
                let raw = raw.into();
                validate($kind, &raw)?;
                Ok(Self(raw))
            }

            /// The id as it appears in etcd keys.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = MembershipError;

            fn from_str(raw: &str) -> Result<Self, Self::Err> {
                Self::new(raw)
            }
        }
    };
}

typed_id!(
    /// Names one migration; every key of a migration lives under `/c2c/<migration-id>/`,
    /// so several migrations can share one etcd cluster.
    MigrationId,
    "migration"
);

typed_id!(
    /// Names one worker process across restarts: a restarted worker re-registers under
    /// the same id, which lets the coordinator hand it back its assignment.
    WorkerId,
    "worker"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_key_safe_ids() {
        for raw in ["a", "worker-1", "w_2.eu-west", &"x".repeat(MAX_ID_LEN)] {
            let id = WorkerId::new(raw).expect(raw);
            assert_eq!(id.as_str(), raw);
            assert_eq!(id.to_string(), raw);
        }
        assert_eq!(MigrationId::new("m1").unwrap().as_str(), "m1");
    }

    #[test]
    fn rejects_ids_that_would_break_keys() {
        let too_long = "x".repeat(MAX_ID_LEN + 1);
        for raw in ["", "a/b", "a b", "ü", "a*", "..\n", too_long.as_str()] {
            let error = WorkerId::new(raw).expect_err(raw);
            assert!(
                matches!(error, MembershipError::InvalidId(_)),
                "{raw:?}: {error}"
            );
            assert!(!error.is_retryable());
        }
        assert!(MigrationId::new("a/b").is_err());
        assert!("ok-id".parse::<MigrationId>().is_ok());
    }
}
