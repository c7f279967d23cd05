//! A session that says nothing is closed when the hello timeout expires, not before.

use std::time::Duration;

use echomesh_aggregator::ingest::IngestErrorReason;
use echomesh_proto::v1::AgentMessage;
use echomesh_proto::v1::agent_service_client::AgentServiceClient;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

use crate::{HELLO_TIMEOUT, Loops};

#[tokio::test(start_paused = true)]
async fn a_silent_session_is_closed_at_the_hello_timeout() {
    let loops = Loops::start();
    // The agent's half stays open but never carries a message.
    let (_silent, outgoing) = mpsc::channel::<AgentMessage>(1);
    let opened = Instant::now();
    let mut inbound = AgentServiceClient::new(loops.server.channel().await)
        .session(ReceiverStream::new(outgoing))
        .await
        .expect("session opened")
        .into_inner();

    let early = tokio::time::timeout_at(
        opened + HELLO_TIMEOUT - Duration::from_millis(100),
        inbound.message(),
    )
    .await;
    assert!(early.is_err(), "nothing before the timeout: {early:?}");
    assert_eq!(loops.errors(IngestErrorReason::HelloTimeout), 0);

    let status = inbound
        .message()
        .await
        .expect_err("the session ends with a status");
    let closed_after = opened.elapsed();
    assert_eq!(status.code(), Code::DeadlineExceeded);
    assert_eq!(status.message(), "no Hello within the hello timeout");
    assert!(
        closed_after >= HELLO_TIMEOUT && closed_after < HELLO_TIMEOUT + Duration::from_millis(10),
        "closed {closed_after:?} after opening"
    );
    assert_eq!(loops.errors(IngestErrorReason::HelloTimeout), 1);
    assert_eq!(loops.errors(IngestErrorReason::StreamError), 0);
    assert_eq!(loops.ingest.connected(), 0);
}
