//! An in-test OTLP collector: the `opentelemetry-proto` TraceService over tonic, on a
//! free local port. It keeps every span it is sent (with its process's resource) and
//! the `Debug` text of every export request, attributes, events and status included.

use std::net::SocketAddr;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use parking_lot::Mutex;

/// One span as the collector received it, with its process's resource.
#[derive(Debug, Clone)]
pub struct Received {
    pub service: String,
    pub instance: String,
    pub role: String,
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    pub parent_span_id: Vec<u8>,
    pub name: String,
    pub kind: i32,
}

/// The collector: keeps every span it is sent.
#[derive(Clone, Default)]
pub struct Collector {
    pub spans: Arc<Mutex<Vec<Received>>>,
    /// Each export request as `{:?}` prints it, in arrival order.
    pub requests: Arc<Mutex<Vec<String>>>,
}

fn string_attribute(attributes: &[KeyValue], key: &str) -> String {
    attributes
        .iter()
        .find(|attribute| attribute.key == key)
        .and_then(|attribute| attribute.value.as_ref())
        .and_then(|value| match &value.value {
            Some(any_value::Value::StringValue(text)) => Some(text.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let request = request.into_inner();
        self.requests.lock().push(format!("{request:?}"));
        let mut received = Vec::new();
        for resource_spans in request.resource_spans {
            let attributes = resource_spans
                .resource
                .map(|resource| resource.attributes)
                .unwrap_or_default();
            let service = string_attribute(&attributes, "service.name");
            let instance = string_attribute(&attributes, "service.instance.id");
            let role = string_attribute(&attributes, "c2c.role");
            for scope_spans in resource_spans.scope_spans {
                for span in scope_spans.spans {
                    received.push(Received {
                        service: service.clone(),
                        instance: instance.clone(),
                        role: role.clone(),
                        trace_id: span.trace_id,
                        span_id: span.span_id,
                        parent_span_id: span.parent_span_id,
                        name: span.name,
                        kind: span.kind,
                    });
                }
            }
        }
        self.spans.lock().extend(received);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Collector {
    /// Serves OTLP/gRPC on a free local port; returns its address.
    pub async fn start(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the collector");
        let address = listener.local_addr().expect("address");
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        address
    }

    /// The spans of one trace.
    pub fn trace(&self, trace_id: &[u8]) -> Vec<Received> {
        self.spans
            .lock()
            .iter()
            .filter(|span| span.trace_id == trace_id)
            .cloned()
            .collect()
    }
}
