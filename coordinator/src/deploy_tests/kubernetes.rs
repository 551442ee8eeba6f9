//! Kubernetes pod templates: `command` + `args`, `$(VAR)` from the container's `env`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_yaml::Value;

use super::words::{interpolate_words, is_c2c_image, placeholder, yaml_words};
use super::{Found, Launch};

/// ConfigMap and Secret values the pod templates may reference, by (name, key).
#[derive(Default)]
struct ConfigValues {
    config_maps: BTreeMap<(String, String), String>,
    secrets: BTreeMap<(String, String), String>,
}

impl ConfigValues {
    /// From ConfigMaps (`data`), Secrets (`stringData`) and a kustomization's
    /// `configMapGenerator`/`secretGenerator` literals.
    fn collect<'a>(documents: impl Iterator<Item = &'a Value>) -> ConfigValues {
        let mut values = ConfigValues::default();
        for document in documents {
            let name = document["metadata"]["name"].as_str().unwrap_or_default();
            let pairs = |map: &Value| -> Vec<(String, String)> {
                let entries = map.as_mapping().into_iter().flatten();
                entries
                    .filter_map(|(key, value)| Some((key.as_str()?.into(), value.as_str()?.into())))
                    .collect()
            };
            match document["kind"].as_str().unwrap_or_default() {
                "ConfigMap" => values.add_config_maps(name, pairs(&document["data"])),
                "Secret" => values.add_secrets(name, pairs(&document["stringData"])),
                "Kustomization" => {
                    for generator in generated(&document["configMapGenerator"]) {
                        values.add_config_maps(&generator.0, generator.1);
                    }
                    for generator in generated(&document["secretGenerator"]) {
                        values.add_secrets(&generator.0, generator.1);
                    }
                }
                _ => {}
            }
        }
        values
    }

    fn add_config_maps(&mut self, name: &str, pairs: Vec<(String, String)>) {
        for (key, value) in pairs {
            self.config_maps.insert((name.to_string(), key), value);
        }
    }

    fn add_secrets(&mut self, name: &str, pairs: Vec<(String, String)>) {
        for (key, value) in pairs {
            self.secrets.insert((name.to_string(), key), value);
        }
    }
}

/// A kustomize generator list's names and `literals` (`key=value`).
fn generated(generators: &Value) -> Vec<(String, Vec<(String, String)>)> {
    let generators = generators.as_sequence().into_iter().flatten();
    generators
        .map(|generator| {
            let name = generator["name"].as_str().unwrap_or_default().to_string();
            let literals = generator["literals"].as_sequence().into_iter().flatten();
            let pairs = literals
                .filter_map(|literal| literal.as_str()?.split_once('='))
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect();
            (name, pairs)
        })
        .collect()
}

/// Every file's pod templates, with the ConfigMaps and Secrets of all of them.
pub(super) fn kubernetes<'a>(files: &[(&'a str, &str)]) -> Vec<(&'a str, Found)> {
    let mut results: Vec<(&str, Found)> = files
        .iter()
        .map(|(file, _)| (*file, Found::default()))
        .collect();
    let mut documents: Vec<(usize, Value)> = Vec::new();
    for (index, (file, text)) in files.iter().enumerate() {
        for document in serde_yaml::Deserializer::from_str(text) {
            match Value::deserialize(document) {
                Ok(Value::Null) => {}
                Ok(value) => documents.push((index, value)),
                Err(error) => results[index].1.problems.push(format!("{file}: {error}")),
            }
        }
    }
    let values = ConfigValues::collect(documents.iter().map(|(_, document)| document));
    for (index, document) in &documents {
        let (file, found) = &mut results[*index];
        for (origin, container) in containers(file, document) {
            match k8s_container(container, &origin, &values) {
                Ok(Some((program, launch))) => found.add(&program, launch),
                Ok(None) => {}
                Err(reason) => found.problems.push(format!("{origin}: {reason}")),
            }
        }
    }
    results
}

/// The containers of a workload's pod template, named for messages.
fn containers<'v>(file: &str, document: &'v Value) -> Vec<(String, &'v Value)> {
    let kind = document["kind"].as_str().unwrap_or_default();
    let name = document["metadata"]["name"].as_str().unwrap_or_default();
    let spec = &document["spec"];
    let pod = match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            &spec["template"]["spec"]
        }
        "CronJob" => &spec["jobTemplate"]["spec"]["template"]["spec"],
        "Pod" => spec,
        _ => return Vec::new(),
    };
    let lists = ["initContainers", "containers"].map(|list| pod[list].as_sequence());
    lists
        .into_iter()
        .flatten()
        .flatten()
        .map(|container| {
            let container_name = container["name"].as_str().unwrap_or("?");
            let origin = format!("{file} {kind} {name} container {container_name}");
            (origin, container)
        })
        .collect()
}

/// A container's program and command line: `command` replaces the image's entrypoint,
/// `args` its CMD; `$(VAR)` expands from `env`.
fn k8s_container(
    container: &Value,
    origin: &str,
    values: &ConfigValues,
) -> Result<Option<(String, Launch)>, String> {
    let env = container_env(container, values)?;
    let args = match container.get("args") {
        Some(args) => yaml_words(args)?,
        None => Vec::new(),
    };
    let (program, words) = match container.get("command") {
        Some(command) => {
            let command = yaml_words(command)?;
            let Some((program, command_args)) = command.split_first() else {
                return Ok(None);
            };
            let words = command_args.iter().chain(&args).cloned().collect();
            (program.clone(), words)
        }
        None if is_c2c_image(&container["image"]) => ("c2c".to_string(), args),
        None => return Ok(None),
    };
    let expand = |value: &str, flag: Option<&str>| k8s_interpolate(value, flag, &env);
    let launch = Launch {
        origin: origin.to_string(),
        args: interpolate_words(&words, expand)?,
        env: env
            .iter()
            .map(|(name, value)| {
                let known = value.clone().unwrap_or_else(|| placeholder(None, false));
                (name.clone(), known)
            })
            .collect(),
    };
    Ok(Some((program, launch)))
}

/// A container's `env`: literal values and those of this directory's ConfigMaps and
/// Secrets; `None` for values only the pod knows (`fieldRef`…).
fn container_env(
    container: &Value,
    values: &ConfigValues,
) -> Result<BTreeMap<String, Option<String>>, String> {
    if container.get("envFrom").is_some() {
        return Err("envFrom is not understood by this check".into());
    }
    let mut env = BTreeMap::new();
    for entry in container["env"].as_sequence().into_iter().flatten() {
        let name = entry["name"].as_str().ok_or("an env entry has no name")?;
        let from = &entry["valueFrom"];
        let reference = |kind: &str| {
            let reference = &from[kind];
            let name = reference["name"].as_str().unwrap_or_default();
            let key = reference["key"].as_str().unwrap_or_default();
            (name.to_string(), key.to_string())
        };
        let value = if let Some(value) = entry["value"].as_str() {
            Some(k8s_interpolate(value, None, &env)?)
        } else if from.get("configMapKeyRef").is_some() {
            let (map, key) = reference("configMapKeyRef");
            let value = values.config_maps.get(&(map.clone(), key.clone()));
            Some(
                value
                    .cloned()
                    .ok_or(format!("{name}: ConfigMap {map} has no key {key}"))?,
            )
        } else if from.get("secretKeyRef").is_some() {
            let (secret, key) = reference("secretKeyRef");
            let value = values.secrets.get(&(secret.clone(), key.clone()));
            Some(
                value
                    .cloned()
                    .ok_or(format!("{name}: Secret {secret} has no key {key}"))?,
            )
        } else {
            None
        };
        env.insert(name.to_string(), value);
    }
    Ok(env)
}

/// Kubernetes' `$(VAR)` expansion; `$$` is a `$`. An undefined variable is an error
/// here: Kubernetes would pass `$(VAR)` on as it is.
fn k8s_interpolate(
    value: &str,
    flag: Option<&str>,
    env: &BTreeMap<String, Option<String>>,
) -> Result<String, String> {
    let mut expanded = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        expanded.push_str(&rest[..at]);
        let start = value.len() - rest.len() + at;
        let after = &rest[at + 1..];
        let reference = after
            .strip_prefix('(')
            .and_then(|braced| braced.split_once(')'));
        if let Some(tail) = after.strip_prefix('$') {
            expanded.push('$');
            rest = tail;
        } else if let Some((name, tail)) = reference {
            let whole = start == 0 && tail.is_empty();
            match env.get(name) {
                Some(Some(known)) => expanded.push_str(known),
                Some(None) => expanded.push_str(&placeholder(flag, whole)),
                None => return Err(format!("$({name}) is not in the container's env")),
            }
            rest = tail;
        } else {
            expanded.push('$');
            rest = after;
        }
    }
    expanded.push_str(rest);
    Ok(expanded)
}
