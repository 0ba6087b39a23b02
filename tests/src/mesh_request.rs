//! One request to a peer on a swarm the caller drives alone, and its answer: what the
//! testkit's own mesh clients (the load benchmark's simulated agents, the rogue peer) need
//! before their event loops run.

use anyhow::bail;
use futures::StreamExt;
use libp2p::request_response::{self, Message};
use libp2p::swarm::SwarmEvent;
use libp2p::{PeerId, Swarm};
use sealprint_mesh::{Behaviour, BehaviourEvent};
use sealprint_protocol::{Request, Response};

/// Sends `req` to `peer` and drives the swarm until its answer (or failure) arrives; other
/// events are dropped.
///
/// # Errors
/// The request's outbound failure (dial, timeout, refused stream).
pub(crate) async fn ask(
    swarm: &mut Swarm<Behaviour>,
    peer: PeerId,
    req: Request,
) -> anyhow::Result<Response> {
    let id = swarm.behaviour_mut().rr.send_request(&peer, req);
    loop {
        match swarm.select_next_some().await {
            SwarmEvent::Behaviour(BehaviourEvent::Rr(request_response::Event::Message {
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            })) if request_id == id => return Ok(response),
            SwarmEvent::Behaviour(BehaviourEvent::Rr(
                request_response::Event::OutboundFailure {
                    request_id, error, ..
                },
            )) if request_id == id => bail!("request failed: {error}"),
            _ => {}
        }
    }
}
