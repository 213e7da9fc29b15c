//! The canned checks (`option redis-check`, `pgsql-check`, `mysql-check`, `smtpchk`,
//! `ssl-hello-chk`): the bytes HAProxy 2.6 sends (compared with captures in
//! `traces/requests/`) and the replies it expects.

use crate::expect::ExpectOutcome;
use crate::status::{CheckResult, CheckStatus};

/// `option redis-check`: `PING` as a RESP array; expects `+PONG`.
pub const REDIS_PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";

/// `option pgsql-check user <u>`: a protocol 3.0 StartupMessage with `user`.
pub fn pgsql_startup(user: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(16 + user.len());
    body.extend_from_slice(&[0x00, 0x03, 0x00, 0x00]);
    body.extend_from_slice(b"user\0");
    body.extend_from_slice(user.as_bytes());
    body.extend_from_slice(&[0, 0]);
    let len = u32::try_from(body.len() + 4).unwrap_or(u32::MAX);
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// `option mysql-check user <u>`: a client authentication packet (no password, protocol
/// 4.1 capabilities, as haproxy 2.6 sends with or without `post-41`) followed by `COM_QUIT`.
pub fn mysql_auth(user: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(48 + user.len());
    p.extend_from_slice(&[0x00, 0x82, 0x00, 0x00]); // CLIENT_PROTOCOL_41 | SECURE_CONNECTION
    p.extend_from_slice(&[0x00, 0x80, 0x00, 0x01]); // max packet size
    p.push(0x21); // utf8_general_ci
    p.extend_from_slice(&[0u8; 23]);
    p.extend_from_slice(user.as_bytes());
    p.extend_from_slice(&[0x00, 0x00]); // end of user, empty auth response
    let len = u32::try_from(p.len()).unwrap_or(0).to_le_bytes();
    let mut out = vec![len[0], len[1], len[2], 0x01];
    out.extend_from_slice(&p);
    out.extend_from_slice(&[0x01, 0x00, 0x00, 0x00, 0x01]); // COM_QUIT, sequence 0
    out
}

/// `option smtpchk [HELO|EHLO domain]`: the command line, `HELO localhost` by default.
pub fn smtp_command(args: &[String]) -> Vec<u8> {
    let cmd = match args {
        [verb, domain, ..]
            if verb.eq_ignore_ascii_case("HELO") || verb.eq_ignore_ascii_case("EHLO") =>
        {
            format!("{verb} {domain}\r\n")
        }
        _ => "HELO localhost\r\n".to_string(),
    };
    cmd.into_bytes()
}

/// `option ssl-hello-chk`: an SSLv3 ClientHello with `unix_time` at offset 11 and HAProxy's
/// fixed random and cipher list.
pub fn ssl_hello(unix_time: u32) -> Vec<u8> {
    let mut p = vec![
        0x16, 0x03, 0x00, 0x00, 0x79, 0x01, 0x00, 0x00, 0x75, 0x03, 0x00,
    ];
    p.extend_from_slice(&unix_time.to_be_bytes());
    p.extend_from_slice(b"HAPROXYSSLCHK\nHAPROXYSSLCHK\n");
    p.extend_from_slice(&[0x00, 0x00, 0x4e]);
    for c in (0x01u16..=0x1b).chain(0x2f..=0x3a) {
        p.extend_from_slice(&c.to_be_bytes());
    }
    p.extend_from_slice(&[0x01, 0x00]);
    p
}

/// A MySQL packet at `offset`: an error packet (`0xff`) fails with `Layer7 wrong status`,
/// the error code and message; a truncated one with `Layer7 invalid response`; anything
/// complete passes.
pub fn mysql_packet(buf: &[u8], offset: usize, closed: bool) -> ExpectOutcome {
    let head = buf.get(offset..offset + 4);
    let Some(&[a, b, c, _]) = head else {
        return truncated(closed);
    };
    let len = usize::from(a) | usize::from(b) << 8 | usize::from(c) << 16;
    if buf.len() < offset + 4 + len {
        return truncated(closed);
    }
    if buf.get(offset + 4) == Some(&0xff) {
        let code = buf
            .get(offset + 5..offset + 7)
            .map(|e| u16::from(e[0]) | u16::from(e[1]) << 8);
        let mut r = CheckResult::new(CheckStatus::L7Sts);
        r.code = code;
        let msg = buf.get(offset + 7..offset + 4 + len).unwrap_or(&[]);
        let end = msg.iter().position(|&c| c == 0).unwrap_or(msg.len());
        r.info = Some(String::from_utf8_lossy(msg.get(..end).unwrap_or(&[])).into_owned());
        return ExpectOutcome::Fail(r);
    }
    // haproxy 2.6 logs no info on success (`traces/haproxy-2.6-canned.log`).
    ExpectOutcome::Pass(CheckResult::new(CheckStatus::L7Ok))
}

/// The OK packet that follows the initial handshake.
pub fn mysql_ok(buf: &[u8], closed: bool) -> ExpectOutcome {
    let Some(&[a, b, c]) = buf.get(..3) else {
        return truncated(closed);
    };
    let first = 4 + (usize::from(a) | usize::from(b) << 8 | usize::from(c) << 16);
    mysql_packet(buf, first, closed)
}

fn truncated(closed: bool) -> ExpectOutcome {
    if closed {
        ExpectOutcome::Fail(CheckResult::new(CheckStatus::L7Rsp))
    } else {
        ExpectOutcome::NeedMore
    }
}
