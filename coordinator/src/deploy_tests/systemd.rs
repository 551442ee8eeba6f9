//! systemd template units: `ExecStart=` with `%` specifiers and environment variables.

use std::collections::BTreeMap;

use super::words::{name_length, split_words};
use super::{Found, Launch, SystemdUnit};

/// A unit's `ExecStart=` lines, with `%` specifiers and `${VAR}`/`$VAR` from
/// `Environment=` and then the env file (`EnvironmentFile=` wins).
pub(super) fn systemd(unit: &SystemdUnit) -> Found {
    let mut found = Found::default();
    match systemd_launches(unit) {
        Ok(launches) => {
            for (program, launch) in launches {
                found.add(&program, launch);
            }
        }
        Err(reason) => found.problems.push(format!("{}: {reason}", unit.file)),
    }
    found
}

fn systemd_launches(unit: &SystemdUnit) -> Result<Vec<(String, Launch)>, String> {
    let unit_name = unit.file.rsplit('/').next().unwrap_or(unit.file);
    let specifiers = |text: &str| expand_specifiers(text, unit_name, unit.instance);
    let mut env = BTreeMap::new();
    let mut exec_starts = Vec::new();
    for (key, value) in service_settings(unit.text) {
        match key.as_str() {
            "Environment" => {
                for assignment in split_words(&specifiers(&value)?)? {
                    let (name, value) = assignment
                        .split_once('=')
                        .ok_or(format!("Environment={assignment} is not NAME=VALUE"))?;
                    env.insert(name.to_string(), value.to_string());
                }
            }
            "ExecStart" if value.is_empty() => exec_starts.clear(),
            "ExecStart" => exec_starts.push(value),
            _ => {}
        }
    }
    env.extend(env_file(unit.env_example));
    let lookup = |name: &str| {
        env.get(name).cloned().ok_or(format!(
            "ExecStart uses ${name}, which neither Environment= nor the env file sets"
        ))
    };
    let mut launches = Vec::new();
    for line in exec_starts {
        let words = split_words(&specifiers(&line)?)?;
        let Some((program, rest)) = words.split_first() else {
            continue;
        };
        let mut args = Vec::new();
        for word in rest {
            // `$VAR` alone is split at whitespace; `${VAR}` stays one argument.
            match word
                .strip_prefix('$')
                .filter(|name| name_length(name) == name.len())
            {
                Some(name) => args.extend(lookup(name)?.split_whitespace().map(String::from)),
                None => args.push(expand_braced(word, &lookup)?),
            }
        }
        let launch = Launch {
            origin: format!("{} ExecStart", unit.file),
            args,
            env: env.clone(),
        };
        launches.push((
            program
                .trim_start_matches(['-', '@', ':', '+', '!'])
                .to_string(),
            launch,
        ));
    }
    Ok(launches)
}

/// `[Service]`'s `Key=value` settings, continued lines (`\`) joined.
fn service_settings(text: &str) -> Vec<(String, String)> {
    let mut lines = Vec::new();
    let mut continued: Option<String> = None;
    for raw in text.lines() {
        let line = raw.trim();
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let head = continued.take().unwrap_or_default();
        match line.strip_suffix('\\') {
            Some(part) => continued = Some(format!("{head}{part} ")),
            None => lines.push(format!("{head}{line}")),
        }
    }
    let mut section = String::new();
    let mut settings = Vec::new();
    for line in lines {
        if line.starts_with('[') {
            section = line;
        } else if let Some((key, value)) = line.split_once('=').filter(|_| section == "[Service]") {
            settings.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    settings
}

fn expand_specifiers(text: &str, unit_name: &str, instance: &str) -> Result<String, String> {
    let mut expanded = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            expanded.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => expanded.push('%'),
            Some('i' | 'I') => expanded.push_str(instance),
            Some('n') => expanded.push_str(&unit_name.replace("@.", &format!("@{instance}."))),
            Some('p' | 'P') => expanded.push_str(unit_name.split('@').next().unwrap_or_default()),
            other => {
                return Err(format!(
                    "specifier %{} is not understood by this check",
                    other.unwrap_or(' ')
                ))
            }
        }
    }
    Ok(expanded)
}

/// `${VAR}` inside a word, and `$$` as `$`.
fn expand_braced(
    word: &str,
    lookup: &dyn Fn(&str) -> Result<String, String>,
) -> Result<String, String> {
    let mut expanded = String::new();
    let mut rest = word;
    while let Some(at) = rest.find('$') {
        expanded.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            expanded.push('$');
            rest = tail;
        } else if let Some((name, tail)) = after
            .strip_prefix('{')
            .and_then(|braced| braced.split_once('}'))
        {
            expanded.push_str(&lookup(name)?);
            rest = tail;
        } else {
            return Err(format!("{word:?}: $VAR must be a word of its own"));
        }
    }
    expanded.push_str(rest);
    Ok(expanded)
}

/// An `EnvironmentFile=`'s `NAME=value` lines (quotes optional).
fn env_file(text: &str) -> BTreeMap<String, String> {
    let assignments = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with(['#', ';']));
    assignments
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| {
            let unquoted = value
                .trim()
                .strip_prefix('"')
                .and_then(|inner| inner.strip_suffix('"'))
                .unwrap_or(value.trim());
            (name.trim().to_string(), unquoted.to_string())
        })
        .collect()
}
