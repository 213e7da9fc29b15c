//! Sample fetches: compiled once from the model's `fetch(args)` into [`Fetch`], evaluated
//! against a [`Ctx`] without allocating except where a value is computed (`uuid`, ...).
//!
//! ringlb extensions (haproxy 2.6 has no such fetch): `date_hour` (local hour 0..23) and
//! `date_dow` (local day of week, 0 = Sunday .. 6; an ACL pattern 7 also matches Sunday).

use std::borrow::Cow;
use std::net::IpAddr;

use crate::context::{Ctx, ProxyStat, ScFetch};
use crate::message::{split_list, uri_authority, HttpMessage};
use crate::pattern::MatchKind;
use crate::sample::{parse_ip, Sample};
use crate::time::civil;

/// Which message a header fetch reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Req,
    Res,
    /// `hdr()`, `cook()`...: the request in `http-request` rules, the response in
    /// `http-response` rules ([`crate::Txn::in_response`]); ACLs always use the request.
    Auto,
}

impl Side {
    fn resolve(self, cx: Ctx<'_, '_>) -> Side {
        match self {
            Side::Auto if cx.txn.in_response => Side::Res,
            Side::Auto => Side::Req,
            s => s,
        }
    }
}

/// A compiled sample fetch.
#[derive(Debug, Clone, PartialEq)]
pub enum Fetch {
    Src,
    SrcPort,
    Dst,
    DstPort,
    SrcIsLocal,
    DstIsLocal,
    Method,
    Path,
    Pathq,
    Url,
    Base,
    /// `baseq`: host + path + query.
    Baseq,
    /// `base32`, `url32` (`whole`: path with query), `+src` forms append the address.
    Hash32 {
        whole: bool,
        with_src: bool,
    },
    Query,
    UrlIp,
    UrlPort,
    /// `url_param(name[,delim])`, `urlp`; `int` for `urlp_val`.
    UrlParam {
        name: Option<Box<[u8]>>,
        delim: u8,
        int: bool,
    },
    /// `req.body_param([name])`: a parameter of a url-encoded buffered body (split on `&`
    /// only, no decoding, as HAProxy).
    BodyParam {
        name: Option<Box<[u8]>>,
    },
    /// `hdr`, `req.hdr`, `res.hdr`, `fhdr`, `shdr`... `split`: values split on commas.
    Hdr {
        side: Side,
        name: Option<Box<[u8]>>,
        occ: Option<i32>,
        split: bool,
        conv: HdrConv,
    },
    /// `hdr_cnt`, `req.fhdr_cnt`...
    HdrCnt {
        side: Side,
        name: Option<Box<[u8]>>,
        split: bool,
    },
    /// `req.cook(name)`, `res.cook`, `cook_val`, `cook_cnt`.
    Cook {
        side: Side,
        name: Option<Box<[u8]>>,
        conv: HdrConv,
    },
    CookCnt {
        side: Side,
        name: Option<Box<[u8]>>,
    },
    /// All header lines as text (`req.hdrs`).
    Hdrs,
    Status,
    ReqVer,
    ResVer,
    ReqLen,
    ReqBody,
    ResBody,
    ReqPayload {
        off: usize,
        len: usize,
    },
    /// `res.len`: bytes buffered from the server (`tcp-response content`).
    ResLen,
    ResPayload {
        off: usize,
        len: usize,
    },
    ReqSslSni,
    /// `req.rdp_cookie([name])`: the value of the RDP connection request's `Cookie:` line
    /// (`cnt`: 1 when there is one, for `req.rdp_cookie_cnt`).
    RdpCookie {
        name: Option<Box<[u8]>>,
        cnt: bool,
    },
    /// TLS version of a buffered ClientHello record (`0x0303` style integer).
    ReqSslVer,
    /// Handshake type of the first TLS record (1 = ClientHello).
    ReqSslHelloType,
    ReqProtoHttp,
    WaitEnd,
    Ssl {
        name: Box<str>,
        args: Vec<Box<str>>,
    },
    /// `fc_*`, `bc_*`, `so_*`: routed to [`crate::SampleSource::conn_fetch`].
    Conn {
        name: Box<str>,
        args: Vec<Box<str>>,
    },
    Captured {
        response: bool,
        idx: usize,
    },
    /// `capture.req.method` / `capture.req.uri` / `capture.req.ver`: the request as received.
    ReqLine(u8),
    /// `req.body_len`: the buffered body's length.
    BodyLen,
    /// `req.body_size`: the advertised length (Content-Length), else what is buffered.
    BodySize,
    FeName,
    BeName,
    SrvName,
    ObjId(u8),
    Stat {
        stat: ProxyStat,
        proxy: Option<Box<str>>,
    },
    Sc(ScFetch),
    Uuid,
    Rand(Option<u64>),
    /// `date([offset[,unit]])`: offset already in the unit; `div` converts ms to the unit.
    Date {
        offset: i64,
        unit_us: bool,
        unit_ms: bool,
    },
    DateUs,
    DateHour,
    DateDow,
    Hostname,
    Env(Box<str>),
    Lit(LitSample),
    UniqueId,
    Var(Box<str>),
    Stopping,
    /// `http_auth(ul)` (bool) / `http_auth_group(ul)` (the user name, matched against groups).
    HttpAuth {
        users: Box<crate::auth::Userlist>,
        group: bool,
    },
    HttpAuthUser,
    HttpAuthPass,
    HttpAuthType,
    HttpFirstReq,
}

/// What a fetch reads, which decides where it can serve (haproxy's `SMP_USE_*` classes, reduced
/// to what ringlb's rule stages tell apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// The connection, internal state, or request facts kept for the whole transaction
    /// (method, captures).
    Any,
    /// The request's headers, URI or body: gone once the response is processed.
    RequestHeaders,
    /// The response's status line.
    Response,
    /// The response's headers or body.
    ResponseHeaders,
    /// The headers of the message the rule runs on (`hdr()`, `cook()` in a sample expression).
    EitherHeaders,
    /// The connection to the server (`ssl_bc*`, `ssl_s_*`): there once a server answers.
    ServerConnection,
    /// Raw bytes buffered from the client (layer 6: `req.len`, `req.payload`, `req.ssl_sni`).
    RequestBuffer,
    /// Raw bytes buffered from the server (`res.len`, `res.payload`).
    ResponseBuffer,
    /// The buffer of the direction the rule runs on (`payload()`).
    EitherBuffer,
}

/// Where a sample expression is evaluated: haproxy's check points (`SMP_CKP_*`), as far as
/// ringlb's rules tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// `tcp-request connection`: only the addresses exist.
    TcpConnection,
    /// `tcp-request session`: the addresses and the TLS layer.
    TcpSession,
    /// `tcp-request content`, `use_backend`, `use-server`, stick rules: the request.
    RequestContent,
    /// `http-request`, `redirect`: the request's headers and (ignored on HTTP proxies) its buffer.
    HttpRequest,
    /// `tcp-response content`: the response's buffer.
    ResponseContent,
    /// `http-response`, `http-after-response`: the response.
    HttpResponse,
    /// `unique-id-format`: built from the request.
    UniqueId,
    /// `log-format`, `log-format-sd`, `error-log-format`: the request and response are gone;
    /// what remains is the status, the connections and what was captured.
    Log,
}

impl Needs {
    /// haproxy's name for the data, in its messages.
    pub fn what(self) -> &'static str {
        match self {
            Needs::Any => "anything",
            Needs::RequestHeaders => "HTTP request headers",
            Needs::Response => "HTTP response",
            Needs::ResponseHeaders => "HTTP response headers",
            Needs::EitherHeaders => "HTTP request headers,HTTP response headers",
            Needs::ServerConnection => "server-side connection",
            Needs::RequestBuffer => "request buffer",
            Needs::ResponseBuffer => "response buffer",
            Needs::EitherBuffer => "request buffer,response buffer",
        }
    }

    /// Layer-6 data (raw buffers): haproxy's HTTP proxies see messages, not buffers, and
    /// ignore such fetches with a warning.
    pub fn is_buffer(self) -> bool {
        matches!(
            self,
            Needs::RequestBuffer | Needs::ResponseBuffer | Needs::EitherBuffer
        )
    }

    /// Whether a sample evaluated at `stage` can read it.
    pub fn available(self, stage: Stage) -> bool {
        use Stage as S;
        let request = matches!(stage, S::RequestContent | S::HttpRequest | S::UniqueId);
        let response = matches!(stage, S::ResponseContent | S::HttpResponse);
        match self {
            Needs::Any => true,
            Needs::RequestHeaders | Needs::RequestBuffer => request,
            Needs::Response | Needs::ServerConnection => response || stage == S::Log,
            Needs::ResponseHeaders | Needs::ResponseBuffer => response,
            Needs::EitherHeaders | Needs::EitherBuffer => request || response,
        }
    }
}

impl Fetch {
    /// What this fetch reads (`hdr()` and `cook()` in a sample expression follow the rule's
    /// direction, so they need nothing in particular; ACLs resolve them to the request).
    pub fn needs(&self) -> Needs {
        use Fetch as F;
        match self {
            F::Path
            | F::Pathq
            | F::Url
            | F::Base
            | F::Baseq
            | F::Hash32 { .. }
            | F::Query
            | F::UrlIp
            | F::UrlPort
            | F::UrlParam { .. }
            | F::BodyParam { .. }
            | F::Hdrs
            | F::ReqVer
            | F::ReqBody
            | F::BodyLen
            | F::BodySize
            | F::HttpAuth { .. }
            | F::HttpAuthUser
            | F::HttpAuthPass
            | F::HttpAuthType => Needs::RequestHeaders,
            F::Hdr { side, .. }
            | F::HdrCnt { side, .. }
            | F::Cook { side, .. }
            | F::CookCnt { side, .. } => match side {
                Side::Req => Needs::RequestHeaders,
                Side::Res => Needs::ResponseHeaders,
                Side::Auto => Needs::EitherHeaders,
            },
            F::ResVer | F::ResBody => Needs::ResponseHeaders,
            F::Status => Needs::Response,
            F::ReqLen
            | F::ReqPayload { .. }
            | F::ReqSslSni
            | F::RdpCookie { .. }
            | F::ReqSslVer
            | F::ReqSslHelloType => Needs::RequestBuffer,
            F::ResLen | F::ResPayload { .. } => Needs::ResponseBuffer,
            F::Ssl { name, .. } if name.starts_with("ssl_bc") || name.starts_with("ssl_s_") => {
                Needs::ServerConnection
            }
            _ => Needs::Any,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HdrConv {
    Str,
    Int,
    Ip,
}

/// A constant sample (`str(x)`, `int(5)`, `bool(1)`, `ipv4(...)`, `bin(hex)`).
#[derive(Debug, Clone, PartialEq)]
pub enum LitSample {
    Str(Box<[u8]>),
    Int(i64),
    Bool(bool),
    Ip(IpAddr),
    Bin(Box<[u8]>),
}

/// What the compiler needs from its surroundings to resolve fetch arguments.
pub trait FetchEnv {
    /// The userlist `name` (for `http_auth(name)`).
    fn userlist(&self, name: &str) -> Option<crate::auth::Userlist>;
}

impl FetchEnv for () {
    fn userlist(&self, _: &str) -> Option<crate::auth::Userlist> {
        None
    }
}

fn nargs(name: &str, args: &[String], min: usize, max: usize) -> Result<(), String> {
    if args.len() < min || args.len() > max {
        let want = if min == max {
            format!("{min}")
        } else {
            format!("{min} to {max}")
        };
        return Err(format!(
            "fetch method '{name}' expects {want} argument(s), {} given",
            args.len()
        ));
    }
    Ok(())
}

fn opt_name(args: &[String], i: usize) -> Option<Box<[u8]>> {
    args.get(i)
        .filter(|s| !s.is_empty())
        .map(|s| s.as_bytes().into())
}

fn int_arg(name: &str, a: &str) -> Result<i64, String> {
    a.trim()
        .parse()
        .map_err(|_| format!("fetch method '{name}' : invalid integer argument '{a}'"))
}

/// Parses HAProxy's `sc_<x>(slot[,table])`, `scN_<x>([table])`, `src_<x>([table])` forms.
fn sc_fetch(name: &str, args: &[String]) -> Result<Option<ScFetch>, String> {
    let mk = |what: &str, slot, table: Option<&String>, by_src, idx| ScFetch {
        what: what.into(),
        slot,
        table: table.filter(|t| !t.is_empty()).map(|t| t.as_str().into()),
        idx,
        by_src,
        table_level: false,
    };
    for n in 0u8..3 {
        if let Some(what) = name.strip_prefix(&format!("sc{n}_")) {
            nargs(name, args, 0, 1)?;
            return Ok(Some(mk(what, Some(n), args.first(), false, None)));
        }
    }
    if let Some(what) = name.strip_prefix("sc_") {
        // `sc_get_gpc(idx,slot[,table])` and friends take the array index first.
        let indexed = matches!(
            what,
            "get_gpc" | "get_gpt" | "inc_gpc" | "clr_gpc" | "gpc_rate"
        );
        let (idx, rest) = if indexed {
            let i = args
                .first()
                .ok_or_else(|| format!("fetch method '{name}' expects an index"))?;
            (
                Some(u32::try_from(int_arg(name, i)?).map_err(|_| "bad index".to_string())?),
                args.get(1..).unwrap_or(&[]),
            )
        } else {
            (None, args)
        };
        nargs(name, rest, 1, 2)?;
        let slot = rest
            .first()
            .map(|s| int_arg(name, s))
            .transpose()?
            .and_then(|v| u8::try_from(v).ok())
            .filter(|v| *v < 3)
            .ok_or_else(|| format!("fetch method '{name}' : invalid stick counter number"))?;
        return Ok(Some(mk(what, Some(slot), rest.get(1), false, idx)));
    }
    if let Some(what) = name.strip_prefix("src_") {
        if what != "port" && what != "is_local" {
            nargs(name, args, 0, 1)?;
            return Ok(Some(mk(what, None, args.first(), true, None)));
        }
    }
    if name == "table_avl" || name == "table_cnt" {
        nargs(name, args, 0, 1)?;
        let mut f = mk(&name[6..], None, args.first(), false, None);
        f.table_level = true;
        return Ok(Some(f));
    }
    Ok(None)
}

/// The TLS fetches the engine gives values to (`ssl` in crates/shard's rules source). Any
/// other `ssl_*` name is refused at startup rather than compiled to a fetch that never has a
/// value (`ssl_bc_*`, `ssl_s_*`...).
pub const SSL_SUPPORTED: &[&str] = &[
    "ssl_fc",
    "ssl_fc_sni",
    "ssl_fc_protocol",
    "ssl_fc_cipher",
    "ssl_fc_alpn",
    "ssl_fc_session_reused",
    "ssl_fc_is_resumed",
    "ssl_fc_err",
    "ssl_fc_has_crt",
    "ssl_fc_has_sni",
    "ssl_fc_use_keysize",
    "ssl_fc_alg_keysize",
    "ssl_c_used",
    "ssl_c_verify",
    "ssl_c_err",
    "ssl_c_ca_err",
    "ssl_c_ca_err_depth",
    "ssl_c_s_dn",
    "ssl_c_i_dn",
    "ssl_c_serial",
    "ssl_c_notafter",
    "ssl_c_notbefore",
    "ssl_c_der",
    "ssl_c_sha1",
    "ssl_c_version",
    "ssl_c_sig_alg",
    "ssl_c_key_alg",
    "ssl_c_chain_der",
    "ssl_fc_has_early",
    // Under `tune.ssl.capture-buffer-size` only (no value without it, as haproxy).
    "ssl_fc_cipherlist_bin",
    "ssl_fc_cipherlist_hex",
    "ssl_fc_cipherlist_xxh",
    "ssl_fc_cipherlist_str",
    "ssl_fc_eclist_bin",
    "ssl_f_s_dn",
    "ssl_f_i_dn",
    "ssl_f_serial",
    "ssl_f_notafter",
    "ssl_f_notbefore",
    "ssl_f_der",
    "ssl_f_sha1",
    "ssl_f_version",
    "ssl_f_sig_alg",
    "ssl_f_key_alg",
    // The connection to the server: `http-response` rules and log lines.
    "ssl_bc",
    "ssl_bc_protocol",
    "ssl_bc_cipher",
    "ssl_bc_alpn",
    "ssl_bc_is_resumed",
    "ssl_bc_use_keysize",
    "ssl_bc_alg_keysize",
    "ssl_bc_err",
    "ssl_s_s_dn",
    "ssl_s_i_dn",
    "ssl_s_serial",
    "ssl_s_notafter",
    "ssl_s_notbefore",
    "ssl_s_der",
    "ssl_s_chain_der",
    "ssl_s_sha1",
    "ssl_s_version",
    "ssl_s_sig_alg",
    "ssl_s_key_alg",
];

/// HAProxy TLS fetches rustls cannot give a value to, and why: refused at startup with this
/// reason rather than compiled to a fetch that is never set.
pub const SSL_REFUSED: &[(&str, &str)] = &[
    ("_session_id", "rustls does not expose TLS session ids"),
    (
        "_session_key",
        "rustls does not expose the session master key",
    ),
    (
        "_client_random",
        "rustls does not expose the handshake randoms",
    ),
    (
        "_server_random",
        "rustls does not expose the handshake randoms",
    ),
    (
        "_unique_id",
        "rustls does not expose the Finished message (RFC 5929 tls-unique)",
    ),
    ("_npn", "rustls has no NPN (replaced by ALPN)"),
    (
        "_traffic_secret",
        "rustls exposes traffic secrets only to a key log, not per connection",
    ),
    (
        "_exporter_secret",
        "rustls exposes traffic secrets only to a key log, not per connection",
    ),
    ("_err_str", "OpenSSL error strings do not exist with rustls"),
    (
        "_extlist_bin",
        "rustls does not expose the ClientHello's extension list",
    ),
    (
        "_ecformats_bin",
        "rustls does not expose the ClientHello's point formats",
    ),
    (
        "_protocol_hello_id",
        "rustls does not expose the ClientHello's legacy version",
    ),
];

/// Why a TLS fetch ringlb does not compute cannot be had, in the startup error.
fn ssl_refusal(name: &str) -> String {
    match SSL_REFUSED.iter().find(|(part, _)| name.contains(part)) {
        Some((_, why)) => format!("fetch method '{name}' is not supported by ringlb: {why}"),
        None => format!("fetch method '{name}' is not supported by ringlb yet"),
    }
}

const SSL_BOOL: &[&str] = &[
    "ssl_fc",
    "ssl_bc",
    "ssl_c_used",
    "ssl_fc_has_crt",
    "ssl_fc_has_sni",
    "ssl_fc_has_early",
    "ssl_fc_is_resumed",
    "ssl_bc_is_resumed",
];
const SSL_INT: &[&str] = &[
    "ssl_c_verify",
    "ssl_c_version",
    "ssl_c_ca_err",
    "ssl_c_ca_err_depth",
    "ssl_c_err",
    "ssl_f_version",
    "ssl_s_version",
    "ssl_bc_err",
    "ssl_fc_cipherlist_xxh",
    "ssl_fc_use_keysize",
    "ssl_fc_alg_keysize",
    "ssl_bc_use_keysize",
    "ssl_bc_alg_keysize",
];

impl Fetch {
    /// Compiles `name(args)`. Errors are in HAProxy's words where practical.
    pub fn compile(name: &str, args: &[String], env: &dyn FetchEnv) -> Result<Fetch, String> {
        use Fetch as F;
        let n = |min, max| nargs(name, args, min, max);
        let side = if ["res.", "shdr", "scook"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            Side::Res
        } else if name == "hdr" || name == "cookie" {
            // The only direction-dependent names; `cook`, `hdr_cnt`... are request aliases.
            Side::Auto
        } else {
            Side::Req
        };
        Ok(match name {
            "src" => (n(0, 0)?, F::Src).1,
            "src_port" => (n(0, 0)?, F::SrcPort).1,
            "dst" => (n(0, 0)?, F::Dst).1,
            "dst_port" => (n(0, 0)?, F::DstPort).1,
            "src_is_local" => (n(0, 0)?, F::SrcIsLocal).1,
            "dst_is_local" => (n(0, 0)?, F::DstIsLocal).1,
            "method" | "meth" => (n(0, 0)?, F::Method).1,
            "path" => (n(0, 0)?, F::Path).1,
            "pathq" => (n(0, 0)?, F::Pathq).1,
            "url" => (n(0, 0)?, F::Url).1,
            "base" => (n(0, 0)?, F::Base).1,
            "baseq" => (n(0, 0)?, F::Baseq).1,
            "base32" | "base32+src" | "url32" | "url32+src" => {
                (
                    n(0, 0)?,
                    F::Hash32 {
                        whole: name.starts_with("url"),
                        with_src: name.ends_with("+src"),
                    },
                )
                    .1
            }
            "query" => (n(0, 0)?, F::Query).1,
            "url_ip" => (n(0, 0)?, F::UrlIp).1,
            "url_port" => (n(0, 0)?, F::UrlPort).1,
            "url_param" | "urlp" | "urlp_val" => {
                n(0, 2)?;
                let delim = match args.get(1).map(String::as_bytes) {
                    None | Some(b"") => b'&',
                    Some([d]) => *d,
                    Some(_) => {
                        return Err(format!(
                            "fetch method '{name}' : delimiter must be one character"
                        ))
                    }
                };
                F::UrlParam {
                    name: opt_name(args, 0),
                    delim,
                    int: name == "urlp_val",
                }
            }
            "hdr" | "req.hdr" | "res.hdr" | "shdr" | "req.fhdr" | "res.fhdr" | "fhdr"
            | "hdr_val" | "req.hdr_val" | "res.hdr_val" | "shdr_val" | "hdr_ip" | "req.hdr_ip"
            | "res.hdr_ip" | "shdr_ip" => {
                n(0, 2)?;
                let occ = args
                    .get(1)
                    .map(|o| int_arg(name, o))
                    .transpose()?
                    .map(|o| i32::try_from(o).unwrap_or(i32::MAX));
                let conv = if name.ends_with("_val") {
                    HdrConv::Int
                } else if name.ends_with("_ip") {
                    HdrConv::Ip
                } else {
                    HdrConv::Str
                };
                F::Hdr {
                    side,
                    name: opt_name(args, 0),
                    occ,
                    split: !name.contains("fhdr"),
                    conv,
                }
            }
            "hdr_cnt" | "req.hdr_cnt" | "res.hdr_cnt" | "shdr_cnt" | "req.fhdr_cnt"
            | "res.fhdr_cnt" => {
                n(0, 1)?;
                F::HdrCnt {
                    side,
                    name: opt_name(args, 0),
                    split: !name.contains("fhdr"),
                }
            }
            "cook" | "cookie" | "req.cook" | "res.cook" | "scook" | "cook_val" | "req.cook_val"
            | "res.cook_val" | "scook_val" => {
                n(0, 1)?;
                F::Cook {
                    side,
                    name: opt_name(args, 0),
                    conv: if name.ends_with("_val") {
                        HdrConv::Int
                    } else {
                        HdrConv::Str
                    },
                }
            }
            "cook_cnt" | "req.cook_cnt" | "res.cook_cnt" | "scook_cnt" => {
                n(0, 1)?;
                F::CookCnt {
                    side,
                    name: opt_name(args, 0),
                }
            }
            "req.hdrs" | "hdrs" => (n(0, 0)?, F::Hdrs).1,
            "status" => (n(0, 0)?, F::Status).1,
            "req.ver" | "req_ver" => (n(0, 0)?, F::ReqVer).1,
            "res.ver" | "resp_ver" => (n(0, 0)?, F::ResVer).1,
            "req.len" | "req_len" => (n(0, 0)?, F::ReqLen).1,
            "req.body" => (n(0, 0)?, F::ReqBody).1,
            "res.body" => (n(0, 0)?, F::ResBody).1,
            "req.payload" | "payload" | "res.payload" => {
                n(2, 2)?;
                let off = usize::try_from(int_arg(name, &args[0])?)
                    .map_err(|_| format!("fetch method '{name}' : negative offset"))?;
                let len = usize::try_from(int_arg(name, &args[1])?)
                    .map_err(|_| format!("fetch method '{name}' : negative length"))?;
                if name == "res.payload" {
                    F::ResPayload { off, len }
                } else {
                    F::ReqPayload { off, len }
                }
            }
            "res.len" => (n(0, 0)?, F::ResLen).1,
            "req.ssl_sni" | "req_ssl_sni" => (n(0, 0)?, F::ReqSslSni).1,
            "req.rdp_cookie" | "rdp_cookie" | "req.rdp_cookie_cnt" | "rdp_cookie_cnt" => {
                n(0, 1)?;
                F::RdpCookie {
                    name: opt_name(args, 0),
                    cnt: name.ends_with("_cnt"),
                }
            }
            "req.proto_http" | "req_proto_http" => (n(0, 0)?, F::ReqProtoHttp).1,
            "wait_end" => (n(0, 0)?, F::WaitEnd).1,
            "fe_name" => (n(0, 0)?, F::FeName).1,
            "be_name" => (n(0, 0)?, F::BeName).1,
            "srv_name" => (n(0, 0)?, F::SrvName).1,
            "fe_id" => (n(0, 0)?, F::ObjId(0)).1,
            "be_id" => (n(0, 0)?, F::ObjId(1)).1,
            "srv_id" => (n(0, 0)?, F::ObjId(2)).1,
            "nbsrv" | "be_conn" | "be_conn_free" | "be_sess_rate" | "fe_conn" | "fe_req_rate"
            | "fe_sess_rate" | "queue" | "avg_queue" | "connslots" | "srv_conn" | "srv_queue"
            | "srv_sess_rate" | "srv_is_up" | "dst_conn" => {
                n(0, 1)?;
                let stat = match name {
                    "nbsrv" => ProxyStat::NbSrv,
                    "be_conn" => ProxyStat::BeConn,
                    "be_conn_free" => ProxyStat::BeConnFree,
                    "be_sess_rate" => ProxyStat::BeSessRate,
                    "fe_conn" => ProxyStat::FeConn,
                    "fe_req_rate" => ProxyStat::FeReqRate,
                    "fe_sess_rate" => ProxyStat::FeSessRate,
                    "queue" => ProxyStat::Queue,
                    "avg_queue" => ProxyStat::AvgQueue,
                    "connslots" => ProxyStat::ConnSlots,
                    "srv_conn" => ProxyStat::SrvConn,
                    "srv_queue" => ProxyStat::SrvQueue,
                    "srv_sess_rate" => ProxyStat::SrvSessRate,
                    "srv_is_up" => ProxyStat::SrvIsUp,
                    _ => ProxyStat::DstConn,
                };
                F::Stat {
                    stat,
                    proxy: args.first().map(|s| s.as_str().into()),
                }
            }
            "uuid" => {
                n(0, 1)?;
                if args.first().is_some_and(|v| v != "4") {
                    return Err(format!(
                        "fetch method 'uuid' : unsupported UUID version '{}' (only 4)",
                        args[0]
                    ));
                }
                F::Uuid
            }
            "rand" => {
                n(0, 1)?;
                let r = args
                    .first()
                    .map(|a| int_arg(name, a))
                    .transpose()?
                    .map(|v| u64::try_from(v).unwrap_or(0));
                F::Rand(r)
            }
            "date" => {
                n(0, 2)?;
                let offset = args
                    .first()
                    .filter(|a| !a.is_empty())
                    .map(|a| int_arg(name, a))
                    .transpose()?
                    .unwrap_or(0);
                let unit = args.get(1).map(String::as_str).unwrap_or("s");
                if !["s", "ms", "us"].contains(&unit) {
                    return Err(format!(
                        "fetch method 'date' : unknown unit '{unit}' (s, ms or us)"
                    ));
                }
                F::Date {
                    offset,
                    unit_ms: unit == "ms",
                    unit_us: unit == "us",
                }
            }
            "date_us" => (n(0, 0)?, F::DateUs).1,
            "date_hour" => (n(0, 0)?, F::DateHour).1,
            "date_dow" => (n(0, 0)?, F::DateDow).1,
            "hostname" => (n(0, 0)?, F::Hostname).1,
            "env" => {
                n(1, 1)?;
                F::Env(args[0].as_str().into())
            }
            "str" => {
                n(0, 1)?;
                F::Lit(LitSample::Str(
                    args.first().map_or(&b""[..], |a| a.as_bytes()).into(),
                ))
            }
            "int" => {
                n(1, 1)?;
                F::Lit(LitSample::Int(int_arg(name, &args[0])?))
            }
            "bool" => {
                n(1, 1)?;
                F::Lit(LitSample::Bool(int_arg(name, &args[0])? != 0))
            }
            "ipv4" | "ipv6" => {
                n(1, 1)?;
                let ip = parse_ip(args[0].as_bytes()).ok_or_else(|| {
                    format!("fetch method '{name}' : invalid address '{}'", args[0])
                })?;
                F::Lit(LitSample::Ip(ip))
            }
            "bin" => {
                n(1, 1)?;
                F::Lit(LitSample::Bin(
                    crate::conv::unhex(args[0].as_bytes())
                        .ok_or_else(|| {
                            format!("fetch method 'bin' : invalid hex string '{}'", args[0])
                        })?
                        .into(),
                ))
            }
            "always_true" => (n(0, 0)?, F::Lit(LitSample::Bool(true))).1,
            "always_false" => (n(0, 0)?, F::Lit(LitSample::Bool(false))).1,
            "unique-id" => (n(0, 0)?, F::UniqueId).1,
            "var" => {
                n(1, 2)?;
                crate::conv::check_var_name(&args[0])?;
                F::Var(args[0].as_str().into())
            }
            "stopping" => (n(0, 0)?, F::Stopping).1,
            "http_auth" | "http_auth_group" => {
                n(1, 1)?;
                let ul = env.userlist(&args[0]).ok_or_else(|| {
                    format!(
                        "fetch method '{name}' : unable to find userlist '{}'",
                        args[0]
                    )
                })?;
                F::HttpAuth {
                    users: Box::new(ul),
                    group: name == "http_auth_group",
                }
            }
            "http_auth_user" => (n(0, 0)?, F::HttpAuthUser).1,
            "http_auth_pass" => (n(0, 0)?, F::HttpAuthPass).1,
            "http_auth_type" => (n(0, 0)?, F::HttpAuthType).1,
            "http_first_req" => (n(0, 0)?, F::HttpFirstReq).1,
            "capture.req.hdr" | "capture.res.hdr" => {
                n(1, 1)?;
                F::Captured {
                    response: name.starts_with("capture.res"),
                    idx: usize::try_from(int_arg(name, &args[0])?)
                        .map_err(|_| format!("fetch method '{name}' : negative index"))?,
                }
            }
            "capture.req.method" => (n(0, 0)?, F::ReqLine(0)).1,
            "capture.req.uri" => (n(0, 0)?, F::ReqLine(1)).1,
            "capture.req.ver" => (n(0, 0)?, F::ReqLine(2)).1,
            "req.body_len" => (n(0, 0)?, F::BodyLen).1,
            "req.body_size" => (n(0, 0)?, F::BodySize).1,
            "req.body_param" => {
                n(0, 1)?;
                F::BodyParam {
                    name: opt_name(args, 0),
                }
            }
            "req.ssl_ver" | "req_ssl_ver" => (n(0, 0)?, F::ReqSslVer).1,
            "req.ssl_hello_type" | "req_ssl_hello_type" => (n(0, 0)?, F::ReqSslHelloType).1,
            // Process and stream state the engine owns, routed by name.
            "proc"
            | "thread"
            | "nbproc"
            | "nbthread"
            | "lat_ns_avg"
            | "lat_ns_tot"
            | "cpu_calls"
            | "cpu_ns_avg"
            | "cpu_ns_tot"
            | "quic_enabled"
            | "fe_defbe"
            | "last_rule_file"
            | "last_rule_line"
            | "txn.sess_term_state"
            | "txn.status" => F::Conn {
                name: name.into(),
                args: args.iter().map(|a| a.as_str().into()).collect(),
            },
            _ if ["fc_", "bc_", "so_", "fc.", "bc."]
                .iter()
                .any(|p| name.starts_with(p)) =>
            {
                F::Conn {
                    name: name.into(),
                    args: args.iter().map(|a| a.as_str().into()).collect(),
                }
            }
            _ if name.starts_with("ssl_") => {
                if !SSL_SUPPORTED.contains(&name) {
                    return Err(ssl_refusal(name));
                }
                F::Ssl {
                    name: name.into(),
                    args: args.iter().map(|a| a.as_str().into()).collect(),
                }
            }
            _ => match sc_fetch(name, args)? {
                Some(sc) => F::Sc(sc),
                None => return Err(format!("unknown fetch method '{name}'")),
            },
        })
    }

    /// ACL keywords read the request (`hdr_*` "unambiguously apply to the request").
    pub fn for_acl(mut self) -> Fetch {
        match &mut self {
            Fetch::Hdr { side, .. }
            | Fetch::HdrCnt { side, .. }
            | Fetch::Cook { side, .. }
            | Fetch::CookCnt { side, .. }
                if *side == Side::Auto =>
            {
                *side = Side::Req
            }
            _ => {}
        }
        self
    }

    /// HAProxy's default ACL match method for this fetch's output type.
    pub fn default_match(&self) -> MatchKind {
        use Fetch as F;
        match self {
            F::Src | F::Dst | F::UrlIp => MatchKind::Ip,
            F::Hdr {
                conv: HdrConv::Ip, ..
            } => MatchKind::Ip,
            F::Hdr {
                conv: HdrConv::Int, ..
            }
            | F::Cook {
                conv: HdrConv::Int, ..
            }
            | F::UrlParam { int: true, .. } => MatchKind::Int,
            F::SrcPort
            | F::DstPort
            | F::UrlPort
            | F::HdrCnt { .. }
            | F::CookCnt { .. }
            | F::Status
            | F::ReqLen
            | F::ResLen
            | F::BodyLen
            | F::BodySize
            | F::Stat { .. }
            | F::Sc(_)
            | F::Rand(_)
            | F::Hash32 {
                with_src: false, ..
            }
            | F::ReqSslVer
            | F::ReqSslHelloType
            | F::RdpCookie { cnt: true, .. }
            | F::Date { .. }
            | F::DateUs
            | F::DateHour
            | F::DateDow
            | F::ObjId(_)
            | F::Lit(LitSample::Int(_)) => MatchKind::Int,
            F::SrcIsLocal
            | F::DstIsLocal
            | F::ReqProtoHttp
            | F::WaitEnd
            | F::Stopping
            | F::HttpAuth { group: false, .. }
            | F::HttpFirstReq
            | F::Lit(LitSample::Bool(_)) => MatchKind::Bool,
            F::Lit(LitSample::Ip(_)) => MatchKind::Ip,
            F::Lit(LitSample::Bin(_)) => MatchKind::Bin,
            F::Method => MatchKind::Meth,
            F::Ssl { name, .. } if SSL_BOOL.contains(&&**name) => MatchKind::Bool,
            F::Ssl { name, .. } if SSL_INT.contains(&&**name) => MatchKind::Int,
            F::Ssl { name, .. }
                if name.ends_with("_serial")
                    || name.ends_with("_sha1")
                    || name.ends_with("_bin") =>
            {
                MatchKind::Bin
            }
            F::ReqPayload { .. }
            | F::ResPayload { .. }
            | F::ReqBody
            | F::ResBody
            | F::Hash32 { with_src: true, .. } => MatchKind::Bin,
            _ => MatchKind::Str,
        }
    }

    /// True when an ACL on this fetch tests every value (all occurrences of a header...).
    pub fn is_multi(&self) -> bool {
        matches!(
            self,
            Fetch::Hdr { occ: None, .. }
                | Fetch::Cook { .. }
                | Fetch::UrlParam { .. }
                | Fetch::BodyParam { .. }
        )
    }

    /// Evaluates the fetch as a single sample (the last header occurrence, the first
    /// `url_param`, the last cookie — HAProxy's sample-context choices).
    pub fn eval<'c>(&'c self, cx: Ctx<'c, '_>) -> Option<Sample<'c>> {
        let mut last = None;
        match self {
            // First occurrence: `url_param`, and `cook` without a name.
            Fetch::UrlParam { .. } | Fetch::BodyParam { .. } | Fetch::Cook { name: None, .. } => {
                self.each(cx, &mut |s| {
                    last = Some(s);
                    true
                });
            }
            _ if self.is_multi() => {
                self.each(cx, &mut |s| {
                    last = Some(s);
                    false
                });
            }
            _ => return self.eval_one(cx),
        }
        last
    }

    /// Calls `f` on every value (ACL context) until it returns true; returns whether it did.
    pub fn each<'c>(&'c self, cx: Ctx<'c, '_>, f: &mut dyn FnMut(Sample<'c>) -> bool) -> bool {
        match self {
            Fetch::Hdr {
                side,
                name,
                occ: None,
                split,
                conv,
            } => {
                let Some(m) = msg(cx, *side) else {
                    return false;
                };
                for v in header_values(m, name.as_deref(), *split) {
                    if let Some(s) = conv_hdr(v, *conv) {
                        if f(s) {
                            return true;
                        }
                    }
                }
                false
            }
            Fetch::Cook { side, name, conv } => {
                let Some(m) = msg(cx, *side) else {
                    return false;
                };
                for v in cookies(m, side.resolve(cx), name.as_deref()) {
                    if let Some(s) = conv_hdr(v, *conv) {
                        if f(s) {
                            return true;
                        }
                    }
                }
                false
            }
            Fetch::UrlParam { name, delim, int } => {
                let Some(q) = param_list(cx.txn.req.pathq(), *delim) else {
                    return false;
                };
                for v in url_params(q, name.as_deref(), *delim) {
                    let conv = if *int { HdrConv::Int } else { HdrConv::Str };
                    if let Some(s) = conv_hdr(v, conv) {
                        if f(s) {
                            return true;
                        }
                    }
                }
                false
            }
            Fetch::BodyParam { name } => {
                let Some(body) = cx.src.req_body() else {
                    return false;
                };
                for v in body_params(body, name.as_deref()) {
                    if f(Sample::str(v)) {
                        return true;
                    }
                }
                false
            }
            _ => self.eval_one(cx).is_some_and(f),
        }
    }

    fn eval_one<'c>(&'c self, cx: Ctx<'c, '_>) -> Option<Sample<'c>> {
        use Fetch as F;
        let req = &cx.txn.req;
        Some(match self {
            F::Src => Sample::Ip(cx.src.src()?.ip()),
            F::SrcPort => Sample::Int(i64::from(cx.src.src()?.port())),
            F::Dst => Sample::Ip(cx.src.dst()?.ip()),
            F::DstPort => Sample::Int(i64::from(cx.src.dst()?.port())),
            F::SrcIsLocal => Sample::Bool(is_local(cx.src.src()?.ip())),
            F::DstIsLocal => Sample::Bool(is_local(cx.src.dst()?.ip())),
            F::Method => Sample::str(&req.method),
            F::Path => Sample::str(req.path()),
            F::Pathq => Sample::str(req.pathq()),
            F::Url => Sample::str(&req.uri),
            F::Query => Sample::str(req.query()?),
            F::Base | F::Baseq => {
                // Host header + path (+ query): computed, so it allocates.
                let host = req.full_values(b"host").next().unwrap_or(b"");
                let tail = if matches!(self, F::Base) {
                    req.path()
                } else {
                    req.pathq()
                };
                let mut v = Vec::with_capacity(host.len() + tail.len());
                v.extend_from_slice(host);
                v.extend_from_slice(tail);
                Sample::owned(v)
            }
            F::Hash32 { whole, with_src } => {
                // HAProxy: SDBM over the first Host then the path (url32: the whole target),
                // with full avalanche.
                let host = req.full_values(b"host").next().unwrap_or(b"");
                let tail: &[u8] = if *whole { &req.uri } else { req.path() };
                let h = ringlb_balance::hash::full_hash(sdbm_feed(sdbm_feed(0, host), tail));
                if !*with_src {
                    return Some(Sample::Int(i64::from(h)));
                }
                // Binary key: the hash (network order) then the source address (allocates).
                let mut v = h.to_be_bytes().to_vec();
                match cx.src.src()?.ip() {
                    IpAddr::V4(a) => v.extend_from_slice(&a.octets()),
                    IpAddr::V6(a) => v.extend_from_slice(&a.octets()),
                }
                Sample::Bin(Cow::Owned(v))
            }
            F::UrlIp => {
                let a = uri_authority(&req.uri)?;
                let h = a.rsplit(|&c| c == b'@').next().unwrap_or(a);
                let host = h.split(|&c| c == b':').next().unwrap_or(h);
                Sample::Ip(parse_ip(host)?)
            }
            F::UrlPort => {
                let a = uri_authority(&req.uri)?;
                let port = match a.iter().rposition(|&c| c == b':') {
                    Some(i) => crate::sample::read_int(a.get(i + 1..)?)?,
                    None => 80,
                };
                Sample::Int(port)
            }
            F::Hdr {
                side,
                name,
                occ: Some(occ),
                split,
                conv,
            } => {
                let m = msg(cx, *side)?;
                let v = nth_value(m, name.as_deref(), *split, *occ)?;
                conv_hdr(v, *conv)?
            }
            F::Hdr { .. } | F::Cook { .. } | F::UrlParam { .. } | F::BodyParam { .. } => {
                return self.eval(cx)
            }
            F::HdrCnt { side, name, split } => {
                let m = msg(cx, *side)?;
                Sample::Int(header_values(m, name.as_deref(), *split).count() as i64)
            }
            F::CookCnt { side, name } => {
                let m = msg(cx, *side)?;
                Sample::Int(cookies(m, side.resolve(cx), name.as_deref()).count() as i64)
            }
            F::Hdrs => {
                // Whole header block as text: computed, allocates.
                let mut v = Vec::new();
                for (n, val) in &req.headers {
                    v.extend_from_slice(n);
                    v.extend_from_slice(b": ");
                    v.extend_from_slice(val);
                    v.extend_from_slice(b"\r\n");
                }
                Sample::owned(v)
            }
            F::Status => Sample::Int(i64::from(cx.txn.res.as_ref()?.status)),
            F::ReqVer => Sample::str(version_number(&req.version)),
            F::ResVer => Sample::str(version_number(&cx.txn.res.as_ref()?.version)),
            F::ReqLen => Sample::Int({
                payload_read(cx);
                cx.src
                    .req_payload()
                    .or_else(|| cx.src.req_body())
                    .map_or(0, |b| b.len() as i64)
            }),
            F::ReqBody => Sample::Bin(Cow::Borrowed(cx.src.req_body()?)),
            F::ResBody => Sample::Bin(Cow::Borrowed(cx.src.res_body()?)),
            F::ReqPayload { off, len } => {
                // As haproxy: only a too short payload may still change the answer.
                let p = cx.src.req_payload();
                let end = if *len == 0 {
                    p.map_or(usize::MAX, <[u8]>::len)
                } else {
                    off.checked_add(*len)?
                };
                match p.and_then(|p| p.get(*off..end)) {
                    Some(v) if *len != 0 => Sample::Bin(Cow::Borrowed(v)),
                    v => {
                        payload_read(cx);
                        Sample::Bin(Cow::Borrowed(v?))
                    }
                }
            }
            // The response side waits like the request side (`Txn::payload_final`).
            F::ResLen => Sample::Int({
                payload_read(cx);
                cx.src.res_payload().map_or(0, |b| b.len() as i64)
            }),
            F::ResPayload { off, len } => {
                // As haproxy: only a too short payload may still change the answer.
                let p = cx.src.res_payload();
                let end = if *len == 0 {
                    p.map_or(usize::MAX, <[u8]>::len)
                } else {
                    off.checked_add(*len)?
                };
                match p.and_then(|p| p.get(*off..end)) {
                    Some(v) if *len != 0 => Sample::Bin(Cow::Borrowed(v)),
                    v => {
                        payload_read(cx);
                        Sample::Bin(Cow::Borrowed(v?))
                    }
                }
            }
            F::RdpCookie { name, cnt } => {
                payload_read(cx);
                let v = crate::rdp::rdp_cookie(cx.src.req_payload()?, name.as_deref());
                if *cnt {
                    Sample::Int(i64::from(v.is_some()))
                } else {
                    Sample::str(v?)
                }
            }
            F::ReqSslSni => Sample::str({
                payload_read(cx);
                crate::tls::client_hello_sni(cx.src.req_payload()?)?
            }),
            F::ReqSslVer => {
                payload_read(cx);
                Sample::Int(i64::from(crate::tls::record_version(
                    cx.src.req_payload()?,
                )?))
            }
            F::ReqSslHelloType => {
                payload_read(cx);
                Sample::Int(i64::from(crate::tls::hello_type(cx.src.req_payload()?)?))
            }
            F::ReqProtoHttp => Sample::Bool(cx.src.is_http()),
            // `wait_end`: true only once the inspect-delay is over.
            F::WaitEnd if !cx.txn.payload_final => {
                cx.txn.payload_may_change.set(true);
                return None;
            }
            F::WaitEnd => Sample::Bool(true),
            F::Ssl { name, args } => cx.src.ssl(name, args)?,
            F::Conn { name, args } => cx.src.conn_fetch(name, args)?,
            F::Captured { response, idx } => Sample::str(cx.src.captured(*response, *idx)?),
            F::ReqLine(0) => Sample::str(&req.method),
            F::ReqLine(1) => Sample::str(&req.uri),
            F::ReqLine(_) => Sample::str(&req.version),
            F::BodyLen => Sample::Int(cx.src.req_body().map_or(0, |b| b.len() as i64)),
            F::BodySize => {
                let advertised = req
                    .full_values(b"content-length")
                    .next()
                    .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<i64>().ok());
                match advertised {
                    Some(n) => Sample::Int(n),
                    None => Sample::Int(cx.src.req_body().map_or(0, |b| b.len() as i64)),
                }
            }
            F::FeName => Sample::str(cx.src.frontend_name()?.as_bytes()),
            F::BeName => Sample::str(cx.src.backend_name()?.as_bytes()),
            F::SrvName => Sample::str(cx.src.server_name()?.as_bytes()),
            F::ObjId(w) => Sample::Int(cx.src.object_id(*w)?),
            F::Stat { stat, proxy } => Sample::Int(cx.src.proxy_stat(*stat, proxy.as_deref())?),
            F::Sc(sc) => {
                let key = if sc.by_src {
                    Some(cx.src.src()?.ip())
                } else {
                    None
                };
                cx.src.sc(sc, key)?
            }
            F::Uuid => Sample::owned(uuid_v4(cx.src.random_u64(), cx.src.random_u64())),
            F::Rand(range) => {
                let r = cx.src.random_u64() >> 32;
                Sample::Int(match range {
                    Some(n) if *n > 0 => ((r * *n) >> 32) as i64,
                    _ => r as i64,
                })
            }
            F::Date {
                offset,
                unit_ms,
                unit_us,
            } => {
                let ms = cx.src.now_ms();
                Sample::Int(if *unit_us {
                    ms.saturating_mul(1000).saturating_add(*offset)
                } else if *unit_ms {
                    ms.saturating_add(*offset)
                } else {
                    ms.div_euclid(1000).saturating_add(*offset)
                })
            }
            F::DateUs => Sample::Int(cx.src.now_ms().rem_euclid(1000) * 1000),
            F::DateHour => {
                let t = local_secs(cx);
                Sample::Int(t.rem_euclid(86_400) / 3600)
            }
            F::DateDow => Sample::Int(civil(local_secs(cx)).weekday as i64),
            F::Hostname => Sample::str(cx.src.hostname()),
            F::Env(n) => Sample::str(cx.src.env(n)?),
            F::Lit(l) => match l {
                LitSample::Str(s) => Sample::str(s),
                LitSample::Int(i) => Sample::Int(*i),
                LitSample::Bool(b) => Sample::Bool(*b),
                LitSample::Ip(ip) => Sample::Ip(*ip),
                LitSample::Bin(b) => Sample::Bin(Cow::Borrowed(b)),
            },
            F::UniqueId => Sample::str(cx.src.unique_id()?),
            F::Var(name) => get_var(cx, name)?,
            F::Stopping => Sample::Bool(false),
            F::HttpAuth { users, group } => {
                let u = users.check_request(cx.src, req, cx.txn.proxy_auth);
                if *group {
                    Sample::str(&u?.name)
                } else {
                    Sample::Bool(u.is_some())
                }
            }
            F::HttpAuthUser => {
                Sample::owned(crate::auth::basic_credentials(req, cx.txn.proxy_auth)?.0)
            }
            F::HttpAuthPass => {
                Sample::owned(crate::auth::basic_credentials(req, cx.txn.proxy_auth)?.1)
            }
            F::HttpAuthType => {
                // haproxy 2.6 (recorded): `Basic` whatever its case, nothing for `Digest`
                // (unsupported) or no header, any other scheme as sent.
                let header = crate::auth::credentials_header(cx.txn.proxy_auth);
                let v = req.full_values(header).next()?.trim_ascii();
                let scheme = v.split(|&c| c == b' ').next()?;
                if scheme.eq_ignore_ascii_case(b"basic") {
                    Sample::str(b"Basic")
                } else if scheme.eq_ignore_ascii_case(b"digest") || scheme.is_empty() {
                    return None;
                } else {
                    Sample::str(scheme)
                }
            }
            F::HttpFirstReq => Sample::Bool(
                cx.src
                    .log_value(crate::logformat::LogVar::Rt)
                    .as_int()
                    .is_none_or(|n| n <= 1),
            ),
        })
    }
}

/// Reads a variable: transaction scopes from the [`crate::Txn`], others from the engine.
pub(crate) fn get_var<'c>(cx: Ctx<'c, '_>, name: &str) -> Option<Sample<'c>> {
    if name.starts_with("proc.") || name.starts_with("sess.") {
        cx.src.outer_var(name)
    } else {
        cx.txn.vars.get(name).map(Sample::reborrow)
    }
}

fn local_secs(cx: Ctx<'_, '_>) -> i64 {
    cx.src
        .now_ms()
        .div_euclid(1000)
        .saturating_add(i64::from(cx.src.utc_offset_secs()))
}

fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback() || crate::sample::as_v4(ip).is_some_and(|v| v.is_loopback())
}

fn msg<'c>(cx: Ctx<'c, '_>, side: Side) -> Option<&'c HttpMessage<'c>> {
    match side.resolve(cx) {
        Side::Res => cx.txn.res.as_ref(),
        _ => Some(&cx.txn.req),
    }
}

fn version_number(v: &[u8]) -> &[u8] {
    v.strip_prefix(b"HTTP/").unwrap_or(v)
}

fn conv_hdr(v: &[u8], conv: HdrConv) -> Option<Sample<'_>> {
    Some(match conv {
        HdrConv::Str => Sample::str(v),
        HdrConv::Int => Sample::Int(crate::sample::read_int(v)?),
        HdrConv::Ip => Sample::Ip(parse_ip(v)?),
    })
}

/// Header values by name (all headers' full lines when `name` is `None`).
fn header_values<'m>(
    m: &'m HttpMessage<'_>,
    name: Option<&'m [u8]>,
    split: bool,
) -> impl Iterator<Item = &'m [u8]> + 'm {
    // No allocation: each line yields its comma-separated values or itself.
    m.headers
        .iter()
        .filter(move |(n, _)| name.is_none_or(|x| n.eq_ignore_ascii_case(x)))
        .flat_map(move |(_, v)| {
            let v: &'m [u8] = v;
            let mut whole = (!split).then_some(v);
            let mut parts = split.then(|| split_list(v));
            std::iter::from_fn(move || match &mut parts {
                Some(p) => p.next(),
                None => whole.take(),
            })
        })
}

/// Occurrence `occ` (1-based from the first, negative from the last; 0 = last).
fn nth_value<'m>(
    m: &'m HttpMessage<'_>,
    name: Option<&'m [u8]>,
    split: bool,
    occ: i32,
) -> Option<&'m [u8]> {
    if occ > 0 {
        header_values(m, name, split).nth(usize::try_from(occ - 1).ok()?)
    } else {
        // Two passes instead of collecting (no allocation).
        let total = header_values(m, name, split).count();
        let back = usize::try_from(occ.unsigned_abs().max(1)).ok()?;
        header_values(m, name, split).nth(total.checked_sub(back)?)
    }
}

/// Cookie values named `name` (every cookie's value when `None`) from `Cookie` request
/// headers or `Set-Cookie` response headers (only the first `name=value` of each).
fn cookies<'m>(
    m: &'m HttpMessage<'_>,
    side: Side,
    name: Option<&'m [u8]>,
) -> impl Iterator<Item = &'m [u8]> + 'm {
    let hdr: &'static [u8] = match side {
        Side::Res => b"set-cookie",
        _ => b"cookie",
    };
    m.full_values(hdr)
        .flat_map(move |line| {
            let res = side == Side::Res;
            line.split(move |&c| c == b';' || (!res && c == b','))
                .take(if res { 1 } else { usize::MAX })
        })
        .filter_map(move |kv| {
            let kv = kv.trim_ascii();
            let eq = kv.iter().position(|&c| c == b'=')?;
            let (k, v) = (kv.get(..eq)?.trim_ascii(), kv.get(eq + 1..)?.trim_ascii());
            if name.is_none_or(|n| n == k) {
                Some(v)
            } else {
                None
            }
        })
}

/// The parameter list: after the first `?` or `delim` (HAProxy's `find_param_list`).
fn param_list(pathq: &[u8], delim: u8) -> Option<&[u8]> {
    let i = pathq.iter().position(|&c| c == b'?' || c == delim)?;
    pathq.get(i + 1..)
}

/// Values of query parameter `name` (all values when `None`); parameters end at `&`, `;`
/// or `delim`.
fn url_params<'q>(
    q: &'q [u8],
    name: Option<&'q [u8]>,
    delim: u8,
) -> impl Iterator<Item = &'q [u8]> + 'q {
    let q = q.split(|&c| c == b'#').next().unwrap_or(q);
    q.split(move |&c| c == delim || c == b'&' || c == b';')
        .filter_map(move |kv| {
            let (k, v) = match kv.iter().position(|&c| c == b'=') {
                Some(i) => (kv.get(..i)?, kv.get(i + 1..)?),
                None => (kv, &b""[..]),
            };
            if kv.is_empty() {
                return None;
            }
            if name.is_none_or(|n| n == k) {
                Some(v)
            } else {
                None
            }
        })
}

/// Values of body parameter `name` (all when `None`): `&`-separated `name=value` pairs of a
/// url-encoded body, as HAProxy's `req.body_param` reads them (no `;`, no `#`, no decoding).
fn body_params<'q>(body: &'q [u8], name: Option<&'q [u8]>) -> impl Iterator<Item = &'q [u8]> + 'q {
    body.split(|&c| c == b'&').filter_map(move |kv| {
        if kv.is_empty() {
            return None;
        }
        let (k, v) = match kv.iter().position(|&c| c == b'=') {
            Some(i) => (kv.get(..i)?, kv.get(i + 1..)?),
            None => (kv, &b""[..]),
        };
        name.is_none_or(|n| n == k).then_some(v)
    })
}

/// Streaming SDBM (HAProxy's `hash_sdbm` fed piece by piece).
fn sdbm_feed(mut h: u32, bytes: &[u8]) -> u32 {
    for &c in bytes {
        h = u32::from(c)
            .wrapping_add(h << 6)
            .wrapping_add(h << 16)
            .wrapping_sub(h);
    }
    h
}

/// A version-4 UUID from 128 random bits, lowercase hex with dashes (36 bytes, allocates).
pub(crate) fn uuid_v4(a: u64, b: u64) -> Vec<u8> {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_be_bytes());
    bytes[8..].copy_from_slice(&b.to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut out = Vec::with_capacity(36);
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push(b'-');
        }
        out.push(HEX[usize::from(byte >> 4)]);
        out.push(HEX[usize::from(byte & 0xf)]);
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `base` is host+path; exposed for `redirect prefix`.
pub(crate) fn host_of<'m>(m: &'m HttpMessage<'_>) -> Option<&'m [u8]> {
    m.full_values(b"host")
        .next()
        .or_else(|| uri_authority(&m.uri))
}

/// Notes that a condition read the request payload while more of it may still arrive.
fn payload_read(cx: Ctx<'_, '_>) {
    if !cx.txn.payload_final {
        cx.txn.payload_may_change.set(true);
    }
}
