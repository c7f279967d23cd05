//! The delay relay: a TUN device that gives back every packet a fixed time later.
//!
//! Runs as `echomesh-lab relay --tun dly0 --delay 2000us` inside a node's host namespace (see
//! [`crate::fault`] for the routing around it). Two threads: a reader stamps each packet with
//! its due time and queues it; a writer sleeps until the head packet is due and writes it back.
//! The delay is constant, so arrival order is due order and a FIFO suffices. The writer sleeps
//! with the OS timer to within [`SPIN`] of the due time and spins the rest: a tokio timer (1 ms
//! granularity) or a plain sleep (timer slack) would add tens to hundreds of microseconds of
//! error, and the lab promises delay within ±0.3 ms.
//!
//! The relay stops when its process is signalled; the kernel removes the TUN device with it,
//! and the routing falls back to the main table (rule 101 then points to an empty table).

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use tun_rs::{DeviceBuilder, SyncDevice};

/// The last stretch before a packet's due time that the writer busy-waits.
pub const SPIN: Duration = Duration::from_micros(300);
/// Most packets held at once; beyond that packets are dropped (as a full queue would).
pub const QUEUE: usize = 65_536;
/// Largest packet handled.
const MAX_PACKET: usize = 65_536;

/// The relay could not run.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The TUN device could not be created.
    #[error("cannot create TUN device {tun}: {source}")]
    Tun {
        /// Its name.
        tun: String,
        /// Why.
        source: std::io::Error,
    },
    /// Reading or writing the TUN device failed.
    #[error("TUN device {tun}: {source}")]
    Io {
        /// Its name.
        tun: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Creates TUN device `tun` and relays packets through it with `delay`, until the process ends
/// or an I/O error occurs.
pub fn run(tun: &str, delay: Duration) -> Result<(), RelayError> {
    let dev = DeviceBuilder::new()
        .name(tun)
        .build_sync()
        .map_err(|source| RelayError::Tun {
            tun: tun.to_string(),
            source,
        })?;
    let dev = Arc::new(dev);
    tracing::info!(tun, delay_us = delay.as_micros() as u64, "relay running");
    let (tx, rx) = sync_channel::<(Instant, Vec<u8>)>(QUEUE);
    let writer_dev = Arc::clone(&dev);
    let writer = std::thread::Builder::new()
        .name("relay-writer".into())
        .spawn(move || write_loop(&writer_dev, &rx))
        .map_err(|source| RelayError::Io {
            tun: tun.to_string(),
            source,
        })?;
    let read_result = read_loop(&dev, delay, &tx);
    drop(tx);
    let write_result = writer.join().unwrap_or(Ok(()));
    read_result
        .and(write_result)
        .map_err(|source| RelayError::Io {
            tun: tun.to_string(),
            source,
        })
}

fn read_loop(
    dev: &SyncDevice,
    delay: Duration,
    tx: &SyncSender<(Instant, Vec<u8>)>,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; MAX_PACKET];
    let mut dropped: u64 = 0;
    loop {
        let n = match dev.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let due = Instant::now() + delay;
        match tx.try_send((due, buf[..n].to_vec())) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                dropped += 1;
                if dropped.is_power_of_two() {
                    tracing::warn!(dropped, "relay queue full, dropping packets");
                }
            }
            Err(TrySendError::Disconnected(_)) => return Ok(()),
        }
    }
}

fn write_loop(dev: &SyncDevice, rx: &Receiver<(Instant, Vec<u8>)>) -> std::io::Result<()> {
    while let Ok((due, pkt)) = rx.recv() {
        wait_until(due);
        if let Err(e) = dev.send(&pkt) {
            // A packet the kernel refuses (e.g. no route any more) is dropped, as a wire would.
            tracing::debug!(error = %e, len = pkt.len(), "write back failed");
        }
    }
    Ok(())
}

/// Sleeps until `due` with sub-100 µs precision: OS sleep to within [`SPIN`], then spin.
pub fn wait_until(due: Instant) {
    loop {
        let now = Instant::now();
        if now >= due {
            return;
        }
        let left = due - now;
        if left > SPIN {
            std::thread::sleep(left - SPIN);
        } else {
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_until_is_precise() {
        // Never early, and late by well under the lab's ±0.3 ms promise (median of 20).
        let mut lateness: Vec<Duration> = (0..20)
            .map(|_| {
                let due = Instant::now() + Duration::from_millis(2);
                wait_until(due);
                Instant::now() - due
            })
            .collect();
        lateness.sort();
        assert!(lateness[10] < Duration::from_micros(100), "{lateness:?}");
    }
}
