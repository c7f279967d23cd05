//! What our echo requests carry, and the keyed MAC that proves a reply answers one of them.
//!
//! A raw ICMP socket sees every echo reply on the node: other pingers', spoofed ones, corrupted
//! ones. The ICMP identifier alone (16 bits, guessable) is not proof. So each request carries the
//! probe's identity (global id, target index, per-target sequence, send time) and a SipHash-1-3 MAC
//! over those fields, the identifier and the destination address, keyed with a per-process random
//! key. A reply is only turned into a sample when the MAC verifies against the address it came from.

use std::net::IpAddr;

use siphasher::sip::SipHasher13;
use std::hash::Hasher;

/// Bytes of probe identity + MAC at the start of every echo payload.
pub const PAYLOAD_HEADER_LEN: usize = 32;

/// The probe identity carried in an echo payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeStamp {
    /// Engine-wide probe counter; its low 16 bits are the ICMP sequence number.
    pub global: u64,
    /// Index of the target in the engine's target table.
    pub target: u32,
    /// Per-target sequence number (reorder detection).
    pub seq: u32,
    /// CLOCK_REALTIME nanoseconds taken just before the send syscall.
    pub sent_ns: u64,
}

/// Per-process secret used to sign and verify payloads.
#[derive(Clone)]
pub struct Authenticator {
    ident: u16,
    k0: u64,
    k1: u64,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Authenticator")
            .field("ident", &self.ident)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// A random identifier and key for this process.
    #[must_use]
    pub fn random() -> Self {
        Self::from_parts(rand::random(), rand::random(), rand::random())
    }

    /// A fixed identifier and key (tests and fixtures).
    #[must_use]
    pub const fn from_parts(ident: u16, k0: u64, k1: u64) -> Self {
        Self { ident, k0, k1 }
    }

    /// The ICMP identifier of every request this process sends.
    #[must_use]
    pub const fn ident(&self) -> u16 {
        self.ident
    }

    fn mac(&self, dst: IpAddr, head: &[u8; 24]) -> u64 {
        let mut h = SipHasher13::new_with_keys(self.k0, self.k1);
        h.write_u16(self.ident);
        match dst {
            IpAddr::V4(a) => {
                h.write_u8(4);
                h.write(&a.octets());
            }
            IpAddr::V6(a) => {
                h.write_u8(6);
                h.write(&a.octets());
            }
        }
        h.write(head);
        h.finish()
    }

    /// Writes the stamp and its MAC into the first [`PAYLOAD_HEADER_LEN`] bytes of `out`.
    ///
    /// # Panics
    /// If `out` is shorter than [`PAYLOAD_HEADER_LEN`] (callers size buffers from a validated config).
    pub fn seal(&self, dst: IpAddr, stamp: &ProbeStamp, out: &mut [u8]) {
        let mut head = [0u8; 24];
        head[0..8].copy_from_slice(&stamp.global.to_be_bytes());
        head[8..12].copy_from_slice(&stamp.target.to_be_bytes());
        head[12..16].copy_from_slice(&stamp.seq.to_be_bytes());
        head[16..24].copy_from_slice(&stamp.sent_ns.to_be_bytes());
        let mac = self.mac(dst, &head);
        out[..24].copy_from_slice(&head);
        out[24..32].copy_from_slice(&mac.to_be_bytes());
    }

    /// Reads a stamp from `payload` if it is long enough and its MAC matches for `dst`.
    #[must_use]
    pub fn open(&self, dst: IpAddr, payload: &[u8]) -> Option<ProbeStamp> {
        let head: &[u8; 24] = payload.get(..24)?.try_into().ok()?;
        let mac = u64::from_be_bytes(payload.get(24..32)?.try_into().ok()?);
        if self.mac(dst, head) != mac {
            return None;
        }
        let be64 = |r: std::ops::Range<usize>| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&head[r]);
            u64::from_be_bytes(b)
        };
        let be32 = |r: std::ops::Range<usize>| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&head[r]);
            u32::from_be_bytes(b)
        };
        Some(ProbeStamp {
            global: be64(0..8),
            target: be32(8..12),
            seq: be32(12..16),
            sent_ns: be64(16..24),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAMP: ProbeStamp = ProbeStamp {
        global: 0x0102_0304_0506_0708,
        target: 7,
        seq: 99,
        sent_ns: 1_700_000_000_123_456_789,
    };

    #[test]
    fn seal_then_open_roundtrips() {
        let a = Authenticator::from_parts(0x1234, 1, 2);
        let dst: IpAddr = "10.0.0.1".parse().expect("addr");
        let mut buf = [0u8; 40];
        a.seal(dst, &STAMP, &mut buf);
        assert_eq!(a.open(dst, &buf), Some(STAMP));
    }

    #[test]
    fn other_key_address_or_bitflip_fails() {
        let a = Authenticator::from_parts(0x1234, 1, 2);
        let dst: IpAddr = "10.0.0.1".parse().expect("addr");
        let mut buf = [0u8; 32];
        a.seal(dst, &STAMP, &mut buf);
        assert_eq!(
            Authenticator::from_parts(0x1234, 1, 3).open(dst, &buf),
            None
        );
        assert_eq!(a.open("10.0.0.2".parse().expect("addr"), &buf), None);
        for i in 0..32 {
            let mut b = buf;
            b[i] ^= 0x01;
            assert_eq!(a.open(dst, &b), None, "flipped byte {i}");
        }
        assert_eq!(a.open(dst, &buf[..31]), None);
    }
}
