//! A compiled sample expression: one fetch followed by converters.

use ringlb_config::model::SampleExpr;

use crate::context::Ctx;
use crate::conv::Conv;
use crate::fetch::{Fetch, FetchEnv};
use crate::sample::Sample;

/// `fetch(args),conv1(args),...` ready to evaluate.
#[derive(Debug, Clone)]
pub struct Expr {
    pub fetch: Fetch,
    pub convs: Vec<Conv>,
    /// The fetch keyword as written (`path`, `req.hdr`), for messages.
    pub keyword: Box<str>,
}

impl Expr {
    /// Compiles the model's parsed expression.
    pub fn compile(e: &SampleExpr, env: &dyn FetchEnv) -> Result<Expr, String> {
        let fetch = Fetch::compile(&e.fetch, &e.args, env)?;
        let convs = e
            .converters
            .iter()
            .map(|c| Conv::compile(&c.name, &c.args))
            .collect::<Result<_, _>>()?;
        Ok(Expr {
            fetch,
            convs,
            keyword: e.fetch.as_str().into(),
        })
    }

    /// Parses and compiles expression text (the body of `%[...]`, a `set-var` expression),
    /// through the config crate's sample parser so both agree on the syntax.
    pub fn parse(text: &str, env: &dyn FetchEnv) -> Result<Expr, String> {
        let e = ringlb_config::parse::acl::parse_sample(text.trim())?;
        Expr::compile(&e, env)
    }

    /// What the expression reads ([`Fetch::needs`]; `payload()` follows the rule's direction).
    pub fn needs(&self) -> crate::fetch::Needs {
        match &*self.keyword {
            "payload" | "payload_lv" => crate::fetch::Needs::EitherBuffer,
            _ => self.fetch.needs(),
        }
    }

    /// Single-value evaluation (sample context).
    pub fn eval<'c>(&'c self, cx: Ctx<'c, '_>) -> Option<Sample<'c>> {
        let s = self.fetch.eval(cx)?;
        self.convert(s, cx)
    }

    fn convert<'c>(&'c self, mut s: Sample<'c>, cx: Ctx<'c, '_>) -> Option<Sample<'c>> {
        for c in &self.convs {
            s = c.apply(s, cx)?;
        }
        Some(s)
    }

    /// ACL context: every value of a multi-valued fetch, each through the converters, until
    /// `f` returns true.
    pub fn each<'c>(&'c self, cx: Ctx<'c, '_>, f: &mut dyn FnMut(Sample<'c>) -> bool) -> bool {
        if self.convs.is_empty() {
            return self.fetch.each(cx, f);
        }
        self.fetch
            .each(cx, &mut |s| self.convert(s, cx).is_some_and(&mut *f))
    }
}
