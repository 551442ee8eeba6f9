//! The user store: users with built-in roles and SCRAM-SHA-256 credentials.
//!
//! Only SCRAM-SHA-256 credentials are kept. SCRAM-SHA-1 would need MD5 (mongod hashes
//! `user:mongo:pwd` first) and the Rust driver prefers SCRAM-SHA-256 whenever `hello`'s
//! `saslSupportedMechs` lists it, so the testbed behaves like a mongod started with
//! `authenticationMechanisms=SCRAM-SHA-256`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use parking_lot::RwLock;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::roles;
use crate::error::{CmdResult, CommandError};

pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";
/// mongod's default `scramSHA256IterationCount`.
pub const DEFAULT_ITERATIONS: u32 = 15_000;
/// mongod's SCRAM salt length: hash size minus 4 bytes.
const SALT_LEN: usize = 28;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleRef {
    pub role: String,
    pub db: String,
}

impl RoleRef {
    pub fn new(role: impl Into<String>, db: impl Into<String>) -> RoleRef {
        RoleRef {
            role: role.into(),
            db: db.into(),
        }
    }
}

/// What `createUser` (or the users file) supplies.
#[derive(Debug, Clone)]
pub struct UserSpec {
    pub user: String,
    pub db: String,
    pub password: String,
    pub roles: Vec<RoleRef>,
}

/// SCRAM-SHA-256 server credentials (RFC 5802 §3): the password itself is not kept.
#[derive(Clone)]
pub struct ScramCredentials {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

impl std::fmt::Debug for ScramCredentials {
    // Keys stay out of logs: StoredKey/ServerKey are password-equivalent for a server.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredentials")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

impl ScramCredentials {
    /// Derives the credentials from an already SASLprepped password.
    pub fn derive(prepped_password: &str, salt: Vec<u8>, iterations: u32) -> ScramCredentials {
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(prepped_password.as_bytes(), &salt, iterations, &mut salted);
        let client_key = hmac_sha256(&salted, b"Client Key");
        ScramCredentials {
            salt,
            iterations,
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac_sha256(&salted, b"Server Key"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct StoredUser {
    pub user: String,
    pub db: String,
    pub roles: Vec<RoleRef>,
    pub scram_sha256: ScramCredentials,
}

impl StoredUser {
    /// The mechanisms this user can authenticate with (hello's `saslSupportedMechs`).
    pub fn mechanisms(&self) -> Vec<String> {
        vec![SCRAM_SHA_256.to_string()]
    }
}

/// Errors loading the startup users file.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read users file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("users file {path} is not a valid users list: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("users file {path}, entry {index}: {source}")]
    InvalidUser {
        path: PathBuf,
        index: usize,
        #[source]
        source: Box<CommandError>,
    },
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileUser {
    user: String,
    pwd: String,
    #[serde(default = "default_db")]
    db: String,
    #[serde(default)]
    roles: Vec<FileRole>,
}

fn default_db() -> String {
    "admin".to_string()
}

/// `"root"` (a role on the user's own database, as createUser reads it) or `{role, db}`.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum FileRole {
    Name(String),
    Ref { role: String, db: String },
}

/// Users keyed by (db, user); cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct UserStore {
    users: RwLock<BTreeMap<(String, String), StoredUser>>,
}

fn named_error(code: i32, code_name: &'static str, message: String) -> CommandError {
    CommandError {
        code,
        code_name,
        message,
        extra: bson::Document::new(),
        labels_override: None,
    }
}

impl UserStore {
    pub fn new() -> UserStore {
        UserStore::default()
    }

    /// Loads `[{"user", "pwd", "db"?: "admin", "roles": ["root" | {"role", "db"}]}]`.
    pub fn from_json_file(path: &Path) -> Result<UserStore, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let entries: Vec<FileUser> =
            serde_json::from_str(&text).map_err(|source| AuthError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        let store = UserStore::new();
        for (index, entry) in entries.into_iter().enumerate() {
            let roles = entry
                .roles
                .into_iter()
                .map(|r| match r {
                    FileRole::Name(role) => RoleRef::new(role, entry.db.clone()),
                    FileRole::Ref { role, db } => RoleRef { role, db },
                })
                .collect();
            let spec = UserSpec {
                user: entry.user,
                db: entry.db,
                password: entry.pwd,
                roles,
            };
            store.add(spec).map_err(|source| AuthError::InvalidUser {
                path: path.to_path_buf(),
                index,
                source: Box::new(source),
            })?;
        }
        Ok(store)
    }

    /// createUser with a fresh random salt and mongod's default iteration count.
    pub fn add(&self, spec: UserSpec) -> CmdResult<()> {
        let mut salt = vec![0u8; SALT_LEN];
        rand::thread_rng().fill_bytes(&mut salt);
        self.add_with_salt(spec, salt, DEFAULT_ITERATIONS)
    }

    /// createUser with a chosen salt and iteration count (for test vectors; real drivers
    /// refuse fewer than 4096 iterations).
    pub fn add_with_salt(&self, spec: UserSpec, salt: Vec<u8>, iterations: u32) -> CmdResult<()> {
        if spec.user.is_empty() || spec.user.contains('\0') {
            return Err(CommandError::bad_value(
                "User name must be non-empty and contain no NUL characters",
            ));
        }
        if spec.db.is_empty() || spec.db == "$external" {
            // $external users authenticate outside SCRAM (x509, LDAP), which the testbed lacks.
            return Err(CommandError::bad_value(format!(
                "Cannot create SCRAM users on database '{}'",
                spec.db
            )));
        }
        if spec.password.is_empty() {
            return Err(CommandError::bad_value("Password cannot be empty"));
        }
        for role in &spec.roles {
            if !roles::is_builtin_role(&role.role, &role.db) {
                return Err(named_error(
                    31,
                    "RoleNotFound",
                    format!("Could not find role: {}@{}", role.role, role.db),
                ));
            }
        }
        let prepped = saslprep(&spec.password).map_err(CommandError::bad_value)?;
        let key = (spec.db.clone(), spec.user.clone());
        if self.users.read().contains_key(&key) {
            return Err(already_exists(&spec.user, &spec.db));
        }
        // PBKDF2 is slow on purpose; derive outside the lock.
        let credentials = ScramCredentials::derive(&prepped, salt, iterations);
        let mut users = self.users.write();
        if users.contains_key(&key) {
            return Err(already_exists(&spec.user, &spec.db));
        }
        users.insert(
            key,
            StoredUser {
                user: spec.user,
                db: spec.db,
                roles: spec.roles,
                scram_sha256: credentials,
            },
        );
        Ok(())
    }

    /// dropUser.
    pub fn remove(&self, user: &str, db: &str) -> CmdResult<()> {
        match self
            .users
            .write()
            .remove(&(db.to_string(), user.to_string()))
        {
            Some(_) => Ok(()),
            None => Err(CommandError::from_code(
                11,
                format!("User '{user}@{db}' not found"),
            )),
        }
    }

    pub fn lookup(&self, user: &str, db: &str) -> Option<StoredUser> {
        self.users
            .read()
            .get(&(db.to_string(), user.to_string()))
            .cloned()
    }

    /// All users, ordered by (db, user): for usersInfo.
    pub fn list(&self) -> Vec<StoredUser> {
        self.users.read().values().cloned().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.users.read().is_empty()
    }
}

fn already_exists(user: &str, db: &str) -> CommandError {
    named_error(
        51003,
        "Location51003",
        format!("User \"{user}@{db}\" already exists"),
    )
}

/// SASLprep (RFC 4013) for the passwords the testbed accepts. ASCII passes unchanged except
/// that control characters are prohibited. RFC 4013 maps non-ASCII spaces to U+0020 and
/// drops "commonly mapped to nothing" characters; those two tables are applied. The full
/// profile also needs NFKC normalization and bidi checks, which need Unicode tables the
/// crate lacks, so other non-ASCII characters are accepted only in U+00C0..=U+00FF
/// (Latin-1 letters, which NFKC leaves alone) and rejected otherwise, rather than risking
/// a key that differs from the driver's.
pub fn saslprep(password: &str) -> Result<String, String> {
    let mut out = String::with_capacity(password.len());
    for c in password.chars() {
        match c {
            '\u{00A0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200B}'
            | '\u{202F}'
            | '\u{205F}'
            | '\u{3000}' => out.push(' '),
            '\u{00AD}'
            | '\u{034F}'
            | '\u{1806}'
            | '\u{180B}'..='\u{180D}'
            | '\u{200C}'..='\u{200D}'
            | '\u{2060}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}' => {}
            c if c.is_control() => {
                return Err("SASLprep: password contains a prohibited control character".into())
            }
            ' '..='~' | '\u{00C0}'..='\u{00FF}' => out.push(c),
            _ => {
                return Err(format!(
                    "the testbed's SASLprep does not support the character U+{:04X} \
                     in passwords (ASCII and Latin-1 letters only)",
                    c as u32
                ))
            }
        }
    }
    if out.is_empty() {
        return Err("SASLprep: password is empty after preparation".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(user: &str, roles: Vec<RoleRef>) -> UserSpec {
        UserSpec {
            user: user.into(),
            db: "admin".into(),
            password: "pw".into(),
            roles,
        }
    }

    #[test]
    fn add_lookup_remove_and_errors() {
        let store = UserStore::new();
        assert!(store.is_empty());
        store
            .add_with_salt(
                spec("a", vec![RoleRef::new("root", "admin")]),
                vec![1; 28],
                4096,
            )
            .expect("add");
        let user = store.lookup("a", "admin").expect("present");
        assert_eq!(user.scram_sha256.iterations, 4096);
        assert_eq!(user.mechanisms(), vec!["SCRAM-SHA-256".to_string()]);
        let dup = store
            .add_with_salt(spec("a", vec![]), vec![1; 28], 4096)
            .expect_err("duplicate");
        assert_eq!(dup.code, 51003);
        assert_eq!(dup.message, "User \"a@admin\" already exists");
        let bad_role = store
            .add_with_salt(
                spec("b", vec![RoleRef::new("root", "app")]),
                vec![1; 28],
                4096,
            )
            .expect_err("root is admin-only");
        assert_eq!((bad_role.code, bad_role.code_name), (31, "RoleNotFound"));
        store.remove("a", "admin").expect("remove");
        let missing = store.remove("a", "admin").expect_err("gone");
        assert_eq!((missing.code, missing.code_name), (11, "UserNotFound"));
    }

    #[test]
    fn saslprep_subset() {
        assert_eq!(saslprep("pencil").as_deref(), Ok("pencil"));
        assert_eq!(saslprep("I\u{00AD}X").as_deref(), Ok("IX"));
        assert_eq!(saslprep("a\u{00A0}b").as_deref(), Ok("a b"));
        assert_eq!(saslprep("caf\u{00E9}").as_deref(), Ok("caf\u{00E9}"));
        assert!(saslprep("a\u{0007}").is_err());
        assert!(saslprep("\u{2168}").is_err());
    }

    #[test]
    fn users_file() {
        let dir = std::env::temp_dir().join(format!("testbed-users-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let path = dir.join("users.json");
        let text = r#"[{"user":"c2c","pwd":"secret","db":"admin","roles":["root"]},
                       {"user":"app","pwd":"x","roles":[{"role":"readWrite","db":"app"}]}]"#;
        std::fs::write(&path, text).expect("write");
        let store = UserStore::from_json_file(&path).expect("load");
        let app = store.lookup("app", "admin").expect("app user");
        assert_eq!(app.roles, vec![RoleRef::new("readWrite", "app")]);
        assert_eq!(store.lookup("c2c", "admin").map(|u| u.roles.len()), Some(1));
        std::fs::write(&path, r#"[{"user":"x","pwd":"y","roles":["nope"]}]"#).expect("write");
        let err = UserStore::from_json_file(&path).err();
        assert!(matches!(err, Some(AuthError::InvalidUser { index: 0, .. })));
        std::fs::write(&path, "{").expect("write");
        assert!(matches!(
            UserStore::from_json_file(&path),
            Err(AuthError::Json { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
