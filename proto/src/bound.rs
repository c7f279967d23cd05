//! Counting a message's repeated entries on its wire bytes, before it is decoded.
//!
//! Why: prost decodes a message in full before anything can look at it, and an empty repeated
//! entry costs 2 bytes on the wire but a whole struct in memory (an empty `TargetStats` is about
//! 150 times its wire size). A message within the size limit could therefore take hundreds of
//! times that limit to decode. This module walks the protobuf encoding (tags, varints, lengths;
//! no allocation) and refuses a message whose repeated message entries exceed a cap, so the
//! decode that follows is bounded by the cap times the entry size instead.
//!
//! The walk knows only the fields that amplify: in an [`AgentMessage`](crate::v1::AgentMessage),
//! `Report.targets`, `TargetStats.sizes` and `Hello.addresses`; in an
//! [`AggregatorMessage`](crate::v1::AggregatorMessage), `Assignment.targets`. Counts add up over
//! repeated occurrences of a message field, because protobuf merges those into one. Packed
//! numbers (histogram buckets, payload sizes) decode to at most 4 bytes each from at least one
//! byte and are not counted. Malformed bytes (a truncated varint, a length past the end, a group
//! or an unknown wire type) are refused here too, with the reason.
//!
//! [`body`] applies the walk to a gRPC stream's frames.

pub mod body;

/// Field numbers the walk follows (from `echomesh/v1/agent.proto`).
mod field {
    pub(super) const AGENT_HELLO: u32 = 1;
    pub(super) const AGENT_REPORT: u32 = 2;
    pub(super) const HELLO_ADDRESSES: u32 = 4;
    pub(super) const REPORT_TARGETS: u32 = 5;
    pub(super) const STATS_SIZES: u32 = 13;
    pub(super) const AGGREGATOR_ASSIGNMENT: u32 = 1;
    pub(super) const ASSIGNMENT_TARGETS: u32 = 2;
}

/// The most repeated entries an [`AgentMessage`](crate::v1::AgentMessage) may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentMessageLimits {
    /// `Report.targets`: the largest assignment the aggregator hands out.
    pub report_targets: usize,
    /// `TargetStats.sizes` per entry: the most payload sizes an assignment names.
    pub sizes_per_target: usize,
    /// `Hello.addresses`.
    pub hello_addresses: usize,
}

/// Why a message was refused before decoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoundError {
    /// More entries of one repeated field than the cap.
    #[error("{what} carries more than {max} entries")]
    TooMany {
        /// The field, e.g. `Report.targets`.
        what: &'static str,
        /// The cap.
        max: usize,
    },
    /// Bytes that are not a protobuf encoding.
    #[error("malformed protobuf at byte {at}: {why}")]
    Malformed {
        /// Offset in the message.
        at: usize,
        /// What was wrong.
        why: &'static str,
    },
}

/// How every refusal's message begins, so a handler can tell it from other stream errors.
pub const REFUSED: &str = "refused before decoding: ";

impl BoundError {
    /// The gRPC status: RESOURCE_EXHAUSTED for too many entries, INVALID_ARGUMENT for malformed
    /// bytes; the message starts with [`REFUSED`].
    #[must_use]
    pub fn to_status(&self) -> tonic::Status {
        match self {
            Self::TooMany { .. } => tonic::Status::resource_exhausted(format!(
                "{REFUSED}{self} (more than the largest assignment this peer hands out)"
            )),
            Self::Malformed { .. } => tonic::Status::invalid_argument(format!("{REFUSED}{self}")),
        }
    }
}

/// Checks an encoded `AgentMessage` against `limits`.
pub fn check_agent_message(buf: &[u8], limits: &AgentMessageLimits) -> Result<(), BoundError> {
    let mut targets = 0;
    let mut addresses = 0;
    walk(buf, 0, |f, at, sub| {
        match f {
            field::AGENT_REPORT => walk(sub, at, |f, at, sub| {
                if f == field::REPORT_TARGETS {
                    targets += 1;
                    if targets > limits.report_targets {
                        return Err(BoundError::TooMany {
                            what: "Report.targets",
                            max: limits.report_targets,
                        });
                    }
                    let mut sizes = 0;
                    walk(sub, at, |f, _, _| {
                        if f == field::STATS_SIZES {
                            sizes += 1;
                            if sizes > limits.sizes_per_target {
                                return Err(BoundError::TooMany {
                                    what: "TargetStats.sizes",
                                    max: limits.sizes_per_target,
                                });
                            }
                        }
                        Ok(())
                    })?;
                }
                Ok(())
            })?,
            field::AGENT_HELLO => walk(sub, at, |f, _, _| {
                if f == field::HELLO_ADDRESSES {
                    addresses += 1;
                    if addresses > limits.hello_addresses {
                        return Err(BoundError::TooMany {
                            what: "Hello.addresses",
                            max: limits.hello_addresses,
                        });
                    }
                }
                Ok(())
            })?,
            _ => {}
        }
        Ok(())
    })
}

/// Checks an encoded `AggregatorMessage`: at most `max_targets` entries in `Assignment.targets`.
pub fn check_aggregator_message(buf: &[u8], max_targets: usize) -> Result<(), BoundError> {
    let mut targets = 0;
    walk(buf, 0, |f, at, sub| {
        if f == field::AGGREGATOR_ASSIGNMENT {
            walk(sub, at, |f, _, _| {
                if f == field::ASSIGNMENT_TARGETS {
                    targets += 1;
                    if targets > max_targets {
                        return Err(BoundError::TooMany {
                            what: "Assignment.targets",
                            max: max_targets,
                        });
                    }
                }
                Ok(())
            })?;
        }
        Ok(())
    })
}

/// Walks one message's fields, calling `on_len(field, offset, bytes)` for every length-delimited
/// field (submessages, strings, packed numbers) and skipping the others. `base` is the
/// message's offset in the outermost buffer, for error positions.
fn walk(
    buf: &[u8],
    base: usize,
    mut on_len: impl FnMut(u32, usize, &[u8]) -> Result<(), BoundError>,
) -> Result<(), BoundError> {
    let mut pos = 0;
    while pos < buf.len() {
        let tag_at = pos;
        let tag = varint(buf, &mut pos, base)?;
        let number = tag >> 3;
        if number == 0 || number > u64::from(u32::MAX >> 3) {
            return Err(malformed(base + tag_at, "field number out of range"));
        }
        let number = u32::try_from(number).unwrap_or(0);
        match tag & 7 {
            0 => {
                varint(buf, &mut pos, base)?;
            }
            1 => skip(buf, &mut pos, 8, base)?,
            5 => skip(buf, &mut pos, 4, base)?,
            2 => {
                let len_at = pos;
                let len = varint(buf, &mut pos, base)?;
                let len = usize::try_from(len)
                    .ok()
                    .filter(|l| *l <= buf.len() - pos)
                    .ok_or_else(|| malformed(base + len_at, "length past the end"))?;
                let start = pos;
                pos += len;
                on_len(number, base + start, &buf[start..pos])?;
            }
            3 | 4 => return Err(malformed(base + tag_at, "groups are not used")),
            _ => return Err(malformed(base + tag_at, "invalid wire type")),
        }
    }
    Ok(())
}

fn skip(buf: &[u8], pos: &mut usize, n: usize, base: usize) -> Result<(), BoundError> {
    if buf.len() - *pos < n {
        return Err(malformed(base + *pos, "fixed-width value past the end"));
    }
    *pos += n;
    Ok(())
}

/// Reads a base-128 varint of at most 10 bytes; a one-byte varint (most keys and lengths of a
/// report) inline.
#[inline(always)]
fn varint(buf: &[u8], pos: &mut usize, base: usize) -> Result<u64, BoundError> {
    if let Some(&b) = buf.get(*pos)
        && b < 0x80
    {
        *pos += 1;
        return Ok(u64::from(b));
    }
    varint_long(buf, pos, base)
}

/// [`varint`] beyond one byte, and its errors.
fn varint_long(buf: &[u8], pos: &mut usize, base: usize) -> Result<u64, BoundError> {
    let start = *pos;
    let mut v: u64 = 0;
    for i in 0..10 {
        let Some(&b) = buf.get(*pos) else {
            return Err(malformed(base + start, "truncated varint"));
        };
        *pos += 1;
        if i == 9 && b > 1 {
            return Err(malformed(base + start, "varint longer than 64 bits"));
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err(malformed(base + start, "varint longer than 64 bits"))
}

fn malformed(at: usize, why: &'static str) -> BoundError {
    BoundError::Malformed { at, why }
}

#[cfg(test)]
mod tests;
