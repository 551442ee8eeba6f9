//! What a scaled-out coordinator answers with: the leader serves the API from its own
//! coordinator; a follower forwards every call to the leader it observes on etcd.
//! One router serves both roles, so a process keeps its port when it is elected.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::Response;
use axum::Router;
use c2c_api::v1::migration_server::Migration;
use c2c_api::v1::{
    CommitRequest, ListWorkersReply, ListWorkersRequest, OperationReply, PauseRequest,
    ProgressReply, ProgressRequest, ResumeRequest, ReverseRequest, StartRequest, StartResponse,
    WatchProgressRequest,
};
use futures::{Stream, StreamExt};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::{Request as GrpcRequest, Response as GrpcResponse, Status};
use tower::ServiceExt;
use tracing::Instrument;

use super::forward::{forward_failed, no_leader, ForwardTls, Forwarder};
use crate::grpc::{api_status, MigrationService};

/// The leader's API: its coordinator's REST router and gRPC service.
#[derive(Clone)]
pub struct LeaderApi {
    pub rest: Router,
    pub migration: MigrationService,
}

#[derive(Clone)]
pub enum Role {
    /// Not leading; `leader` is the `host:port` of the coordinator that leads, if known.
    Follower {
        leader: Option<LeaderInfo>,
    },
    Leader(LeaderApi),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderInfo {
    pub id: String,
    pub address: String,
}

impl Role {
    pub fn name(&self) -> &'static str {
        match self {
            Role::Follower { .. } => "follower",
            Role::Leader(_) => "leader",
        }
    }
}

/// Where one call goes.
enum Target {
    Local(MigrationService),
    Forward(String),
    Nobody(String),
}

/// Routes the public API per role. Cheap to clone.
#[derive(Clone)]
pub struct RoleRouter {
    role: watch::Receiver<Role>,
    forwarder: Arc<Forwarder>,
    /// The process is stopping: forwarded progress streams end (the leader's would go
    /// on, holding this server's graceful shutdown for its whole grace period).
    stopping: CancellationToken,
}

impl RoleRouter {
    /// `tls`: followers forward to the leader over TLS (the coordinators serve their
    /// API over TLS). `stopping`: the process's shutdown.
    pub fn new(
        role: watch::Receiver<Role>,
        me: String,
        tls: Option<ForwardTls>,
        stopping: CancellationToken,
    ) -> RoleRouter {
        RoleRouter {
            role,
            forwarder: Arc::new(Forwarder::new(me, tls)),
            stopping,
        }
    }

    fn target(&self) -> Target {
        match &*self.role.borrow() {
            Role::Leader(api) => Target::Local(api.migration.clone()),
            // The key names this process before it has switched roles (or a previous
            // incarnation of it): forwarding would loop.
            Role::Follower {
                leader: Some(leader),
            } if leader.id == self.forwarder.me() => {
                Target::Nobody("this coordinator is taking over as leader".into())
            }
            Role::Follower {
                leader: Some(leader),
            } => Target::Forward(leader.address.clone()),
            Role::Follower { leader: None } => Target::Nobody("an election is under way".into()),
        }
    }

    /// The REST side: every path that is not gRPC.
    pub fn rest_router(&self) -> Router {
        Router::new().fallback(rest).with_state(self.clone())
    }

    fn nobody(reason: String) -> Status {
        api_status(crate::api::error::ApiError::LeaderUnavailable(format!(
            "no coordinator leads this migration right now ({reason}); retry shortly"
        )))
    }
}

async fn rest(State(router): State<RoleRouter>, request: Request) -> Response {
    let rest = match &*router.role.borrow() {
        Role::Leader(api) => Some(api.rest.clone()),
        Role::Follower { .. } => None,
    };
    if let Some(rest) = rest {
        return match rest.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
    }
    // The follower's own span of the call (the leader's API layer makes its own).
    let span = tracing::info_span!(
        "api",
        otel.kind = "server",
        otel.name = %format_args!("{} {}", request.method(), request.uri().path()),
        method = %request.method(),
        path = %request.uri().path()
    );
    c2c_api::trace_context::set_parent_from_headers(&span, request.headers());
    let answer = async move {
        match router.target() {
            Target::Forward(leader) => router.forwarder.rest(&leader, request).await,
            Target::Nobody(reason) => no_leader(&reason),
            // The role changed between the two reads: answer as the leader next time.
            Target::Local(_) => no_leader("this coordinator has just become the leader"),
        }
    };
    answer.instrument(span).await
}

/// One unary call: answered here when leading, else forwarded to the leader.
macro_rules! unary {
    ($self:ident, $request:ident, $method:ident) => {
        match $self.target() {
            Target::Local(service) => Migration::$method(&service, $request).await,
            Target::Forward(leader) => {
                let mut client = $self.forwarder.grpc(&leader)?;
                client
                    .$method(forwarded($request))
                    .await
                    .map_err(|status| forward_failed(&leader, status))
            }
            Target::Nobody(reason) => Err(RoleRouter::nobody(reason)),
        }
    };
}

/// The caller's metadata (e.g. a future auth token) goes along with the message.
fn forwarded<T>(request: GrpcRequest<T>) -> GrpcRequest<T> {
    let (metadata, _, message) = request.into_parts();
    let mut forwarded = GrpcRequest::new(message);
    *forwarded.metadata_mut() = metadata;
    forwarded
}

type ProgressStream = std::pin::Pin<Box<dyn Stream<Item = Result<ProgressReply, Status>> + Send>>;

#[tonic::async_trait]
impl Migration for RoleRouter {
    async fn start(
        &self,
        request: GrpcRequest<StartRequest>,
    ) -> Result<GrpcResponse<StartResponse>, Status> {
        unary!(self, request, start)
    }

    async fn progress(
        &self,
        request: GrpcRequest<ProgressRequest>,
    ) -> Result<GrpcResponse<ProgressReply>, Status> {
        let local = matches!(self.target(), Target::Local(_));
        let reply = unary!(self, request, progress)?;
        if local {
            return Ok(reply);
        }
        Ok(GrpcResponse::new(
            self.forwarder.as_mine(reply.into_inner()),
        ))
    }

    type WatchProgressStream = ProgressStream;

    async fn watch_progress(
        &self,
        request: GrpcRequest<WatchProgressRequest>,
    ) -> Result<GrpcResponse<ProgressStream>, Status> {
        match self.target() {
            Target::Local(service) => {
                let response = Migration::watch_progress(&service, request).await?;
                Ok(GrpcResponse::new(response.into_inner()))
            }
            Target::Forward(leader) => {
                let mut client = self.forwarder.grpc(&leader)?;
                let stream = client
                    .watch_progress(forwarded(request))
                    .await
                    .map_err(|status| forward_failed(&leader, status))?
                    .into_inner();
                let forwarder = self.forwarder.clone();
                // The stream ends when the leader goes, or this process stops; the client
                // reconnects (`c2c ctl watch` does) and is then answered by the new leader.
                let stream = stream
                    .map(move |reply| reply.map(|reply| forwarder.as_mine(reply)))
                    .take_until(self.stopping.clone().cancelled_owned());
                Ok(GrpcResponse::new(Box::pin(stream)))
            }
            Target::Nobody(reason) => Err(RoleRouter::nobody(reason)),
        }
    }

    async fn pause(
        &self,
        request: GrpcRequest<PauseRequest>,
    ) -> Result<GrpcResponse<OperationReply>, Status> {
        unary!(self, request, pause)
    }

    async fn resume(
        &self,
        request: GrpcRequest<ResumeRequest>,
    ) -> Result<GrpcResponse<OperationReply>, Status> {
        unary!(self, request, resume)
    }

    async fn commit(
        &self,
        request: GrpcRequest<CommitRequest>,
    ) -> Result<GrpcResponse<OperationReply>, Status> {
        unary!(self, request, commit)
    }

    async fn reverse(
        &self,
        request: GrpcRequest<ReverseRequest>,
    ) -> Result<GrpcResponse<OperationReply>, Status> {
        unary!(self, request, reverse)
    }

    async fn list_workers(
        &self,
        request: GrpcRequest<ListWorkersRequest>,
    ) -> Result<GrpcResponse<ListWorkersReply>, Status> {
        unary!(self, request, list_workers)
    }
}
