//! Runs the programs in a tiny classic-BPF interpreter (just the opcodes they use) on packets.

use super::*;

/// Returns the accepted length, or 0; out-of-bounds loads drop the packet like the kernel does.
fn run(prog: &[Insn], pkt: &[u8]) -> u32 {
    let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
    let byte = |off: usize| pkt.get(off).map(|&b| u32::from(b));
    let half = |off: usize| Some((byte(off)? << 8) | byte(off + 1)?);
    loop {
        let i = prog[pc];
        pc += 1;
        match i.code {
            c if c == LDX | B | MSH => match byte(i.k as usize) {
                Some(b) => x = (b & 0xf) * 4,
                None => return 0,
            },
            c if c == LD | B | IND
                || c == LD | B | ABS
                || c == LD | H | IND
                || c == LD | H | ABS =>
            {
                let base = if c & IND != 0 { x as usize } else { 0 };
                let v = if c & H != 0 {
                    half(base + i.k as usize)
                } else {
                    byte(base + i.k as usize)
                };
                match v {
                    Some(v) => a = v,
                    None => return 0,
                }
            }
            c if c == ALU | AND | K => a &= i.k,
            c if c == ALU | LSH | K => a <<= i.k,
            c if c == ALU | ADD | X => a = a.wrapping_add(x),
            c if c == MISC | TAX => x = a,
            c if c == JMP | JEQ | K => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
            c if c == RET | K => return i.k,
            other => panic!("opcode {other:#x} not in interpreter"),
        }
        assert!(pc < prog.len(), "program fell off the end");
    }
}

fn ip(ihl_words: u8, icmp: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; usize::from(ihl_words) * 4];
    p[0] = 0x40 | ihl_words;
    p[9] = 1;
    p.extend_from_slice(icmp);
    p
}

fn echo(t: u8, ident: u16) -> Vec<u8> {
    let mut m = vec![t, 0, 0, 0];
    m.extend_from_slice(&ident.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    m.extend_from_slice(&[0u8; 32]);
    m
}

#[test]
fn v4_accepts_only_our_replies_and_errors_about_our_requests() {
    let p = ipv4(0xbeef);
    assert_eq!(run(&p, &ip(5, &echo(0, 0xbeef))), ACCEPT);
    assert_eq!(run(&p, &ip(6, &echo(0, 0xbeef))), ACCEPT, "honours the IHL");
    assert_eq!(run(&p, &ip(5, &echo(0, 0xbeee))), 0, "foreign identifier");
    assert_eq!(
        run(&p, &ip(5, &echo(8, 0xbeef))),
        0,
        "our own request looping back"
    );
    for (t, want) in [(3u8, ACCEPT), (11, ACCEPT), (12, ACCEPT), (5, 0)] {
        let mut err = vec![t, 1, 0, 0, 0, 0, 0, 0];
        err.extend_from_slice(&ip(5, &echo(8, 0xbeef)));
        assert_eq!(run(&p, &ip(5, &err)), want, "error type {t}");
    }
    // Quoted header with options, and a quote about someone else's request.
    let mut err = vec![3u8, 1, 0, 0, 0, 0, 0, 0];
    err.extend_from_slice(&ip(7, &echo(8, 0xbeef)));
    assert_eq!(run(&p, &ip(5, &err)), ACCEPT);
    let mut err = vec![3u8, 1, 0, 0, 0, 0, 0, 0];
    err.extend_from_slice(&ip(5, &echo(8, 0x1234)));
    assert_eq!(run(&p, &ip(5, &err)), 0);
    // Truncated: the kernel drops out-of-bounds loads.
    assert_eq!(run(&p, &ip(5, &[0u8, 0, 0])), 0);
    assert_eq!(run(&p, &[]), 0);
}

#[test]
fn v6_accepts_only_our_replies_and_errors_about_our_requests() {
    let p = ipv6(0xbeef);
    assert_eq!(run(&p, &echo(129, 0xbeef)), ACCEPT);
    assert_eq!(run(&p, &echo(129, 0xbeee)), 0);
    assert_eq!(run(&p, &echo(128, 0xbeef)), 0);
    assert_eq!(
        run(&p, &[135u8, 0, 0, 0, 0, 0, 0, 0]),
        0,
        "neighbour solicitation"
    );
    for (t, want) in [
        (1u8, ACCEPT),
        (2, ACCEPT),
        (3, ACCEPT),
        (4, ACCEPT),
        (136, 0),
    ] {
        let mut m = vec![t, 0, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&[0u8; 40]);
        m.extend_from_slice(&echo(128, 0xbeef));
        assert_eq!(run(&p, &m), want, "type {t}");
    }
}

#[test]
fn jumps_stay_inside_the_programs() {
    for prog in [ipv4(1), ipv6(1)] {
        for (n, i) in prog.iter().enumerate() {
            if i.code == JMP | JEQ | K {
                assert!(n + 1 + usize::from(i.jt.max(i.jf)) < prog.len(), "insn {n}");
            }
        }
        assert_eq!(prog.last().map(|i| i.code), Some(RET | K));
    }
}
