//! The scenario catalog (issue 4's list) and the one config file each variant gives both proxies.

use std::fmt::Write as _;

/// Global `maxconn` of every generated config. HAProxy 2.6 needs 2 × maxconn + 17 descriptors
/// (ringlb currently 2 × maxconn + 65) and both refuse to start above the machine's hard
/// open-files limit (20000); scenario 8 holds `IDLE_CONNS` connections under it.
pub const MAXCONN: u32 = 9960;
/// Idle keep-alive connections held in scenario 8 (the "10,000", within `MAXCONN` minus
/// the 64 load connections and headroom).
pub const IDLE_CONNS: u32 = 9800;
/// Client ids of scenario 9.
pub const CLIENT_IDS: u32 = 10_000;
/// Scenario 9's limit: requests per client id per 10 s above which the proxy answers 429.
pub const RATE_LIMIT: u32 = 3;

/// How the proxy's frontend looks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Front {
    /// `mode http`, forwards to the origin.
    Http,
    /// `http-request return` with no backend use (scenario 2).
    Return,
    /// `mode tcp` (scenario 7, relay baseline uses `Http`).
    Tcp,
    /// TLS 1.3 termination, HTTP/1.1 inside.
    Tls,
    /// HTTP/2 cleartext (prior knowledge).
    H2c,
    /// TLS with ALPN h2.
    H2Tls,
    /// Stick table tracking `x-client-id`, deny 429 above `limit` requests per 10 s.
    Stick { limit: u32 },
}

impl Front {
    pub fn tls(self) -> bool {
        matches!(self, Front::Tls | Front::H2Tls)
    }
}

/// What drives the load.
#[derive(Debug, Clone, PartialEq)]
pub enum Load {
    /// wrk -t1 -cN on `path`; `close` adds `Connection: close`; `client_ids` uses scenario 9's
    /// script and counts statuses.
    Wrk {
        conns: u32,
        path: &'static str,
        close: bool,
        client_ids: bool,
    },
    /// h2load -t1 -cN -mM.
    H2load {
        clients: u32,
        streams: u32,
        path: &'static str,
    },
    /// Open-loop generator at `fraction` of HAProxy's scenario-1 maximum.
    OpenLoop {
        fraction: f64,
        conns: u32,
        threads: u32,
    },
    /// Scenario 8: hold `IDLE_CONNS` idle connections, measure memory and scenario 1 under them.
    Idle,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub id: String,
    pub title: String,
    /// Run in `--quick` mode.
    pub quick: bool,
    /// Proxy threads: 1 = headline topology (CPU 0 alone), 2 = both CPUs.
    pub threads: u32,
    pub front: Front,
    pub load: Load,
    /// Metric of the throughput chart and first table row.
    pub throughput: &'static str,
    /// Metric of the CPU chart.
    pub cpu: &'static str,
    /// Metrics shown in the tables, in order.
    pub headline: Vec<&'static str>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub id: &'static str,
    pub title: &'static str,
    pub variants: Vec<Variant>,
}

const HTTP_HEAD: &[&str] = &[
    "rps",
    "p50_us",
    "p99_us",
    "p999_us",
    "cpu_us_per_req",
    "rss_peak_kib",
];
const BULK_HEAD: &[&str] = &["gbit_s", "cpu_s_per_gib", "p99_us", "rss_peak_kib"];

fn wrk(conns: u32, path: &'static str) -> Load {
    Load::Wrk {
        conns,
        path,
        close: false,
        client_ids: false,
    }
}

fn v(id: &str, title: &str, quick: bool, threads: u32, front: Front, load: Load) -> Variant {
    Variant {
        id: id.into(),
        title: title.into(),
        quick,
        threads,
        front,
        load,
        throughput: "rps",
        cpu: "cpu_us_per_req",
        headline: HTTP_HEAD.to_vec(),
    }
}

fn bulk(mut x: Variant) -> Variant {
    x.throughput = "gbit_s";
    x.cpu = "cpu_s_per_gib";
    x.headline = BULK_HEAD.to_vec();
    x
}

/// The catalog. Variant ids are unique across scenarios.
pub fn scenario(id: &str) -> Option<Scenario> {
    use Front::*;
    let s = match id {
        "1" => Scenario {
            id: "1",
            title: "HTTP/1.1 keep-alive, small response",
            variants: vec![
                v("1-c64", "0 B body, 64 conns", true, 1, Http, wrk(64, "/0")),
                v(
                    "1-c256",
                    "0 B body, 256 conns",
                    false,
                    1,
                    Http,
                    wrk(256, "/0"),
                ),
                v(
                    "1-1k",
                    "1 KiB body, 64 conns",
                    false,
                    1,
                    Http,
                    wrk(64, "/1k"),
                ),
                v(
                    "1-10k",
                    "10 KiB body, 64 conns",
                    false,
                    1,
                    Http,
                    wrk(64, "/10k"),
                ),
                v(
                    "1-c64-2t",
                    "0 B body, 64 conns, proxy on 2 CPUs",
                    false,
                    2,
                    Http,
                    wrk(64, "/0"),
                ),
            ],
        },
        "2" => Scenario {
            id: "2",
            title: "Direct response without a backend (http-request return)",
            variants: vec![v(
                "2-return",
                "http-request return, 64 conns",
                true,
                1,
                Return,
                wrk(64, "/"),
            )],
        },
        "3" => Scenario {
            id: "3",
            title: "HTTP/1.1 connection per request (Connection: close)",
            variants: vec![v(
                "3-close",
                "new connection per request, 64 conns",
                true,
                1,
                Http,
                Load::Wrk {
                    conns: 64,
                    path: "/0",
                    close: true,
                    client_ids: false,
                },
            )],
        },
        "4" => Scenario {
            id: "4",
            title: "TLS 1.3 full handshakes (ECDSA P-256, no tickets, no session cache)",
            variants: vec![{
                let mut x = v(
                    "4-handshake",
                    "one full handshake per request, 64 conns",
                    true,
                    1,
                    Tls,
                    Load::Wrk {
                        conns: 64,
                        path: "/0",
                        close: true,
                        client_ids: false,
                    },
                );
                x.cpu = "cpu_us_per_req";
                x
            }],
        },
        "5" => Scenario {
            id: "5",
            title: "TLS bulk, 1 MiB responses",
            variants: vec![bulk(v(
                "5-tls-1m",
                "TLS 1.3, 1 MiB body, 16 conns",
                true,
                1,
                Tls,
                wrk(16, "/1m"),
            ))],
        },
        "6" => Scenario {
            id: "6",
            title: "HTTP/2 frontend to an HTTP/1.1 origin (h2load -c16 -m32)",
            variants: vec![
                h2v("6-h2c", "h2c, 16 clients × 32 streams", H2c),
                Variant {
                    quick: false,
                    ..h2v("6-h2-tls", "TLS ALPN h2, 16 clients × 32 streams", H2Tls)
                },
            ],
        },
        "7" => Scenario {
            id: "7",
            title: "TCP mode bulk transfer",
            variants: vec![bulk(v(
                "7-tcp-1m",
                "mode tcp, 1 MiB bodies, 16 conns",
                true,
                1,
                Tcp,
                wrk(16, "/1m"),
            ))],
        },
        "8" => Scenario {
            id: "8",
            title: "Idle keep-alive connections",
            variants: vec![Variant {
                headline: vec![
                    "idle_bytes_per_conn",
                    "rps_no_idle",
                    "rps",
                    "idle_slowdown",
                    "rss_kib",
                ],
                cpu: "cpu_us_per_req",
                ..v(
                    "8-idle",
                    "9,800 idle keep-alive conns + 64 busy",
                    true,
                    1,
                    Http,
                    Load::Idle,
                )
            }],
        },
        "9" => Scenario {
            id: "9",
            title: "Stick-table rate limiting on a header, 10k client ids",
            variants: vec![
                stick("9-notable", "no stick table (baseline)", false, 1, Http),
                stick(
                    "9-track",
                    "track + deny rule, limit never reached",
                    false,
                    1,
                    Stick { limit: 100_000_000 },
                ),
                stick(
                    "9-limit",
                    "limit 3 per 10 s: 429s vs expected",
                    true,
                    1,
                    Stick { limit: RATE_LIMIT },
                ),
                stick(
                    "9-limit-2t",
                    "limit 3 per 10 s, proxy on 2 CPUs",
                    true,
                    2,
                    Stick { limit: RATE_LIMIT },
                ),
            ],
        },
        "10" => Scenario {
            id: "10",
            title: "Latency at fixed offered load (open loop, corrected for coordinated omission)",
            variants: [0.25, 0.5, 0.75]
                .iter()
                .map(|&f| Variant {
                    throughput: "achieved_rps",
                    headline: vec![
                        "achieved_rps",
                        "p50_us",
                        "p99_us",
                        "p999_us",
                        "cpu_us_per_req",
                    ],
                    ..v(
                        &format!("10-{}pct", (f * 100.0) as u32),
                        &format!("{}% of HAProxy's scenario-1 maximum", (f * 100.0) as u32),
                        true,
                        1,
                        Http,
                        Load::OpenLoop {
                            fraction: f,
                            conns: 64,
                            threads: 2,
                        },
                    )
                })
                .collect(),
        },
        "relay" => Scenario {
            id: "relay",
            title: "Relay micro-benchmark: minimal byte relays vs HAProxy's full HTTP proxying",
            variants: vec![v(
                "relay-c64",
                "0 B body, 64 conns",
                true,
                1,
                Http,
                wrk(64, "/0"),
            )],
        },
        _ => return None,
    };
    Some(s)
}

/// h2load -c16 -m32; h2load prints no percentiles, so the mean time per request is shown.
fn h2v(id: &str, title: &str, front: Front) -> Variant {
    let mut x = v(
        id,
        title,
        true,
        1,
        front,
        Load::H2load {
            clients: 16,
            streams: 32,
            path: "/0",
        },
    );
    x.headline = vec!["rps", "mean_us", "cpu_us_per_req", "rss_peak_kib"];
    x
}

fn stick(id: &str, title: &str, quick: bool, threads: u32, front: Front) -> Variant {
    let mut x = v(
        id,
        title,
        quick,
        threads,
        front,
        Load::Wrk {
            conns: 64,
            path: "/0",
            close: false,
            client_ids: true,
        },
    );
    x.headline = vec![
        "rps",
        "p99_us",
        "cpu_us_per_req",
        "status_429",
        "expected_429",
        "err_429_pct",
    ];
    x
}

/// Ports and files a config refers to.
#[derive(Debug, Clone, PartialEq)]
pub struct CfgInputs {
    pub listen_port: u16,
    pub origin_port: u16,
    /// PEM with certificate and key (TLS fronts).
    pub pem: String,
}

/// The one config file both proxies load. HAProxy syntax; nothing ringlb-specific.
pub fn proxy_config(v: &Variant, i: &CfgInputs) -> String {
    let mut c = String::new();
    let _ = writeln!(
        c,
        "# Generated by ringlb-bench for variant {} ({}).",
        v.id, v.title
    );
    c.push_str("global\n");
    let _ = writeln!(c, "    nbthread {}", v.threads);
    for t in 1..=v.threads {
        let _ = writeln!(c, "    cpu-map 1/{t} {}", t - 1);
    }
    let _ = writeln!(c, "    maxconn {MAXCONN}");
    if v.front.tls() {
        c.push_str("    ssl-default-bind-options ssl-min-ver TLSv1.3 no-tls-tickets\n");
        c.push_str("    tune.ssl.cachesize 0\n");
    }
    c.push_str("\ndefaults\n");
    let mode = if v.front == Front::Tcp { "tcp" } else { "http" };
    let _ = writeln!(c, "    mode {mode}");
    c.push_str("    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n");
    if mode == "http" {
        c.push_str("    timeout http-request 10s\n    timeout http-keep-alive 60s\n");
    }
    c.push_str("\nfrontend fe\n");
    let bind = match v.front {
        Front::Tls => format!(" ssl crt {} alpn http/1.1", i.pem),
        Front::H2Tls => format!(" ssl crt {} alpn h2,http/1.1", i.pem),
        Front::H2c => " proto h2".to_string(),
        _ => String::new(),
    };
    let _ = writeln!(c, "    bind 127.0.0.1:{}{bind}", i.listen_port);
    match v.front {
        Front::Return => {
            c.push_str("    http-request return status 200 content-type text/plain string ok\n");
        }
        Front::Stick { limit } => {
            c.push_str("    stick-table type string len 32 size 100k expire 30s store http_req_rate(10s)\n");
            c.push_str("    http-request track-sc0 req.hdr(x-client-id)\n");
            let _ = writeln!(
                c,
                "    http-request deny deny_status 429 if {{ sc_http_req_rate(0) gt {limit} }}"
            );
        }
        _ => {}
    }
    c.push_str("    default_backend be\n\nbackend be\n");
    let _ = writeln!(c, "    server origin 127.0.0.1:{}", i.origin_port);
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ALL_SCENARIOS;

    fn inputs() -> CfgInputs {
        CfgInputs {
            listen_port: 8001,
            origin_port: 9001,
            pem: "/t/c.pem".into(),
        }
    }

    #[test]
    fn every_listed_scenario_exists_with_unique_variant_ids() {
        let mut ids = std::collections::BTreeSet::new();
        for s in ALL_SCENARIOS {
            let sc = scenario(s).unwrap();
            assert!(!sc.variants.is_empty());
            assert!(
                sc.variants.iter().any(|v| v.quick),
                "{s} has no quick variant"
            );
            for v in sc.variants {
                assert!(v.id.starts_with(s), "{} in {s}", v.id);
                assert!(ids.insert(v.id.clone()), "duplicate {}", v.id);
                assert!(v.headline.contains(&v.throughput));
            }
        }
        assert!(scenario("11").is_none());
    }

    #[test]
    fn headline_config_pins_one_thread_on_cpu0() {
        let v = &scenario("1").unwrap().variants[0];
        let c = proxy_config(v, &inputs());
        assert!(c.contains("nbthread 1\n    cpu-map 1/1 0\n"));
        assert!(c.contains("maxconn 9960"));
        assert!(c.contains("bind 127.0.0.1:8001\n"));
        assert!(c.contains("server origin 127.0.0.1:9001"));
        assert!(!c.contains("log "), "logging must be off");
        assert!(!c.contains("busy-polling"));
        let two = scenario("1")
            .unwrap()
            .variants
            .into_iter()
            .find(|v| v.threads == 2)
            .unwrap();
        assert!(proxy_config(&two, &inputs()).contains("cpu-map 1/1 0\n    cpu-map 1/2 1\n"));
    }

    #[test]
    fn scenario_specific_lines() {
        let c = |s: &str, i: usize| proxy_config(&scenario(s).unwrap().variants[i], &inputs());
        assert!(c("2", 0).contains("http-request return status 200"));
        assert!(c("7", 0).contains("mode tcp") && !c("7", 0).contains("http-keep-alive"));
        assert!(c("4", 0).contains("ssl crt /t/c.pem") && c("4", 0).contains("no-tls-tickets"));
        assert!(c("4", 0).contains("tune.ssl.cachesize 0"));
        assert!(c("6", 0).contains("proto h2"));
        assert!(c("6", 1).contains("alpn h2,http/1.1"));
        assert!(!c("9", 0).contains("stick-table"));
        assert!(
            c("9", 2).contains("gt 3 }") && c("9", 2).contains("track-sc0 req.hdr(x-client-id)")
        );
    }
}
