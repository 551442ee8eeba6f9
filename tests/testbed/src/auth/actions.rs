//! mongod's action types (`action_types.idl`) and the action groups the built-in roles share
//! (the YAML anchors of SERVER `builtin_roles.yml`).

macro_rules! actions {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// mongod action types (`action_types.idl`) granted by the modelled roles.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Action { $($variant),* }

        impl Action {
            /// mongod's spelling, as shown by `connectionStatus {showPrivileges: true}`.
            pub fn as_str(self) -> &'static str {
                match self { $(Action::$variant => $name),* }
            }
        }
    };
}

actions! {
    AddShard => "addShard", Analyze => "analyze", AnalyzeShardKey => "analyzeShardKey",
    AllCollectionStats => "allCollectionStats", AppendOplogNote => "appendOplogNote",
    ApplicationMessage => "applicationMessage", ApplyOps => "applyOps",
    AuditConfigure => "auditConfigure", AuthSchemaUpgrade => "authSchemaUpgrade",
    BypassDocumentValidation => "bypassDocumentValidation",
    BypassWriteBlockingMode => "bypassWriteBlockingMode", ChangeCustomData => "changeCustomData",
    ChangePassword => "changePassword", ChangeStream => "changeStream",
    CheckMetadataConsistency => "checkMetadataConsistency", CleanupOrphaned => "cleanupOrphaned",
    CleanupStructuredEncryptionData => "cleanupStructuredEncryptionData",
    ClearJumboFlag => "clearJumboFlag", CollMod => "collMod", CollStats => "collStats",
    Compact => "compact", CompactStructuredEncryptionData => "compactStructuredEncryptionData",
    ConfigureQueryAnalyzer => "configureQueryAnalyzer", ConnPoolStats => "connPoolStats",
    ConnPoolSync => "connPoolSync", ConvertToCapped => "convertToCapped",
    CreateCollection => "createCollection", CreateIndex => "createIndex",
    CreateRole => "createRole", CreateSearchIndexes => "createSearchIndexes",
    CreateUser => "createUser", DbCheck => "dbCheck", DbHash => "dbHash", DbStats => "dbStats",
    DropCollection => "dropCollection", DropConnections => "dropConnections",
    DropDatabase => "dropDatabase", DropIndex => "dropIndex", DropRole => "dropRole",
    DropSearchIndex => "dropSearchIndex", DropUser => "dropUser",
    EnableProfiler => "enableProfiler", EnableSharding => "enableSharding",
    ExportCollection => "exportCollection", Find => "find",
    FlushRouterConfig => "flushRouterConfig", ForceUuid => "forceUUID", Fsync => "fsync",
    GetChangeStreamState => "getChangeStreamState",
    GetClusterParameter => "getClusterParameter", GetCmdLineOpts => "getCmdLineOpts",
    GetDatabaseVersion => "getDatabaseVersion", GetDefaultRwConcern => "getDefaultRWConcern",
    GetLog => "getLog", GetParameter => "getParameter", GetShardMap => "getShardMap",
    GetShardVersion => "getShardVersion", GrantRole => "grantRole", HostInfo => "hostInfo",
    ImportCollection => "importCollection", IndexStats => "indexStats", Inprog => "inprog",
    Insert => "insert", InvalidateUserCache => "invalidateUserCache",
    IssueDirectShardOperations => "issueDirectShardOperations",
    KillAnyCursor => "killAnyCursor", KillAnySession => "killAnySession",
    KillCursors => "killCursors", Killop => "killop",
    ListCachedAndActiveUsers => "listCachedAndActiveUsers",
    ListCollections => "listCollections", ListDatabases => "listDatabases",
    ListIndexes => "listIndexes", ListSampledQueries => "listSampledQueries",
    ListSearchIndexes => "listSearchIndexes", ListSessions => "listSessions",
    ListShards => "listShards", LogRotate => "logRotate", MoveChunk => "moveChunk",
    MoveCollection => "moveCollection", Netstat => "netstat", OidReset => "oidReset",
    OperationMetrics => "operationMetrics", PlanCacheIndexFilter => "planCacheIndexFilter",
    PlanCacheRead => "planCacheRead", PlanCacheWrite => "planCacheWrite",
    QuerySettings => "querySettings", QueryStatsRead => "queryStatsRead",
    QueryStatsReadTransformed => "queryStatsReadTransformed", ReIndex => "reIndex",
    RefineCollectionShardKey => "refineCollectionShardKey", Remove => "remove",
    RemoveShard => "removeShard", RenameCollectionSameDb => "renameCollectionSameDB",
    ReplSetConfigure => "replSetConfigure", ReplSetGetConfig => "replSetGetConfig",
    ReplSetGetStatus => "replSetGetStatus", ReplSetResizeOplog => "replSetResizeOplog",
    ReplSetStateChange => "replSetStateChange", ReshardCollection => "reshardCollection",
    Resync => "resync", RevokeRole => "revokeRole", RotateCertificates => "rotateCertificates",
    ServerStatus => "serverStatus", SetAuthenticationRestriction => "setAuthenticationRestriction",
    SetChangeStreamState => "setChangeStreamState",
    SetClusterParameter => "setClusterParameter", SetDefaultRwConcern => "setDefaultRWConcern",
    SetFeatureCompatibilityVersion => "setFeatureCompatibilityVersion",
    SetParameter => "setParameter", SetUserWriteBlockMode => "setUserWriteBlockMode",
    ShardedDataDistribution => "shardedDataDistribution", ShardingState => "shardingState",
    Shutdown => "shutdown", SplitChunk => "splitChunk", SplitVector => "splitVector",
    StorageDetails => "storageDetails", Top => "top", Touch => "touch",
    TrafficRecord => "trafficRecord", Unlock => "unlock", Update => "update",
    UpdateSearchIndex => "updateSearchIndex", UseTenant => "useTenant", UseUuid => "useUUID",
    Validate => "validate", ViewRole => "viewRole", ViewUser => "viewUser",
}

use Action as A;

#[rustfmt::skip]
pub(crate) const READ: &[Action] = &[
    A::ChangeStream, A::CollStats, A::DbHash, A::DbStats, A::Find, A::KillCursors,
    A::ListCollections, A::ListIndexes, A::ListSearchIndexes, A::PlanCacheRead,
];
/// readWrite's actions on top of READ.
#[rustfmt::skip]
pub(crate) const WRITE: &[Action] = &[
    A::CleanupStructuredEncryptionData, A::CompactStructuredEncryptionData, A::ConvertToCapped,
    A::CreateCollection, A::CreateIndex, A::CreateSearchIndexes, A::DropCollection, A::DropIndex,
    A::DropSearchIndex, A::Insert, A::Remove, A::RenameCollectionSameDb, A::Update,
    A::UpdateSearchIndex,
];
#[rustfmt::skip]
pub(crate) const USER_ADMIN: &[Action] = &[
    A::ChangeCustomData, A::ChangePassword, A::CreateUser, A::CreateRole, A::DropUser,
    A::DropRole, A::GrantRole, A::RevokeRole, A::SetAuthenticationRestriction, A::ViewUser,
    A::ViewRole,
];
#[rustfmt::skip]
pub(crate) const DB_ADMIN: &[Action] = &[
    A::Analyze, A::BypassDocumentValidation, A::CollMod, A::CollStats, A::Compact,
    A::ConvertToCapped, A::CreateCollection, A::DbStats, A::DropCollection, A::DropDatabase,
    A::DropIndex, A::DropSearchIndex, A::CreateIndex, A::CreateSearchIndexes, A::EnableProfiler,
    A::ListCollections, A::ListIndexes, A::ListSearchIndexes, A::UpdateSearchIndex,
    A::PlanCacheIndexFilter, A::PlanCacheRead, A::PlanCacheWrite, A::ReIndex,
    A::RenameCollectionSameDb, A::StorageDetails, A::Validate, A::ConfigureQueryAnalyzer,
];
/// dbAdmin's extra grant on `system.profile` (with READ).
#[rustfmt::skip]
pub(crate) const PROFILE_ADMIN: &[Action] = &[A::ConvertToCapped, A::CreateCollection, A::DropCollection];
#[rustfmt::skip]
pub(crate) const MONITOR_CLUSTER: &[Action] = &[
    A::ConnPoolStats, A::GetCmdLineOpts, A::GetDefaultRwConcern, A::GetLog, A::GetParameter,
    A::GetShardMap, A::HostInfo, A::ListDatabases, A::ListSampledQueries, A::ListSessions,
    A::ListShards, A::Netstat, A::OperationMetrics, A::ReplSetGetConfig, A::ReplSetGetStatus,
    A::ServerStatus, A::Top, A::UseUuid, A::Inprog, A::ShardingState, A::AllCollectionStats,
    A::ShardedDataDistribution,
];
#[rustfmt::skip]
pub(crate) const MONITOR_DB: &[Action] =
    &[A::CollStats, A::DbStats, A::GetDatabaseVersion, A::GetShardVersion, A::IndexStats];
#[rustfmt::skip]
pub(crate) const HOST_MANAGER_CLUSTER: &[Action] = &[
    A::ApplicationMessage, A::AuditConfigure, A::ConnPoolSync, A::DropConnections, A::LogRotate,
    A::OidReset, A::SetParameter, A::Shutdown, A::Touch, A::Unlock, A::FlushRouterConfig,
    A::Fsync, A::InvalidateUserCache, A::KillAnyCursor, A::KillAnySession, A::Killop,
    A::ReplSetResizeOplog, A::Resync, A::TrafficRecord, A::RotateCertificates,
];
#[rustfmt::skip]
pub(crate) const MANAGER_CLUSTER: &[Action] = &[
    A::AppendOplogNote, A::ApplicationMessage, A::ReplSetConfigure, A::ReplSetGetConfig,
    A::ReplSetGetStatus, A::ReplSetStateChange, A::Resync, A::AddShard, A::RemoveShard,
    A::ListSessions, A::ListShards, A::FlushRouterConfig, A::CleanupOrphaned,
    A::GetDefaultRwConcern, A::SetDefaultRwConcern, A::SetFeatureCompatibilityVersion,
    A::SetClusterParameter, A::GetClusterParameter, A::SetChangeStreamState,
    A::GetChangeStreamState, A::QuerySettings, A::QueryStatsRead, A::QueryStatsReadTransformed,
    A::CheckMetadataConsistency,
];
#[rustfmt::skip]
pub(crate) const MANAGER_DB: &[Action] = &[
    A::AnalyzeShardKey, A::ConfigureQueryAnalyzer, A::ClearJumboFlag, A::SplitChunk,
    A::MoveChunk, A::MoveCollection, A::EnableSharding, A::SplitVector,
    A::RefineCollectionShardKey, A::ReshardCollection,
];
#[rustfmt::skip]
pub(crate) const MANAGER_WRITE: &[Action] = &[A::Insert, A::Update, A::Remove];
#[rustfmt::skip]
pub(crate) const RESTORE_WRITE: &[Action] = &[
    A::BypassDocumentValidation, A::CollMod, A::ConvertToCapped, A::CreateCollection,
    A::CreateIndex, A::CreateSearchIndexes, A::DropCollection, A::Insert, A::UpdateSearchIndex,
];

impl Action {
    /// The action a namespace DDL command needs on its target collection (or database).
    pub fn for_ddl_command(command: &str) -> Option<Action> {
        Some(match command {
            "create" => A::CreateCollection,
            "drop" => A::DropCollection,
            "createIndexes" => A::CreateIndex,
            "dropIndexes" => A::DropIndex,
            "collMod" => A::CollMod,
            "dropDatabase" => A::DropDatabase,
            "renameCollection" => A::RenameCollectionSameDb,
            "listCollections" => A::ListCollections,
            "listIndexes" => A::ListIndexes,
            "convertToCapped" => A::ConvertToCapped,
            _ => return None,
        })
    }
}

/// `Some(Some(a))`: needs cluster action `a`; `Some(None)`: no privilege needed (mongod's
/// failpoint commands check none: they exist only with test commands enabled);
/// `None`: not a cluster-level command known here.
pub(crate) fn admin_command_requirement(name: &str) -> Option<Option<Action>> {
    let action = match name {
        "hello" | "isMaster" | "ismaster" | "ping" | "buildInfo" | "buildinfo"
        | "connectionStatus" | "saslStart" | "saslContinue" | "logout" | "endSessions"
        | "startSession" | "refreshSessions" | "killSessions" | "whatsmyuri" | "getLastError"
        | "listCommands" | "configureFailPoint" | "waitForFailPoint" | "commitTransaction"
        | "abortTransaction" => return Some(None),
        _ if name.starts_with("testbed") => return Some(None),
        "listDatabases" => A::ListDatabases,
        "serverStatus" => A::ServerStatus,
        "replSetGetStatus" => A::ReplSetGetStatus,
        "replSetGetConfig" => A::ReplSetGetConfig,
        "replSetStepDown" | "replSetFreeze" => A::ReplSetStateChange,
        "getParameter" => A::GetParameter,
        "setParameter" => A::SetParameter,
        "setUserWriteBlockMode" => A::SetUserWriteBlockMode,
        "appendOplogNote" => A::AppendOplogNote,
        "setFeatureCompatibilityVersion" => A::SetFeatureCompatibilityVersion,
        "getDefaultRWConcern" => A::GetDefaultRwConcern,
        "setDefaultRWConcern" => A::SetDefaultRwConcern,
        "getClusterParameter" => A::GetClusterParameter,
        "setClusterParameter" => A::SetClusterParameter,
        "hostInfo" => A::HostInfo,
        "currentOp" => A::Inprog,
        "killOp" => A::Killop,
        "getCmdLineOpts" => A::GetCmdLineOpts,
        "getLog" => A::GetLog,
        "top" => A::Top,
        "shutdown" => A::Shutdown,
        "fsync" => A::Fsync,
        "connPoolStats" => A::ConnPoolStats,
        "logRotate" => A::LogRotate,
        "killAllSessions" | "killAllSessionsByPattern" => A::KillAnySession,
        "applyOps" => A::ApplyOps,
        "invalidateUserCache" => A::InvalidateUserCache,
        _ => return None,
    };
    Some(Some(action))
}
