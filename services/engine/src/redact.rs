//! Keeps credentials out of logs and responses: connection strings are shown with the
//! password replaced, and `/progress` shows only the host list.

const MASK: &str = "*****";

/// Query options whose values are secrets (AWS session tokens travel in
/// `authMechanismProperties`).
const SECRET_OPTIONS: &[&str] = &["authmechanismproperties"];

/// The parts of a `mongodb://` / `mongodb+srv://` connection string, split without
/// validating it (the driver does that) so even a malformed URI is shown safely.
struct UriParts<'a> {
    scheme: Option<&'a str>,
    user_info: Option<&'a str>,
    hosts: &'a str,
    path_and_query: &'a str,
}

fn split(uri: &str) -> UriParts<'_> {
    let (scheme, rest) = match uri.find("://") {
        Some(index) => (Some(&uri[..index]), &uri[index + 3..]),
        None => (None, uri),
    };
    // Unescaped '@' or '/' may appear in a careless password, so the user info ends at
    // the last '@' before the query string, not the first.
    let query_start = rest.find('?').unwrap_or(rest.len());
    let (user_info, after_user) = match rest[..query_start].rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let hosts_end = after_user.find(['/', '?']).unwrap_or(after_user.len());
    UriParts {
        scheme,
        user_info,
        hosts: &after_user[..hosts_end],
        path_and_query: &after_user[hosts_end..],
    }
}

/// `uri` with the password (and secret options) replaced by `*****`; the user name,
/// hosts and other options stay so the log still says which cluster and account.
pub fn redact_uri(uri: &str) -> String {
    let parts = split(uri);
    let mut out = String::with_capacity(uri.len());
    if let Some(scheme) = parts.scheme {
        out.push_str(scheme);
        out.push_str("://");
    }
    if let Some(user_info) = parts.user_info {
        match user_info.split_once(':') {
            Some((user, _password)) => {
                out.push_str(user);
                out.push(':');
                out.push_str(MASK);
            }
            None => out.push_str(user_info),
        }
        out.push('@');
    }
    out.push_str(parts.hosts);
    out.push_str(&redact_options(parts.path_and_query));
    out
}

fn redact_options(path_and_query: &str) -> String {
    let Some((path, query)) = path_and_query.split_once('?') else {
        return path_and_query.to_string();
    };
    let options: Vec<String> = query
        .split('&')
        .map(|option| match option.split_once('=') {
            Some((key, _)) if SECRET_OPTIONS.contains(&key.to_ascii_lowercase().as_str()) => {
                format!("{key}={MASK}")
            }
            _ => option.to_string(),
        })
        .collect();
    format!("{path}?{}", options.join("&"))
}

/// The `host[:port]` entries of a connection string, for `directionMapping`. Never
/// includes credentials.
pub fn hosts_of(uri: &str) -> Vec<String> {
    split(uri)
        .hosts
        .split(',')
        .map(str::trim)
        .filter(|host| !host.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_masked_and_user_kept() {
        assert_eq!(
            redact_uri("mongodb://alice:s3cret@db1:27017,db2:27018/admin?replicaSet=rs0"),
            "mongodb://alice:*****@db1:27017,db2:27018/admin?replicaSet=rs0"
        );
        assert_eq!(
            redact_uri("mongodb+srv://bob:pw@cluster0.example.net/"),
            "mongodb+srv://bob:*****@cluster0.example.net/"
        );
    }

    #[test]
    fn unescaped_at_and_slash_in_password_are_masked_too() {
        let redacted = redact_uri("mongodb://carol:p@ss/w:rd@db1:27017/?w=majority");
        assert_eq!(redacted, "mongodb://carol:*****@db1:27017/?w=majority");
        assert!(!redacted.contains("ss/w"));
    }

    #[test]
    fn uris_without_password_are_unchanged() {
        for uri in [
            "mongodb://127.0.0.1:27017/?replicaSet=rs0",
            "mongodb://user@db1",
            "mongodb://db1,db2",
        ] {
            assert_eq!(redact_uri(uri), uri);
        }
    }

    #[test]
    fn secret_options_are_masked() {
        assert_eq!(
            redact_uri("mongodb://db1/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:abc"),
            "mongodb://db1/?authMechanism=MONGODB-AWS&authMechanismProperties=*****"
        );
    }

    #[test]
    fn malformed_uri_still_hides_the_password() {
        assert_eq!(redact_uri("dave:hunter2@db1"), "dave:*****@db1");
    }

    #[test]
    fn hosts_never_include_credentials() {
        assert_eq!(
            hosts_of("mongodb://alice:s3cret@db1:27017,db2:27018/admin?replicaSet=rs0"),
            ["db1:27017", "db2:27018"]
        );
        assert_eq!(hosts_of("mongodb://localhost:27017"), ["localhost:27017"]);
        assert_eq!(
            hosts_of("mongodb+srv://u:p@cluster0.example.net/?tls=true"),
            ["cluster0.example.net"]
        );
        assert_eq!(hosts_of("mongodb://u:p@ss@db1/"), ["db1"]);
    }
}
