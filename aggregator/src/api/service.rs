//! The tonic `GraphService` implementation: a thin shell over the per-request modules.
//!
//! Why thin: the JSON API calls the same trait methods, so anything done here (argument checks,
//! blocking-pool offload) happens once for both front ends.

use echomesh_proto::v1::{self, graph_service_server::GraphService};
use tonic::{Request, Response, Status};

use super::Query;
use super::watch::EventStream;

#[tonic::async_trait]
impl GraphService for Query {
    type WatchEventsStream = EventStream;

    async fn summary(
        &self,
        req: Request<v1::SummaryRequest>,
    ) -> Result<Response<v1::SummaryResponse>, Status> {
        self.blocking(move |q| q.summary_blocking(req)).await
    }

    async fn list_nodes(
        &self,
        req: Request<v1::ListNodesRequest>,
    ) -> Result<Response<v1::ListNodesResponse>, Status> {
        self.blocking(move |q| q.list_nodes_blocking(req)).await
    }

    async fn list_edges(
        &self,
        req: Request<v1::ListEdgesRequest>,
    ) -> Result<Response<v1::ListEdgesResponse>, Status> {
        self.blocking(move |q| q.list_edges_blocking(req)).await
    }

    async fn get_edge(
        &self,
        req: Request<v1::GetEdgeRequest>,
    ) -> Result<Response<v1::Edge>, Status> {
        self.get_edge_inner(&req.into_inner()).map(Response::new)
    }

    async fn matrix(
        &self,
        req: Request<v1::MatrixRequest>,
    ) -> Result<Response<v1::MatrixResponse>, Status> {
        self.blocking(move |q| q.matrix_blocking(req)).await
    }

    async fn percentiles(
        &self,
        req: Request<v1::PercentilesRequest>,
    ) -> Result<Response<v1::PercentilesResponse>, Status> {
        self.percentiles_inner(&req.into_inner()).map(Response::new)
    }

    async fn diagnose(
        &self,
        req: Request<v1::DiagnoseRequest>,
    ) -> Result<Response<v1::DiagnoseResponse>, Status> {
        self.blocking(move |q| q.diagnose_blocking(req)).await
    }

    async fn coverage(
        &self,
        req: Request<v1::CoverageRequest>,
    ) -> Result<Response<v1::CoverageResponse>, Status> {
        // One pass over every pair (cached for a few seconds): off the async threads.
        self.blocking(move |q| q.coverage_inner(req)).await
    }

    async fn node_summary(
        &self,
        req: Request<v1::NodeSummaryRequest>,
    ) -> Result<Response<v1::NodeSummaryResponse>, Status> {
        self.blocking(move |q| q.node_summary_blocking(req)).await
    }

    async fn zone_matrix(
        &self,
        req: Request<v1::ZoneMatrixRequest>,
    ) -> Result<Response<v1::ZoneMatrixResponse>, Status> {
        self.blocking(move |q| q.zone_matrix_blocking(req)).await
    }

    async fn watch_events(
        &self,
        req: Request<v1::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let r = req.into_inner();
        self.watch(r.snapshot, r.every_change).map(Response::new)
    }
}
