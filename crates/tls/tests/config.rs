//! `build_config`: every TLS bind and server of a configuration, diagnostics at their lines.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ringlb_config::Level;
use ringlb_tls::build_config;

#[test]
fn whole_config_built_and_diagnostics_located() {
    let p = Pki::new("cfg");
    p.leaf("a", "/CN=a.test", &["a.test"], "1", false, false);
    p.combined("a", &p.file("a.pem"), true);
    let mut m = std::fs::read(p.file("a.crt")).unwrap();
    let other = Pki::new("cfg2");
    other.leaf("z", "/CN=z.test", &[], "1", false, false);
    m.extend(std::fs::read(other.file("z.key")).unwrap());
    std::fs::write(p.file("mismatch.pem"), m).unwrap();
    let (a, ca, bad) = (p.file("a.pem"), p.file("ca.pem"), p.file("mismatch.pem"));
    let text = |second: &std::path::Path| {
        format!(
            "global\n  ssl-default-bind-options ssl-min-ver TLSv1.2\ndefaults\n  mode http\n  timeout client 5s\n  timeout server 5s\n  timeout connect 5s\n\
             frontend fe\n  bind 127.0.0.1:8443 ssl crt {a}\n  bind 127.0.0.1:8444 ssl crt {s} npn h2\n  bind 127.0.0.1:8080\n  default_backend be\n\
             backend be\n  server plain 127.0.0.1:80\n  server tls 127.0.0.1:443 ssl ca-file {ca}\n  server chk 127.0.0.1:444 check-ssl verify none\n",
            a = a.display(),
            s = second.display(),
            ca = ca.display()
        )
    };
    let cfg = load_config(&p.dir.0, &text(&a));
    let t = build_config(&cfg, now_unix()).unwrap();
    assert_eq!(
        t.binds.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        [(0, 0), (0, 1)]
    );
    assert_eq!(
        t.servers.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        [(0, 1), (0, 2)]
    );
    assert!(t.bind(0, 2).is_none() && t.server(0, 0).is_none());
    assert_eq!(t.warnings.len(), 1);
    assert_eq!(
        (t.warnings[0].level, t.warnings[0].line),
        (Level::Warning, 10)
    );
    assert!(t.warnings[0].message.contains("npn"));

    let cfg = load_config(&p.dir.0, &text(&bad));
    let d = build_config(&cfg, now_unix()).unwrap_err();
    let alert = d.iter().find(|x| x.level == Level::Alert).unwrap();
    assert_eq!(alert.line, 10);
    assert_eq!(alert.keyword, "bind");
    assert!(
        alert.message.contains("mismatch.pem") && alert.message.contains("does not match"),
        "{alert:?}"
    );
    assert!(
        d.iter().any(|x| x.level == Level::Warning),
        "warnings kept with the alerts"
    );
}
