//! Compose services: merge keys applied, `${VAR:-default}` taken as unset.

use std::collections::BTreeMap;

use serde_yaml::Value;

use super::words::{interpolate_words, is_c2c_image, name_length, placeholder, yaml_words};
use super::{Found, Launch};

/// The services of a compose file, `<<` merge keys applied (serde_yaml does not).
pub(super) fn compose(file: &str, text: &str) -> Found {
    let mut found = Found::default();
    let services = match compose_services(text) {
        Ok(services) => services,
        Err(reason) => {
            found.problems.push(format!("{file}: {reason}"));
            return found;
        }
    };
    for (name, service) in &services {
        let origin = format!("{file} service {name}");
        match compose_service(service, &origin) {
            Ok(Some((program, launch))) => found.add(&program, launch),
            Ok(None) => {}
            Err(reason) => found.problems.push(format!("{origin}: {reason}")),
        }
    }
    found
}

fn compose_services(text: &str) -> Result<Vec<(String, Value)>, String> {
    let mut root: Value = serde_yaml::from_str(text).map_err(|error| error.to_string())?;
    root.apply_merge()
        .map_err(|error| format!("merge keys: {error}"))?;
    let services = root
        .get("services")
        .and_then(Value::as_mapping)
        .ok_or("no services")?;
    services
        .iter()
        .map(|(name, service)| {
            let name = name.as_str().ok_or("a service name is not a string")?;
            Ok((name.to_string(), service.clone()))
        })
        .collect()
}

/// The program a service runs and its command line; `None` when the service names no
/// entrypoint and does not run c2c's image (etcd, Prometheus…).
fn compose_service(service: &Value, origin: &str) -> Result<Option<(String, Launch)>, String> {
    let entrypoint = match service.get("entrypoint") {
        Some(entrypoint) => yaml_words(entrypoint)?,
        None if is_c2c_image(&service["image"]) => vec!["c2c".to_string()],
        None => return Ok(None),
    };
    let Some((program, entrypoint_args)) = entrypoint.split_first() else {
        return Ok(None);
    };
    let command = match service.get("command") {
        Some(command) => yaml_words(command)?,
        None => Vec::new(),
    };
    let words: Vec<String> = entrypoint_args.iter().chain(&command).cloned().collect();
    let launch = Launch {
        origin: origin.to_string(),
        args: interpolate_words(&words, compose_interpolate)?,
        env: compose_environment(&service["environment"])?,
    };
    Ok(Some((program.clone(), launch)))
}

fn compose_environment(environment: &Value) -> Result<BTreeMap<String, String>, String> {
    let entries: Vec<(String, String)> = match environment {
        Value::Null => Vec::new(),
        Value::Mapping(entries) => entries
            .iter()
            // `KEY:` with no value passes the host's variable through: unknown here.
            .filter(|(_, value)| !value.is_null())
            .map(|(name, value)| {
                let name = name.as_str().ok_or("an environment name is not a string")?;
                let words = yaml_words(&Value::Sequence(vec![value.clone()]))?;
                Ok((name.to_string(), words.concat()))
            })
            .collect::<Result<_, String>>()?,
        Value::Sequence(_) => yaml_words(environment)?
            .iter()
            .filter_map(|entry| entry.split_once('='))
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect(),
        other => return Err(format!("environment: {other:?} is not a mapping or list")),
    };
    entries
        .into_iter()
        .map(|(name, value)| Ok((name, compose_interpolate(&value, None)?)))
        .collect()
}

/// Compose's interpolation with no variable set (a fresh checkout without `.env`):
/// `${VAR:-default}` is its default, a bare `${VAR}` a placeholder, `$$` a `$`.
fn compose_interpolate(value: &str, flag: Option<&str>) -> Result<String, String> {
    let mut expanded = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        expanded.push_str(&rest[..at]);
        let start = value.len() - rest.len() + at;
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            expanded.push('$');
            rest = tail;
            continue;
        }
        let (body, tail) = match after.strip_prefix('{') {
            Some(braced) => braced
                .split_once('}')
                .ok_or_else(|| format!("unclosed ${{ in {value:?}"))?,
            None => after.split_at(name_length(after)),
        };
        if body.is_empty() {
            return Err(format!("a lone $ in {value:?} (write $$)"));
        }
        let whole = start == 0 && tail.is_empty();
        expanded.push_str(&compose_variable(body, || placeholder(flag, whole))?);
        rest = tail;
    }
    expanded.push_str(rest);
    Ok(expanded)
}

/// `${body}` with its variable unset: its default, or `unset()` when it has none.
fn compose_variable(body: &str, unset: impl FnOnce() -> String) -> Result<String, String> {
    let (name, modifier) = body.split_at(name_length(body));
    if name.is_empty() || modifier.contains('$') {
        return Err(format!("${{{body}}} is not understood by this check"));
    }
    if let Some(default) = modifier
        .strip_prefix(":-")
        .or_else(|| modifier.strip_prefix('-'))
    {
        return Ok(default.to_string());
    }
    if modifier.starts_with(":+") || modifier.starts_with('+') {
        return Ok(String::new());
    }
    if modifier.is_empty() || modifier.starts_with(":?") || modifier.starts_with('?') {
        return Ok(unset());
    }
    Err(format!("${{{body}}}: unknown modifier"))
}
