//! Decoding a Report's bytes into buffers that are reused from one report to the next.
//!
//! Why: decoded the usual way, a 1000-target Report is a thousand `TargetStats` and two thousand
//! histogram vectors allocated, filled through tonic's receive-buffer cursor, and freed right
//! after the merge; at full load that was over half of the aggregator's CPU (see "Where ingest
//! time goes" in docs/aggregator.md). Here the Report's own five fields are read by hand and each
//! entry is merged with prost's generated code, from a plain byte slice, into a `TargetStats`
//! that already has its vectors from an earlier report. The result is the same
//! [`v1::Report`] the generated decoder returns, with one difference that no reader can see: a
//! present but empty `rtt` histogram reads as absent (both mean "no RTT samples").
//!
//! Anything the hand-read part does not know (a Report field added later, an unexpected wire
//! type, a group) is decoded by prost in full instead, so the result is always prost's.
//! A [`ReportPool`] keeps a few such buffers for the sessions to borrow one at a time, so memory
//! follows the reports being merged at once, not the number of sessions.

use echomesh_proto::v1;
use parking_lot::Mutex;
use prost::Message as _;

/// Report field numbers (from `echomesh/v1/agent.proto`).
const SEQ: u64 = 1;
const GENERATION: u64 = 2;
const WINDOW_START: u64 = 3;
const WINDOW_MS: u64 = 4;
const TARGETS: u64 = 5;
/// Protobuf wire types.
const VARINT: u64 = 0;
const LEN: u64 = 2;

/// Buffers kept by a pool: more than the runtime has threads merging at once.
const KEPT: usize = 16;

/// One reusable decoded report.
#[derive(Debug, Default)]
pub struct ReportBuf {
    report: v1::Report,
    /// Histograms of entries that had none, kept for the next entry that has one.
    spare: Vec<v1::Histogram>,
}

impl ReportBuf {
    /// Decodes `bytes` (an encoded `Report`) into this buffer.
    ///
    /// # Errors
    /// What prost says about bytes that are not a `Report`.
    pub fn decode(&mut self, bytes: &[u8]) -> Result<&v1::Report, prost::DecodeError> {
        if self.decode_fast(bytes).is_none() {
            self.report = v1::Report::decode(bytes)?;
        }
        Ok(&self.report)
    }

    /// The hand-read path; `None` when prost must decode the whole report (unknown fields,
    /// unexpected wire types, malformed bytes: prost then says what is wrong).
    fn decode_fast(&mut self, mut b: &[u8]) -> Option<()> {
        let r = &mut self.report;
        r.seq = 0;
        r.generation = 0;
        r.window_start_unix_ms = 0;
        r.window_ms = 0;
        let mut n = 0;
        while !b.is_empty() {
            let key = varint(&mut b)?;
            match (key >> 3, key & 7) {
                (SEQ, VARINT) => r.seq = varint(&mut b)?,
                (GENERATION, VARINT) => r.generation = varint(&mut b)?,
                (WINDOW_START, VARINT) => r.window_start_unix_ms = varint(&mut b)?,
                // prost reads a uint32 as a varint cut to its low 32 bits.
                (WINDOW_MS, VARINT) => r.window_ms = varint(&mut b)? as u32,
                (TARGETS, LEN) => {
                    let len = usize::try_from(varint(&mut b)?).ok()?;
                    if len > b.len() {
                        return None;
                    }
                    let (entry, rest) = b.split_at(len);
                    b = rest;
                    if n == r.targets.len() {
                        r.targets.push(v1::TargetStats::default());
                    }
                    let t = &mut r.targets[n];
                    let mut h = t
                        .rtt
                        .take()
                        .or_else(|| self.spare.pop())
                        .unwrap_or_default();
                    h.clear();
                    t.clear();
                    t.rtt = Some(h);
                    t.merge(entry).ok()?;
                    if t.rtt
                        .as_ref()
                        .is_some_and(|h| *h == v1::Histogram::default())
                    {
                        self.spare.extend(t.rtt.take());
                    }
                    n += 1;
                }
                _ => return None,
            }
        }
        for t in r.targets.drain(n..) {
            self.spare.extend(t.rtt);
        }
        Some(())
    }
}

/// Reads a base-128 varint; `None` where prost would refuse it (truncated, longer than ten
/// bytes, or beyond `u64`).
fn varint(b: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let (&byte, rest) = b.split_first()?;
        *b = rest;
        if i == 9 && byte > 1 {
            return None;
        }
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Some(v);
        }
    }
    None
}

/// A few [`ReportBuf`]s for sessions to borrow while they merge a report.
#[derive(Debug, Default)]
pub struct ReportPool {
    bufs: Mutex<Vec<ReportBuf>>,
}

impl ReportPool {
    /// Runs `f` with a buffer from the pool (a new one when all are lent out).
    pub fn with<T>(&self, f: impl FnOnce(&mut ReportBuf) -> T) -> T {
        let mut buf = self.bufs.lock().pop().unwrap_or_default();
        let out = f(&mut buf);
        let mut bufs = self.bufs.lock();
        if bufs.len() < KEPT {
            bufs.push(buf);
        }
        out
    }
}

#[cfg(test)]
mod tests;
