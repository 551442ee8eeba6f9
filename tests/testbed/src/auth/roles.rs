//! Built-in roles and their privileges, transcribed from mongod's `builtin_roles.yml`
//! (SERVER `src/mongo/db/auth/builtin_roles.yml`), and the resource matching of
//! `resource_pattern_search_list.h`. Only built-in roles exist: the testbed has no
//! `createRole`. Time-series bucket patterns (`any_system_buckets`) and multitenancy are
//! left out because the testbed has neither.

use std::collections::{BTreeMap, BTreeSet};

use bson::{doc, Bson, Document};

pub use super::actions::Action;
use super::actions::{admin_command_requirement, Action as A, *};
use super::users::RoleRef;

/// A resource pattern, as in mongod's `ResourcePattern`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Resource {
    Cluster,
    /// `{anyResource: true}`: everything, including system collections and the cluster.
    Any,
    /// `{db: "", collection: ""}`: normal collections in every database but local/config.
    AnyNormal,
    /// `{db: "x", collection: ""}`: the normal collections of one database.
    Db(String),
    /// `{db: "", collection: "c"}`: a collection name in every database.
    Coll(String),
    Exact(String, String),
}

impl Resource {
    fn to_document(&self) -> Document {
        match self {
            Resource::Cluster => doc! { "cluster": true },
            Resource::Any => doc! { "anyResource": true },
            Resource::AnyNormal => doc! { "db": "", "collection": "" },
            Resource::Db(db) => doc! { "db": db, "collection": "" },
            Resource::Coll(coll) => doc! { "db": "", "collection": coll },
            Resource::Exact(db, coll) => doc! { "db": db, "collection": coll },
        }
    }
}

fn db(name: &str) -> Resource {
    Resource::Db(name.to_string())
}
fn coll(name: &str) -> Resource {
    Resource::Coll(name.to_string())
}
fn exact(db: &str, coll: &str) -> Resource {
    Resource::Exact(db.to_string(), coll.to_string())
}

/// mongod's `NamespaceString::isNormalCollection`: not `system.*`, and not the
/// replication bookkeeping collections `local.replset.*`.
fn is_normal_collection(db: &str, coll: &str) -> bool {
    let system = coll.starts_with("system.");
    let replication = db == "local" && coll.starts_with("replset.");
    !(system || replication)
}

/// The cluster-level questions the command layer asks. `ChangeStreamAnyDb` is not a mongod
/// action: a whole-cluster change stream needs `find` + `changeStream` on the any-normal
/// resource (mongod's `change_stream` auth check), which is answered here for convenience.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterAction {
    BypassWriteBlockingMode,
    SetUserWriteBlockMode,
    ListDatabases,
    ChangeStreamAnyDb,
    AppendOplogNote,
    ServerStatus,
    ReplSetGetStatus,
    ReplSetGetConfig,
    GetParameter,
    SetParameter,
    /// Any other action on the cluster resource.
    Other(Action),
}

/// The privileges of an authenticated user: the union of its roles' grants.
#[derive(Debug, Clone, Default)]
pub struct Privileges {
    roles: Vec<RoleRef>,
    grants: BTreeMap<Resource, BTreeSet<Action>>,
}

/// True if `role@db` names a built-in role. Roles marked `adminOnly` in mongod exist only on
/// the admin database (`readAnyDatabase@app` is "Could not find role").
pub fn is_builtin_role(role: &str, db: &str) -> bool {
    let mut probe = Privileges::default();
    probe.grant_role(role, db)
}

/// The privileges granted by `roles`; unknown roles grant nothing (they were rejected when
/// the user was created).
pub fn privileges_for(roles: &[RoleRef]) -> Privileges {
    let mut privileges = Privileges {
        roles: roles.to_vec(),
        grants: BTreeMap::new(),
    };
    for role in roles {
        privileges.grant_role(&role.role, &role.db);
    }
    privileges
}

impl Privileges {
    fn add(&mut self, resource: Resource, actions: &[&[Action]]) {
        let set = self.grants.entry(resource).or_default();
        for group in actions {
            set.extend(group.iter().copied());
        }
    }

    /// Adds `role@role_db`'s privileges; false if no such built-in role.
    fn grant_role(&mut self, role: &str, role_db: &str) -> bool {
        let admin = role_db == "admin";
        match role {
            "read" => {
                self.add(db(role_db), &[READ]);
                self.add(exact(role_db, "system.js"), &[READ]);
            }
            "readWrite" => {
                self.add(db(role_db), &[READ, WRITE]);
                self.add(exact(role_db, "system.js"), &[READ, WRITE]);
            }
            "userAdmin" => self.add(db(role_db), &[USER_ADMIN]),
            "dbAdmin" => {
                self.add(db(role_db), &[DB_ADMIN]);
                self.add(exact(role_db, "system.profile"), &[READ, PROFILE_ADMIN]);
            }
            "dbOwner" => {
                for sub in ["readWrite", "dbAdmin", "userAdmin"] {
                    self.grant_role(sub, role_db);
                }
            }
            "readAnyDatabase" if admin => {
                self.add(Resource::AnyNormal, &[READ]);
                self.add(Resource::Cluster, &[&[A::ListDatabases]]);
                self.add(coll("system.js"), &[READ]);
            }
            "readWriteAnyDatabase" if admin => {
                self.grant_role("readAnyDatabase", "admin");
                self.add(Resource::AnyNormal, &[READ, WRITE]);
                self.add(coll("system.js"), &[READ, WRITE]);
            }
            "userAdminAnyDatabase" if admin => {
                self.add(
                    Resource::AnyNormal,
                    &[USER_ADMIN, &[A::ListCachedAndActiveUsers]],
                );
                self.add(db("local"), &[USER_ADMIN]);
                self.add(db("config"), &[USER_ADMIN]);
                self.add(
                    Resource::Cluster,
                    &[&[
                        A::ListDatabases,
                        A::AuthSchemaUpgrade,
                        A::InvalidateUserCache,
                        A::ViewUser,
                    ]],
                );
                let index_actions: &[Action] = &[
                    A::CreateIndex,
                    A::CreateSearchIndexes,
                    A::DropIndex,
                    A::DropSearchIndex,
                ];
                self.add(exact("admin", "system.users"), &[READ, index_actions]);
                self.add(exact("admin", "system.roles"), &[READ, index_actions]);
                self.add(coll("system.users"), &[READ]);
                self.add(exact("admin", "system.version"), &[READ]);
                self.add(exact("admin", "system.backup_users"), &[READ]);
            }
            "dbAdminAnyDatabase" if admin => {
                self.add(Resource::Cluster, &[&[A::ListDatabases, A::ApplyOps]]);
                self.add(Resource::AnyNormal, &[DB_ADMIN]);
                self.add(coll("system.profile"), &[READ, PROFILE_ADMIN]);
            }
            "clusterMonitor" if admin => {
                self.grant_role("read", "config");
                self.grant_role("read", "local");
                self.add(Resource::Cluster, &[MONITOR_CLUSTER]);
                self.add(Resource::AnyNormal, &[MONITOR_DB]);
                self.add(db("config"), &[MONITOR_DB]);
                self.add(exact("config", "system.sessions"), &[MONITOR_DB]);
                self.add(db("local"), &[MONITOR_DB]);
                for name in ["system.replset", "replset.election", "replset.minvalid"] {
                    self.add(exact("local", name), &[&[A::Find]]);
                }
                self.add(coll("system.profile"), &[&[A::Find]]);
            }
            "hostManager" if admin => {
                self.add(Resource::Cluster, &[HOST_MANAGER_CLUSTER]);
                self.add(Resource::AnyNormal, &[&[A::KillCursors]]);
            }
            "clusterManager" if admin => {
                self.grant_role("read", "config");
                self.add(Resource::Cluster, &[MANAGER_CLUSTER]);
                self.add(Resource::AnyNormal, &[MANAGER_DB]);
                self.add(db("config"), &[MANAGER_DB, MANAGER_WRITE]);
                self.add(db("local"), &[MANAGER_DB, MANAGER_WRITE]);
                self.add(exact("local", "system.replset"), &[READ]);
                self.add(Resource::Any, &[&[A::DbCheck]]);
                self.add(exact("local", "system.healthlog"), &[READ]);
                self.add(exact("local", "replset.election"), &[MANAGER_WRITE]);
                self.add(exact("local", "replset.minvalid"), &[MANAGER_WRITE]);
            }
            "clusterAdmin" if admin => {
                for sub in ["clusterMonitor", "hostManager", "clusterManager"] {
                    self.grant_role(sub, "admin");
                }
                self.add(Resource::AnyNormal, &[&[A::DropDatabase]]);
                self.add(
                    Resource::Any,
                    &[&[A::ImportCollection, A::ExportCollection]],
                );
            }
            "__queryableBackup" if admin => {
                let listing: &[Action] = &[
                    A::CollStats,
                    A::ListCollections,
                    A::ListIndexes,
                    A::ListSearchIndexes,
                ];
                self.add(Resource::Any, &[listing]);
                self.add(Resource::AnyNormal, &[&[A::Find]]);
                self.add(
                    Resource::Cluster,
                    &[&[A::GetParameter, A::ListDatabases, A::UseUuid]],
                );
                for resource in [
                    db("config"),
                    db("local"),
                    exact("local", "replset.election"),
                    exact("local", "replset.minvalid"),
                    coll("system.js"),
                    coll("system.users"),
                    coll("system.profile"),
                    exact("admin", "system.backup_users"),
                    exact("admin", "system.roles"),
                    exact("admin", "system.version"),
                    exact("config", "settings"),
                ] {
                    self.add(resource, &[&[A::Find]]);
                }
            }
            "backup" if admin => {
                self.grant_role("__queryableBackup", "admin");
                // "For C2C replication": backup may set (not bypass) write blocking.
                let cluster: &[Action] = &[
                    A::AppendOplogNote,
                    A::ServerStatus,
                    A::SetUserWriteBlockMode,
                ];
                self.add(Resource::Cluster, &[cluster]);
                self.add(exact("config", "settings"), &[&[A::Insert, A::Update]]);
            }
            "restore" if admin => {
                // "Need to be able to set and bypass write blocking mode for C2C replication".
                let cluster: &[Action] = &[
                    A::GetParameter,
                    A::ForceUuid,
                    A::UseUuid,
                    A::BypassWriteBlockingMode,
                    A::SetUserWriteBlockMode,
                    A::ApplyOps,
                ];
                self.add(Resource::Cluster, &[cluster]);
                for resource in [
                    db("local"),
                    db("config"),
                    exact("local", "system.replset"),
                    exact("local", "replset.election"),
                    exact("local", "replset.minvalid"),
                    coll("system.js"),
                    exact("admin", "system.backup_users"),
                ] {
                    self.add(resource, &[RESTORE_WRITE]);
                }
                self.add(Resource::Any, &[&[A::ListCollections]]);
                // Note: restore alone has no find/update/remove on user collections.
                self.add(Resource::AnyNormal, &[RESTORE_WRITE, USER_ADMIN]);
                self.add(exact("admin", "tempusers"), &[&[A::Find]]);
                self.add(exact("admin", "temproles"), &[&[A::Find]]);
                self.add(
                    exact("admin", "system.version"),
                    &[RESTORE_WRITE, &[A::Find]],
                );
                let users: &[Action] = &[A::Find, A::Update, A::Remove];
                self.add(coll("system.users"), &[RESTORE_WRITE, users]);
                self.add(exact("admin", "system.roles"), &[&[A::CreateIndex]]);
            }
            "directShardOperations" if admin => {
                self.add(Resource::Cluster, &[&[A::IssueDirectShardOperations]]);
            }
            "root" if admin => {
                for sub in [
                    "clusterAdmin",
                    "userAdminAnyDatabase",
                    "dbAdminAnyDatabase",
                    "readWriteAnyDatabase",
                    "backup",
                    "restore",
                    "directShardOperations",
                ] {
                    self.grant_role(sub, "admin");
                }
                self.add(Resource::Any, &[&[A::Validate]]);
                self.add(Resource::Cluster, &[&[A::UseTenant]]);
                self.add(
                    exact("config", "system.preimages"),
                    &[&[A::Find, A::Remove]],
                );
                let change_collection: &[Action] = &[A::Find, A::Insert, A::Remove, A::Update];
                self.add(
                    exact("config", "system.change_collection"),
                    &[change_collection],
                );
            }
            _ => return false,
        }
        true
    }

    fn granted(&self, resource: &Resource, action: Action) -> bool {
        self.grants
            .get(resource)
            .is_some_and(|set| set.contains(&action))
    }

    /// The patterns that can match `target`, as `ResourcePatternSearchList` builds them.
    fn authorized_on(&self, candidates: &[Resource], action: Action) -> bool {
        candidates.iter().any(|r| self.granted(r, action))
    }

    /// `action` on the collection `db.coll`.
    pub fn has_ns_action(&self, db: &str, coll: &str, action: Action) -> bool {
        let mut candidates = vec![Resource::Any];
        if is_normal_collection(db, coll) {
            // local and config hold internal collections that user-level "any database"
            // roles must not touch.
            if db != "local" && db != "config" {
                candidates.push(Resource::AnyNormal);
            }
            candidates.push(Resource::Db(db.to_string()));
        }
        candidates.push(Resource::Coll(coll.to_string()));
        candidates.push(Resource::Exact(db.to_string(), coll.to_string()));
        self.authorized_on(&candidates, action)
    }

    /// `action` on the database resource `db` (listCollections, dropDatabase, dbStats, ...).
    pub fn has_db_action(&self, db: &str, action: Action) -> bool {
        let mut candidates = vec![Resource::Any];
        if db != "local" && db != "config" {
            candidates.push(Resource::AnyNormal);
        }
        candidates.push(Resource::Db(db.to_string()));
        self.authorized_on(&candidates, action)
    }

    /// `action` on the any-normal resource (whole-cluster change streams, for one).
    pub fn has_any_normal_action(&self, action: Action) -> bool {
        self.authorized_on(&[Resource::Any, Resource::AnyNormal], action)
    }

    /// `action` on the cluster resource.
    pub fn has_cluster_action_type(&self, action: Action) -> bool {
        self.authorized_on(&[Resource::Any, Resource::Cluster], action)
    }

    pub fn has_cluster_action(&self, action: ClusterAction) -> bool {
        let action = match action {
            ClusterAction::ChangeStreamAnyDb => {
                return self.has_any_normal_action(A::Find)
                    && self.has_any_normal_action(A::ChangeStream)
            }
            ClusterAction::BypassWriteBlockingMode => A::BypassWriteBlockingMode,
            ClusterAction::SetUserWriteBlockMode => A::SetUserWriteBlockMode,
            ClusterAction::ListDatabases => A::ListDatabases,
            ClusterAction::AppendOplogNote => A::AppendOplogNote,
            ClusterAction::ServerStatus => A::ServerStatus,
            ClusterAction::ReplSetGetStatus => A::ReplSetGetStatus,
            ClusterAction::ReplSetGetConfig => A::ReplSetGetConfig,
            ClusterAction::GetParameter => A::GetParameter,
            ClusterAction::SetParameter => A::SetParameter,
            ClusterAction::Other(action) => action,
        };
        self.has_cluster_action_type(action)
    }

    /// `find` on `db.coll` (find, aggregate, count, getMore, a collection change stream also
    /// needs `changeStream`).
    pub fn can_read(&self, db: &str, coll: &str) -> bool {
        self.has_ns_action(db, coll, A::Find)
    }

    /// `insert`, `update` and `remove` on `db.coll`. Commands should prefer the single
    /// action they need (`has_ns_action`): `restore` grants `insert` without the others.
    pub fn can_write(&self, db: &str, coll: &str) -> bool {
        [A::Insert, A::Update, A::Remove]
            .iter()
            .all(|a| self.has_ns_action(db, coll, *a))
    }

    /// Creating and dropping collections and indexes in `db` (readWrite/dbAdmin level).
    /// Per-command checks should use [`Action::for_ddl_command`] with `has_ns_action`.
    pub fn can_ddl(&self, db: &str) -> bool {
        [
            A::CreateCollection,
            A::DropCollection,
            A::CreateIndex,
            A::DropIndex,
        ]
        .iter()
        .all(|a| self.has_db_action(db, *a))
    }

    /// Whether an admin-database command that checks only cluster privileges may run.
    /// Commands needing no privilege (hello, ping, failpoints, `testbed*`) are true;
    /// commands this table does not know are false, so a forgotten mapping fails closed.
    pub fn can_run_admin_command(&self, name: &str) -> bool {
        match admin_command_requirement(name) {
            Some(Some(action)) => self.has_cluster_action_type(action),
            Some(None) => true,
            None => false,
        }
    }

    /// `authenticatedUserRoles` and, with `show_privileges`, `authenticatedUserPrivileges`
    /// for `connectionStatus`. Roles are the directly granted ones, as mongod lists them.
    pub fn describe(&self, show_privileges: bool) -> Document {
        let roles: Vec<Bson> = self
            .roles
            .iter()
            .map(|r| Bson::Document(doc! { "role": &r.role, "db": &r.db }))
            .collect();
        let mut out = doc! { "authenticatedUserRoles": roles };
        if show_privileges {
            let privileges: Vec<Bson> = self
                .grants
                .iter()
                .map(|(resource, actions)| {
                    let mut names: Vec<&str> = actions.iter().map(|a| a.as_str()).collect();
                    names.sort_unstable();
                    Bson::Document(doc! { "resource": resource.to_document(), "actions": names })
                })
                .collect();
            out.insert("authenticatedUserPrivileges", privileges);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(role: &str, db: &str) -> Privileges {
        privileges_for(&[RoleRef::new(role, db)])
    }

    #[test]
    fn write_blocking_privileges() {
        for role in ["root", "restore"] {
            let p = of(role, "admin");
            assert!(
                p.has_cluster_action(ClusterAction::BypassWriteBlockingMode),
                "{role}"
            );
            assert!(
                p.has_cluster_action(ClusterAction::SetUserWriteBlockMode),
                "{role}"
            );
        }
        let backup = of("backup", "admin");
        assert!(backup.has_cluster_action(ClusterAction::SetUserWriteBlockMode));
        assert!(!backup.has_cluster_action(ClusterAction::BypassWriteBlockingMode));
        for (role, db) in [
            ("readWriteAnyDatabase", "admin"),
            ("readWrite", "app"),
            ("dbOwner", "app"),
        ] {
            let p = of(role, db);
            assert!(
                !p.has_cluster_action(ClusterAction::BypassWriteBlockingMode),
                "{role}"
            );
            assert!(!p.can_run_admin_command("setUserWriteBlockMode"), "{role}");
        }
    }

    #[test]
    fn namespace_matching() {
        let rw = of("readWrite", "app");
        assert!(rw.can_read("app", "c") && rw.can_write("app", "c") && rw.can_ddl("app"));
        assert!(!rw.can_read("other", "c") && !rw.can_read("app", "system.users"));
        assert!(!rw.has_db_action("app", Action::CollMod));

        let any = of("readWriteAnyDatabase", "admin");
        assert!(any.can_write("app", "c") && any.can_write("admin", "c"));
        assert!(!any.can_read("local", "oplog.rs") && !any.can_write("config", "x"));
        assert!(any.has_cluster_action(ClusterAction::ChangeStreamAnyDb));
        assert!(any.has_cluster_action(ClusterAction::ListDatabases));
        assert!(!any.has_cluster_action(ClusterAction::ServerStatus));

        let read = of("readAnyDatabase", "admin");
        assert!(read.can_read("app", "c") && !read.can_write("app", "c") && !read.can_ddl("app"));

        let restore = of("restore", "admin");
        assert!(restore.has_ns_action("app", "c", Action::Insert));
        assert!(!restore.can_read("app", "c") && !restore.can_write("app", "c"));

        let root = of("root", "admin");
        assert!(root.can_write("app", "c") && root.can_ddl("app"));
        assert!(
            root.can_read("local", "oplog.rs") && root.has_db_action("app", Action::DropDatabase)
        );
        for cmd in [
            "serverStatus",
            "replSetGetStatus",
            "appendOplogNote",
            "shutdown",
        ] {
            assert!(root.can_run_admin_command(cmd), "{cmd}");
        }
        assert!(!root.can_run_admin_command("noSuchCommand"));
        assert!(of("read", "app").can_run_admin_command("ping"));
    }

    #[test]
    fn role_validity_and_description() {
        assert!(is_builtin_role("read", "app") && is_builtin_role("root", "admin"));
        assert!(!is_builtin_role("root", "app") && !is_builtin_role("superuser", "admin"));
        let monitor = of("clusterMonitor", "admin");
        assert!(monitor.has_cluster_action(ClusterAction::ServerStatus));
        assert!(monitor.has_cluster_action(ClusterAction::ReplSetGetStatus));
        assert!(monitor.can_read("local", "oplog.rs") && !monitor.can_read("app", "c"));
        assert!(of("clusterManager", "admin").has_cluster_action(ClusterAction::AppendOplogNote));

        let described = of("read", "app").describe(true);
        let roles = described
            .get_array("authenticatedUserRoles")
            .expect("roles");
        assert_eq!(
            roles[0],
            Bson::Document(doc! { "role": "read", "db": "app" })
        );
        let privileges = described
            .get_array("authenticatedUserPrivileges")
            .expect("privileges");
        let expected_first = doc! {
            "resource": { "db": "app", "collection": "" },
            "actions": ["changeStream", "collStats", "dbHash", "dbStats", "find", "killCursors",
                        "listCollections", "listIndexes", "listSearchIndexes", "planCacheRead"],
        };
        assert_eq!(privileges[0], Bson::Document(expected_first));
        assert_eq!(privileges.len(), 2);
        assert!(!of("read", "app")
            .describe(false)
            .contains_key("authenticatedUserPrivileges"));
        let root = of("root", "admin").describe(true);
        let cluster = root
            .get_array("authenticatedUserPrivileges")
            .expect("privileges")
            .iter()
            .filter_map(|p| p.as_document())
            .find(|p| p.get_document("resource").ok() == Some(&doc! { "cluster": true }))
            .and_then(|p| p.get_array("actions").ok().cloned())
            .expect("cluster privilege");
        assert!(cluster.contains(&Bson::from("bypassWriteBlockingMode")));
    }
}
