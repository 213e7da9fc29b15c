//! Email alerts (`mailers` section, `email-alert ...`): the SMTP dialogue haproxy 2.6 runs
//! (its tcp-check based mailer in `check.c`: plain SMTP, no EHLO, no TLS, no AUTH) and the
//! message it sends, captured from haproxy 2.6.12 talking to a sink. Pure: the engine passes
//! the date text and runs the steps over its socket.

use crate::time::Timestamp;

/// One step of the dialogue: send `send` (if any), then expect a reply line starting with
/// `expect` (haproxy's `tcp-check expect string "250 "`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpStep {
    pub send: Option<Vec<u8>>,
    pub expect: &'static str,
}

/// What one alert carries.
#[derive(Debug, Clone, Copy)]
pub struct MailAlert<'a> {
    /// `email-alert from`.
    pub from: &'a str,
    /// `email-alert to` (one address, as haproxy).
    pub to: &'a str,
    /// `email-alert myhostname`, else the host name: the `HELO` argument.
    pub myhostname: &'a str,
    /// `Date:` header text ([`mail_date`]).
    pub date: &'a str,
    /// The event, without the log line's final `.`: subject and body.
    pub msg: &'a str,
}

/// The steps of one alert, in haproxy's order: greeting `220`, `HELO`, `MAIL FROM`, `RCPT TO`,
/// `DATA` (`354`), the message ending with `.`, `QUIT` (`221`).
pub fn smtp_steps(a: &MailAlert<'_>) -> Vec<SmtpStep> {
    let step = |send: Option<String>, expect| SmtpStep {
        send: send.map(String::into_bytes),
        expect,
    };
    let msg = format!(
        "From: {from}\r\nTo: {to}\r\nDate: {date}\r\nSubject: [HAProxy Alert] {msg}\r\n\r\n{msg}\r\n\r\n.\r\n",
        from = a.from,
        to = a.to,
        date = a.date,
        msg = a.msg
    );
    vec![
        step(None, "220 "),
        step(Some(format!("HELO {}\r\n", a.myhostname)), "250 "),
        step(Some(format!("MAIL FROM:<{}>\r\n", a.from)), "250 "),
        step(Some(format!("RCPT TO:<{}>\r\n", a.to)), "250 "),
        step(Some("DATA\r\n".to_string()), "354 "),
        step(Some(msg), "250 "),
        step(Some("QUIT\r\n".to_string()), "221 "),
    ]
}

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];

/// `strftime("%a, %d %b %Y %T %z (%Z)")` as haproxy writes the `Date:` header, e.g.
/// `Tue, 24 Nov 2026 05:44:01 +0000 (UTC)`; `zone` is the local zone's abbreviation.
pub fn mail_date(unix_secs: i64, utc_offset_secs: i32, zone: &str) -> String {
    let t = Timestamp::from_unix(unix_secs, 0, utc_offset_secs);
    let local_days = (unix_secs + i64::from(utc_offset_secs)).div_euclid(86_400);
    let dow = DAYS
        .get(local_days.rem_euclid(7) as usize)
        .copied()
        .unwrap_or("Thu");
    let off = utc_offset_secs.unsigned_abs() / 60;
    let sign = if utc_offset_secs < 0 { '-' } else { '+' };
    format!(
        "{dow}, {:02} {} {} {:02}:{:02}:{:02} {sign}{:02}{:02} ({zone})",
        t.day,
        t.month_name(),
        t.year,
        t.hour,
        t.minute,
        t.second,
        off / 60,
        off % 60
    )
}

/// Whether a reply line answers `expect` (a `250-` continuation line does not).
pub fn reply_matches(line: &[u8], expect: &str) -> bool {
    line.starts_with(expect.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_as_strftime() {
        // 2026-11-24 05:44:01 UTC is a Tuesday (haproxy wrote this exact header).
        let t = 1_795_499_041;
        assert_eq!(
            mail_date(t, 0, "UTC"),
            "Tue, 24 Nov 2026 05:44:01 +0000 (UTC)"
        );
        assert_eq!(
            mail_date(t, -5 * 3600 - 1800, "X"),
            "Tue, 24 Nov 2026 00:14:01 -0530 (X)"
        );
        assert_eq!(
            mail_date(0, 3600, "CET"),
            "Thu, 01 Jan 1970 01:00:00 +0100 (CET)"
        );
    }

    /// The dialogue haproxy 2.6.12 had with a sink (fixture `mail-haproxy.txt` of the
    /// `email_alerts` test records the same).
    #[test]
    fn dialogue_as_haproxy() {
        let a = MailAlert {
            from: "haproxy@example.com",
            to: "ops@example.com",
            myhostname: "lb1",
            date: "Tue, 24 Nov 2026 05:44:01 +0000 (UTC)",
            msg: "Server be/s1 is UP, reason: Layer4 check passed, check duration: 0ms. 1 active and 0 backup servers online. 0 sessions requeued, 0 total in queue",
        };
        let steps = smtp_steps(&a);
        let sent: Vec<u8> = steps
            .iter()
            .filter_map(|s| s.send.clone())
            .flatten()
            .collect();
        assert_eq!(
            String::from_utf8(sent).unwrap(),
            "HELO lb1\r\nMAIL FROM:<haproxy@example.com>\r\nRCPT TO:<ops@example.com>\r\nDATA\r\n\
From: haproxy@example.com\r\nTo: ops@example.com\r\nDate: Tue, 24 Nov 2026 05:44:01 +0000 (UTC)\r\n\
Subject: [HAProxy Alert] Server be/s1 is UP, reason: Layer4 check passed, check duration: 0ms. 1 active and 0 backup servers online. 0 sessions requeued, 0 total in queue\r\n\r\n\
Server be/s1 is UP, reason: Layer4 check passed, check duration: 0ms. 1 active and 0 backup servers online. 0 sessions requeued, 0 total in queue\r\n\r\n.\r\nQUIT\r\n"
        );
        let expects: Vec<&str> = steps.iter().map(|s| s.expect).collect();
        assert_eq!(
            expects,
            ["220 ", "250 ", "250 ", "250 ", "354 ", "250 ", "221 "]
        );
        assert!(reply_matches(b"250 ok\r\n", "250 "));
        assert!(!reply_matches(b"250-PIPELINING\r\n", "250 "));
    }
}
