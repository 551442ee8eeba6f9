//! What a migration was asked to do: the engine-side form of mongosync's `/start` body
//! and of the process flags that shape the work (`--loadLevel`).

use serde::{Deserialize, Serialize};

use crate::filter::{FilterSpec, NamespaceFilter};

/// mongosync's `buildIndexes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BuildIndexes {
    BeforeDataCopy,
    AfterDataCopy,
    ExcludeHashed,
    ExcludeHashedAfterCopy,
    Never,
}

impl BuildIndexes {
    pub fn after_copy(self) -> bool {
        matches!(
            self,
            BuildIndexes::AfterDataCopy | BuildIndexes::ExcludeHashedAfterCopy
        )
    }

    pub fn skips_hashed(self) -> bool {
        matches!(
            self,
            BuildIndexes::ExcludeHashed | BuildIndexes::ExcludeHashedAfterCopy
        )
    }
}

/// mongosync's `enableUserWriteBlocking` (`false` = none, `true` = sourceAndDestination).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WriteBlocking {
    None,
    DestinationOnly,
    SourceAndDestination,
}

/// `--loadLevel` 1..=4: how hard c2c pushes both clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadLevel(u8);

impl LoadLevel {
    pub const DEFAULT: LoadLevel = LoadLevel(3);

    pub fn new(level: u8) -> Option<LoadLevel> {
        (1..=4).contains(&level).then_some(LoadLevel(level))
    }

    pub fn get(self) -> u8 {
        self.0
    }

    /// Partitions copied at once.
    pub fn copy_concurrency(self) -> usize {
        [1, 2, 4, 8][usize::from(self.0 - 1)]
    }

    /// Parallel lanes applying change events (by document key).
    pub fn apply_lanes(self) -> usize {
        [1, 4, 8, 16][usize::from(self.0 - 1)]
    }
}

impl Default for LoadLevel {
    fn default() -> Self {
        LoadLevel::DEFAULT
    }
}

/// The `/start` request after validation, as the engine needs it. It is persisted (as
/// `StartRequest`) so a restart can tell an identical `/start` from a different one.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub filter: NamespaceFilter,
    pub build_indexes: BuildIndexes,
    pub reversible: bool,
    pub write_blocking: WriteBlocking,
    pub detect_random_id: bool,
    pub pre_existing_destination_data: bool,
    pub verification: bool,
    pub load_level: LoadLevel,
}

/// The canonical, persisted form of a validated `/start` body (field order fixed, so two
/// equal requests serialise equally).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartRequest {
    pub source: String,
    pub destination: String,
    pub include_namespaces: Vec<FilterSpec>,
    pub exclude_namespaces: Vec<FilterSpec>,
    pub build_indexes: BuildIndexes,
    pub reversible: bool,
    pub enable_user_write_blocking: WriteBlocking,
    pub verification_enabled: bool,
    pub detect_random_id: bool,
    pub pre_existing_destination_data: bool,
}

impl SyncOptions {
    /// The options a persisted request runs with: the same on the coordinator and on
    /// every worker. `configured_load_level` is `--loadLevel` when set; otherwise
    /// mongosync's default, lowered on a destination that already serves data.
    pub fn from_request(
        request: &StartRequest,
        configured_load_level: Option<LoadLevel>,
    ) -> std::result::Result<SyncOptions, crate::filter::FilterError> {
        let filter = crate::filter::NamespaceFilter::compile(
            &request.include_namespaces,
            &request.exclude_namespaces,
        )?;
        let default_load = if request.pre_existing_destination_data {
            LoadLevel::new(2)
        } else {
            None
        };
        Ok(SyncOptions {
            filter,
            build_indexes: request.build_indexes,
            reversible: request.reversible,
            write_blocking: request.enable_user_write_blocking,
            detect_random_id: request.detect_random_id,
            pre_existing_destination_data: request.pre_existing_destination_data,
            verification: request.verification_enabled,
            load_level: configured_load_level.or(default_load).unwrap_or_default(),
        })
    }
}
