#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The stats page, its exports, the admin form and `stats auth` against haproxy 2.6's
//! recordings (`fixtures/record.sh`: listen `adminstats`, frontend `web`).

mod common;
use common::*;
use ringlb_stats::admin::*;
use ringlb_stats::page::*;

/// (row class, anchor, status cell) of each server/frontend/backend row.
fn rows(html: &str) -> Vec<(String, String, String)> {
    html.split("<tr class=")
        .skip(1)
        .filter_map(|seg| {
            let class = seg
                .trim_start_matches('"')
                .split(['"', '>'])
                .next()?
                .to_string();
            let a = seg.find("<a name=\"")? + 9;
            let anchor = seg[a..].split('"').next()?.to_string();
            if !anchor.contains('/') {
                return None;
            }
            let status = seg
                .split("<td class=ac>")
                .skip(1)
                .map(|c| c.split("</td>").next().unwrap_or(""))
                .find(|c| !c.contains("<a name=") && !c.is_empty() && !c.starts_with("<u>"))
                .unwrap_or("")
                .to_string();
            Some((class, anchor, status))
        })
        .collect()
}

fn admin_cfg() -> PageConfig {
    PageConfig {
        uri: "/".into(),
        hide_version: true,
        scopes: vec!["app".into(), "app2".into()],
        admin: true,
        ..Default::default()
    }
}

fn drained_snapshot() -> ringlb_stats::Snapshot {
    let mut snap = recorded_snapshot();
    let app = snap.proxies.iter_mut().find(|p| p.name == "app").unwrap();
    let s2 = app.servers.iter_mut().find(|s| s.name == "s2").unwrap();
    s2.admin.drain = true;
    s2.last_change_ms = snap.now_ms;
    snap
}

#[test]
fn admin_page_rows_match_haproxy_after_drain() {
    let req = parse_page_request(";st=DONE");
    let ours = serve(&drained_snapshot(), &admin_cfg(), &req);
    assert_eq!(ours.status, 200);
    let theirs = fixture("admin_page_done.html");
    // Ages ("3s") depend on when the page was recorded; the rest must match.
    let unage = |c: &str| match c.split_once("s ") {
        Some((n, rest)) if n.chars().all(|x| x.is_ascii_digit()) => format!("Ns {rest}"),
        _ => c.to_string(),
    };
    let servers = |h: &str| {
        rows(h)
            .into_iter()
            .filter(|r| !r.1.ends_with("/Backend") && !r.1.ends_with("/Frontend"))
            .map(|(a, b, c)| (a, b, unage(&c)))
            .collect::<Vec<_>>()
    };
    assert_eq!(servers(&ours.body), servers(&theirs));
    assert!(servers(&theirs)
        .iter()
        .any(|r| r.0 == "active_draining" && r.2 == "Ns DRAIN"));
    assert!(ours.body.contains("Action processed successfully."));
    // The scope hides every other proxy.
    assert!(!ours.body.contains("name=\"web\"") && !ours.body.contains("name=\"tcpapp\""));
}

#[test]
fn admin_form_has_haproxys_fields() {
    let ours = serve(&recorded_snapshot(), &admin_cfg(), &PageRequest::default()).body;
    let theirs = fixture("admin_page.html");
    let pick = |h: &str, start: &str, end: &str| -> Vec<String> {
        h.split(start)
            .skip(1)
            .map(|s| s.split(end).next().unwrap().to_string())
            .collect()
    };
    for (start, end) in [
        ("<input class='", ">"),
        ("<option value=\"", "<"),
        ("<input type=\"hidden\"", ">"),
        ("<form ", ">"),
    ] {
        assert_eq!(
            pick(&ours, start, end),
            pick(&theirs, start, end),
            "{start}"
        );
    }
    // hide-version: no version anywhere in the title block.
    assert!(ours.contains("<h1>HAProxy</h1>") && !ours.contains("2.6.12"));
    assert!(theirs.contains(">HAProxy</a></h1>") && !theirs.contains("version 2.6"));
}

#[test]
fn public_page_shows_legends_node_desc_and_refresh() {
    let cfg = PageConfig {
        uri: "/stats".into(),
        refresh_s: Some(10),
        show_node: Some(String::new()),
        show_desc: Some("recorded by ringlb".into()),
        show_legends: true,
        ..Default::default()
    };
    let ans = serve(&recorded_snapshot(), &cfg, &PageRequest::default());
    let theirs = fixture("stats_page.html");
    assert!(ans.headers.contains(&("refresh".into(), "10".into())));
    assert!(ans
        .body
        .contains("Statistics Report for pid 4242 on vm: recorded by ringlb</h2>"));
    assert!(theirs.contains("on vm: recorded by ringlb</h2>"));
    assert!(ans
        .body
        .contains("<title>Statistics Report for HAProxy on vm</title>"));
    let our_rows = rows(&mask_ports(&ans.body));
    let their_rows = rows(&mask_ports(&theirs));
    let anchors = |r: &[(String, String, String)]| {
        r.iter()
            .map(|x| (x.0.clone(), x.1.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(anchors(&our_rows), anchors(&their_rows));
    for tip in [
        "<div class=tips>cap: backend, mode: http, id: 4</div>",
        "<div class=tips>IPv4: 127.0.0.1:PORT, id: 1</div>",
        "<div class=tips>balancing: roundrobin</div>",
        "L7OK/200 in 0ms<div class=tips>Layer7 check passed</div>",
        "L4CON in 0ms<div class=tips>Layer4 connection problem: Connection refused</div>",
    ] {
        assert!(mask_ports(&theirs).contains(tip), "haproxy: {tip}");
        assert!(mask_ports(&ans.body).contains(tip), "ours: {tip}");
    }
    let norefresh = serve(
        &recorded_snapshot(),
        &cfg,
        &parse_page_request(";norefresh"),
    );
    assert!(!norefresh.headers.iter().any(|h| h.0 == "refresh"));
    assert!(ans
        .body
        .contains("<meta http-equiv=\"refresh\" content=\"10\">"));
    assert!(!norefresh.body.contains("http-equiv=\"refresh\""));
}

#[test]
fn csv_and_json_exports_match_the_page_recordings() {
    let cfg = PageConfig {
        uri: "/stats".into(),
        show_legends: true,
        ..Default::default()
    };
    let csv = serve(
        &recorded_snapshot(),
        &cfg,
        &parse_page_request(";csv;norefresh"),
    );
    assert!(csv
        .headers
        .contains(&("content-type".into(), "text/plain".into())));
    let theirs = csv_cells(&fixture("stats_page.csv"));
    let ours = csv_cells(&csv.body);
    assert_eq!(ours.len(), theirs.len());
    for (o, t) in ours.iter().zip(&theirs).skip(1) {
        for i in 0..t.len() {
            assert_eq!(
                o[i].is_empty(),
                t[i].is_empty(),
                "{}/{} col {i}",
                t[0],
                t[1]
            );
        }
    }
    assert!(!csv.body.ends_with("\n\n") && fixture("stats_page.csv").ends_with(",\n"));
    let json = serve(&recorded_snapshot(), &cfg, &parse_page_request(";json"));
    let v: serde_json::Value = serde_json::from_str(&json.body).unwrap();
    let t: serde_json::Value = serde_json::from_str(&fixture("stats_page.json")).unwrap();
    assert_eq!(v.as_array().unwrap().len(), t.as_array().unwrap().len());
}

#[test]
fn scope_search_filters_proxies() {
    let cfg = PageConfig {
        uri: "/s".into(),
        ..Default::default()
    };
    let ans = serve(
        &recorded_snapshot(),
        &cfg,
        &parse_page_request("?scope=APP"),
    );
    let anchors: Vec<String> = rows(&ans.body).into_iter().map(|r| r.1).collect();
    // A case-insensitive substring: `tcpapp` matches too, `web` and `origin` do not.
    assert!(anchors.iter().all(|a| a.contains("app")), "{anchors:?}");
    assert!(anchors.contains(&"tcpapp/t1".to_string()));
    assert!(anchors.contains(&"app2/a1".to_string()));
}

#[test]
fn up_hides_down_and_maint_servers() {
    let cfg = PageConfig {
        uri: "/s".into(),
        ..Default::default()
    };
    let ans = serve(&recorded_snapshot(), &cfg, &parse_page_request(";up"));
    let anchors: Vec<String> = rows(&ans.body).into_iter().map(|r| r.1).collect();
    assert!(!anchors.contains(&"app/s3".into()) && !anchors.contains(&"app/s5".into()));
    assert!(anchors.contains(&"app/s4".into()));
}

#[test]
fn admin_post_parses_to_typed_action() {
    // The body curl sent in record.sh.
    let r = parse_admin_form("s=s2&action=drain&b=%234").unwrap();
    assert_eq!(
        r,
        AdminRequest {
            backend: BackendRef::Id(4),
            action: AdminAction::Drain,
            servers: vec!["s2".into()]
        }
    );
    let r = parse_admin_form("b=app&action=maint&s=s1&s=s%2F3").unwrap();
    assert_eq!(r.backend, BackendRef::Name("app".into()));
    assert_eq!(r.servers, ["s1", "s/3"]);
    assert_eq!(
        parse_admin_form("b=%234&action=explode&s=s1"),
        Err(AdminStatus::Errp)
    );
    assert_eq!(
        parse_admin_form("action=drain&s=s1"),
        Err(AdminStatus::Errp)
    );
    assert_eq!(
        parse_admin_form("b=%234&action=drain"),
        Err(AdminStatus::None)
    );
    for v in [
        "ready", "drain", "maint", "dhlth", "ehlth", "hrunn", "hnolb", "hdown", "dagent", "eagent",
        "arunn", "adown", "shutdown",
    ] {
        assert!(AdminAction::parse(v).is_some(), "{v}");
    }
}

fn http_head(ans: &HttpAnswer) -> String {
    let reason = match ans.status {
        303 => "See Other",
        401 => "Unauthorized",
        _ => "OK",
    };
    let mut s = format!("HTTP/1.1 {} {reason}\r\n", ans.status);
    for (k, v) in &ans.headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s
}

#[test]
fn admin_redirects_like_haproxy() {
    let done = admin_redirect("/", AdminStatus::from_counts(1, 1));
    let recorded = fixture("admin_post_drain.http");
    assert!(
        recorded.starts_with(&http_head(&done)),
        "{}\n---\n{recorded}",
        http_head(&done)
    );
    // An unknown server: one checked, none changed.
    let errp = admin_redirect("/", AdminStatus::from_counts(1, 0));
    assert!(fixture("admin_post_unknown.http").starts_with(&http_head(&errp)));
    assert_eq!(AdminStatus::from_counts(2, 1), AdminStatus::Part);
    assert_eq!(AdminStatus::from_counts(0, 0), AdminStatus::None);
}

#[test]
fn auth_checks_basic_credentials() {
    let creds = [
        Credential::parse("admin:secret").unwrap(),
        Credential::parse("ops:p:w").unwrap(),
    ];
    assert_eq!(
        check_basic_auth(Some("Basic YWRtaW46c2VjcmV0"), &creds),
        Some("admin")
    );
    assert_eq!(
        check_basic_auth(Some("basic   b3BzOnA6dw=="), &creds),
        Some("ops")
    );
    assert_eq!(
        check_basic_auth(Some("Basic YWRtaW46c2VjcmV1"), &creds),
        None
    );
    assert_eq!(
        check_basic_auth(Some("Bearer YWRtaW46c2VjcmV0"), &creds),
        None
    );
    assert_eq!(check_basic_auth(Some("Basic !!!"), &creds), None);
    assert_eq!(check_basic_auth(None, &creds), None);
    let ans = unauthorized(Some("ringlb stats"));
    let recorded = fixture("admin_noauth.http");
    let (head, body) = recorded.split_once("\r\n\r\n").unwrap();
    assert_eq!(ans.body, body);
    assert!(head.contains("www-authenticate: Basic realm=\"ringlb stats\""));
    assert!(ans.headers.contains(&(
        "www-authenticate".into(),
        "Basic realm=\"ringlb stats\"".into()
    )));
}

#[test]
fn human_time_formats() {
    assert_eq!(human_time(0), "0s");
    assert_eq!(human_time(70), "1m10s");
    assert_eq!(human_time(7380), "2h3m");
    assert_eq!(human_time(93600), "1d2h");
}

/// Every data row spans as many columns as the header (colspans counted), tags balance.
#[test]
fn rows_have_as_many_columns_as_the_header() {
    for admin in [false, true] {
        let cfg = PageConfig {
            uri: "/".into(),
            show_legends: !admin,
            admin,
            ..Default::default()
        };
        let mut snap = recorded_snapshot();
        snap.proxies[2].servers[0]
            .latency
            .record(&ringlb_stats::RequestTimes {
                total_us: Some(1500),
                ..Default::default()
            });
        let html = serve(&snap, &cfg, &PageRequest::default()).body;
        for (open, close) in [
            ("<table", "</table>"),
            ("<tr", "</tr>"),
            ("<form", "</form>"),
            ("<u>", "</u>"),
            ("<div", "</div>"),
        ] {
            assert_eq!(
                html.matches(open).count(),
                html.matches(close).count(),
                "{open} admin={admin}"
            );
        }
        // Drop tooltips (never nested in ringlb's output), then count cells per row.
        let mut flat = String::new();
        let mut rest = html.as_str();
        while let Some(i) = rest.find("<div class=tips>") {
            flat.push_str(&rest[..i]);
            let j = rest[i..].find("</div>").unwrap() + i + 6;
            rest = &rest[j..];
        }
        flat.push_str(rest);
        let width = |row: &str| -> usize {
            row.split("<td")
                .skip(1)
                .map(|c| {
                    c.split('>')
                        .next()
                        .unwrap()
                        .split("colspan=")
                        .nth(1)
                        .map_or(1, |n| {
                            n.trim_matches('"')
                                .split(' ')
                                .next()
                                .unwrap()
                                .parse()
                                .unwrap()
                        })
                })
                .sum()
        };
        let mut rows = 0;
        for seg in flat.split("<tr class=").skip(1) {
            let row = seg.split("</tr>").next().unwrap();
            if row.starts_with("\"titre\"") || row.contains("noborder") || !row.contains("<td") {
                continue;
            }
            // The admin checkbox column exists in tables of proxies with servers.
            let px = row
                .split("<a name=\"")
                .nth(1)
                .unwrap()
                .split('/')
                .next()
                .unwrap();
            let expected = 35 + usize::from(admin && ["app", "app2", "tcpapp"].contains(&px));
            assert_eq!(width(row), expected, "admin={admin}: {row}");
            rows += 1;
        }
        assert!(rows >= 15, "{rows}");
    }
}

/// The tooltips carry haproxy's labels in haproxy's order (ringlb's percentiles aside).
#[test]
fn tooltip_labels_match_haproxy() {
    let cfg = PageConfig {
        uri: "/stats".into(),
        show_legends: true,
        ..Default::default()
    };
    let ours = serve(&recorded_snapshot(), &cfg, &PageRequest::default()).body;
    let theirs = fixture("stats_page.html");
    let labels = |h: &str, anchor: &str| -> Vec<String> {
        let i = h.find(&format!("name=\"{anchor}\"")).unwrap();
        let j = h[i..].find("<tr class=").map_or(h.len(), |j| i + j);
        h[i..j]
            .split("<th")
            .skip(1)
            .filter_map(|t| {
                t.split_once('>')
                    .map(|x| x.1.split("</th>").next().unwrap().to_string())
            })
            .collect()
    };
    for anchor in [
        "origin/Frontend",
        "web/Frontend",
        "app/s1",
        "app/s3",
        "app/Backend",
        "app2/a1",
        "tcpapp/Frontend",
        "tcpapp/t1",
        "tcpapp/Backend",
    ] {
        assert_eq!(labels(&ours, anchor), labels(&theirs, anchor), "{anchor}");
    }
}

#[test]
fn server_tooltip_adds_percentiles_when_there_is_traffic() {
    let mut snap = recorded_snapshot();
    for ms in 1..=100u64 {
        let t = ringlb_stats::RequestTimes {
            queue_us: Some(0),
            connect_us: Some(100),
            response_us: Some(ms * 1000),
            total_us: Some(ms * 1000 + 500),
        };
        snap.proxies[2].servers[0].latency.record(&t);
    }
    let cfg = PageConfig {
        uri: "/".into(),
        ..Default::default()
    };
    let html = serve(&snap, &cfg, &PageRequest::default()).body;
    assert!(
        html.contains("<tr><th colspan=3>Percentiles p50 / p90 / p99 / p99.9 (ringlb)</th></tr>")
    );
    // Response time p50 = 50 ms, p99 = 99 ms (within the histogram's 1%).
    let cell = html
        .split("<tr><th>- Responses time:</th><td>")
        .skip(1)
        .map(|s| s.split("</td>").next().unwrap())
        .find(|c| c.contains('.'))
        .unwrap();
    let vals: Vec<f64> = cell.split(" / ").map(|v| v.parse().unwrap()).collect();
    assert!(
        (vals[0] - 50.0).abs() < 1.0 && (vals[2] - 99.0).abs() < 1.5,
        "{vals:?}"
    );
}

#[test]
fn route_follows_haproxys_flow() {
    let snap = recorded_snapshot();
    let mut cfg = admin_cfg();
    cfg.uri = "/admin".into();
    let auth = AuthConfig {
        credentials: vec![Credential::parse("admin:secret").unwrap()],
        realm: Some("ringlb stats".into()),
    };
    let ok = Some("Basic YWRtaW46c2VjcmV0");
    assert_eq!(
        route(&snap, &cfg, &auth, "GET", "/other", ok, ""),
        StatsRoute::NotStats
    );
    let StatsRoute::Answer(a) = route(&snap, &cfg, &auth, "GET", "/admin", None, "") else {
        panic!()
    };
    assert_eq!(a.status, 401);
    let StatsRoute::Answer(a) = route(&snap, &cfg, &auth, "GET", "/admin;csv", ok, "") else {
        panic!()
    };
    assert_eq!((a.status, a.body.starts_with("# pxname")), (200, true));
    match route(
        &snap,
        &cfg,
        &auth,
        "POST",
        "/admin",
        ok,
        "s=s2&action=drain&b=%234",
    ) {
        StatsRoute::Admin {
            request,
            redirect_uri,
        } => {
            assert_eq!(request.action, AdminAction::Drain);
            assert_eq!(redirect_uri, "/admin");
        }
        other => panic!("{other:?}"),
    }
    let StatsRoute::Answer(a) = route(&snap, &cfg, &auth, "POST", "/admin", ok, "action=drain")
    else {
        panic!()
    };
    assert!(a
        .headers
        .contains(&("location".into(), "/admin;st=ERRP".into())));
    cfg.admin = false;
    let StatsRoute::Answer(a) = route(
        &snap,
        &cfg,
        &auth,
        "POST",
        "/admin",
        ok,
        "s=s2&action=drain&b=%234",
    ) else {
        panic!()
    };
    assert!(a
        .headers
        .contains(&("location".into(), "/admin;st=DENY".into())));
}

/// haproxy 2.6 prints the `check_status` field on the page: `* ` before the last status while
/// a check runs, its code reset to 0 (seen on haproxy 2.6 with a server answering slowly).
#[test]
fn check_in_progress_is_starred_on_the_page() {
    let mut snap = recorded_snapshot();
    let app = snap.proxies.iter_mut().find(|p| p.name == "app").unwrap();
    let chk = app.servers[0].check.as_mut().unwrap();
    chk.in_progress = true;
    chk.code = Some(0);
    chk.duration_ms = Some(1504);
    let ans = serve(&snap, &PageConfig::default(), &PageRequest::default());
    assert!(
        ans.body
            .contains("<u> * L7OK/0 in 1504ms<div class=tips>Layer7 check passed</div>"),
        "{}",
        ans.body
    );
    // The other servers' checks are not running.
    assert!(ans.body.contains("<u> L7OK/200 in 0ms<div class=tips>"));
}
