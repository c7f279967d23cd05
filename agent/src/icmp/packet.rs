//! Building echo requests and classifying whatever a raw ICMP socket hands us.
//!
//! Pure functions over byte slices, so every case (truncation, IP options, bad checksums, foreign
//! identifiers, spoofed payloads, ICMP errors quoting someone else's packet) is tested on fixtures.
//! Nothing here trusts a length field: the IPv4 IHL and total length, and the quoted header inside
//! an ICMP error, are each checked against the bytes actually present before anything is read.

use std::net::{IpAddr, Ipv6Addr};

use pnet_packet::icmp::{IcmpPacket, IcmpTypes};
use pnet_packet::icmpv6::{Icmpv6Packet, Icmpv6Types};
use pnet_packet::ip::IpNextHeaderProtocols;
use pnet_packet::ipv4::Ipv4Packet;
use pnet_packet::ipv6::Ipv6Packet;

use super::payload::{Authenticator, PAYLOAD_HEADER_LEN, ProbeStamp};

/// Bytes of the ICMP / ICMPv6 echo header.
pub const ICMP_HEADER_LEN: usize = 8;

/// Why an ICMP error says a probe did not arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpErrorKind {
    /// No route to the destination network (v4 code 0, v6 "no route").
    NetUnreachable,
    /// The host is unreachable (v4 code 1, v6 "address unreachable").
    HostUnreachable,
    /// Protocol unreachable (v4 code 2).
    ProtocolUnreachable,
    /// Port unreachable (v4 code 3, v6 code 4).
    PortUnreachable,
    /// Fragmentation needed and DF set / packet too big, with the next-hop MTU.
    FragmentationNeeded {
        /// Next-hop MTU the router reported (0 if it did not say).
        mtu: u32,
    },
    /// Administratively prohibited (a firewall said no).
    AdminProhibited,
    /// TTL / hop limit exceeded in transit (a routing loop or too-short path).
    TimeExceeded,
    /// A router could not parse the probe's header (v4 type 12, v6 type 4).
    ParameterProblem,
    /// Any other destination-unreachable code, kept with its type and code.
    Other {
        /// ICMP type.
        icmp_type: u8,
        /// ICMP code.
        code: u8,
    },
}

/// Something our socket received that answers one of our probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    /// An echo reply whose payload MAC verified against its source address.
    Reply {
        /// The address the reply came from (= the probed target).
        from: IpAddr,
        /// The probe it answers.
        stamp: ProbeStamp,
    },
    /// An ICMP error quoting one of our requests.
    Error {
        /// Who sent the error (a router or the target itself).
        reporter: IpAddr,
        /// The destination of the quoted request: the target the error is about.
        target: IpAddr,
        /// What went wrong.
        kind: IcmpErrorKind,
        /// The quoted ICMP sequence number (low 16 bits of the probe's global id).
        seq16: u16,
        /// The probe, when the error quoted enough payload to verify its MAC.
        stamp: Option<ProbeStamp>,
    },
}

/// Why a received packet was dropped; each has its own counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reject {
    /// Fewer bytes than the headers claim or need.
    Truncated,
    /// An IP header that is not a well-formed header of the socket's family.
    BadIpHeader,
    /// IPv4 options present: our requests carry none, so the reply was altered on the way.
    IpOptions,
    /// Not ICMP at all.
    NotIcmp,
    /// ICMP checksum does not match.
    BadChecksum,
    /// An echo reply with another process's identifier.
    ForeignIdent,
    /// The payload is not one we signed (spoofed, corrupted or another process's).
    BadMac,
    /// An ICMP error quoting a packet that is not one of our echo requests.
    NotOurs,
    /// An ICMP type we do not handle (e.g. requests, neighbour discovery).
    Uninteresting,
}

impl Reject {
    /// All reasons, in counter order.
    pub const ALL: [Reject; 9] = [
        Reject::Truncated,
        Reject::BadIpHeader,
        Reject::IpOptions,
        Reject::NotIcmp,
        Reject::BadChecksum,
        Reject::ForeignIdent,
        Reject::BadMac,
        Reject::NotOurs,
        Reject::Uninteresting,
    ];

    /// Stable snake_case name for logs and metrics.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Reject::Truncated => "truncated",
            Reject::BadIpHeader => "bad_ip_header",
            Reject::IpOptions => "ip_options",
            Reject::NotIcmp => "not_icmp",
            Reject::BadChecksum => "bad_checksum",
            Reject::ForeignIdent => "foreign_ident",
            Reject::BadMac => "bad_mac",
            Reject::NotOurs => "not_ours",
            Reject::Uninteresting => "uninteresting",
        }
    }

    /// Position in [`Reject::ALL`].
    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// Writes an echo request for `stamp` to `dst` into `buf` and returns its length.
///
/// `payload_len` is the number of bytes after the 8-byte ICMP header; it is at least
/// [`PAYLOAD_HEADER_LEN`]. IPv4 requests carry their checksum; for ICMPv6 the kernel fills it in
/// (it needs the pseudo-header, which only the kernel knows for sure).
///
/// # Panics
/// If `buf` is shorter than `ICMP_HEADER_LEN + payload_len` or `payload_len` is below the minimum;
/// callers size both from a validated configuration.
pub fn build_echo_request(
    buf: &mut [u8],
    auth: &Authenticator,
    dst: IpAddr,
    stamp: &ProbeStamp,
    payload_len: usize,
) -> usize {
    assert!(
        payload_len >= PAYLOAD_HEADER_LEN,
        "payload too small for the probe stamp"
    );
    let len = ICMP_HEADER_LEN + payload_len;
    let pkt = &mut buf[..len];
    pkt[ICMP_HEADER_LEN + PAYLOAD_HEADER_LEN..].fill(0);
    auth.seal(dst, stamp, &mut pkt[ICMP_HEADER_LEN..]);
    let seq16 = (stamp.global & 0xffff) as u16;
    pkt[0] = match dst {
        IpAddr::V4(_) => IcmpTypes::EchoRequest.0,
        IpAddr::V6(_) => Icmpv6Types::EchoRequest.0,
    };
    pkt[1] = 0;
    pkt[2..4].fill(0);
    pkt[4..6].copy_from_slice(&auth.ident().to_be_bytes());
    pkt[6..8].copy_from_slice(&seq16.to_be_bytes());
    if dst.is_ipv4() {
        let ck = pnet_packet::util::checksum(pkt, 1);
        pkt[2..4].copy_from_slice(&ck.to_be_bytes());
    }
    len
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// Checks an IPv4 header at the start of `b` and returns (header, header length, usable length).
fn ipv4_header(b: &[u8]) -> Result<(Ipv4Packet<'_>, usize, usize), Reject> {
    let ip = Ipv4Packet::new(b).ok_or(Reject::Truncated)?;
    if ip.get_version() != 4 {
        return Err(Reject::BadIpHeader);
    }
    let ihl = usize::from(ip.get_header_length()) * 4;
    if ihl < 20 {
        return Err(Reject::BadIpHeader);
    }
    if ihl > b.len() {
        return Err(Reject::Truncated);
    }
    let total = usize::from(ip.get_total_length());
    if total < ihl {
        return Err(Reject::BadIpHeader);
    }
    Ok((ip, ihl, total))
}

/// Classifies one datagram from a raw IPv4 ICMP socket (which includes the IP header).
pub fn parse_v4(datagram: &[u8], auth: &Authenticator) -> Result<Inbound, Reject> {
    let (ip, ihl, total) = ipv4_header(datagram)?;
    if total > datagram.len() {
        return Err(Reject::Truncated);
    }
    if ip.get_next_level_protocol() != IpNextHeaderProtocols::Icmp {
        return Err(Reject::NotIcmp);
    }
    if ihl > 20 {
        return Err(Reject::IpOptions);
    }
    let from = IpAddr::V4(ip.get_source());
    let icmp_bytes = &datagram[ihl..total];
    let icmp = IcmpPacket::new(icmp_bytes).ok_or(Reject::Truncated)?;
    if icmp_bytes.len() < ICMP_HEADER_LEN {
        return Err(Reject::Truncated);
    }
    if pnet_packet::icmp::checksum(&icmp) != icmp.get_checksum() {
        return Err(Reject::BadChecksum);
    }
    let t = icmp.get_icmp_type();
    let code = icmp.get_icmp_code().0;
    if t == IcmpTypes::EchoReply {
        return echo_reply(icmp_bytes, from, auth);
    }
    let kind = match (t.0, code) {
        (3, 0) => IcmpErrorKind::NetUnreachable,
        (3, 1) => IcmpErrorKind::HostUnreachable,
        (3, 2) => IcmpErrorKind::ProtocolUnreachable,
        (3, 3) => IcmpErrorKind::PortUnreachable,
        (3, 4) => IcmpErrorKind::FragmentationNeeded {
            mtu: u32::from(be16(icmp_bytes, 6).unwrap_or(0)),
        },
        (3, 9 | 10 | 13) => IcmpErrorKind::AdminProhibited,
        (11, _) => IcmpErrorKind::TimeExceeded,
        (12, _) => IcmpErrorKind::ParameterProblem,
        (3, _) => IcmpErrorKind::Other {
            icmp_type: t.0,
            code,
        },
        _ => return Err(Reject::Uninteresting),
    };
    // The quoted original datagram: its header must be ours to read before anything else.
    let quoted = &icmp_bytes[ICMP_HEADER_LEN..];
    let (qip, qihl, qtotal) = ipv4_header(quoted).map_err(|_| Reject::NotOurs)?;
    if qip.get_next_level_protocol() != IpNextHeaderProtocols::Icmp {
        return Err(Reject::NotOurs);
    }
    // Routers quote at least 8 bytes of the original ICMP header and often more; never read past
    // what is present or what the quoted header says the packet had.
    let qend = qtotal.min(quoted.len());
    let qicmp = quoted.get(qihl..qend).ok_or(Reject::NotOurs)?;
    let target = IpAddr::V4(qip.get_destination());
    quoted_request(qicmp, 8, target, from, kind, auth)
}

/// Classifies one message from a raw ICMPv6 socket (no IP header: the kernel strips it).
///
/// `pseudo` gives (source, destination) to verify the checksum; the kernel already verifies it
/// for ICMPv6 raw sockets, so the engine passes `None`, fixtures pass addresses.
pub fn parse_v6(
    msg: &[u8],
    from: Ipv6Addr,
    pseudo: Option<Ipv6Addr>,
    auth: &Authenticator,
) -> Result<Inbound, Reject> {
    let icmp = Icmpv6Packet::new(msg).ok_or(Reject::Truncated)?;
    if msg.len() < ICMP_HEADER_LEN {
        return Err(Reject::Truncated);
    }
    if let Some(dst) = pseudo
        && pnet_packet::icmpv6::checksum(&icmp, &from, &dst) != icmp.get_checksum()
    {
        return Err(Reject::BadChecksum);
    }
    let t = icmp.get_icmpv6_type();
    let code = icmp.get_icmpv6_code().0;
    let reporter = IpAddr::V6(from);
    if t == Icmpv6Types::EchoReply {
        return echo_reply(msg, reporter, auth);
    }
    let kind = match (t.0, code) {
        (1, 0) => IcmpErrorKind::NetUnreachable,
        (1, 1 | 5 | 6) => IcmpErrorKind::AdminProhibited,
        (1, 3) => IcmpErrorKind::HostUnreachable,
        (1, 4) => IcmpErrorKind::PortUnreachable,
        (2, _) => IcmpErrorKind::FragmentationNeeded {
            mtu: u32::from_be_bytes(msg[4..8].try_into().map_err(|_| Reject::Truncated)?),
        },
        (3, _) => IcmpErrorKind::TimeExceeded,
        (4, _) => IcmpErrorKind::ParameterProblem,
        (1, _) => IcmpErrorKind::Other {
            icmp_type: t.0,
            code,
        },
        _ => return Err(Reject::Uninteresting),
    };
    let quoted = &msg[ICMP_HEADER_LEN..];
    let qip = Ipv6Packet::new(quoted).ok_or(Reject::NotOurs)?;
    if qip.get_version() != 6 || qip.get_next_header() != IpNextHeaderProtocols::Icmpv6 {
        // Our requests carry no extension headers, so anything else is not ours.
        return Err(Reject::NotOurs);
    }
    let qicmp = &quoted[40..];
    let target = IpAddr::V6(qip.get_destination());
    quoted_request(qicmp, 128, target, reporter, kind, auth)
}

fn echo_reply(icmp: &[u8], from: IpAddr, auth: &Authenticator) -> Result<Inbound, Reject> {
    let ident = be16(icmp, 4).ok_or(Reject::Truncated)?;
    let seq16 = be16(icmp, 6).ok_or(Reject::Truncated)?;
    if ident != auth.ident() {
        return Err(Reject::ForeignIdent);
    }
    let stamp = auth
        .open(from, &icmp[ICMP_HEADER_LEN..])
        .ok_or(Reject::BadMac)?;
    if (stamp.global & 0xffff) as u16 != seq16 {
        return Err(Reject::BadMac);
    }
    Ok(Inbound::Reply { from, stamp })
}

fn quoted_request(
    qicmp: &[u8],
    request_type: u8,
    target: IpAddr,
    reporter: IpAddr,
    kind: IcmpErrorKind,
    auth: &Authenticator,
) -> Result<Inbound, Reject> {
    if qicmp.len() < ICMP_HEADER_LEN || qicmp[0] != request_type || qicmp[1] != 0 {
        return Err(Reject::NotOurs);
    }
    if be16(qicmp, 4) != Some(auth.ident()) {
        return Err(Reject::NotOurs);
    }
    let seq16 = be16(qicmp, 6).ok_or(Reject::NotOurs)?;
    let payload = &qicmp[ICMP_HEADER_LEN..];
    let stamp = if payload.len() >= PAYLOAD_HEADER_LEN {
        // Enough was quoted to check: a quote that fails the MAC is forged.
        let s = auth.open(target, payload).ok_or(Reject::BadMac)?;
        if (s.global & 0xffff) as u16 != seq16 {
            return Err(Reject::BadMac);
        }
        Some(s)
    } else {
        None
    };
    Ok(Inbound::Error {
        reporter,
        target,
        kind,
        seq16,
        stamp,
    })
}

#[cfg(test)]
mod tests;
