//! Model types of the small sections: userlist, peers, resolvers, http-errors, ring, cache,
//! program, mailers.

use std::time::Duration;

use super::{Directive, ErrorFile, Loc, StickTable};

// ---------------------------------------------------------------------------------------------
// other sections
// ---------------------------------------------------------------------------------------------

/// `userlist` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Userlist {
    pub name: String,
    pub loc: Loc,
    pub groups: Vec<UserGroup>,
    pub users: Vec<User>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserGroup {
    pub loc: Loc,
    pub name: String,
    pub users: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub loc: Loc,
    pub name: String,
    pub password: Password,
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Password {
    Insecure(String),
    /// crypt(3) hash.
    Hashed(String),
}

/// A named endpoint used by `peers`, `resolvers`, `mailers`: `<kw> <name> <addr>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub loc: Loc,
    pub name: String,
    pub address: String,
    /// Words after the address (a ring `server`'s `log-proto octet-count`).
    pub params: Vec<String>,
}

/// `peers` section: `peer <name> <addr>` lines, or `server <name> [<addr>]` lines with a
/// `bind <addr>` for the local peer (its `server` line has no address).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Peers {
    pub name: String,
    pub loc: Loc,
    pub peers: Vec<Endpoint>,
    /// `bind <addr>`: where the local peer listens.
    pub bind: Option<Endpoint>,
    /// `disabled`: the section is not run (its tables are local only).
    pub disabled: bool,
    pub tables: Vec<(String, StickTable)>,
    pub other: Vec<Directive>,
}

/// `resolvers` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resolvers {
    pub name: String,
    pub loc: Loc,
    pub nameservers: Vec<Endpoint>,
    pub parse_resolv_conf: bool,
    /// Where `parse-resolv-conf` was written: resolv.conf's nameservers go before
    /// `nameservers[i]` (haproxy lists them in place of the directive).
    pub resolv_conf_at: Option<usize>,
    pub accepted_payload_size: Option<u32>,
    pub resolve_retries: Option<u32>,
    pub hold: Vec<(String, Duration)>,
    pub timeouts: Vec<(String, Duration)>,
    pub other: Vec<Directive>,
}

/// `http-errors` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpErrors {
    pub name: String,
    pub loc: Loc,
    pub errorfiles: Vec<ErrorFile>,
}

/// `ring` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ring {
    pub name: String,
    pub loc: Loc,
    pub size: Option<u64>,
    pub format: Option<String>,
    pub maxlen: Option<u32>,
    pub description: Option<String>,
    pub servers: Vec<Endpoint>,
    pub timeouts: Vec<(String, Duration)>,
}

/// `cache` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cache {
    pub name: String,
    pub loc: Loc,
    /// Megabytes.
    pub total_max_size: Option<u64>,
    pub max_object_size: Option<u64>,
    pub max_age: Option<u32>,
    pub process_vary: Option<bool>,
    pub max_secondary_entries: Option<u32>,
}

/// `program` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Program {
    pub name: String,
    pub loc: Loc,
    pub command: Vec<String>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub start_on_reload: Option<bool>,
}

/// `mailers` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mailers {
    pub name: String,
    pub loc: Loc,
    pub mailers: Vec<Endpoint>,
    pub timeout_mail: Option<Duration>,
}
