//! The whole configuration's TLS in one call, for startup, reload and `ringlb -c`: every TLS
//! `bind` and every `server` with `ssl` or `check-ssl`, with diagnostics already placed at the
//! line they come from.

use std::sync::Arc;

use ringlb_config::diag::Diagnostic;
use ringlb_config::model::Config;

use crate::bind::{build_bind, BindTls, TlsGlobals};
use crate::client::{build_server, ServerTls};

/// The TLS objects of a configuration, keyed by position in the model.
#[derive(Debug, Default)]
pub struct ConfigTls {
    pub globals: TlsGlobals,
    /// ((frontend index, bind index), TLS of that bind).
    pub binds: Vec<((usize, usize), Arc<BindTls>)>,
    /// ((backend index, server index), TLS towards that server).
    pub servers: Vec<((usize, usize), Arc<ServerTls>)>,
    /// Warnings (expired certificates, ignored options), to print.
    pub warnings: Vec<Diagnostic>,
}

impl ConfigTls {
    pub fn bind(&self, frontend: usize, bind: usize) -> Option<&Arc<BindTls>> {
        self.binds
            .iter()
            .find(|(k, _)| *k == (frontend, bind))
            .map(|(_, b)| b)
    }

    pub fn server(&self, backend: usize, server: usize) -> Option<&Arc<ServerTls>> {
        self.servers
            .iter()
            .find(|(k, _)| *k == (backend, server))
            .map(|(_, s)| s)
    }
}

/// Builds every TLS bind and server; `Err` holds all alerts (and the warnings) when any
/// file or policy is bad. Disabled proxies are skipped, as HAProxy does not start them.
pub fn build_config(cfg: &Config, now_unix: i64) -> Result<ConfigTls, Vec<Diagnostic>> {
    let globals = TlsGlobals::from_global(&cfg.global);
    let mut out = ConfigTls {
        globals,
        ..ConfigTls::default()
    };
    let mut alerts = Vec::new();
    for (fi, fe) in cfg
        .frontends
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.disabled)
    {
        for (bi, bind) in fe.binds.iter().enumerate().filter(|(_, b)| b.ssl.enabled) {
            match build_bind(bind, &out.globals, now_unix) {
                Ok(b) => {
                    out.warnings.extend(
                        b.warnings
                            .iter()
                            .map(|w| w.to_diagnostic(&bind.loc, "bind")),
                    );
                    out.binds.push(((fi, bi), Arc::new(b)));
                }
                Err(d) => alerts.extend(d.iter().map(|x| x.to_diagnostic(&bind.loc, "bind"))),
            }
        }
    }
    for (bi, be) in cfg.backends.iter().enumerate().filter(|(_, b)| !b.disabled) {
        for (si, srv) in be.servers.iter().enumerate() {
            let p = &srv.params;
            if !(p.ssl.enabled || p.check_ssl) {
                continue;
            }
            match build_server(&p.ssl, &out.globals, now_unix) {
                Ok(s) => {
                    out.warnings.extend(
                        s.warnings
                            .iter()
                            .map(|w| w.to_diagnostic(&srv.loc, "server")),
                    );
                    out.servers.push(((bi, si), Arc::new(s)));
                }
                Err(d) => alerts.extend(d.iter().map(|x| x.to_diagnostic(&srv.loc, "server"))),
            }
        }
    }
    if alerts
        .iter()
        .any(|d| d.level == ringlb_config::Level::Alert)
    {
        alerts.extend(out.warnings);
        return Err(alerts);
    }
    out.warnings.extend(alerts);
    Ok(out)
}
