//! Raw ICMP: packets, the keyed payload, the kernel filter, and the socket.
//!
//! Split so that everything that can be pure is pure: [`packet`] and [`payload`] are byte-in,
//! value-out and tested on fixtures; [`bpf`] is a constant program checked by tests; only
//! [`socket`] and [`batch`] (`sendmmsg`) touch the kernel, and they are the one place in the
//! project allowed `unsafe`.

pub mod batch;
pub mod bpf;
pub mod packet;
pub mod payload;
pub mod socket;

pub use packet::{IcmpErrorKind, Inbound, Reject};
pub use payload::{Authenticator, PAYLOAD_HEADER_LEN, ProbeStamp};
