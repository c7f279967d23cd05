//! `ZoneMatrix`: the graph summed per (source zone, target zone), the grid that stays small at
//! any node count (zones², not nodes²), so a zone cut from the others shows as one red row and
//! column. Nodes whose zone is unknown form the zone "" (listed last).

use std::collections::BTreeMap;

use echomesh_proto::v1::{self, Network};
use tonic::{Request, Response, Status};

use super::{Tally, walk};
use crate::api::{Query, enum_arg};

impl Query {
    pub(crate) fn zone_matrix_blocking(
        &self,
        req: Request<v1::ZoneMatrixRequest>,
    ) -> Result<Response<v1::ZoneMatrixResponse>, Status> {
        let network: Network = enum_arg(req.into_inner().network, "network")?;
        // Keyed by zone indices, which follow the display order: the map iterates in it.
        let mut cells: BTreeMap<(usize, usize), Tally> = BTreeMap::new();
        let walked = walk(&self.graph, network, |e| {
            cells.entry((e.src_zone, e.dst_zone)).or_default().add(e);
        });
        let name = |i: usize| walked.zone_names[i].to_string();
        let cells = cells
            .into_iter()
            .map(|((from, to), mut t)| v1::ZoneCell {
                from_zone: name(from),
                to_zone: name(to),
                edges: t.edges(),
                up: t.up,
                degraded: t.degraded,
                down: t.down,
                unknown: t.unknown,
                loss_pct: t.loss_1m_pct(),
                p99_us: t.median_p99_us(),
            })
            .collect();
        Ok(Response::new(v1::ZoneMatrixResponse {
            zones: walked.zone_names.iter().map(ToString::to_string).collect(),
            cells,
        }))
    }
}
