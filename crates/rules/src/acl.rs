//! ACLs and conditions: compiled from the model, evaluated per request.
//!
//! A proxy's ACLs live in one [`AclSet`] arena; conditions refer to them by index, so the
//! compiled rules of a proxy are plain immutable data shared read-only by all shards.

use std::collections::HashMap;

use ringlb_config::model::{Acl, AclFlags, AclRef, Condition, Loc, SampleExpr};

use crate::context::Ctx;
use crate::error::CompileError;
use crate::expr::Expr;
use crate::fetch::{Fetch, FetchEnv};
use crate::pattern::{MatchKind, Patterns};
use crate::sample::Sample;

/// One compiled `acl` line (or anonymous `{ }` ACL).
#[derive(Debug, Clone)]
pub struct CompiledAcl {
    pub name: String,
    /// The ACL keyword as written (`path_beg`, `req.hdr`), for messages.
    pub keyword: Box<str>,
    pub expr: Expr,
    pub pats: Patterns,
    /// How the patterns were built when some came from `-f` files (HAProxy's pattern
    /// references, which `add acl`, `del acl` and `clear acl` change at run time).
    pub source: Option<Box<AclSource>>,
}

/// The inputs of an ACL's patterns, kept to rebuild them with new file contents.
#[derive(Debug, Clone)]
pub struct AclSource {
    kind: MatchKind,
    ignore_case: bool,
    operator: Option<String>,
    inline: Vec<String>,
    /// Each `-f` file as written, with the patterns read from it at start.
    pub files: Vec<(Box<str>, Vec<String>)>,
}

impl CompiledAcl {
    /// The patterns with the files' entries replaced by `live(file)` where it returns some
    /// (the runtime socket's version of that file). Built on the shard that uses it.
    pub fn rebuild(&self, live: &dyn Fn(&str) -> Option<Vec<String>>) -> Result<Patterns, String> {
        let Some(src) = &self.source else {
            return Ok(self.pats.clone());
        };
        let mut pats = Patterns::compile(
            src.kind,
            src.ignore_case,
            src.operator.as_deref(),
            &src.inline,
        )?;
        for (file, loaded) in &src.files {
            let lines = live(file).unwrap_or_else(|| loaded.clone());
            for line in &lines {
                pats.add(line, src.operator.as_deref())?;
            }
        }
        pats.seal();
        Ok(pats)
    }

    /// True when some value of the sample matches some pattern.
    pub fn matches(&self, cx: Ctx<'_, '_>) -> bool {
        let live = match self.source {
            Some(_) => cx.src.live_acl(self),
            None => None,
        };
        let pats = live.as_deref().unwrap_or(&self.pats);
        let kind = pats.kind;
        if pats.is_empty() && !matches!(kind, MatchKind::Found | MatchKind::Bool) {
            // An ACL without patterns never matches (HAProxy warns about it).
            return false;
        }
        if let Fetch::HttpAuth { group: true, users } = &self.expr.fetch {
            // The sample is the user name; patterns are group names.
            let Some(Sample::Str(user)) = self.expr.eval(cx) else {
                return false;
            };
            let Some(u) = users.users.iter().find(|u| *u.name == *user) else {
                return false;
            };
            return u
                .groups
                .iter()
                .any(|g| pats.matches(&Sample::str(g.as_bytes())));
        }
        let dow = matches!(self.expr.fetch, Fetch::DateDow) && self.expr.convs.is_empty();
        self.expr.each(cx, &mut |s| {
            if pats.matches(&s) {
                return true;
            }
            // ringlb extension: `date_dow` pattern 7 is Sunday too.
            dow && s == Sample::Int(0) && pats.matches(&Sample::Int(7))
        })
    }
}

/// The ACL arena of one proxy.
#[derive(Debug, Clone, Default)]
pub struct AclSet {
    pub acls: Vec<CompiledAcl>,
}

/// A compiled `if`/`unless` condition: OR of ANDs of (negated?) references to ACL groups (a
/// named ACL declared on several lines is the OR of its lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond {
    pub unless: bool,
    pub terms: Vec<Vec<CondTerm>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CondTerm {
    pub negate: bool,
    /// Indexes into the [`AclSet`]; the term holds when any of them matches.
    pub acls: Vec<usize>,
}

impl Cond {
    /// Evaluates the condition (`None` condition = always true, see [`cond_holds`]).
    pub fn eval(&self, set: &AclSet, cx: Ctx<'_, '_>) -> bool {
        let any = self.terms.iter().any(|and| {
            and.iter().all(|t| {
                let m = t
                    .acls
                    .iter()
                    .any(|&i| set.acls.get(i).is_some_and(|a| a.matches(cx)));
                m != t.negate
            })
        });
        // `if` with no terms: HAProxy treats an empty condition as true.
        let v = any || self.terms.is_empty();
        v != self.unless
    }
}

/// True when there is no condition or it holds.
pub fn cond_holds(c: Option<&Cond>, set: &AclSet, cx: Ctx<'_, '_>) -> bool {
    c.is_none_or(|c| c.eval(set, cx))
}

/// Compiles one ACL line.
pub fn compile_acl(acl: &Acl, env: &dyn FetchEnv) -> Result<CompiledAcl, CompileError> {
    let err = |m: String| {
        CompileError::new(
            &acl.loc,
            "acl",
            if acl.name.is_empty() {
                format!("error detected while parsing anonymous ACL : {m}.")
            } else {
                format!("error detected while parsing ACL '{}' : {m}.", acl.name)
            },
        )
    };
    let (expr, suffix_kind) = acl_expr(&acl.sample, env).map_err(&err)?;
    let flags: &AclFlags = &acl.flags;
    if flags.match_method.is_none()
        && suffix_kind.is_none()
        && expr.convs.is_empty()
        && matches!(expr.fetch, Fetch::Var(_))
    {
        return Err(err(
            "matching method must be specified first (using '-m') when using a sample fetch of this type ('var')".into(),
        ));
    }
    let kind = match &flags.match_method {
        Some(m) => {
            MatchKind::parse(m).ok_or_else(|| err(format!("unknown matching method '{m}'")))?
        }
        None => suffix_kind.unwrap_or_else(|| {
            if expr.convs.is_empty() {
                expr.fetch.default_match()
            } else {
                conv_output_match(&expr)
            }
        }),
    };
    let mut pats = Patterns::compile(
        kind,
        flags.ignore_case,
        acl.operator.as_deref(),
        &acl.patterns,
    )
    .map_err(&err)?;
    let mut files = Vec::new();
    for f in &flags.files {
        let text = std::fs::read(f)
            .map_err(|_| err(format!("failed to open pattern file <{}>", f.display())))?;
        let mut loaded = Vec::new();
        for (n, line) in String::from_utf8_lossy(&text).lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // `-M`: the file is a map; the key is its first word.
            let p = if flags.map {
                line.split_whitespace().next().unwrap_or(line)
            } else {
                line
            };
            pats.add(p, acl.operator.as_deref())
                .map_err(|e| err(format!("file <{}> line {} : {e}", f.display(), n + 1)))?;
            loaded.push(p.to_string());
        }
        files.push((Box::from(f.display().to_string()), loaded));
    }
    pats.seal();
    let source = (!files.is_empty()).then(|| {
        Box::new(AclSource {
            kind,
            ignore_case: flags.ignore_case,
            operator: acl.operator.clone(),
            inline: acl.patterns.clone(),
            files,
        })
    });
    Ok(CompiledAcl {
        name: acl.name.clone(),
        keyword: acl.sample.fetch.as_str().into(),
        expr,
        pats,
        source,
    })
}

/// Match method implied by the last converter's output.
fn conv_output_match(e: &Expr) -> MatchKind {
    use crate::conv::Conv as C;
    match e.convs.last() {
        Some(
            C::Len
            | C::Arith(..)
            | C::Neg
            | C::Cpl
            | C::Hex2i
            | C::Djb2(_)
            | C::Sdbm(_)
            | C::Wt6(_)
            | C::Crc32(_)
            | C::PortOnly,
        ) => MatchKind::Int,
        Some(C::Bool | C::Not | C::Even | C::Odd) => MatchKind::Bool,
        Some(C::IpMask { .. }) => MatchKind::Ip,
        Some(C::Table(_)) => MatchKind::Int,
        Some(C::Bytes { .. } | C::B64Dec | C::Ub64Dec) => MatchKind::Bin,
        _ => MatchKind::Str,
    }
}

/// Resolves an ACL criterion: a fetch, or a derived keyword `<fetch>_<match>` (`path_beg`).
fn acl_expr(s: &SampleExpr, env: &dyn FetchEnv) -> Result<(Expr, Option<MatchKind>), String> {
    match Expr::compile(s, env) {
        Ok(mut e) => {
            e.fetch = e.fetch.for_acl();
            Ok((e, None))
        }
        Err(first) => {
            let Some((base, suffix)) = s.fetch.rsplit_once('_') else {
                return Err(first);
            };
            let Some(kind) = MatchKind::from_suffix(suffix) else {
                return Err(first);
            };
            let base_expr = SampleExpr {
                fetch: base.to_string(),
                args: s.args.clone(),
                converters: s.converters.clone(),
            };
            match Expr::compile(&base_expr, env) {
                Ok(mut e) => {
                    e.fetch = e.fetch.for_acl();
                    Ok((e, Some(kind)))
                }
                Err(_) => Err(first),
            }
        }
    }
}

/// Predefined ACLs (configuration.txt 7.4) as ACL bodies.
pub const PREDEFINED: &[(&str, &str)] = &[
    ("FALSE", "always_false"),
    ("HTTP", "req.proto_http"),
    ("HTTP_1.0", "req.ver 1.0"),
    ("HTTP_1.1", "req.ver 1.1"),
    ("HTTP_2.0", "req.ver 2.0"),
    ("HTTP_CONTENT", "req.hdr_val(content-length) gt 0"),
    ("HTTP_URL_ABS", "url_reg ^[^/:]*://"),
    ("HTTP_URL_SLASH", "url_beg /"),
    ("HTTP_URL_STAR", "url *"),
    ("LOCALHOST", "src 127.0.0.1/8 ::1"),
    ("METH_CONNECT", "method CONNECT"),
    ("METH_DELETE", "method DELETE"),
    ("METH_GET", "method GET HEAD"),
    ("METH_HEAD", "method HEAD"),
    ("METH_OPTIONS", "method OPTIONS"),
    ("METH_POST", "method POST"),
    ("METH_PUT", "method PUT"),
    ("METH_TRACE", "method TRACE"),
    ("RDP_COOKIE", "req.rdp_cookie_cnt gt 0"),
    ("REQ_CONTENT", "req.len gt 0"),
    ("TRUE", "always_true"),
    ("WAIT_END", "wait_end"),
];

/// Builds the model ACL of a predefined name (`criterion [op] patterns`).
fn predefined_acl(name: &str, body: &str) -> Acl {
    let mut words = body.split(' ');
    let crit = words.next().unwrap_or("");
    let (fetch, args) = match crit.split_once('(') {
        Some((f, a)) => (f.to_string(), vec![a.trim_end_matches(')').to_string()]),
        None => (crit.to_string(), Vec::new()),
    };
    let mut rest: Vec<String> = words.map(str::to_string).collect();
    let operator = match rest.first().map(String::as_str) {
        Some("gt" | "ge" | "lt" | "le" | "eq") => Some(rest.remove(0)),
        _ => None,
    };
    Acl {
        name: name.to_string(),
        loc: Loc::default(),
        sample: SampleExpr {
            fetch,
            args,
            converters: Vec::new(),
        },
        flags: AclFlags::default(),
        operator,
        patterns: rest,
    }
}

/// Compiles a proxy's ACLs and the conditions that use them.
pub struct Compiler<'e> {
    env: &'e dyn FetchEnv,
    set: AclSet,
    named: HashMap<String, Vec<usize>>,
    /// The kind of rule whose conditions are being compiled (see [`Compiler::set_context`]).
    context: Option<RuleContext>,
    /// Warnings about conditions that can never match, as haproxy gives them.
    warnings: Vec<CompileError>,
    /// The proxy's name when it is in HTTP mode: its layer-6 fetches are ignored, with
    /// haproxy's post-parse warning ([`Compiler::take_proxy_warnings`]).
    http_proxy: Option<String>,
    proxy_warnings: Vec<CompileError>,
    /// Warnings about log-format strings, found while compiling actions (which borrow the
    /// compiler shared).
    format_warnings: std::cell::RefCell<Vec<CompileError>>,
}

/// Where a rule's conditions are evaluated, and haproxy's name for such a rule
/// (`frontend http-response header rule`).
#[derive(Debug, Clone)]
pub struct RuleContext {
    pub stage: crate::fetch::Stage,
    pub label: String,
    /// The directive a TCP rule's warning names (`tcp-request content`): haproxy says "will
    /// never match in 'tcp-request content' because ...".
    pub directive: Option<&'static str>,
}

impl std::fmt::Debug for Compiler<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiler")
            .field("acls", &self.set.acls.len())
            .finish()
    }
}

impl<'e> Compiler<'e> {
    pub fn new(env: &'e dyn FetchEnv) -> Compiler<'e> {
        Compiler {
            env,
            set: AclSet::default(),
            named: HashMap::new(),
            context: None,
            warnings: Vec::new(),
            http_proxy: None,
            proxy_warnings: Vec::new(),
            format_warnings: std::cell::RefCell::new(Vec::new()),
        }
    }

    /// The rule kind the next conditions belong to (`None`: no availability check). An ACL
    /// reading what that rule cannot see never matches, with haproxy's warning.
    pub fn set_context(&mut self, context: Option<RuleContext>) {
        self.context = context;
    }

    /// Names the proxy whose conditions are compiled when it runs in HTTP mode (`None`: TCP).
    pub fn set_http_proxy(&mut self, name: Option<&str>) {
        self.http_proxy = name.map(str::to_string);
    }

    /// The stage of the current rule kind, if it is checked.
    pub fn stage(&self) -> Option<crate::fetch::Stage> {
        self.context.as_ref().map(|c| c.stage)
    }

    /// Whether a sample expression of the current rule kind can read what it needs.
    pub fn can_read(&self, e: &crate::expr::Expr) -> bool {
        self.context
            .as_ref()
            .is_none_or(|ctx| e.needs().available(ctx.stage))
    }

    /// Checks a log-format string of the current rule kind ([`LogFormat::check_stage`]);
    /// its warning is kept with the others.
    pub fn check_format(
        &self,
        f: &crate::LogFormat,
        loc: &Loc,
        kw: &str,
    ) -> Result<(), CompileError> {
        let Some(stage) = self.stage() else {
            return Ok(());
        };
        let warning = f
            .check_stage(stage)
            .map_err(|e| CompileError::new(loc, kw, e))?;
        if let Some(w) = warning {
            self.format_warnings
                .borrow_mut()
                .push(CompileError::new(loc, kw, w));
        }
        Ok(())
    }

    /// The warnings gathered so far.
    pub fn take_warnings(&mut self) -> Vec<CompileError> {
        let mut all = std::mem::take(&mut self.warnings);
        all.append(self.format_warnings.get_mut());
        all
    }

    /// Warnings haproxy gives after parsing, about the whole proxy: their text names the
    /// proxy and the place itself (`Proxy 'f': L6 sample fetches ignored on HTTP proxies
    /// (declared at f.cfg:9).`).
    pub fn take_proxy_warnings(&mut self) -> Vec<CompileError> {
        std::mem::take(&mut self.proxy_warnings)
    }

    /// haproxy's `warnif_tcp_http_cond`: a condition of an HTTP proxy that reads raw buffers.
    fn warn_l6_on_http(&mut self, cond_acls: &[usize], loc: &Loc, kw: &str) {
        let Some(proxy) = &self.http_proxy else {
            return;
        };
        let l6 = cond_acls
            .iter()
            .filter_map(|&i| self.set.acls.get(i))
            .any(|a| a.expr.needs().is_buffer());
        if l6 {
            let msg = format!(
                "Proxy '{proxy}': L6 sample fetches ignored on HTTP proxies (declared at {}:{}).",
                loc.file, loc.line
            );
            self.proxy_warnings.push(CompileError::new(loc, kw, msg));
        }
    }

    /// Drops from `acls` those that read data the current rule kind cannot see, warning as
    /// haproxy does (once per condition, `warned`): an anonymous ACL, a named one whose lines
    /// all do, or only some of them.
    fn keep_available(
        &mut self,
        acls: Vec<usize>,
        named: Option<&str>,
        at: (&Loc, &str),
        warned: &mut bool,
    ) -> Vec<usize> {
        let (loc, kw) = at;
        let Some(ctx) = &self.context else {
            return acls;
        };
        let unavailable: Vec<usize> = acls
            .iter()
            .copied()
            .filter(|&i| {
                self.set
                    .acls
                    .get(i)
                    .is_some_and(|a| !a.expr.needs().available(ctx.stage))
            })
            .collect();
        if unavailable.is_empty() {
            return acls;
        }
        let keyword = |i: usize| self.set.acls.get(i).map_or("", |a| &*a.keyword).to_string();
        let within = ctx
            .directive
            .map_or(String::new(), |d| format!(" in '{d}'"));
        let msg = match named {
            None => format!(
                "anonymous acl will never match{within} because it uses keyword '{}' which is incompatible with '{}'",
                keyword(unavailable[0]),
                ctx.label
            ),
            Some(n) if unavailable.len() == acls.len() => format!(
                "acl '{n}' will never match{within} because it only involves keywords that are incompatible with '{}'",
                ctx.label
            ),
            Some(n) => format!(
                "acl '{n}' involves keywords '{}' which is incompatible with '{}'",
                keyword(unavailable[0]),
                ctx.label
            ),
        };
        if !*warned {
            *warned = true;
            self.warnings.push(CompileError::new(loc, kw, msg));
        }
        acls.into_iter()
            .filter(|i| !unavailable.contains(i))
            .collect()
    }

    pub fn env(&self) -> &'e dyn FetchEnv {
        self.env
    }

    /// Adds the proxy's `acl` lines; lines sharing a name are OR'ed.
    pub fn add_acls(&mut self, acls: &[Acl]) -> Result<(), CompileError> {
        for a in acls {
            let c = compile_acl(a, self.env)?;
            let i = self.push(c);
            self.named.entry(a.name.clone()).or_default().push(i);
        }
        Ok(())
    }

    fn push(&mut self, c: CompiledAcl) -> usize {
        self.set.acls.push(c);
        self.set.acls.len() - 1
    }

    /// Indexes of the ACLs named `name` (user-declared first, then predefined).
    fn resolve(&mut self, name: &str, loc: &Loc, kw: &str) -> Result<Vec<usize>, CompileError> {
        if let Some(v) = self.named.get(name) {
            return Ok(v.clone());
        }
        let Some((_, body)) = PREDEFINED.iter().find(|(n, _)| *n == name) else {
            return Err(CompileError::new(
                loc,
                kw,
                format!("no such ACL : '{name}'"),
            ));
        };
        let acl = predefined_acl(name, body);
        let c = compile_acl(&acl, self.env).map_err(|e| {
            CompileError::new(
                loc,
                kw,
                format!("predefined ACL '{name}' is not supported: {}", e.msg),
            )
        })?;
        let i = self.push(c);
        self.named.insert(name.to_string(), vec![i]);
        Ok(vec![i])
    }

    /// Compiles a condition; `kw` names the directive for errors.
    pub fn condition(&mut self, c: &Condition, loc: &Loc, kw: &str) -> Result<Cond, CompileError> {
        let mut terms = Vec::with_capacity(c.terms.len());
        let mut warned = false;
        // Every ACL the condition names, available or not, for the layer-6 warning.
        let mut used = Vec::new();
        for and in &c.terms {
            let mut out = Vec::with_capacity(and.len());
            for t in and {
                let acls = match &t.acl {
                    AclRef::Named(n) => self.resolve(n, loc, kw)?,
                    AclRef::Anonymous(a) => {
                        let c = compile_acl(a, self.env)?;
                        vec![self.push(c)]
                    }
                };
                used.extend_from_slice(&acls);
                let named = match &t.acl {
                    AclRef::Named(n) => Some(n.as_str()),
                    AclRef::Anonymous(_) => None,
                };
                let acls = self.keep_available(acls, named, (loc, kw), &mut warned);
                out.push(CondTerm {
                    negate: t.negate,
                    acls,
                });
            }
            terms.push(out);
        }
        self.warn_l6_on_http(&used, loc, kw);
        Ok(Cond {
            unless: c.unless,
            terms,
        })
    }

    /// Optional condition.
    pub fn opt_condition(
        &mut self,
        c: Option<&Condition>,
        loc: &Loc,
        kw: &str,
    ) -> Result<Option<Cond>, CompileError> {
        c.map(|c| self.condition(c, loc, kw)).transpose()
    }

    /// The ACL arena, to keep next to the compiled rules.
    pub fn finish(self) -> AclSet {
        self.set
    }
}
