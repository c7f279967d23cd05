//! Classic BPF programs that let the kernel drop every ICMP packet that is not ours.
//!
//! A raw ICMP socket receives a copy of every ICMP packet on the node: other pingers' replies,
//! neighbour discovery, our own echo requests on loopback. At 100k probes/s on a busy node that is a
//! lot of copies to wake up for. These programs accept only
//! - echo replies carrying our identifier, and
//! - the ICMP errors (unreachable, time exceeded, parameter problem, packet too big) whose quoted
//!   header is an echo request with our identifier,
//!
//! so user space sees almost nothing it will reject. The parser still checks everything: the filter
//! is an optimisation, never the security boundary (the payload MAC is).

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// Opcode.
    pub code: u16,
    /// Jump offset when true.
    pub jt: u8,
    /// Jump offset when false.
    pub jf: u8,
    /// Constant operand.
    pub k: u32,
}

// Opcode parts from <linux/filter.h>; a stable kernel ABI.
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const MISC: u16 = 0x07;
const H: u16 = 0x08;
const B: u16 = 0x10;
const ABS: u16 = 0x20;
const IND: u16 = 0x40;
const MSH: u16 = 0xa0;
const JEQ: u16 = 0x10;
const AND: u16 = 0x50;
const LSH: u16 = 0x60;
const ADD: u16 = 0x00;
const K: u16 = 0x00;
const X: u16 = 0x08;
const TAX: u16 = 0x00;

/// Bytes of an accepted packet handed to the socket (all of it).
const ACCEPT: u32 = 0x0004_0000;

const fn op(code: u16, k: u32) -> Insn {
    Insn {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn jeq(k: u32, jt: u8, jf: u8) -> Insn {
    Insn {
        code: JMP | JEQ | K,
        jt,
        jf,
        k,
    }
}

/// The filter for an IPv4 raw ICMP socket, where packets start at the IP header.
#[must_use]
pub fn ipv4(ident: u16) -> Vec<Insn> {
    let id = u32::from(ident);
    vec![
        op(LDX | B | MSH, 0),   // 0: X = IP header length
        op(LD | B | IND, 0),    // 1: A = ICMP type
        jeq(0, 0, 2),           // 2: echo reply? -> 3 : 5
        op(LD | H | IND, 4),    // 3: A = identifier
        jeq(id, 12, 13),        // 4: ours -> accept : drop
        jeq(3, 2, 0),           // 5: destination unreachable -> 8
        jeq(11, 1, 0),          // 6: time exceeded -> 8
        jeq(12, 0, 10),         // 7: parameter problem -> 8 : drop
        op(LD | B | IND, 8),    // 8: A = quoted version/IHL byte
        op(ALU | AND | K, 0xf), // 9
        op(ALU | LSH | K, 2),   // 10: A = quoted header length
        op(ALU | ADD | X, 0),   // 11: A = offset of quoted ICMP - 8
        op(MISC | TAX, 0),      // 12: X = A
        op(LD | B | IND, 8),    // 13: A = quoted ICMP type
        jeq(8, 0, 3),           // 14: echo request? -> 15 : drop
        op(LD | H | IND, 12),   // 15: A = quoted identifier
        jeq(id, 0, 1),          // 16: ours -> accept : drop
        op(RET | K, ACCEPT),    // 17
        op(RET | K, 0),         // 18
    ]
}

/// The filter for an IPv6 raw ICMPv6 socket, where packets start at the ICMPv6 header.
#[must_use]
pub fn ipv6(ident: u16) -> Vec<Insn> {
    let id = u32::from(ident);
    vec![
        op(LD | B | ABS, 0),  // 0: A = type
        jeq(129, 0, 2),       // 1: echo reply? -> 2 : 4
        op(LD | H | ABS, 4),  // 2: A = identifier
        jeq(id, 8, 9),        // 3: ours -> accept : drop
        jeq(1, 3, 0),         // 4: destination unreachable -> 8
        jeq(2, 2, 0),         // 5: packet too big -> 8
        jeq(3, 1, 0),         // 6: time exceeded -> 8
        jeq(4, 0, 5),         // 7: parameter problem -> 8 : drop
        op(LD | B | ABS, 48), // 8: A = quoted ICMPv6 type (after 8 + 40 bytes)
        jeq(128, 0, 3),       // 9: echo request? -> 10 : drop
        op(LD | H | ABS, 52), // 10: A = quoted identifier
        jeq(id, 0, 1),        // 11: ours -> accept : drop
        op(RET | K, ACCEPT),  // 12
        op(RET | K, 0),       // 13
    ]
}

#[cfg(test)]
mod tests;
