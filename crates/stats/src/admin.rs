//! The stats page's admin form (`stats admin`) and `stats auth`: typed results for the
//! engine to apply; nothing here changes state.

/// An action of the admin form (`action=` values of HAProxy 2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAction {
    /// `ready`: leave drain/maintenance.
    Ready,
    /// `drain`: no new traffic, existing sessions kept.
    Drain,
    /// `maint`: maintenance.
    Maint,
    /// `dhlth`/`ehlth`: disable/enable health checks.
    DisableHealth,
    EnableHealth,
    /// `hrunn`/`hnolb`/`hdown`: force the health state.
    HealthUp,
    HealthNolb,
    HealthDown,
    /// `dagent`/`eagent`: disable/enable agent checks.
    DisableAgent,
    EnableAgent,
    /// `arunn`/`adown`: force the agent state.
    AgentUp,
    AgentDown,
    /// `shutdown`: kill the server's sessions.
    Shutdown,
}

impl AdminAction {
    pub fn parse(s: &str) -> Option<AdminAction> {
        Some(match s {
            "ready" => AdminAction::Ready,
            "drain" => AdminAction::Drain,
            "maint" => AdminAction::Maint,
            "dhlth" => AdminAction::DisableHealth,
            "ehlth" => AdminAction::EnableHealth,
            "hrunn" => AdminAction::HealthUp,
            "hnolb" => AdminAction::HealthNolb,
            "hdown" => AdminAction::HealthDown,
            "dagent" => AdminAction::DisableAgent,
            "eagent" => AdminAction::EnableAgent,
            "arunn" => AdminAction::AgentUp,
            "adown" => AdminAction::AgentDown,
            "shutdown" => AdminAction::Shutdown,
            _ => return None,
        })
    }
}

/// The backend of the form: `b=#<iid>` or `b=<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendRef {
    Id(u32),
    Name(String),
}

/// A parsed admin POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminRequest {
    pub backend: BackendRef,
    pub action: AdminAction,
    /// Checked servers (`s=` values), in form order.
    pub servers: Vec<String>,
}

/// The result code HAProxy puts in the redirect (`;st=DONE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminStatus {
    /// Every checked server was changed.
    Done,
    /// Some were.
    Part,
    /// No server was checked.
    None,
    /// Nothing could be done (unknown backend/servers, bad action).
    Errp,
    /// Not allowed (`stats admin` did not match).
    Deny,
    /// The form could not be read (unsupported method or encoding).
    Ival,
}

impl AdminStatus {
    pub fn code(self) -> &'static str {
        match self {
            AdminStatus::Done => "DONE",
            AdminStatus::Part => "PART",
            AdminStatus::None => "NONE",
            AdminStatus::Errp => "ERRP",
            AdminStatus::Deny => "DENY",
            AdminStatus::Ival => "IVAL",
        }
    }

    /// HAProxy's verdict from how many servers were checked and how many the engine changed.
    pub fn from_counts(total: usize, altered: usize) -> AdminStatus {
        if total == 0 {
            AdminStatus::None
        } else if altered == 0 {
            AdminStatus::Errp
        } else if altered < total {
            AdminStatus::Part
        } else {
            AdminStatus::Done
        }
    }
}

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space; a bad `%` escape is
/// kept as is).
pub fn form_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses the POST body of the admin form. `Err(Errp)` when the backend or the action is
/// missing or invalid (HAProxy redirects with `;st=ERRP`); `Err(None)` when no server is
/// checked.
pub fn parse_admin_form(body: &str) -> Result<AdminRequest, AdminStatus> {
    let mut backend = None;
    let mut action = None;
    let mut servers = Vec::new();
    for pair in body.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = form_decode(v);
        match form_decode(k).as_str() {
            "b" => {
                backend = Some(match v.strip_prefix('#') {
                    Some(id) => BackendRef::Id(id.parse().map_err(|_| AdminStatus::Errp)?),
                    None => BackendRef::Name(v),
                });
            }
            "action" => action = Some(AdminAction::parse(&v).ok_or(AdminStatus::Errp)?),
            "s" => servers.push(v),
            _ => {}
        }
    }
    let (Some(backend), Some(action)) = (backend, action) else {
        return Err(AdminStatus::Errp);
    };
    if servers.is_empty() {
        return Err(AdminStatus::None);
    }
    Ok(AdminRequest {
        backend,
        action,
        servers,
    })
}

/// The answer to an admin POST: `303 See Other` to `<uri>;st=<code>`, as HAProxy does.
pub fn admin_redirect(uri: &str, status: AdminStatus) -> crate::page::HttpAnswer {
    crate::page::HttpAnswer {
        status: 303,
        headers: vec![
            ("cache-control".into(), "no-cache".into()),
            ("content-type".into(), "text/plain".into()),
            ("content-length".into(), "0".into()),
            ("location".into(), format!("{uri};st={}", status.code())),
        ],
        body: String::new(),
    }
}

/// Standard base64 (RFC 4648, padding optional); `None` on any invalid character.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        })
    };
    let s = s.trim_end_matches('=').as_bytes();
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= val(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

/// Equal in time independent of where the inputs differ (the length of `expected` leaks).
fn ct_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= e ^ given.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// One `stats auth user:password` credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub user: String,
    pub password: String,
}

impl Credential {
    /// From the `user:password` argument of `stats auth`.
    pub fn parse(s: &str) -> Option<Credential> {
        let (u, p) = s.split_once(':')?;
        Some(Credential {
            user: u.into(),
            password: p.into(),
        })
    }
}

/// Checks an `Authorization` header value against the credentials, comparing every one of
/// them in constant time (no early exit on the first match or the first differing byte).
/// Returns the user name on success.
pub fn check_basic_auth<'a>(
    authorization: Option<&str>,
    creds: &'a [Credential],
) -> Option<&'a str> {
    let h = authorization?.trim();
    let (scheme, token) = h.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64_decode(token.trim())?;
    let colon = decoded.iter().position(|&c| c == b':')?;
    let (user, pass) = (&decoded[..colon], &decoded[colon + 1..]);
    let mut found = None;
    for c in creds {
        let ok = ct_eq(user, c.user.as_bytes()) & ct_eq(pass, c.password.as_bytes());
        if ok && found.is_none() {
            found = Some(c.user.as_str());
        }
    }
    found
}

/// The 401 answer asking for credentials (`stats realm`, default "HAProxy Statistics").
pub fn unauthorized(realm: Option<&str>) -> crate::page::HttpAnswer {
    let realm = realm.unwrap_or("HAProxy Statistics").replace('"', "");
    crate::page::HttpAnswer {
        status: 401,
        headers: vec![
            ("cache-control".into(), "no-cache".into()),
            ("content-type".into(), "text/html".into()),
            ("www-authenticate".into(), format!("Basic realm=\"{realm}\"")),
        ],
        body: "<html><body><h1>401 Unauthorized</h1>\nYou need a valid user and password to access this content.\n</body></html>\n".into(),
    }
}

/// `stats http-request deny`: haproxy's 403 page.
pub fn forbidden() -> crate::page::HttpAnswer {
    crate::page::HttpAnswer {
        status: 403,
        headers: vec![
            ("cache-control".into(), "no-cache".into()),
            ("content-type".into(), "text/html".into()),
        ],
        body: "<html><body><h1>403 Forbidden</h1>\nRequest forbidden by administrative rules.\n</body></html>\n".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_known_values() {
        assert_eq!(base64_decode("YWRtaW46c2VjcmV0").unwrap(), b"admin:secret");
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert_eq!(base64_decode("YWI").unwrap(), b"ab");
        assert!(base64_decode("Y").is_none());
        assert!(base64_decode("YW!i").is_none());
    }

    #[test]
    fn ct_eq_compares() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abd", b"abc"));
        assert!(!ct_eq(b"ab", b"abc"));
        assert!(!ct_eq(b"abcd", b"abc"));
        assert!(!ct_eq(b"abc\0", b"abc"));
    }
}
