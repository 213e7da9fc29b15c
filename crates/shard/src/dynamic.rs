//! `add server` (HAProxy's dynamic servers): the server line given on the runtime socket goes
//! through the configuration pipeline, as a one-server backend of the same mode, and comes
//! out as the same [`ServerRt`] the topology builds at start. `default-server` lines do not
//! apply, as in HAProxy. Runs on the control shard; the result is broadcast
//! (`ControlMsg::AddServer`) and every shard appends it (`ShardState::apply`).

use ringlb_config::model::{self, Mode};

use crate::topology::{backend_rt, BackendRt, ServerRt};

/// Keywords the engine honours on a server added at run time; HAProxy's other dynamic-server
/// keywords are refused with a message saying ringlb does not support them there yet.
pub const ENGINE_OPTIONS: &[&str] = &[
    "weight",
    "maxconn",
    "maxqueue",
    "backup",
    "disabled",
    "enabled",
    "id",
    "pool-max-conn",
    "pool-purge-delay",
    "check",
    "inter",
    "fastinter",
    "downinter",
    "rise",
    "fall",
    "port",
    "addr",
    "agent-check",
    "agent-port",
    "agent-inter",
    "agent-send",
    "agent-addr",
];

/// A parsed `add server` line.
#[derive(Debug, Clone)]
pub struct DynamicServer {
    pub rt: ServerRt,
    /// The model's view (check parameters for the health driver).
    pub model: model::Server,
    /// `enabled`: starts ready instead of in maintenance (HAProxy 2.6's default for dynamic
    /// servers).
    pub enabled: bool,
}

/// Parses `add server <be>/<name> <addr> <options...>` for backend `be`. `Err` is the one-line
/// answer for the runtime socket.
pub fn parse(
    be: &BackendRt,
    name: &str,
    addr: &str,
    options: &[String],
) -> Result<DynamicServer, String> {
    let mut words = options.iter();
    while let Some(w) = words.next() {
        if !ENGINE_OPTIONS.contains(&w.as_str()) {
            return Err(format!(
                "'{w}' is not supported by ringlb yet on a server added at run time.\n"
            ));
        }
        if !matches!(
            w.as_str(),
            "backup" | "disabled" | "enabled" | "check" | "agent-check"
        ) {
            words.next();
        }
    }
    let unsafe_word = |w: &str| {
        w.is_empty()
            || w.chars()
                .any(|c| c.is_whitespace() || matches!(c, '#' | '"' | '\'' | '\\' | '$'))
    };
    if unsafe_word(name) || unsafe_word(addr) || options.iter().any(|w| unsafe_word(w)) {
        return Err("Invalid character in the server line.\n".into());
    }
    let mode = match be.mode {
        Mode::Http => "http",
        Mode::Tcp => "tcp",
    };
    let text = format!(
        "backend {}\n    mode {mode}\n    server {name} {addr} {}\n",
        be.name,
        options.join(" ")
    );
    let loaded = ringlb_config::parse_str("add server", &text).map_err(|d| {
        let first = d
            .items
            .iter()
            .find(|i| i.level == ringlb_config::diag::Level::Alert);
        first.map_or_else(
            || "Invalid server line.\n".into(),
            |a| format!("{}\n", a.message),
        )
    })?;
    let b = loaded
        .config
        .backends
        .first()
        .ok_or_else(|| "Invalid server line.\n".to_string())?;
    let model = b
        .servers
        .first()
        .cloned()
        .ok_or_else(|| "Invalid server line.\n".to_string())?;
    let mut errors = Vec::new();
    let rt = backend_rt(b, &mut errors);
    if let Some(e) = errors.first() {
        return Err(format!("{}.\n", e.message));
    }
    let rt = rt
        .servers
        .into_iter()
        .next()
        .ok_or_else(|| "Invalid server line.\n".to_string())?;
    Ok(DynamicServer {
        enabled: options.iter().any(|o| o == "enabled") && !rt.disabled,
        rt,
        model,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Topology;

    fn backend() -> BackendRt {
        let cfg =
            "backend be\n    mode http\n    default-server weight 9\n    server s1 127.0.0.1:80\n";
        let loaded = ringlb_config::parse_str("t.cfg", cfg).unwrap();
        let topo = Topology::from_config(&loaded.config).unwrap();
        topo.backends.into_iter().next().unwrap()
    }

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn a_server_line_becomes_the_engine_server() {
        let d = parse(
            &backend(),
            "d1",
            "127.0.0.2:8080",
            &words("weight 4 maxconn 10 backup"),
        )
        .unwrap();
        assert_eq!(d.rt.name, "d1");
        assert_eq!(d.rt.addr, "127.0.0.2:8080".parse().unwrap());
        assert_eq!((d.rt.weight, d.rt.maxconn, d.rt.backup), (4, 10, true));
        assert!(!d.enabled, "maintenance unless enabled");
        // default-server does not apply to dynamic servers.
        let d = parse(&backend(), "d2", "127.0.0.2:81", &words("enabled")).unwrap();
        assert_eq!(d.rt.weight, 1);
        assert!(d.enabled);
    }

    #[test]
    fn what_the_engine_cannot_do_is_refused_with_a_reason() {
        let e = parse(&backend(), "d1", "127.0.0.2:80", &words("ssl")).unwrap_err();
        assert!(e.contains("'ssl' is not supported by ringlb yet"), "{e}");
        let e = parse(&backend(), "d1", "127.0.0.2", &[]).unwrap_err();
        assert!(e.contains("no port"), "{e}");
        // haproxy 2.6 reads a non-number weight as 0 (atoi), and so does ringlb.
        let d = parse(&backend(), "d1", "127.0.0.2:80", &words("weight x")).unwrap();
        assert_eq!(d.rt.weight, 0);
        let e = parse(&backend(), "d#1", "127.0.0.2:80", &[]).unwrap_err();
        assert!(e.contains("Invalid character"), "{e}");
    }
}
