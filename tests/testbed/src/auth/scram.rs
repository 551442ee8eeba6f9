//! The server side of SCRAM-SHA-256 (RFC 5802 / RFC 7677) as mongod speaks it inside
//! `saslStart` / `saslContinue` (SPECS `source/auth/auth.md`).
//!
//! Every failure after the mechanism check (unknown user, malformed message, wrong nonce,
//! bad proof) is the same `AuthenticationFailed` (18) "Authentication failed.", because
//! mongod's `doSaslStep` replaces the mechanism's error with exactly that: a client must
//! not learn which users exist.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::users::{hmac_sha256, ScramCredentials, UserStore, SCRAM_SHA_256};
use crate::error::{CmdResult, CommandError, ErrorCode};

/// mongod's server nonce: 24 random bytes, base64.
const SERVER_NONCE_BYTES: usize = 24;

pub enum ScramStep {
    /// Reply `done: false` with this payload.
    Continue(Vec<u8>),
    /// Reply `done: true`; the connection is now authenticated as `user@db`.
    Done {
        payload: Vec<u8>,
        user: String,
        db: String,
    },
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    AwaitClientFinal,
    /// Server-final was sent with `done: false`; the client owes one empty message.
    AwaitEmpty,
    Finished,
}

/// One SCRAM conversation (mongod always reports `conversationId: 1`).
pub struct ScramServer {
    user: String,
    db: String,
    credentials: ScramCredentials,
    /// The gs2 header as the client sent it: `c=` must echo it.
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    skip_empty_exchange: bool,
    state: State,
}

fn auth_failed() -> CommandError {
    CommandError::new(ErrorCode::AuthenticationFailed, "Authentication failed.")
}

/// The client-first message, split.
struct ClientFirst {
    gs2_header: String,
    bare: String,
    user: String,
    nonce: String,
}

/// RFC 5802 `saslname` decoding: `=2C` is `,`, `=3D` is `=`, any other `=` is an error.
fn unescape_username(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(pos) = rest.find('=') {
        out.push_str(&rest[..pos]);
        let escape = rest.get(pos..pos + 3)?;
        out.push(match escape {
            "=2C" => ',',
            "=3D" => '=',
            _ => return None,
        });
        rest = &rest[pos + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// RFC 5802 `printable`: ASCII 0x21..=0x7E except `,`.
fn valid_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

fn parse_client_first(payload: &[u8]) -> Option<ClientFirst> {
    let text = std::str::from_utf8(payload).ok()?;
    // gs2-header = cbind-flag "," [authzid] ","; channel binding ("p=") is not offered.
    let (flag, rest) = text.split_once(',')?;
    if flag != "n" && flag != "y" {
        return None;
    }
    let (authzid, bare) = rest.split_once(',')?;
    let gs2_header = text[..flag.len() + authzid.len() + 2].to_string();
    // A leading reserved "m=" (mandatory extension) fails the "n=" match: none is supported.
    let mut fields = bare.split(',');
    let user = unescape_username(fields.next()?.strip_prefix("n=")?)?;
    let nonce = fields.next()?.strip_prefix("r=")?.to_string();
    if user.is_empty() || !valid_nonce(&nonce) {
        return None;
    }
    if !authzid.is_empty() {
        // mongod accepts an authzid only when it names the authenticating user.
        let authzid = unescape_username(authzid.strip_prefix("a=")?)?;
        if authzid != user {
            return None;
        }
    }
    Some(ClientFirst {
        gs2_header,
        bare: bare.to_string(),
        user,
        nonce,
    })
}

impl ScramServer {
    /// saslStart: mechanism + client-first payload; returns the conversation and server-first.
    pub fn start(
        store: &UserStore,
        db: &str,
        mechanism: &str,
        client_first: &[u8],
    ) -> CmdResult<(ScramServer, Vec<u8>)> {
        let mut random = [0u8; SERVER_NONCE_BYTES];
        rand::thread_rng().fill_bytes(&mut random);
        Self::start_with_nonce(store, db, mechanism, client_first, &B64.encode(random))
    }

    /// `start` with a chosen server nonce suffix (test vectors).
    pub fn start_with_nonce(
        store: &UserStore,
        db: &str,
        mechanism: &str,
        client_first: &[u8],
        server_nonce: &str,
    ) -> CmdResult<(ScramServer, Vec<u8>)> {
        if mechanism != SCRAM_SHA_256 {
            // mongod's AuthCounter rejects mechanisms that are unknown or disabled before
            // the conversation starts, so this one is not masked as AuthenticationFailed.
            return Err(CommandError {
                code: 334,
                code_name: "MechanismUnavailable",
                message: format!(
                    "Received authentication for mechanism {mechanism} which is not enabled"
                ),
                extra: bson::Document::new(),
                labels_override: None,
            });
        }
        let first = parse_client_first(client_first).ok_or_else(auth_failed)?;
        let user = store.lookup(&first.user, db).ok_or_else(auth_failed)?;
        let nonce = format!("{}{}", first.nonce, server_nonce);
        let credentials = user.scram_sha256;
        let server_first = format!(
            "r={},s={},i={}",
            nonce,
            B64.encode(&credentials.salt),
            credentials.iterations
        );
        let payload = server_first.clone().into_bytes();
        let server = ScramServer {
            user: user.user,
            db: user.db,
            credentials,
            gs2_header: first.gs2_header,
            client_first_bare: first.bare,
            server_first,
            nonce,
            skip_empty_exchange: false,
            state: State::AwaitClientFinal,
        };
        Ok((server, payload))
    }

    /// saslStart's `options.skipEmptyExchange`: finish with the server-final message instead
    /// of waiting for one more empty client message.
    pub fn set_skip_empty_exchange(&mut self, skip: bool) {
        self.skip_empty_exchange = skip;
    }

    /// saslContinue: first with client-final (verifies the proof, answers `v=...`), then,
    /// without skipEmptyExchange, once more with an empty payload.
    pub fn step(&mut self, client_message: &[u8]) -> CmdResult<ScramStep> {
        match self.state {
            State::AwaitClientFinal => {
                // A failed proof ends the conversation: no second guess on the same nonce.
                self.state = State::Finished;
                let server_final = self.verify_client_final(client_message)?;
                if self.skip_empty_exchange {
                    Ok(self.done(server_final))
                } else {
                    self.state = State::AwaitEmpty;
                    Ok(ScramStep::Continue(server_final))
                }
            }
            State::AwaitEmpty if client_message.is_empty() => {
                self.state = State::Finished;
                Ok(self.done(Vec::new()))
            }
            State::AwaitEmpty | State::Finished => {
                self.state = State::Finished;
                Err(auth_failed())
            }
        }
    }

    fn done(&self, payload: Vec<u8>) -> ScramStep {
        ScramStep::Done {
            payload,
            user: self.user.clone(),
            db: self.db.clone(),
        }
    }

    /// Checks client-final `c=...,r=...[,ext],p=...`; returns server-final.
    fn verify_client_final(&self, payload: &[u8]) -> CmdResult<Vec<u8>> {
        let text = std::str::from_utf8(payload).map_err(|_| auth_failed())?;
        let (without_proof, proof_b64) = text.rsplit_once(",p=").ok_or_else(auth_failed)?;
        let mut fields = without_proof.split(',');
        let binding = fields
            .next()
            .and_then(|f| f.strip_prefix("c="))
            .ok_or_else(auth_failed)?;
        if binding != B64.encode(&self.gs2_header) {
            return Err(auth_failed());
        }
        let nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or_else(auth_failed)?;
        if nonce != self.nonce {
            return Err(auth_failed());
        }
        let proof = B64.decode(proof_b64).map_err(|_| auth_failed())?;
        if proof.len() != 32 {
            return Err(auth_failed());
        }
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let creds = &self.credentials;
        let client_signature = hmac_sha256(&creds.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof
            .iter()
            .zip(client_signature.iter())
            .map(|(p, s)| p ^ s)
            .collect();
        let computed: [u8; 32] = Sha256::digest(&client_key).into();
        // Constant-time comparison, as any SCRAM server should.
        let diff = computed
            .iter()
            .zip(creds.stored_key.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return Err(auth_failed());
        }
        let server_signature = hmac_sha256(&creds.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
    }
}

/// hello's `saslSupportedMechs: "<db>.<user>"`: the user's mechanisms, or `None` (field
/// omitted, as mongod does) for an unknown user or a malformed name.
pub fn parse_sasl_supported_mechs(store: &UserStore, db_dot_user: &str) -> Option<Vec<String>> {
    let (db, user) = db_dot_user.split_once('.')?;
    if db.is_empty() || user.is_empty() {
        return None;
    }
    store.lookup(user, db).map(|u| u.mechanisms())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::users::{RoleRef, UserSpec};
    use pbkdf2::pbkdf2_hmac;

    const SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
    const CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";

    fn store_with(user: &str, password: &str, salt: Vec<u8>, iterations: u32) -> UserStore {
        let store = UserStore::new();
        let spec = UserSpec {
            user: user.into(),
            db: "admin".into(),
            password: password.into(),
            roles: vec![RoleRef::new("root", "admin")],
        };
        store
            .add_with_salt(spec, salt, iterations)
            .expect("add user");
        store
    }

    fn vector_store() -> UserStore {
        store_with("user", "pencil", B64.decode(SALT).expect("salt"), 4096)
    }

    /// The client's side of the exchange, written independently from the server code.
    fn client_final(password: &str, client_first_bare: &str, server_first: &str) -> String {
        let mut fields = server_first.split(',');
        let nonce = fields.next().and_then(|f| f.strip_prefix("r=")).expect("r");
        let salt = fields.next().and_then(|f| f.strip_prefix("s=")).expect("s");
        let iterations: u32 = fields
            .next()
            .and_then(|f| f.strip_prefix("i="))
            .and_then(|i| i.parse().ok())
            .expect("i");
        let mut salted = [0u8; 32];
        let salt = B64.decode(salt).expect("salt b64");
        pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations, &mut salted);
        let client_key = hmac_sha256(&salted, b"Client Key");
        let stored_key = Sha256::digest(client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let signature = hmac_sha256(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(signature)
            .map(|(k, s)| k ^ s)
            .collect();
        format!("{without_proof},p={}", B64.encode(proof))
    }

    #[test]
    fn rfc7677_test_vector() {
        let store = vector_store();
        let first = format!("n,,n=user,r={CLIENT_NONCE}");
        let (mut server, server_first) = ScramServer::start_with_nonce(
            &store,
            "admin",
            "SCRAM-SHA-256",
            first.as_bytes(),
            SERVER_NONCE,
        )
        .expect("start");
        assert_eq!(
            String::from_utf8_lossy(&server_first),
            format!("r={CLIENT_NONCE}{SERVER_NONCE},s={SALT},i=4096")
        );
        let final_msg = format!(
            "c=biws,r={CLIENT_NONCE}{SERVER_NONCE},p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        // Our independent client computes the same proof as the RFC.
        let computed = client_final(
            "pencil",
            &format!("n=user,r={CLIENT_NONCE}"),
            &String::from_utf8_lossy(&server_first),
        );
        assert_eq!(computed, final_msg);
        let Ok(ScramStep::Continue(v)) = server.step(final_msg.as_bytes()) else {
            panic!("expected server-final with done: false");
        };
        assert_eq!(v, b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
        let Ok(ScramStep::Done { payload, user, db }) = server.step(b"") else {
            panic!("expected done after the empty exchange");
        };
        assert!(payload.is_empty());
        assert_eq!((user.as_str(), db.as_str()), ("user", "admin"));
        assert_eq!(server.step(b"").err().map(|e| e.code), Some(18));
    }

    #[test]
    fn round_trip_with_default_credentials_and_skip_empty_exchange() {
        let store = UserStore::new();
        let spec = UserSpec {
            user: "a,b=c".into(),
            db: "admin".into(),
            password: "s3cret".into(),
            roles: vec![],
        };
        store.add(spec).expect("add");
        let bare = "n=a=2Cb=3Dc,r=clientnonce123";
        let (mut server, server_first) = ScramServer::start(
            &store,
            "admin",
            "SCRAM-SHA-256",
            format!("n,,{bare}").as_bytes(),
        )
        .expect("start");
        let server_first = String::from_utf8(server_first).expect("utf8");
        assert!(server_first.starts_with("r=clientnonce123"));
        assert!(server_first.ends_with(",i=15000"));
        server.set_skip_empty_exchange(true);
        let final_msg = client_final("s3cret", bare, &server_first);
        match server.step(final_msg.as_bytes()) {
            Ok(ScramStep::Done { payload, user, .. }) => {
                assert!(payload.starts_with(b"v="));
                assert_eq!(user, "a,b=c");
            }
            _ => panic!("expected done"),
        }
    }

    fn failure_code(result: CmdResult<ScramStep>) -> Option<(i32, String)> {
        result.err().map(|e| (e.code, e.message))
    }

    #[test]
    fn wrong_password_and_tampered_nonce_fail_alike() {
        let store = vector_store();
        let bare = format!("n=user,r={CLIENT_NONCE}");
        let start = || {
            ScramServer::start_with_nonce(
                &store,
                "admin",
                "SCRAM-SHA-256",
                format!("n,,{bare}").as_bytes(),
                SERVER_NONCE,
            )
            .expect("start")
        };
        let expected = Some((18, "Authentication failed.".to_string()));

        let (mut server, first) = start();
        let wrong = client_final("pencil!", &bare, &String::from_utf8_lossy(&first));
        assert_eq!(failure_code(server.step(wrong.as_bytes())), expected);
        // The conversation is over after a failure, even with the right proof.
        let right = client_final("pencil", &bare, &String::from_utf8_lossy(&first));
        assert_eq!(failure_code(server.step(right.as_bytes())), expected);

        let (mut server, first) = start();
        let tampered_first = String::from_utf8_lossy(&first).replacen("r=rOpr", "r=XOpr", 1);
        let tampered = client_final("pencil", &bare, &tampered_first);
        assert_eq!(failure_code(server.step(tampered.as_bytes())), expected);

        let (mut server, _) = start();
        assert_eq!(failure_code(server.step(b"garbage")), expected);
    }

    #[test]
    fn start_failures() {
        let store = vector_store();
        let first = format!("n,,n=nobody,r={CLIENT_NONCE}");
        let unknown = ScramServer::start(&store, "admin", "SCRAM-SHA-256", first.as_bytes()).err();
        assert_eq!(
            unknown.map(|e| (e.code, e.message)),
            Some((18, "Authentication failed.".into()))
        );
        let wrong_db = format!("n,,n=user,r={CLIENT_NONCE}");
        let on_app = ScramServer::start(&store, "app", "SCRAM-SHA-256", wrong_db.as_bytes()).err();
        assert_eq!(on_app.map(|e| e.code), Some(18));
        let sha1 = ScramServer::start(&store, "admin", "SCRAM-SHA-1", wrong_db.as_bytes()).err();
        assert_eq!(
            sha1.map(|e| (e.code, e.code_name, e.message)),
            Some((
                334,
                "MechanismUnavailable",
                "Received authentication for mechanism SCRAM-SHA-1 which is not enabled".into()
            ))
        );
        for bad in [
            "p=tls-unique,,n=user,r=abc",
            "n,,n=us=er,r=abc",
            "n,,n=user",
            "n,a=other,n=user,r=abc",
        ] {
            let err = ScramServer::start(&store, "admin", "SCRAM-SHA-256", bad.as_bytes()).err();
            assert_eq!(err.map(|e| e.code), Some(18), "{bad}");
        }
    }

    #[test]
    fn sasl_supported_mechs() {
        let store = vector_store();
        assert_eq!(
            parse_sasl_supported_mechs(&store, "admin.user"),
            Some(vec!["SCRAM-SHA-256".to_string()])
        );
        assert_eq!(parse_sasl_supported_mechs(&store, "admin.nobody"), None);
        assert_eq!(parse_sasl_supported_mechs(&store, "nodot"), None);
    }
}
