//! Certificates on the runtime socket (`show|set|commit|abort|new|del ssl cert`). The control
//! shard owns the store ([`CertStore`], built from the certificates loaded at start); `commit`
//! parses the new certificate here and broadcasts it (`ControlMsg::SetSslCert`); each shard
//! swaps the TLS of the binds serving that file, and the answer waits until all have.

use ringlb_runtime::{Command, Pending, Reply};
use ringlb_shard::{ControlMsg, SharedCert};
use std::sync::Arc;

use ringlb_tls::hot::{Answer, CertStore};
use ringlb_tls::ticket_keys::{KeyError, TicketKeys};

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
        Command::ShowTlsKeys { id } => show_tls_keys(&ctx.topo(), id.as_deref()),
        Command::SetSslTlsKey { id, key } => set_tls_key(&ctx.topo(), id, key),
        _ => Reply::err("Unknown command.\n"),
    }
}

/// One `tls-ticket-keys` file and the ticketers of the binds that load it.
type TicketRef = (String, Vec<Arc<TicketKeys>>);

/// The `tls-ticket-keys` references, numbered as haproxy does (one per file, in the order of
/// the binds).
fn ticket_refs(topo: &ringlb_shard::Topology) -> Vec<TicketRef> {
    let mut refs: Vec<TicketRef> = Vec::new();
    let Some(shared) = topo.tls_shared.as_deref() else {
        return refs;
    };
    let binds = topo.frontends.iter().flat_map(|f| f.binds.iter());
    for keys in binds.filter_map(|b| b.tls.as_deref()?.ticket_keys(shared)) {
        match refs.iter_mut().find(|(file, _)| file == keys.file()) {
            Some((_, list)) => list.push(keys),
            None => refs.push((keys.file().to_string(), vec![keys])),
        }
    }
    refs
}

/// Which references `id` names: `#<n>` or the file, or all for `*`.
fn select<'r>(refs: &'r [TicketRef], id: &str) -> Vec<(usize, &'r TicketRef)> {
    refs.iter()
        .enumerate()
        .filter(|(n, (file, _))| {
            id == "*" || id.strip_prefix('#') == Some(n.to_string().as_str()) || id == file
        })
        .collect()
}

/// `show tls-keys [id|*]`, in haproxy 2.6's words (recorded).
fn show_tls_keys(topo: &ringlb_shard::Topology, id: Option<&str>) -> Reply {
    let refs = ticket_refs(topo);
    let Some(id) = id else {
        let mut out = String::from("# id (file)\n");
        for (n, (file, _)) in refs.iter().enumerate() {
            out.push_str(&format!("{n} ({file})\n"));
        }
        // The reply's end (an empty line) is added by `Reply::raw`.
        return Reply::raw(out);
    };
    let chosen = select(&refs, id);
    if chosen.is_empty() {
        return Reply::err("'show tls-keys' unable to locate referenced filename\n");
    }
    let mut out = String::from("# id secret\n");
    for (n, (file, keys)) in chosen {
        out.push_str(&format!("# {n} ({file})\n"));
        let shown = keys.first().map(|k| k.keys_base64()).unwrap_or_default();
        for (i, key) in shown.iter().enumerate() {
            out.push_str(&format!("{n}.{i} {key}\n"));
        }
    }
    Reply::raw(out)
}

/// `set ssl tls-key <id|file> <key>`: every bind loading that file takes the key at once (the
/// ticketers are shared with the shards; no message needed).
fn set_tls_key(topo: &ringlb_shard::Topology, id: &str, key: &str) -> Reply {
    let refs = ticket_refs(topo);
    let chosen: Vec<_> = select(&refs, id)
        .into_iter()
        .filter(|_| id != "*")
        .collect();
    if chosen.is_empty() {
        return Reply::err("'set ssl tls-key' unable to locate referenced filename\n");
    }
    for (_, (_, keys)) in chosen {
        for k in keys {
            if let Err(e) = k.push(key) {
                return Reply::err(match e {
                    KeyError::Base64 => {
                        "'set ssl tls-key' received invalid base64 encoded TLS key.\n"
                    }
                    KeyError::Size => "'set ssl tls-key' received a key of wrong size.\n",
                });
            }
        }
    }
    Reply::msg(
        ringlb_runtime::reply::severity::NOTICE,
        "TLS ticket key updated!\n",
    )
}
