//! Command words: splitting, the flag a value belongs to, placeholders.

use serde_yaml::Value;

/// Expands every word's value part, knowing the flag it belongs to.
pub(super) fn interpolate_words(
    words: &[String],
    expand: impl Fn(&str, Option<&str>) -> Result<String, String>,
) -> Result<Vec<String>, String> {
    let mut previous: Option<&str> = None;
    let mut expanded = Vec::new();
    for word in words {
        let (flag, prefix, value) = flag_and_value(word, previous);
        expanded.push(format!("{prefix}{}", expand(value, flag)?));
        previous = Some(word);
    }
    Ok(expanded)
}

/// A value for a variable only known where the file is deployed: one `flag` accepts
/// when the variable is the flag's whole value, else a host name (fits ids too).
pub(super) fn placeholder(flag: Option<&str>, whole: bool) -> String {
    let value = match flag.filter(|_| whole) {
        Some("--cluster0" | "--cluster1") => "mongodb://placeholder:27017",
        Some("--etcd") => "http://placeholder:2379",
        Some("--port") => "27182",
        Some("--advertise") => "placeholder:27182",
        Some("--bind") => "0.0.0.0",
        Some("--loadLevel" | "--load-level") => "3",
        Some("--verbosity") => "INFO",
        Some("--workers") => "1",
        _ => "placeholder",
    };
    value.to_string()
}

/// Splits `word` into the flag it sets (`--flag=value`, or `previous` for
/// `--flag value`) and the value part.
fn flag_and_value<'a>(
    word: &'a str,
    previous: Option<&'a str>,
) -> (Option<&'a str>, &'a str, &'a str) {
    if let Some((flag, _)) = word
        .split_once('=')
        .filter(|(flag, _)| flag.starts_with("--"))
    {
        let value_start = flag.len() + 1;
        return (Some(flag), &word[..value_start], &word[value_start..]);
    }
    let flag = previous.filter(|previous| previous.starts_with("--") && !previous.contains('='));
    (flag, "", word)
}

/// Splits a command line at whitespace, keeping "…" and '…' together (quotes removed).
pub(super) fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut current: Option<String> = None;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(open), _) if c == open => quote = None,
            (Some(_), _) => current.get_or_insert_with(String::new).push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                current.get_or_insert_with(String::new);
            }
            (None, _) if c.is_whitespace() => words.extend(current.take()),
            (None, _) => current.get_or_insert_with(String::new).push(c),
        }
    }
    if quote.is_some() {
        return Err(format!("unclosed quote in {line:?}"));
    }
    words.extend(current);
    Ok(words)
}

/// A YAML list of strings, or a string split as a shell would.
pub(super) fn yaml_words(value: &Value) -> Result<Vec<String>, String> {
    match value {
        Value::String(line) => split_words(line),
        Value::Sequence(items) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => Ok(text.clone()),
                Value::Number(number) => Ok(number.to_string()),
                Value::Bool(flag) => Ok(flag.to_string()),
                other => Err(format!("{other:?} is not a command word")),
            })
            .collect(),
        other => Err(format!("{other:?} is not a command")),
    }
}

/// Whether `image` is c2c's (the Dockerfile's `ENTRYPOINT ["c2c"]`).
pub(super) fn is_c2c_image(image: &Value) -> bool {
    let name = image.as_str().unwrap_or_default();
    let without_tag = name.split(':').next().unwrap_or_default();
    without_tag.rsplit('/').next() == Some("c2c")
}

pub(super) fn name_length(text: &str) -> usize {
    text.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len())
}
