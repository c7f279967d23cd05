//! The waits must return as soon as the condition holds and fail naming what was awaited.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::{eventually, eventually_some};

#[tokio::test(start_paused = true)]
async fn returns_once_the_condition_holds() {
    let n = AtomicU32::new(0);
    eventually(
        "three polls",
        Duration::from_secs(1),
        Duration::from_millis(10),
        || async { n.fetch_add(1, Ordering::Relaxed) >= 2 },
    )
    .await;
    assert_eq!(n.load(Ordering::Relaxed), 3);
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "waiting for: the impossible")]
async fn panics_naming_what_was_awaited() {
    eventually(
        "the impossible",
        Duration::from_secs(1),
        Duration::from_millis(10),
        || async { false },
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn some_returns_the_value() {
    let n = AtomicU32::new(0);
    let v = eventually_some(
        "a value",
        Duration::from_secs(1),
        Duration::from_millis(10),
        || async {
            let k = n.fetch_add(1, Ordering::Relaxed);
            (k == 4).then_some(k)
        },
    )
    .await;
    assert_eq!(v, 4);
}
