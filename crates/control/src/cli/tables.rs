//! `clear table` and `set table` on the control shard (ADR 0003): the control shard parses
//! and checks the command against the table's configuration, then sends one typed message to
//! every shard (the key's owner applies it as the authority, the others to their cached copy),
//! and answers once every shard has applied it.

use ringlb_runtime::{Command, Level, Pending, Reply};
use ringlb_shard::ControlMsg;
use ringlb_stick::runtime::NO_SUCH_TABLE;
use ringlb_stick::{Query, SetEntry, TableConfig};

use super::exec::{barrier, Ctx};

/// The configuration of table `name` as every shard built it.
pub(super) fn table_config(ctx: &Ctx, name: &str) -> Option<TableConfig> {
    ctx.topo()
        .stick_tables
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(n, t)| TableConfig::from_model(n, t).ok())
}

/// `clear table <t> [key <k> | data.<type> <op> <v>...]`: removes the matching entries no
/// stream holds, on every shard. Below operator level haproxy 2.6 does not walk the table:
/// nothing is cleared and nothing printed.
pub(super) async fn clear_table(ctx: &Ctx, p: &Pending) -> Reply {
    let Command::ClearTable { table, filter } = &p.command else {
        return Reply::err("Internal error.\n");
    };
    let Some(cfg) = table_config(ctx, table) else {
        return Reply::err(NO_SUCH_TABLE);
    };
    if let Err(e) = filter {
        return e.clone();
    }
    let rest: Vec<&str> = p.args().into_iter().skip(1).collect();
    let query = match Query::parse(&cfg, &rest) {
        Ok(q) => q,
        Err(e) if e.is_empty() => return Reply::empty(),
        Err(e) => return Reply::err(e),
    };
    if p.level < Level::Operator {
        return Reply::empty();
    }
    ctx.bus
        .send(ControlMsg::ClearStickTable {
            table: cfg.name.clone(),
            query,
        })
        .await;
    barrier(ctx).await;
    Reply::empty()
}

/// `set table <t> key <k> [data.<type> <v>]*`: creates or updates the entry on every shard.
/// As haproxy 2.6, a faulty `data.` pair is reported after the entry was created and the
/// pairs before it stored.
pub(super) async fn set_table(ctx: &Ctx, p: &Pending) -> Reply {
    let Command::SetTable { table, .. } = &p.command else {
        return Reply::err("Internal error.\n");
    };
    let Some(cfg) = table_config(ctx, table) else {
        return Reply::err(NO_SUCH_TABLE);
    };
    let rest: Vec<&str> = p.args().into_iter().skip(1).collect();
    let (entry, err) = match SetEntry::parse(&cfg, &rest) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => return Reply::empty(),
        Err(e) => return Reply::err(e),
    };
    if p.level < Level::Operator {
        return Reply::permission_denied();
    }
    ctx.bus
        .send(ControlMsg::SetStickEntry {
            table: cfg.name.clone(),
            entry,
        })
        .await;
    barrier(ctx).await;
    err.map_or_else(Reply::empty, Reply::err)
}
