//! Table-driven tests of fetches, converters and ACL keywords, mostly HAProxy's documented
//! examples (configuration.txt sections 7.3.x).

use std::borrow::Cow;

use ringlb_config::model::{Acl, AclFlags, Loc};

use crate::acl::compile_acl;
use crate::context::{Ctx, Txn};
use crate::expr::Expr;
use crate::message::HttpMessage;
use crate::sample::Sample;
use crate::tests::{get, Host};

fn show(s: Option<Sample<'_>>) -> String {
    match s {
        None => "<none>".into(),
        Some(Sample::Bool(b)) => format!("bool:{b}"),
        Some(Sample::Int(i)) => format!("int:{i}"),
        Some(Sample::Ip(ip)) => format!("ip:{ip}"),
        Some(Sample::Str(s)) => String::from_utf8_lossy(&s).into_owned(),
        Some(Sample::Bin(b)) => format!(
            "bin:{}",
            b.iter().map(|c| format!("{c:02x}")).collect::<String>()
        ),
    }
}

fn ev(expr: &str, h: &Host, t: &Txn<'_>) -> String {
    let e = Expr::parse(expr, &()).unwrap_or_else(|e| panic!("{expr}: {e}"));
    show(e.eval(Ctx::new(h, t)))
}

fn sample_txn() -> Txn<'static> {
    let mut t = get(
        "/foo/bar.php?user=alice&page=12;sid=xyz&empty=",
        &[
            ("Host", "www.example.com"),
            ("Host", "second.example.com"),
            ("Accept", "text/html, application/json;q=0.9"),
            ("Accept", "*/*"),
            ("User-Agent", "Mozilla/5.0 (X11, Linux)"),
            ("Cookie", "SESSID=abc; lang=fr"),
            ("Cookie", "SESSID=def"),
            ("X-Forwarded-For", "10.1.1.1, 192.168.0.9"),
            ("Content-Length", "42"),
        ],
    );
    let mut res = HttpMessage::response(b"HTTP/1.1", 404, b"Not Found");
    res.push_header(b"Set-Cookie", b"SRV=s1; path=/");
    res.push_header(b"Server", b"nginx");
    t.res = Some(res);
    t.vars.set("txn.who", Sample::owned(b"bob".to_vec()));
    t.vars.set("txn.n", Sample::Int(7));
    t
}

#[test]
fn fetch_table() {
    let h = Host {
        be: Some("be_app"),
        srv: Some("s1"),
        ..Host::default()
    };
    let t = sample_txn();
    let cases: &[(&str, &str)] = &[
        ("src", "ip:198.51.100.7"),
        ("src_port", "int:41000"),
        ("dst", "ip:10.0.0.1"),
        ("dst_port", "int:443"),
        ("method", "GET"),
        ("path", "/foo/bar.php"),
        ("url", "/foo/bar.php?user=alice&page=12;sid=xyz&empty="),
        ("query", "user=alice&page=12;sid=xyz&empty="),
        ("pathq", "/foo/bar.php?user=alice&page=12;sid=xyz&empty="),
        // base: first Host + path (configuration.txt: "first Host header").
        ("base", "www.example.com/foo/bar.php"),
        ("url_param(user)", "alice"),
        ("urlp(page)", "12"),
        ("urlp(sid)", "xyz"),
        ("urlp(empty)", ""),
        ("urlp(nope)", "<none>"),
        ("urlp", "alice"),
        ("urlp_val(page)", "int:12"),
        // hdr: last comma-separated value; fhdr: last full line.
        ("hdr(accept)", "*/*"),
        ("req.hdr(accept,1)", "text/html"),
        ("req.hdr(accept,2)", "application/json;q=0.9"),
        ("req.hdr(accept,-2)", "application/json;q=0.9"),
        ("req.fhdr(accept,1)", "text/html, application/json;q=0.9"),
        ("req.fhdr(user-agent)", "Mozilla/5.0 (X11, Linux)"),
        ("hdr(user-agent)", "Linux)"),
        ("hdr(host)", "second.example.com"),
        ("hdr(host,1)", "www.example.com"),
        ("hdr(x-none)", "<none>"),
        ("hdr_cnt(accept)", "int:3"),
        ("req.fhdr_cnt(accept)", "int:2"),
        // Without a name every value of every header counts (User-Agent holds a comma).
        ("hdr_cnt", "int:12"),
        ("hdr_ip(x-forwarded-for)", "ip:192.168.0.9"),
        ("hdr_ip(x-forwarded-for,1)", "ip:10.1.1.1"),
        ("hdr_val(content-length)", "int:42"),
        // req.cook: last occurrence of a name; first cookie without a name.
        ("req.cook(SESSID)", "def"),
        ("req.cook(lang)", "fr"),
        ("req.cook", "abc"),
        ("req.cook(sessid)", "<none>"),
        ("req.cook_cnt(SESSID)", "int:2"),
        ("req.cook_cnt", "int:3"),
        ("res.cook(SRV)", "s1"),
        ("res.hdr(server)", "nginx"),
        ("status", "int:404"),
        ("req.ver", "1.1"),
        ("res.ver", "1.1"),
        ("fe_name", "fe_main"),
        ("be_name", "be_app"),
        ("srv_name", "s1"),
        ("str(hello)", "hello"),
        ("int(-12)", "int:-12"),
        ("bool(1)", "bool:true"),
        ("ipv4(10.2.3.4)", "ip:10.2.3.4"),
        ("ipv6(::1)", "ip:::1"),
        ("bin(0a0B)", "bin:0a0b"),
        ("always_true", "bool:true"),
        ("always_false", "bool:false"),
        ("var(txn.who)", "bob"),
        ("var(txn.n)", "int:7"),
        ("var(txn.none)", "<none>"),
        ("hostname", "lb1"),
        ("date", "int:1795516200"),
        ("date(3600)", "int:1795519800"),
        ("date(0,ms)", "int:1795516200000"),
        ("env(HOME)", "<none>"),
        ("unique-id", "<none>"),
        ("ssl_fc", "bool:false"),
        ("ssl_fc_sni", "<none>"),
        ("src_is_local", "bool:false"),
        ("req.proto_http", "bool:true"),
        ("wait_end", "bool:true"),
        ("http_auth_type", "<none>"),
    ];
    for (expr, want) in cases {
        assert_eq!(ev(expr, &h, &t), *want, "{expr}");
    }
    // ringlb extensions (ACL-only in the config grammar): local hour and day of week.
    for (name, want) in [("date_hour", "int:10"), ("date_dow", "int:2")] {
        let f = crate::fetch::Fetch::compile(name, &[], &()).unwrap();
        assert_eq!(show(f.eval(Ctx::new(&h, &t))), want, "{name}");
    }
}

#[test]
fn fetches_with_randomness_and_absolute_uris() {
    let h = Host::default();
    let t = get("http://user@Example.org:8080/a/b?x=1", &[]);
    assert_eq!(ev("path", &h, &t), "/a/b");
    assert_eq!(ev("query", &h, &t), "x=1");
    assert_eq!(ev("url_port", &h, &t), "int:8080");
    let t = get("http://192.0.2.1/a", &[]);
    assert_eq!(ev("url_ip", &h, &t), "ip:192.0.2.1");
    assert_eq!(ev("url_port", &h, &t), "int:80");
    for _ in 0..50 {
        let r: i64 = ev("rand(10)", &h, &t)
            .trim_start_matches("int:")
            .parse()
            .unwrap();
        assert!((0..10).contains(&r));
    }
    let a = ev("uuid", &h, &t);
    let b = ev("uuid(4)", &h, &t);
    assert_ne!(a, b);
    assert!(Expr::parse("uuid(7)", &()).is_err());
}

#[test]
fn fetch_compile_errors() {
    for (expr, needle) in [
        ("hdr(a,b,c)", "expects 0 to 2 argument(s)"),
        ("src(1)", "expects 0 argument(s)"),
        ("sc_http_req_rate", "expects 1 to 2"),
        ("sc_http_req_rate(5)", "invalid stick counter"),
        ("int(x)", "invalid integer"),
        ("var(foo)", "invalid variable name"),
        ("date(0,h)", "unknown unit"),
        ("str(x),field(0,_)", "index must not be 0"),
        ("str(x),regsub('(',x)", "invalid regex"),
        ("str(x),json(latin1)", "unexpected input code type"),
        ("str(x),ipmask(33)", "invalid IPv4 mask"),
        ("str(x),set-var(txn.x)", "not supported by ringlb yet"),
    ] {
        let e = Expr::parse(expr, &()).unwrap_err();
        assert!(e.contains(needle), "{expr}: {e}");
    }
}

#[test]
fn converter_table() {
    let h = Host::default();
    let t = sample_txn();
    let cases: &[(&str, &str)] = &[
        ("str(HeLLo),lower", "hello"),
        ("str(HeLLo),upper", "HELLO"),
        ("str(AB),hex", "4142"),
        ("str(ff),hex2i", "int:255"),
        ("str(hello),base64", "aGVsbG8="),
        ("str(aGVsbG8=),b64dec", "bin:68656c6c6f"),
        ("str(aGVsbG8),b64dec", "<none>"),
        ("str(??>),ub64enc", "Pz8-"),
        ("str(Pz8-),ub64dec", "bin:3f3f3e"),
        ("str(a%20b+c%2Fd),url_dec", "a b+c/d"),
        ("str(a%20b+c),url_dec(1)", "a b c"),
        ("str(/p?a=b+c),url_dec", "/p?a=b c"),
        ("str(a%2),url_dec", "<none>"),
        ("str(a b/c),url_enc", "a%20b%2Fc"),
        // configuration.txt field()/word() examples.
        ("str(f1_f2_f3__f5),field(5,_)", "f5"),
        ("str(f1_f2_f3__f5),field(2,_,0)", "f2_f3__f5"),
        ("str(f1_f2_f3__f5),field(2,_,2)", "f2_f3"),
        ("str(f1_f2_f3__f5),field(-2,_,3)", "f2_f3_"),
        ("str(f1_f2_f3__f5),field(-3,_,0)", "f1_f2_f3"),
        ("str(f1_f2_f3__f5),field(4,_)", ""),
        ("str(f1_f2_f3__f5),word(4,_)", "f5"),
        ("str(f1_f2_f3__f5),word(2,_,0)", "f2_f3__f5"),
        ("str(f1_f2_f3__f5),word(3,_,2)", "f3__f5"),
        ("str(f1_f2_f3__f5),word(-2,_,3)", "f1_f2_f3"),
        ("str(f1_f2_f3__f5),word(-3,_,0)", "f1_f2"),
        ("str(/f1/f2/f3/f4),word(1,/)", "f1"),
        // regsub examples.
        (
            "str(/////a///b/c/xzxyz/),regsub('/+','/','g')",
            "/a/b/c/xzxyz/",
        ),
        ("str(?;&a=1),regsub([?;&]*,'')", "a=1"),
        ("str(aXbXc),regsub(x,-,ig)", "a-b-c"),
        ("str(aXbXc),regsub(x,-,i)", "a-bXc"),
        ("str(aXbXc),regsub(x,-)", "aXbXc"),
        (
            "str(2024-01-31),regsub('([0-9]+)-([0-9]+)-([0-9]+)','\\3/\\2/\\1')",
            "31/01/2024",
        ),
        ("ipv4(192.168.1.77),ipmask(24)", "ip:192.168.1.0"),
        ("ipv4(192.168.1.77),ipmask(255.255.0.0)", "ip:192.168.0.0"),
        ("ipv6(2001:db8:1:2::5),ipmask(24,64)", "ip:2001:db8:1:2::"),
        ("ipv6(2001:db8::5),ipmask(24)", "<none>"),
        ("int(971186136),utime(%Y%m%d%H%M%S)", "20001010135536"),
        ("int(971186136),utime(%Y-%m-%d,3600)", "2000-10-10"),
        ("int(971186136),ltime(%H:%M)", "13:55"),
        ("int(971186136),http_date", "Tue, 10 Oct 2000 13:55:36 GMT"),
        ("int(0),bool", "bool:false"),
        ("int(5),bool", "bool:true"),
        ("int(5),not", "bool:false"),
        ("str(hello),length", "int:5"),
        ("str(hello),bytes(1,3)", "bin:656c6c"),
        ("str(hello),bytes(3)", "bin:6c6f"),
        ("str(hello),bytes(9)", "bin:"),
        ("str(a),concat(<,txn.who,>)", "a<bob>"),
        ("str(a),concat(-,txn.none,+)", "a-+"),
        ("str(),concat(,txn.who)", "bob"),
        // strcmp(3)'s sign (glibc: the difference of the first differing bytes).
        ("str(bob),strcmp(txn.who)", "int:0"),
        ("str(bo),strcmp(txn.who)", "int:-1"),
        ("str(bobby),strcmp(txn.who)", "int:1"),
        ("str(bab),strcmp(txn.who)", "int:-14"),
        ("str(bob),strcmp(txn.none)", "<none>"),
        ("str(bob),secure_memcmp(txn.who)", "bool:true"),
        ("str(bo),secure_memcmp(txn.who)", "bool:false"),
        ("str(bab),secure_memcmp(txn.who)", "bool:false"),
        ("str(bob),secure_memcmp(txn.none)", "<none>"),
        ("int(10),add(5)", "int:15"),
        ("int(10),sub(15)", "int:-5"),
        ("int(10),mul(txn.n)", "int:70"),
        ("int(10),div(3)", "int:3"),
        ("int(10),div(0)", "int:9223372036854775807"),
        ("int(10),mod(3)", "int:1"),
        ("int(10),mod(0)", "int:0"),
        ("int(12),and(10)", "int:8"),
        ("int(12),or(3)", "int:15"),
        ("int(12),xor(4)", "int:8"),
        ("int(5),neg", "int:-5"),
        ("int(0),cpl", "int:-1"),
        ("int(4),even", "bool:true"),
        ("int(4),odd", "bool:false"),
        ("str(xxabcxx),ltrim(x)", "abcxx"),
        ("str(xxabcxx),rtrim(x)", "xxabc"),
        ("int(1),iif(yes,no)", "yes"),
        ("int(0),iif(yes,no)", "no"),
        ("str(ab\\r\\ncd),cut_crlf", "ab\\r\\ncd"),
        ("str(example.com:8080),host_only", "example.com"),
        ("str(example.com:8080),port_only", "int:8080"),
        ("str([::1]:443),host_only", "::1"),
        // djb2/sdbm/wt6/crc32 share the balancer's implementation (HAProxy's functions).
        ("str(a),crc32", "int:3904355907"),
        ("str(abc),djb2", "int:193485963"),
        // json examples: quotes, slash, control characters, UTF-8.
        (
            "str('Very \"Ugly\" UA 1/2'),json",
            "Very \\\"Ugly\\\" UA 1\\/2",
        ),
        (
            "req.fhdr(user-agent),json(utf8s)",
            "Mozilla\\/5.0 (X11, Linux)",
        ),
        ("str(x),debug", "x"),
    ];
    for (expr, want) in cases {
        assert_eq!(ev(expr, &h, &t), *want, "{expr}");
    }
    // Converters on UTF-8 and invalid bytes.
    let utf8 = crate::conv::json_escape("é€".as_bytes(), crate::conv::JsonMode::Utf8).unwrap();
    assert_eq!(utf8, b"\\u00e9\\u20ac");
    assert_eq!(
        crate::conv::json_escape(b"a\xffb", crate::conv::JsonMode::Utf8),
        None
    );
    assert_eq!(
        crate::conv::json_escape(b"a\xffb", crate::conv::JsonMode::Utf8s).unwrap(),
        b"ab"
    );
    assert_eq!(
        crate::conv::json_escape(b"a\xffb\n", crate::conv::JsonMode::Ascii).unwrap(),
        b"a\\u00ffb\\n"
    );
}

fn write_tmp(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("ringlb-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn maps() {
    let h = Host::default();
    let t = sample_txn();
    let hosts = write_tmp(
        "hosts.map",
        "# host to backend\n  www.example.com   be_web  \napi.example.com\tbe_api\n\n",
    );
    let nets = write_tmp(
        "geo.map",
        "10.0.0.0/8 private\n10.1.0.0/16 lab\n2.22.246.0/23    United Kingdom   \n",
    );
    let prefixes = write_tmp("pfx.map", "/foo foo\n/foo/bar foobar\n/ root\n");
    let ints = write_tmp("int.map", "12 twelve\n100:200 hundreds\n");
    let regm = write_tmp("re.map", "^/foo/([a-z]+)\\.php$ script=\\1\n");
    let cases: Vec<(String, &str)> = vec![
        (format!("hdr(host,1),map({hosts})"), "be_web"),
        (format!("str(nope),map({hosts},be_default)"), "be_default"),
        (format!("str(nope),map({hosts})"), "<none>"),
        (
            format!("str(API.example.com),lower,map_str({hosts})"),
            "be_api",
        ),
        (format!("ipv4(10.1.2.3),map_ip({nets})"), "lab"),
        (format!("ipv4(10.2.2.3),map_ip({nets})"), "private"),
        (format!("ipv4(2.22.247.1),map_ip({nets})"), "United Kingdom"),
        (format!("path,map_beg({prefixes})"), "foobar"),
        (format!("str(/zzz),map_beg({prefixes})"), "root"),
        (format!("str(12),map_int({ints})"), "twelve"),
        (format!("int(150),map_int({ints})"), "hundreds"),
        (format!("path,map_regm({regm})"), "script=bar"),
        (format!("path,map_sub({prefixes})"), "foo"),
        (format!("path,map_end({hosts},none)"), "none"),
    ];
    for (expr, want) in &cases {
        assert_eq!(ev(expr, &h, &t), *want, "{expr}");
    }
    let ints_out = write_tmp("out.map", "a 1\nb 2\n");
    assert_eq!(
        ev(&format!("str(b),map_str_int({ints_out})"), &h, &t),
        "int:2"
    );
    let bad = write_tmp("bad.map", "a notanint\n");
    let e = Expr::parse(&format!("str(a),map_str_int({bad})"), &()).unwrap_err();
    assert!(e.contains("line 1") && e.contains("not an integer"), "{e}");
}

fn acl(crit: &str, flags: AclFlags, op: Option<&str>, pats: &[&str]) -> crate::acl::CompiledAcl {
    let s = ringlb_config::parse::acl::parse_sample(crit).unwrap_or_else(|_| {
        // ACL-only derived keywords (`path_beg`) are not sample fetches.
        let (f, a) = match crit.split_once('(') {
            Some((f, a)) => (f.to_string(), vec![a.trim_end_matches(')').to_string()]),
            None => (crit.to_string(), vec![]),
        };
        ringlb_config::model::SampleExpr {
            fetch: f,
            args: a,
            converters: vec![],
        }
    });
    let a = Acl {
        name: "t".into(),
        loc: Loc::default(),
        sample: s,
        flags,
        operator: op.map(str::to_string),
        patterns: pats.iter().map(|p| p.to_string()).collect(),
    };
    compile_acl(&a, &()).unwrap_or_else(|e| panic!("{crit}: {e}"))
}

fn icase() -> AclFlags {
    AclFlags {
        ignore_case: true,
        ..AclFlags::default()
    }
}

fn m(method: &str) -> AclFlags {
    AclFlags {
        match_method: Some(method.into()),
        ..AclFlags::default()
    }
}

#[test]
fn acl_keyword_table() {
    let h = Host::default();
    let t = sample_txn();
    let cx = Ctx::new(&h, &t);
    let d = AclFlags::default;
    type Case<'a> = (&'a str, AclFlags, Option<&'a str>, &'a [&'a str], bool);
    let cases: Vec<Case<'_>> = vec![
        ("path_beg", d(), None, &["/foo/"], true),
        ("path_end", d(), None, &[".php"], true),
        ("path_sub", d(), None, &["bar"], true),
        ("path_dir", d(), None, &["foo"], true),
        ("path_dir", d(), None, &["fo"], false),
        ("path_reg", d(), None, &["^/foo/[a-z]+\\.php$"], true),
        ("path_len", d(), None, &["12"], true),
        ("path_len", d(), None, &["0:5"], false),
        ("path", d(), None, &["/foo/bar.php"], true),
        ("path", icase(), None, &["/FOO/BAR.PHP"], true),
        ("path", d(), None, &["/FOO/BAR.PHP"], false),
        ("url_beg", d(), None, &["/foo"], true),
        ("url_sub", d(), None, &["alice"], true),
        ("url_end", d(), None, &["empty="], true),
        ("base_beg", d(), None, &["www.example.com/foo"], true),
        ("base_dom", d(), None, &["example"], true),
        // hdr() in ACLs tests every value of every occurrence.
        ("hdr(host)", d(), None, &["www.example.com"], true),
        ("hdr(host)", d(), None, &["second.example.com"], true),
        ("hdr(accept)", d(), None, &["application/json;q=0.9"], true),
        (
            "req.fhdr(accept)",
            d(),
            None,
            &["application/json;q=0.9"],
            false,
        ),
        ("hdr_beg(host)", d(), None, &["second."], true),
        ("hdr_end(host)", icase(), None, &[".EXAMPLE.COM"], true),
        ("hdr_sub(user-agent)", icase(), None, &["linux"], true),
        ("hdr_dom(host)", d(), None, &["example.com"], true),
        ("hdr_dom(host)", d(), None, &["ample.com"], false),
        ("hdr_reg(host)", d(), None, &["^www\\."], true),
        ("hdr_len(host)", d(), None, &["15"], true),
        ("hdr_cnt(host)", d(), Some("eq"), &["2"], true),
        ("hdr_cnt(host)", d(), Some("gt"), &["2"], false),
        ("hdr_cnt(x-none)", d(), None, &["0"], true),
        ("hdr_val(content-length)", d(), Some("ge"), &["42"], true),
        ("hdr_val(content-length)", d(), Some("lt"), &["42"], false),
        (
            "hdr_ip(x-forwarded-for)",
            d(),
            None,
            &["192.168.0.0/16"],
            true,
        ),
        ("hdr_ip(x-forwarded-for)", d(), None, &["10.1.1.1"], true),
        ("hdr(host)", m("found"), None, &[], true),
        ("hdr(x-none)", m("found"), None, &[], false),
        ("hdr_found(host)", d(), None, &[], true),
        ("req.cook(SESSID)", d(), None, &["abc"], true),
        ("req.cook(SESSID)", d(), None, &["def"], true),
        ("req.cook(SESSID)", d(), None, &["xyz"], false),
        ("req.cook_cnt(SESSID)", d(), None, &["2"], true),
        ("req.cook_len(lang)", d(), None, &["2"], true),
        ("urlp(user)", d(), None, &["alice"], true),
        ("urlp_beg(user)", d(), None, &["ali"], true),
        ("urlp_reg(page)", d(), None, &["^[0-9]+$"], true),
        ("urlp_val(page)", d(), None, &["10:20"], true),
        ("url_param(sid)", m("str"), None, &["xyz"], true),
        ("method", d(), None, &["GET", "HEAD"], true),
        ("method", d(), None, &["POST"], false),
        ("src", d(), None, &["198.51.100.0/24"], true),
        ("src", d(), None, &["198.51.101.0/24", "::1"], false),
        ("src_port", d(), None, &["1024:"], true),
        ("dst_port", d(), None, &["443"], true),
        ("dst", d(), None, &["10.0.0.1"], true),
        ("status", d(), None, &["400:499"], true),
        ("date_hour", d(), None, &["9-17"], true),
        ("date_hour", d(), None, &["11:17"], false),
        ("date_dow", d(), None, &["1-5"], true),
        ("date_dow", d(), None, &["6", "0"], false),
        ("always_true", d(), None, &[], true),
        ("always_false", d(), None, &[], false),
        ("ssl_fc", d(), None, &[], false),
        ("var(txn.n)", m("int"), Some("gt"), &["5"], true),
        ("var(txn.who)", m("str"), None, &["bob"], true),
        ("str(abc)", m("sub"), None, &["b"], true),
        ("str(abc)", m("beg"), None, &["b"], false),
        ("str(abc)", m("len"), None, &["3"], true),
        ("str(12abc)", m("int"), None, &["12"], true),
        ("str(10.1.2.3)", m("ip"), None, &["10.0.0.0/8"], true),
        ("str(abc)", m("reg"), None, &["^A"], false),
        ("str(abc),upper", m("reg"), None, &["^A"], true),
        ("str(abc),length", d(), None, &["3"], true),
        ("str(ab),bytes(0)", m("bin"), None, &["6162"], true),
        ("req.ver", d(), None, &["1.1"], true),
        // A pattern-less string ACL never matches.
        ("path", d(), None, &[], false),
    ];
    for (crit, flags, op, pats, want) in cases {
        let a = acl(crit, flags.clone(), op, pats);
        assert_eq!(a.matches(cx), want, "{crit} {flags:?} {op:?} {pats:?}");
    }
}

#[test]
fn acl_pattern_files_and_errors() {
    let h = Host::default();
    let t = sample_txn();
    let cx = Ctx::new(&h, &t);
    let f = write_tmp("agents.lst", "# bots\n  curl \nwget\n\nlinux\n");
    let a = acl(
        "hdr_sub(user-agent)",
        AclFlags {
            ignore_case: true,
            files: vec![f.clone().into()],
            ..AclFlags::default()
        },
        None,
        &[],
    );
    assert!(a.matches(cx), "pattern from -f file with -i");
    let nets = write_tmp("nets.lst", "10.0.0.0/8\n198.51.100.0/24\n");
    let a = acl(
        "src",
        AclFlags {
            files: vec![nets.into()],
            ..AclFlags::default()
        },
        None,
        &[],
    );
    assert!(a.matches(cx));
    let bad = Acl {
        name: "x".into(),
        loc: Loc {
            file: "h.cfg".into(),
            line: 12,
        },
        sample: ringlb_config::model::SampleExpr {
            fetch: "path_reg".into(),
            args: vec![],
            converters: vec![],
        },
        flags: AclFlags::default(),
        operator: None,
        patterns: vec!["(unclosed".into()],
    };
    let e = compile_acl(&bad, &()).unwrap_err();
    assert_eq!(e.loc.line, 12);
    assert_eq!(e.keyword, "acl");
    assert!(
        e.to_string().starts_with(
            "parsing [h.cfg:12] : 'acl' : error detected while parsing ACL 'x' : regex"
        ),
        "{e}"
    );
    let mut missing = bad.clone();
    missing.patterns.clear();
    missing.flags.files = vec!["/nonexistent/ringlb.lst".into()];
    let e = compile_acl(&missing, &()).unwrap_err();
    assert!(
        e.msg
            .contains("failed to open pattern file </nonexistent/ringlb.lst>"),
        "{e}"
    );
    let mut unknown = bad.clone();
    unknown.sample.fetch = "nosuch_beg".into();
    let e = compile_acl(&unknown, &()).unwrap_err();
    assert!(e.msg.contains("unknown fetch method 'nosuch_beg'"), "{e}");
    // A TLS fetch the engine gives no value to is refused, not compiled to "never set".
    let mut ssl = bad.clone();
    ssl.sample.fetch = "ssl_bc_session_id".into();
    let e = compile_acl(&ssl, &()).unwrap_err();
    assert!(
        e.msg.contains(
            "fetch method 'ssl_bc_session_id' is not supported by ringlb: rustls does not expose TLS session ids"
        ),
        "{e}"
    );
    ssl.sample.fetch = "ssl_fc_protocol_hello_id".into();
    let e = compile_acl(&ssl, &()).unwrap_err();
    assert!(
        e.msg
            .contains("fetch method 'ssl_fc_protocol_hello_id' is not supported by ringlb: rustls does not expose the ClientHello's legacy version"),
        "{e}"
    );
    // The server side's fetches compile (the engine gives them values after the connect).
    ssl.sample.fetch = "ssl_bc_protocol".into();
    assert!(compile_acl(&ssl, &()).is_ok());
}

#[test]
fn borrowed_samples_do_not_allocate() {
    let h = Host::default();
    let t = sample_txn();
    let cx = Ctx::new(&h, &t);
    for expr in [
        "path",
        "hdr(host)",
        "req.cook(lang)",
        "url_param(user)",
        "method",
        "query",
    ] {
        let e = Expr::parse(expr, &()).unwrap();
        match e.eval(cx) {
            Some(Sample::Str(Cow::Borrowed(_))) => {}
            other => panic!("{expr}: expected a borrowed sample, got {other:?}"),
        }
    }
}

/// `http_auth_type` and `http_auth_user` as haproxy 2.6 answers them (recorded), and read
/// from `Proxy-Authorization` for a proxied request under `option http-use-proxy-header`.
#[test]
fn http_auth_fetches_follow_haproxy() {
    let h = Host::default();
    let cases = [
        ("Basic dTpw", "Basic", "u"),
        ("basic dTpw", "Basic", "u"),
        ("Digest x", "<none>", "<none>"),
        ("Bearer x", "Bearer", "<none>"),
    ];
    for (value, kind, user) in cases {
        let t = get("/", &[("Authorization", value)]);
        assert_eq!(ev("http_auth_type", &h, &t), kind, "{value}");
        assert_eq!(ev("http_auth_user", &h, &t), user, "{value}");
    }
    let mut t = get("/", &[("Proxy-Authorization", "Basic dTpw")]);
    assert_eq!(ev("http_auth_user", &h, &t), "<none>");
    t.proxy_auth = true;
    assert_eq!(ev("http_auth_user", &h, &t), "u");
    assert_eq!(ev("http_auth_type", &h, &t), "Basic");
}
