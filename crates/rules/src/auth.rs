//! `userlist` authentication for `http_auth(<userlist>)` / `http_auth_group` and
//! `http-request auth`: Basic credentials checked against insecure passwords and crypt(3)
//! SHA-256/512 hashes here; other crypt schemes (`$1$`, `$2y$`, DES) go through
//! [`SampleSource::crypt_verify`], which the engine may implement.

use ringlb_config::model::{Password, Userlist as ModelUserlist};

use crate::context::SampleSource;
use crate::conv::b64_decode;
use crate::message::HttpMessage;

/// A compiled userlist: users with their password and groups (group lists resolved both ways).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Userlist {
    pub name: String,
    pub users: Vec<UserEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    pub name: Box<[u8]>,
    pub password: Password,
    pub groups: Vec<String>,
}

impl Userlist {
    /// From the model: a user's groups are its own `groups` plus the groups listing it.
    pub fn from_model(u: &ModelUserlist) -> Userlist {
        let users = u
            .users
            .iter()
            .map(|user| {
                let mut groups = user.groups.clone();
                for g in &u.groups {
                    if g.users.iter().any(|n| n == &user.name) && !groups.contains(&g.name) {
                        groups.push(g.name.clone());
                    }
                }
                UserEntry {
                    name: user.name.as_bytes().into(),
                    password: user.password.clone(),
                    groups,
                }
            })
            .collect();
        Userlist {
            name: u.name.clone(),
            users,
        }
    }

    /// The user entry when `user`/`pass` are valid.
    pub fn check(&self, src: &dyn SampleSource, user: &[u8], pass: &[u8]) -> Option<&UserEntry> {
        let u = self.users.iter().find(|u| &*u.name == user)?;
        let ok = match &u.password {
            Password::Insecure(p) => p.as_bytes() == pass,
            Password::Hashed(h) => crate::crypt::verify(h, pass)
                .or_else(|| src.crypt_verify(h, pass))
                .unwrap_or(false),
        };
        ok.then_some(u)
    }

    /// Checks the request's Basic credentials (`proxy`: from `Proxy-Authorization`).
    pub fn check_request(
        &self,
        src: &dyn SampleSource,
        req: &HttpMessage<'_>,
        proxy: bool,
    ) -> Option<&UserEntry> {
        let (user, pass) = basic_credentials(req, proxy)?;
        self.check(src, &user, &pass)
    }
}

/// The header credentials come in: `Proxy-Authorization` for a proxied request under
/// `option http-use-proxy-header`, else `Authorization`.
pub fn credentials_header(proxy: bool) -> &'static [u8] {
    if proxy {
        b"proxy-authorization"
    } else {
        b"authorization"
    }
}

/// Decodes `Authorization: Basic <b64(user:pass)>` (allocates the decoded pair).
pub fn basic_credentials(req: &HttpMessage<'_>, proxy: bool) -> Option<(Vec<u8>, Vec<u8>)> {
    let v = req
        .full_values(credentials_header(proxy))
        .next()?
        .trim_ascii();
    let sp = v.iter().position(|&c| c == b' ')?;
    if !v.get(..sp)?.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let raw = b64_decode(v.get(sp + 1..)?.trim_ascii(), false)?;
    let colon = raw.iter().position(|&c| c == b':')?;
    Some((raw.get(..colon)?.to_vec(), raw.get(colon + 1..)?.to_vec()))
}
