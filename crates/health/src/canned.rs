//! The canned checks (`option redis-check`, `pgsql-check`, `mysql-check`, `smtpchk`,
//! `ssl-hello-chk`): the bytes HAProxy 2.6 sends (compared with captures in
//! `traces/requests/`) and the replies it expects.

use crate::expect::ExpectOutcome;
use crate::status::{CheckResult, CheckStatus};

/// `option redis-check`: `PING` as a RESP array; expects `+PONG`.
pub const REDIS_PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";

/// `option ldap-check`: an anonymous LDAPv3 simple bind (messageID 1), haproxy 2.6's
/// `300C020101600702010304008000`.
pub const LDAP_BIND: &[u8] = &[
    0x30, 0x0c, 0x02, 0x01, 0x01, 0x60, 0x07, 0x02, 0x01, 0x03, 0x04, 0x00, 0x80, 0x00,
];

/// HAProxy's text for an LDAP reply that is not a bind response.
const NOT_LDAP: &str = "Not LDAPv3 protocol";

/// `option ldap-check`'s last rule (haproxy 2.6's `tcpcheck_ldap_expect_bindrsp`): the reply
/// must be a BER `LDAPMessage` (length on one byte, or on 2 or 4 after `0x82`/`0x84`) holding
/// messageID 1 and a `bindResponse` whose `resultCode` is 0; a non-zero code is the check's
/// code (`Layer7 wrong status, code: 49`).
pub fn ldap_bind_response(buf: &[u8], closed: bool) -> ExpectOutcome {
    let fail = |status: CheckStatus, info: Option<&str>| {
        let mut r = CheckResult::new(status);
        r.info = info.map(str::to_string);
        ExpectOutcome::Fail(r)
    };
    let Some(&len0) = buf.get(1) else {
        return truncated(closed);
    };
    let (nbytes, msglen) = if len0 & 0x80 != 0 {
        let n = usize::from(len0 & 0x7f);
        let Some(bytes) = buf.get(2..2 + n) else {
            return truncated(closed);
        };
        match n {
            2 | 4 => (
                n,
                bytes.iter().fold(0usize, |a, &b| a << 8 | usize::from(b)),
            ),
            _ => return fail(CheckStatus::L7Rsp, Some(NOT_LDAP)),
        }
    } else {
        (0, usize::from(len0))
    };
    if buf.len() < 2 + nbytes + msglen {
        return truncated(closed);
    }
    let mut at = 2 + nbytes;
    if buf.get(at..at + 4) != Some(&[0x02, 0x01, 0x01, 0x61][..]) {
        return fail(CheckStatus::L7Rsp, Some(NOT_LDAP));
    }
    at += 4;
    // The bindResponse's own length: skipped, with its long form.
    let skip = buf.get(at).map_or(0, |&b| {
        if b & 0x80 != 0 {
            usize::from(b & 0x7f)
        } else {
            0
        }
    });
    at += 1 + skip;
    if buf.get(at..at + 2) != Some(&[0x0a, 0x01][..]) {
        return fail(CheckStatus::L7Rsp, Some(NOT_LDAP));
    }
    let code = buf.get(at + 2).copied().unwrap_or(0);
    if code != 0 {
        let mut r = CheckResult::new(CheckStatus::L7Sts);
        r.code = Some(u16::from(code));
        r.info = Some("See RFC: http://tools.ietf.org/html/rfc4511#section-4.1.9".into());
        return ExpectOutcome::Fail(r);
    }
    let mut r = CheckResult::new(CheckStatus::L7Ok);
    r.info = Some("Success".into());
    ExpectOutcome::Pass(r)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn bind_reply(code: u8) -> Vec<u8> {
        vec![
            0x30, 0x0c, 0x02, 0x01, 0x01, 0x61, 0x07, 0x0a, 0x01, code, 0x04, 0x00, 0x04, 0x00,
        ]
    }

    #[test]
    fn ldap_bind_responses() {
        match ldap_bind_response(&bind_reply(0), false) {
            ExpectOutcome::Pass(r) => {
                assert_eq!(r.status, CheckStatus::L7Ok);
                assert_eq!(r.info.as_deref(), Some("Success"));
            }
            other => panic!("{other:?}"),
        }
        match ldap_bind_response(&bind_reply(49), false) {
            ExpectOutcome::Fail(r) => {
                assert_eq!((r.status, r.code), (CheckStatus::L7Sts, Some(49)));
            }
            other => panic!("{other:?}"),
        }
        // Long-form length (Active Directory writes 4 bytes).
        let mut ad = vec![0x30, 0x84, 0, 0, 0, 0x0c];
        ad.extend_from_slice(&bind_reply(0)[2..]);
        assert!(matches!(
            ldap_bind_response(&ad, false),
            ExpectOutcome::Pass(_)
        ));
        // Truncated: wait, then fail once closed; not a bind response: fail.
        let short = &bind_reply(0)[..8];
        assert!(matches!(
            ldap_bind_response(short, false),
            ExpectOutcome::NeedMore
        ));
        assert!(matches!(
            ldap_bind_response(short, true),
            ExpectOutcome::Fail(_)
        ));
        let mut search = bind_reply(0);
        search[5] = 0x65;
        match ldap_bind_response(&search, false) {
            ExpectOutcome::Fail(r) => assert_eq!(r.info.as_deref(), Some("Not LDAPv3 protocol")),
            other => panic!("{other:?}"),
        }
    }
}
