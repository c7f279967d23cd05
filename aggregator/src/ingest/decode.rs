//! Decoding a Report's bytes into buffers that are reused from one report to the next.
//!
//! Why: decoded the usual way, a 1000-target Report is a thousand `TargetStats` and two thousand
//! histogram vectors allocated, filled through tonic's receive-buffer cursor, and freed right
//! after the merge; at full load that was over half of the aggregator's CPU (see "Where ingest
//! time goes" in docs/aggregator.md). Here the Report, its entries and their histograms are read
//! by hand from a plain byte slice into `TargetStats` values that keep their vectors from one
//! report to the next (the rare parts, ICMP errors and per-size figures, by prost's generated
//! code). The result is the [`v1::Report`] the generated decoder returns.
//!
//! Anything the hand-read part does not know (a field added later, an unexpected wire type, a
//! group, malformed bytes) is decoded by prost in full instead, so the result, or the error, is
//! always prost's; the tests hold the two to that on arbitrary bytes.
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
const I64: u64 = 1;
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
                    let entry = len_field(&mut b)?;
                    if n == r.targets.len() {
                        r.targets.push(v1::TargetStats::default());
                    }
                    let t = &mut r.targets[n];
                    if let Some(mut h) = t.rtt.take() {
                        h.clear();
                        self.spare.push(h);
                    }
                    t.clear();
                    target_stats(entry, t, &mut self.spare)?;
                    n += 1;
                }
                _ => return None,
            }
        }
        for t in r.targets.drain(n..) {
            self.spare.extend(t.rtt.map(|mut h| {
                h.clear();
                h
            }));
        }
        Some(())
    }
}

/// Reads one `TargetStats` into `t` (cleared); a histogram comes from `spare` when there is one.
fn target_stats(
    mut b: &[u8],
    t: &mut v1::TargetStats,
    spare: &mut Vec<v1::Histogram>,
) -> Option<()> {
    while !b.is_empty() {
        let key = varint(&mut b)?;
        match (key >> 3, key & 7) {
            (1, I64) => {
                let (v, rest) = b.split_first_chunk::<8>()?;
                t.target_id = u64::from_le_bytes(*v);
                b = rest;
            }
            // prost reads a uint32 as a varint cut to its low 32 bits, an int32 likewise.
            (2, VARINT) => t.slot = varint(&mut b)? as u32,
            (3, VARINT) => t.sent = varint(&mut b)?,
            (4, VARINT) => t.received = varint(&mut b)?,
            (5, VARINT) => t.lost = varint(&mut b)?,
            (6, VARINT) => t.duplicates = varint(&mut b)?,
            (7, VARINT) => t.reordered = varint(&mut b)?,
            (8, VARINT) => t.late = varint(&mut b)?,
            (9, LEN) => {
                let sub = len_field(&mut b)?;
                t.errors
                    .get_or_insert_with(Default::default)
                    .merge(sub)
                    .ok()?;
            }
            (10, LEN) => {
                let sub = len_field(&mut b)?;
                let h = t.rtt.get_or_insert_with(|| spare.pop().unwrap_or_default());
                histogram(sub, h)?;
            }
            (11, VARINT) => t.send_errors = varint(&mut b)?,
            (12, VARINT) => t.last_send_errno = varint(&mut b)? as i32,
            (13, LEN) => {
                let mut size = v1::PayloadSizeStats::default();
                size.merge(len_field(&mut b)?).ok()?;
                t.sizes.push(size);
            }
            _ => return None,
        }
    }
    Some(())
}

/// Reads one `Histogram` into `h` (merged, as prost merges a repeated occurrence).
fn histogram(mut b: &[u8], h: &mut v1::Histogram) -> Option<()> {
    while !b.is_empty() {
        let key = varint(&mut b)?;
        match (key >> 3, key & 7) {
            (1, LEN) => packed(len_field(&mut b)?, &mut h.indices)?,
            (1, VARINT) => h.indices.push(varint(&mut b)? as u32),
            (2, LEN) => packed(len_field(&mut b)?, &mut h.counts)?,
            (2, VARINT) => h.counts.push(varint(&mut b)? as u32),
            (3, VARINT) => h.sum_ns = varint(&mut b)?,
            (4, VARINT) => h.min_ns = varint(&mut b)?,
            (5, VARINT) => h.max_ns = varint(&mut b)?,
            _ => return None,
        }
    }
    Some(())
}

/// Appends packed `uint32`s.
fn packed(mut b: &[u8], out: &mut Vec<u32>) -> Option<()> {
    while !b.is_empty() {
        out.push(varint(&mut b)? as u32);
    }
    Some(())
}

/// The bytes of a length-delimited field whose key was read.
#[inline(always)]
fn len_field<'a>(b: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::try_from(varint(b)?).ok()?;
    if len > b.len() {
        return None;
    }
    let (field, rest) = b.split_at(len);
    *b = rest;
    Some(field)
}

/// Reads a base-128 varint; `None` where prost would refuse it (truncated, longer than ten
/// bytes, or beyond `u64`). One and two bytes (counters, lengths, bucket indices: most of a
/// report) are read inline.
#[inline(always)]
fn varint(b: &mut &[u8]) -> Option<u64> {
    let s: &[u8] = b;
    if let [b0, rest @ ..] = s
        && *b0 < 0x80
    {
        *b = rest;
        return Some(u64::from(*b0));
    }
    if let [b0, b1, rest @ ..] = s
        && *b1 < 0x80
    {
        *b = rest;
        return Some(u64::from(b0 & 0x7f) | u64::from(*b1) << 7);
    }
    varint_long(b)
}

/// [`varint`] beyond two bytes.
fn varint_long(b: &mut &[u8]) -> Option<u64> {
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
