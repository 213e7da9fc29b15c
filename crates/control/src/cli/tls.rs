//! Certificates on the runtime socket (`show|set|commit|abort|new|del ssl cert`). The control
//! shard owns the store ([`CertStore`], built from the certificates loaded at start); `commit`
//! parses the new certificate here and broadcasts it (`ControlMsg::SetSslCert`); each shard
//! swaps the TLS of the binds serving that file, and the answer waits until all have.

use ringlb_runtime::{Command, Pending, Reply};
use ringlb_shard::{ControlMsg, SharedCert};
use ringlb_tls::hot::{Answer, CertStore};

use super::exec::{barrier, Ctx};

/// The store of the running configuration's TLS binds.
pub fn build_store(topo: &ringlb_shard::Topology) -> CertStore {
    CertStore::from_binds(
        topo.frontends
            .iter()
            .flat_map(|f| f.binds.iter())
            .filter_map(|b| b.tls.as_deref()),
    )
}

fn reply(a: Answer) -> Reply {
    match a {
        Ok(text) => Reply::msg(ringlb_runtime::reply::severity::NOTICE, text),
        Err(text) => Reply::err(text),
    }
}

pub async fn run(ctx: &Ctx, p: &Pending) -> Reply {
    match &p.command {
        Command::ShowSslCert { file: None } => Reply::raw(ctx.certs.borrow().list()),
        Command::ShowSslCert { file: Some(f) } => match ctx.certs.borrow().show(f) {
            Ok(text) => Reply::raw(text),
            Err(text) => Reply::err(text),
        },
        Command::SetSslCert { file, payload } => reply(ctx.certs.borrow_mut().set(file, payload)),
        Command::AbortSslCert { file } => reply(ctx.certs.borrow_mut().abort(file)),
        Command::NewSslCert { file } => reply(ctx.certs.borrow_mut().new_cert(file)),
        Command::DelSslCert { file } => reply(ctx.certs.borrow_mut().del_cert(file)),
        Command::CommitSslCert { file } => {
            let done = ctx.certs.borrow_mut().commit(file, &ringlb_tls::provider());
            match done {
                Err(text) => Reply::err(text),
                Ok((cert, text)) => {
                    ctx.bus
                        .send(ControlMsg::SetSslCert {
                            cert: SharedCert(cert),
                        })
                        .await;
                    // Answer once every shard serves the new certificate.
                    barrier(ctx).await;
                    Reply::raw(text)
                }
            }
        }
        _ => Reply::err("Unknown command.\n"),
    }
}
