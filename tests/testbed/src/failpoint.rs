//! `configureFailPoint: "failCommand"` (reference §2.8): fail, block or close chosen
//! commands, with mongod's modes (`alwaysOn`, `off`, `{times}`, `{skip}`,
//! `{activationProbability}`).

use std::time::Duration;

use bson::{doc, Bson, Document};

use crate::error::{CmdResult, CommandError, ErrorCode};

#[derive(Debug, Clone)]
enum Mode {
    Off,
    AlwaysOn,
    Times(i64),
    Skip(i64),
    Probability(f64),
}

#[derive(Debug, Clone, Default)]
pub struct FailCommandData {
    pub commands: Vec<String>,
    pub all_commands: bool,
    pub error_code: Option<i32>,
    pub error_labels: Option<Vec<String>>,
    pub close_connection: bool,
    pub block: Option<Duration>,
    pub write_concern_error: Option<Document>,
    pub error_extra_info: Option<Document>,
    pub app_name: Option<String>,
    pub namespace: Option<String>,
}

#[derive(Debug)]
pub struct FailPoints {
    mode: Mode,
    data: FailCommandData,
    pub times_entered: i64,
}

impl Default for FailPoints {
    fn default() -> Self {
        FailPoints {
            mode: Mode::Off,
            data: FailCommandData::default(),
            times_entered: 0,
        }
    }
}

/// What a matching failpoint does to one command.
#[derive(Debug, Clone)]
pub struct Action {
    pub block: Option<Duration>,
    pub close_connection: bool,
    pub error: Option<CommandError>,
    pub write_concern_error: Option<Document>,
}

impl FailPoints {
    /// Applies `configureFailPoint`; returns the count to reply with.
    pub fn configure(&mut self, command: &Document) -> CmdResult<i64> {
        let name = command.get_str("configureFailPoint").unwrap_or_default();
        if name != "failCommand" {
            return Err(CommandError::bad_value(format!(
                "Cannot find failpoint {name}"
            )));
        }
        let mode = match command.get("mode") {
            None => {
                return Err(CommandError::new(
                    ErrorCode::IllegalOperation,
                    "Missing mode",
                ))
            }
            Some(Bson::String(text)) => match text.as_str() {
                "alwaysOn" => Mode::AlwaysOn,
                "off" => Mode::Off,
                other => return Err(CommandError::bad_value(format!("unknown mode: {other}"))),
            },
            Some(Bson::Document(spec)) => parse_mode_document(spec)?,
            Some(_) => {
                return Err(CommandError::type_mismatch(
                    "'mode' must be a string or JSON object",
                ))
            }
        };
        let data = match command.get("data") {
            Some(Bson::Document(data)) => parse_data(data)?,
            None => FailCommandData::default(),
            Some(_) => return Err(CommandError::type_mismatch("'data' must be an object")),
        };
        let previous = self.times_entered;
        self.mode = mode;
        self.data = data;
        self.times_entered = 0;
        Ok(previous)
    }

    /// Decides whether this command trips the failpoint (and counts the activation).
    pub fn check(
        &mut self,
        command: &str,
        namespace: &str,
        app_name: Option<&str>,
    ) -> Option<Action> {
        if command == "configureFailPoint" || matches!(self.mode, Mode::Off) {
            return None;
        }
        let data = &self.data;
        let named = data.all_commands || data.commands.iter().any(|c| c == command);
        if !named {
            return None;
        }
        if let Some(wanted) = &data.app_name {
            if app_name != Some(wanted.as_str()) {
                return None;
            }
        }
        if let Some(wanted) = &data.namespace {
            if wanted != namespace {
                return None;
            }
        }
        let fire = match &mut self.mode {
            Mode::Off => false,
            Mode::AlwaysOn => true,
            Mode::Times(left) => {
                *left -= 1;
                if *left <= 0 {
                    self.mode = Mode::Off;
                }
                true
            }
            Mode::Skip(left) => {
                if *left > 0 {
                    *left -= 1;
                    false
                } else {
                    true
                }
            }
            Mode::Probability(p) => rand::random::<f64>() < *p,
        };
        if !fire {
            return None;
        }
        self.times_entered += 1;
        let data = &self.data;
        let error = data.error_code.map(|code| {
            let mut error =
                CommandError::from_code(code, "Failing command via 'failCommand' failpoint");
            if let Some(extra) = &data.error_extra_info {
                error = error.with_extra(extra.clone());
            }
            error.labels_override = data.error_labels.clone();
            error
        });
        Some(Action {
            block: data.block,
            close_connection: data.close_connection,
            error,
            write_concern_error: data.write_concern_error.clone(),
        })
    }

    pub fn describe(&self) -> Document {
        doc! {"timesEntered": self.times_entered}
    }
}

fn parse_mode_document(spec: &Document) -> CmdResult<Mode> {
    let number = |value: &Bson| -> CmdResult<i64> {
        match value {
            Bson::Int32(v) => Ok(i64::from(*v)),
            Bson::Int64(v) => Ok(*v),
            Bson::Double(v) => Ok(*v as i64),
            _ => Err(CommandError::type_mismatch("mode value must be a number")),
        }
    };
    if let Some(times) = spec.get("times") {
        let times = number(times)?;
        if times < 0 {
            return Err(CommandError::bad_value(
                "'times' option to 'mode' must be positive",
            ));
        }
        return Ok(if times == 0 {
            Mode::Off
        } else {
            Mode::Times(times)
        });
    }
    if let Some(skip) = spec.get("skip") {
        let skip = number(skip)?;
        if skip < 0 {
            return Err(CommandError::bad_value(
                "'skip' option to 'mode' must be positive",
            ));
        }
        return Ok(Mode::Skip(skip));
    }
    if let Some(p) = spec.get("activationProbability") {
        let p = match p {
            Bson::Double(v) => *v,
            other => number(other)? as f64,
        };
        if !(0.0..=1.0).contains(&p) {
            return Err(CommandError::bad_value(
                "activationProbability must be between 0.0 and 1.0",
            ));
        }
        return Ok(Mode::Probability(p));
    }
    Err(CommandError::bad_value(
        "'mode' must be one of 'off', 'alwaysOn', 'times', 'skip' and 'activationProbability'",
    ))
}

fn parse_data(data: &Document) -> CmdResult<FailCommandData> {
    let mut parsed = FailCommandData::default();
    let mut block_flag = false;
    let mut block_ms: Option<i64> = None;
    for (key, value) in data {
        match key.as_str() {
            "failCommands" => {
                let Bson::Array(names) = value else {
                    return Err(CommandError::type_mismatch("failCommands must be an array"));
                };
                parsed.commands = names
                    .iter()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect();
            }
            "failAllCommands" => parsed.all_commands = matches!(value, Bson::Boolean(true)),
            "errorCode" => {
                parsed.error_code = value
                    .as_i32()
                    .or_else(|| value.as_i64().map(|v| v as i32))
                    .or_else(|| value.as_f64().map(|v| v as i32))
            }
            "errorLabels" => {
                let Bson::Array(labels) = value else {
                    return Err(CommandError::type_mismatch("errorLabels must be an array"));
                };
                parsed.error_labels = Some(
                    labels
                        .iter()
                        .filter_map(|l| l.as_str().map(str::to_string))
                        .collect(),
                );
            }
            "closeConnection" => parsed.close_connection = matches!(value, Bson::Boolean(true)),
            "blockConnection" => block_flag = matches!(value, Bson::Boolean(true)),
            "blockTimeMS" => {
                block_ms = value
                    .as_i32()
                    .map(i64::from)
                    .or_else(|| value.as_i64())
                    .or_else(|| value.as_f64().map(|v| v as i64))
            }
            "writeConcernError" => parsed.write_concern_error = value.as_document().cloned(),
            "errorExtraInfo" => parsed.error_extra_info = value.as_document().cloned(),
            "appName" => parsed.app_name = value.as_str().map(str::to_string),
            "namespace" => parsed.namespace = value.as_str().map(str::to_string),
            "threadName" | "failInternalCommands" | "failLocalClients" => {}
            other => {
                return Err(CommandError::bad_value(format!(
                    "unknown failCommand data field: {other}"
                )))
            }
        }
    }
    if block_flag {
        let ms = block_ms
            .ok_or_else(|| CommandError::bad_value("blockConnection requires blockTimeMS"))?;
        if ms < 0 {
            return Err(CommandError::bad_value("blockTimeMS must be non-negative"));
        }
        parsed.block = Some(Duration::from_millis(ms as u64));
    }
    Ok(parsed)
}
