//! Runs scenarios: per variant, one config file; per pair, each subject (HAProxy, ringlb or a
//! relay) is started fresh, warmed up (discarded), measured, and stopped. Pairs alternate the
//! order (ABBA) so drift does not favour one side; a rejected round is retried a bounded number
//! of times.

use crate::cli::RunArgs;
use crate::idle::IdleHolder;
use crate::origin;
use crate::procfs;
use crate::procs::{self, Proc, TempDir};
use crate::results::{Machine, Round, ScenarioResult, VariantResult, BASELINE};
use crate::scenarios::{self, CfgInputs, Front, Load, Variant, CLIENT_IDS, IDLE_CONNS};
use crate::stats::{self, RoundHealth};
use crate::{h2load, openloop, wrk};
use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Attempts per round before the round is given up (rejected rounds are retried).
const MAX_ATTEMPTS: u32 = 3;
/// CPU of the proxy in the headline topology; the load generator and origin use `LOAD_CPU`.
const LOAD_CPU: &str = "1";

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Haproxy,
    Ringlb(PathBuf),
    Relay(PathBuf),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Subject {
    pub name: String,
    pub kind: Kind,
}

pub struct Ctx {
    pub args: RunArgs,
    pub dir: TempDir,
    pub origin: Proc,
    pub origin_port: u16,
    pub pem: Option<String>,
    pub round: Duration,
    pub warmup: Duration,
    pub machine: Machine,
    pub tick_hz: f64,
    pub ksoftirqd: Vec<u32>,
    /// HAProxy's median req/s in variant 1-c64 (scenario 10's reference).
    pub haproxy_max_rps: Option<f64>,
    pub seq: u64,
}

impl Ctx {
    pub fn new(args: RunArgs, machine: Machine) -> Result<Ctx, String> {
        let dir = TempDir::new("run")?;
        let (origin, origin_port) = origin::start_nginx(&dir, LOAD_CPU)?;
        let (round, warmup) = if args.quick {
            (Duration::from_secs(2), Duration::from_secs(1))
        } else {
            (Duration::from_secs(5), Duration::from_secs(2))
        };
        Ok(Ctx {
            args,
            dir,
            origin,
            origin_port,
            pem: None,
            round,
            warmup,
            machine,
            tick_hz: procfs::ticks_per_s(),
            ksoftirqd: procfs::ksoftirqd_pids(),
            haproxy_max_rps: None,
            seq: 0,
        })
    }

    fn max_other_share(&self) -> f64 {
        self.args.max_other_pct / 100.0
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
}

/// Runs one scenario and returns its result (not yet written).
pub fn run_scenario(
    ctx: &mut Ctx,
    id: &str,
    subjects: &[Subject],
) -> Result<ScenarioResult, String> {
    let sc = scenarios::scenario(id).ok_or_else(|| format!("unknown scenario {id}"))?;
    let started = crate::results::utc_timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    );
    println!("\n## Scenario {id}: {}", sc.title);
    let load_before = crate::machine::load_avg();
    let mut variants = Vec::new();
    let quick = ctx.args.quick;
    for v in sc.variants.iter().filter(|v| v.quick || !quick) {
        println!("### {} — {}", v.id, v.title);
        let vr = run_variant(ctx, v, subjects)?;
        if v.id == "1-c64" {
            if let Some(m) = vr.medians.get(BASELINE).and_then(|m| m.get("rps")) {
                ctx.haproxy_max_rps = Some(*m);
            }
        }
        variants.push(vr);
    }
    let mut notes = Vec::new();
    if id == "8" {
        notes.push(format!(
            "{IDLE_CONNS} idle connections instead of 10,000: HAProxy 2.6 needs 2 × maxconn + 17 file \
             descriptors and the machine's hard limit is 20000, so maxconn is {} in every config.",
            scenarios::MAXCONN
        ));
    }
    if id == "6" {
        notes.push(
            "h2load prints no latency percentiles; the mean time per request is recorded.".into(),
        );
    }
    let mut machine = ctx.machine.clone();
    machine.load_before = load_before;
    machine.load_after = crate::machine::load_avg();
    Ok(ScenarioResult {
        schema: crate::results::SCHEMA,
        scenario: id.to_string(),
        title: sc.title.to_string(),
        started_utc: started,
        quick: ctx.args.quick,
        pairs: ctx.args.rounds,
        round_s: ctx.round.as_secs_f64(),
        warmup_s: ctx.warmup.as_secs_f64(),
        max_other_pct: ctx.args.max_other_pct,
        machine,
        subjects: subjects.iter().map(|s| s.name.clone()).collect(),
        notes,
        variants,
    })
}

fn run_variant(ctx: &mut Ctx, v: &Variant, subjects: &[Subject]) -> Result<VariantResult, String> {
    let listen_port = procs::free_port()?;
    if v.front.tls() && ctx.pem.is_none() {
        ctx.pem = Some(origin::make_cert(&ctx.dir)?);
    }
    let inputs = CfgInputs {
        listen_port,
        origin_port: ctx.origin_port,
        pem: ctx.pem.clone().unwrap_or_default(),
    };
    let config = scenarios::proxy_config(v, &inputs);
    let cfg_path = ctx.dir.file(&format!("{}.cfg", v.id));
    fs::write(&cfg_path, &config).map_err(|e| e.to_string())?;
    let mut not_yet = BTreeMap::new();
    let mut active = Vec::new();
    for s in subjects {
        match preflight(ctx, s, v, &cfg_path, listen_port) {
            Ok(()) => active.push(s.clone()),
            Err(reason) if s.kind == Kind::Haproxy => {
                return Err(format!("haproxy cannot run {}: {reason}", v.id));
            }
            Err(reason) => {
                println!("{}: not yet ({reason})", s.name);
                not_yet.insert(s.name.clone(), reason);
            }
        }
    }
    let mut rounds = Vec::new();
    for pair in 0..ctx.args.rounds {
        let mut order: Vec<&Subject> = active.iter().collect();
        if pair % 2 == 1 {
            order.reverse();
        }
        for s in order {
            for attempt in 0..MAX_ATTEMPTS {
                procs::check_stop()?;
                wait_quiet(ctx, Duration::from_secs(ctx.args.quiet_wait_s));
                let r = match measure(ctx, s, v, &cfg_path, listen_port) {
                    Ok((mut metrics, raw, reason)) => Round {
                        metrics: {
                            // A ratio over a zero (a stalled phase) is not a measurement; JSON
                            // cannot hold it either.
                            metrics.retain(|_, x| x.is_finite());
                            metrics
                        },
                        subject: s.name.clone(),
                        pair,
                        attempt,
                        accepted: reason.is_none(),
                        reject_reason: reason,
                        raw,
                    },
                    Err(e) => Round {
                        subject: s.name.clone(),
                        pair,
                        attempt,
                        accepted: false,
                        reject_reason: Some(format!("error: {e}")),
                        metrics: BTreeMap::new(),
                        raw: String::new(),
                    },
                };
                print_round(&r, v);
                let ok = r.accepted;
                rounds.push(r);
                if ok {
                    break;
                }
            }
        }
    }
    let mut vr = VariantResult {
        id: v.id.clone(),
        title: v.title.clone(),
        throughput: v.throughput.to_string(),
        cpu: v.cpu.to_string(),
        headline: v.headline.iter().map(|s| s.to_string()).collect(),
        config,
        not_yet,
        rounds,
        medians: BTreeMap::new(),
        ratios: BTreeMap::new(),
    };
    let names: Vec<String> = subjects.iter().map(|s| s.name.clone()).collect();
    vr.summarize(&names);
    Ok(vr)
}

fn print_round(r: &Round, v: &Variant) {
    let thr = r.metrics.get(v.throughput).copied().unwrap_or(0.0);
    let cpu = r.metrics.get(v.cpu).copied().unwrap_or(0.0);
    let p99 = r.metrics.get("p99_us").copied().unwrap_or(0.0);
    let other = r.metrics.get("other_cpu_s").copied().unwrap_or(0.0);
    let status = match &r.reject_reason {
        None => "ok".to_string(),
        Some(why) => format!("REJECTED: {why}"),
    };
    println!(
        "  pair {} {:<10} {:>12.1} {:<7} p99 {:>8.0} µs  {} {:.3}  other {:.2} CPU-s  [{status}]",
        r.pair, r.subject, thr, v.throughput, p99, v.cpu, cpu, other
    );
}

fn cpus_for(v: &Variant) -> &'static str {
    if v.threads >= 2 {
        "0,1"
    } else {
        "0"
    }
}

fn command(s: &Subject, cfg: &std::path::Path, port: u16, origin_port: u16) -> Vec<String> {
    let cfg = cfg.display().to_string();
    match &s.kind {
        Kind::Haproxy => vec!["haproxy".into(), "-db".into(), "-f".into(), cfg],
        Kind::Ringlb(p) => vec![p.display().to_string(), "-f".into(), cfg],
        Kind::Relay(p) => vec![
            p.display().to_string(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--upstream".into(),
            format!("127.0.0.1:{origin_port}"),
            "--cpu".into(),
            "0".into(),
        ],
    }
}

fn start(
    ctx: &mut Ctx,
    s: &Subject,
    v: &Variant,
    cfg: &std::path::Path,
    port: u16,
) -> Result<Proc, String> {
    let cmd = command(s, cfg, port, ctx.origin_port);
    let seq = ctx.next_seq();
    let log = ctx.dir.file(&format!("{}-{}-{seq}.log", v.id, s.name));
    let mut p = Proc::spawn(&s.name, cpus_for(v), &cmd, &log)?;
    if let Err(e) = procs::wait_port(&mut p, port, Duration::from_secs(5)) {
        let out = fs::read_to_string(&log).unwrap_or_default();
        return Err(format!("{e}; log: {}", first_alert(&out)));
    }
    Ok(p)
}

/// The first `[ALERT]` line of a proxy's log (else its first line), at most 300 characters.
fn first_alert(log: &str) -> String {
    let line = log
        .lines()
        .find(|l| l.contains("ALERT"))
        .or_else(|| log.lines().next())
        .unwrap_or("");
    line.trim().chars().take(300).collect()
}

fn url(v: &Variant, port: u16) -> String {
    let scheme = if v.front.tls() { "https" } else { "http" };
    let path = match &v.load {
        Load::Wrk { path, .. } | Load::H2load { path, .. } => path,
        Load::OpenLoop { .. } | Load::Idle => "/0",
    };
    format!("{scheme}://127.0.0.1:{port}{path}")
}

/// Can this subject run this variant? Config check, start, one probe request answered 200.
fn preflight(
    ctx: &mut Ctx,
    s: &Subject,
    v: &Variant,
    cfg: &std::path::Path,
    port: u16,
) -> Result<(), String> {
    let cfg_s = cfg.display().to_string();
    match &s.kind {
        Kind::Haproxy => {
            let (ok, out) =
                procs::run_capture(&["haproxy", "-c", "-f", &cfg_s], Duration::from_secs(10))?;
            if !ok {
                return Err(format!("haproxy -c failed: {}", out.trim()));
            }
            // HAProxy is the reference: a config it accepts is measured without a probe round.
            return Ok(());
        }
        Kind::Ringlb(p) | Kind::Relay(p) => {
            if !p.is_file() {
                return Err(format!("{} is not built", p.display()));
            }
            if let Kind::Ringlb(_) = s.kind {
                let bin = p.display().to_string();
                let (ok, out) =
                    procs::run_capture(&[&bin, "-c", "-f", &cfg_s], Duration::from_secs(10))?;
                if !ok {
                    let first = out
                        .lines()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("no output");
                    return Err(format!("`ringlb -c` rejects the config: {}", first.trim()));
                }
            }
        }
    }
    let mut p = start(ctx, s, v, cfg, port)?;
    let mut extra: Vec<&str> = Vec::new();
    if v.front == Front::H2c {
        extra.push("--http2-prior-knowledge");
    }
    if v.front == Front::H2Tls {
        extra.push("--http2");
    }
    if let Load::Wrk {
        client_ids: true, ..
    } = v.load
    {
        extra.extend(["-H", "x-client-id: preflight"]);
    }
    let code = procs::probe(&url(v, port), &extra);
    p.stop();
    match code {
        Ok(200) => Ok(()),
        Ok(c) => Err(format!("probe request answered {c}, expected 200")),
        Err(e) => Err(format!("probe request failed: {e}")),
    }
}

/// Waits (at most `limit`) until the machine is quiet: over a 200 ms window, CPUs busy less than
/// twice the rejection threshold (between rounds nothing of ours runs but an idle origin).
fn wait_quiet(ctx: &Ctx, limit: Duration) {
    if limit.is_zero() {
        return;
    }
    let t0 = Instant::now();
    while t0.elapsed() < limit && !procs::stopping() {
        let Ok(a) = procfs::machine_cpu() else { return };
        let w = Duration::from_millis(200);
        std::thread::sleep(w);
        let Ok(b) = procfs::machine_cpu() else { return };
        let busy_s = b.busy.saturating_sub(a.busy) as f64 / ctx.tick_hz;
        if busy_s / w.as_secs_f64() < ctx.max_other_share() * 2.0 {
            return;
        }
    }
    println!("  (machine still busy after {limit:?}; retrying anyway)");
}

/// CPU counters at one instant.
struct Sample {
    at: Instant,
    /// Busy ticks charged to processes (irq and softirq time left out: see `MachineCpu::irq`).
    machine_busy: u64,
    own_ticks: u64,
    proxy_ticks: u64,
    children_s: f64,
}

fn children_cpu_s() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) != 0 {
            return 0.0;
        }
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        tv(ru.ru_utime) + tv(ru.ru_stime)
    }
}

fn sample(ctx: &Ctx, proxy_pid: u32) -> Result<Sample, String> {
    let proxy_ticks = procfs::process_ticks(proxy_pid)?;
    let mut own = proxy_ticks + procfs::process_ticks(ctx.origin.pid())?;
    own += procfs::process_ticks(std::process::id())?;
    for &k in &ctx.ksoftirqd {
        own += procfs::process_ticks(k).unwrap_or(0);
    }
    Ok(Sample {
        at: Instant::now(),
        machine_busy: {
            let m = procfs::machine_cpu()?;
            m.busy.saturating_sub(m.irq)
        },
        own_ticks: own,
        proxy_ticks,
        children_s: children_cpu_s(),
    })
}

/// What a load run produced.
struct LoadOut {
    metrics: BTreeMap<String, f64>,
    raw: String,
    requests: u64,
    socket_errors: u64,
    unexpected_status: u64,
}

type Measured = (BTreeMap<String, f64>, String, Option<String>);

/// One round: start, warm up, measure, stop. Returns metrics, raw output and the reject reason.
fn measure(
    ctx: &mut Ctx,
    s: &Subject,
    v: &Variant,
    cfg: &std::path::Path,
    port: u16,
) -> Result<Measured, String> {
    let mut proxy = start(ctx, s, v, cfg, port)?;
    let pid = proxy.pid();
    if v.load == Load::Idle {
        let r = measure_idle(ctx, v, port, pid);
        proxy.stop();
        return r;
    }
    run_load(ctx, v, port, ctx.warmup)?;
    let (mut metrics, raw, reason) = measured_load(ctx, v, port, pid)?;
    let mem = procfs::memory(pid)?;
    metrics.insert("rss_peak_kib".into(), mem.peak_kib as f64);
    metrics.insert("rss_kib".into(), mem.rss_kib as f64);
    if let Some(st) = proxy.exited() {
        return Err(format!("{} exited during the round ({st})", s.name));
    }
    proxy.stop();
    Ok((metrics, raw, reason))
}

/// Runs the load between two CPU samples and derives CPU metrics and the verdict.
fn measured_load(ctx: &mut Ctx, v: &Variant, port: u16, pid: u32) -> Result<Measured, String> {
    let before = sample(ctx, pid)?;
    let out = run_load(ctx, v, port, ctx.round)?;
    let after = sample(ctx, pid)?;
    let hz = ctx.tick_hz;
    let elapsed = after.at.duration_since(before.at).as_secs_f64();
    let proxy_cpu_s = after.proxy_ticks.saturating_sub(before.proxy_ticks) as f64 / hz;
    let busy_s = after.machine_busy.saturating_sub(before.machine_busy) as f64 / hz;
    let own_s = after.own_ticks.saturating_sub(before.own_ticks) as f64 / hz
        + (after.children_s - before.children_s);
    let other_cpu_s = (busy_s - own_s).max(0.0);
    let mut m = out.metrics;
    m.insert("proxy_cpu_s".into(), proxy_cpu_s);
    m.insert("other_cpu_s".into(), other_cpu_s);
    m.insert("requests".into(), out.requests as f64);
    if out.requests > 0 {
        m.insert(
            "cpu_us_per_req".into(),
            proxy_cpu_s * 1e6 / out.requests as f64,
        );
    }
    if let Some(bytes) = m.get("bytes").copied().filter(|b| *b > 0.0) {
        m.insert(
            "cpu_s_per_gib".into(),
            proxy_cpu_s / (bytes / (1u64 << 30) as f64),
        );
    }
    let max_other_share = ctx.max_other_share();
    let reason = stats::reject_reason(&RoundHealth {
        max_other_share,
        requests: out.requests,
        socket_errors: out.socket_errors,
        unexpected_status: out.unexpected_status,
        other_cpu_s,
        elapsed_s: elapsed,
    });
    Ok((m, out.raw, reason))
}

fn run_load(ctx: &mut Ctx, v: &Variant, port: u16, dur: Duration) -> Result<LoadOut, String> {
    match &v.load {
        Load::Wrk {
            conns,
            close,
            client_ids,
            ..
        } => run_wrk(ctx, v, port, dur, *conns, *close, *client_ids),
        Load::H2load {
            clients, streams, ..
        } => run_h2load(ctx, v, port, dur, *clients, *streams),
        Load::OpenLoop {
            fraction,
            conns,
            threads,
        } => run_open_loop(ctx, port, dur, *fraction, *conns, *threads),
        Load::Idle => run_wrk(ctx, v, port, dur, 64, false, false),
    }
}

fn run_wrk(
    ctx: &mut Ctx,
    v: &Variant,
    port: u16,
    dur: Duration,
    conns: u32,
    close: bool,
    client_ids: bool,
) -> Result<LoadOut, String> {
    let seq = ctx.next_seq();
    let script = ctx
        .dir
        .file(if client_ids { "ids.lua" } else { "done.lua" });
    if !script.exists() {
        let text = if client_ids {
            wrk::client_id_script(CLIENT_IDS)
        } else {
            wrk::DONE_SCRIPT.to_string()
        };
        fs::write(&script, text).map_err(|e| e.to_string())?;
    }
    let mut cmd: Vec<String> = ["wrk", "-t1"].map(String::from).to_vec();
    cmd.push(format!("-c{conns}"));
    cmd.push(format!("-d{}s", dur.as_secs().max(1)));
    cmd.extend(["--latency", "--timeout", "5s", "-s"].map(String::from));
    cmd.push(script.display().to_string());
    if close {
        cmd.extend(["-H".to_string(), "Connection: close".to_string()]);
    }
    cmd.push(url(v, port));
    if client_ids {
        cmd.push("--".into());
        cmd.push(format!("r{}x{seq}", std::process::id()));
    }
    let log = ctx.dir.file(&format!("wrk-{seq}.txt"));
    let mut p = Proc::spawn("wrk", LOAD_CPU, &cmd, &log)?;
    p.wait_bounded(dur + Duration::from_secs(15))?;
    let raw = fs::read_to_string(&log).map_err(|e| e.to_string())?;
    let w = wrk::parse(&raw)?;
    let mut m = BTreeMap::new();
    m.insert("rps".into(), w.requests_per_s);
    m.insert("bytes".into(), w.bytes_read);
    m.insert("elapsed_s".into(), w.duration_s);
    if w.duration_s > 0.0 {
        m.insert("gbit_s".into(), w.bytes_read * 8.0 / w.duration_s / 1e9);
    }
    for (k, key) in [
        ("50", "p50_us"),
        ("75", "p75_us"),
        ("90", "p90_us"),
        ("99", "p99_us"),
        ("99.9", "p999_us"),
    ] {
        if let Some(x) = w.latency_us.get(k) {
            m.insert(key.into(), *x);
        }
    }
    let mut unexpected = w.non_2xx_3xx;
    if client_ids {
        let n429 = w.statuses.get(&429).copied().unwrap_or(0);
        unexpected = unexpected.saturating_sub(n429);
        m.insert("status_429".into(), n429 as f64);
        if let Front::Stick { limit } = v.front {
            let generated = w.generated.unwrap_or(w.requests);
            let exp = expected_429(generated, CLIENT_IDS, limit);
            m.insert("expected_429".into(), exp as f64);
            if exp > 0 {
                m.insert(
                    "err_429_pct".into(),
                    (n429 as f64 - exp as f64).abs() * 100.0 / exp as f64,
                );
            }
        }
    }
    Ok(LoadOut {
        metrics: m,
        raw,
        requests: w.requests,
        socket_errors: w.socket_errors.total(),
        unexpected_status: unexpected,
    })
}

/// 429s expected when `requests` cycle over `ids` client ids and each id may make `limit`
/// requests in the window: every id's requests beyond the limit are denied.
pub fn expected_429(requests: u64, ids: u32, limit: u32) -> u64 {
    let ids = u64::from(ids.max(1));
    let (base, extra) = (requests / ids, requests % ids);
    let over = |k: u64| k.saturating_sub(u64::from(limit));
    over(base + 1) * extra + over(base) * (ids - extra)
}

fn run_h2load(
    ctx: &mut Ctx,
    v: &Variant,
    port: u16,
    dur: Duration,
    clients: u32,
    streams: u32,
) -> Result<LoadOut, String> {
    let seq = ctx.next_seq();
    let cmd: Vec<String> = vec![
        "h2load".into(),
        "-t1".into(),
        format!("-c{clients}"),
        format!("-m{streams}"),
        "-D".into(),
        format!("{}", dur.as_secs().max(1)),
        url(v, port),
    ];
    let log = ctx.dir.file(&format!("h2load-{seq}.txt"));
    let mut p = Proc::spawn("h2load", LOAD_CPU, &cmd, &log)?;
    p.wait_bounded(dur + Duration::from_secs(15))?;
    let raw = fs::read_to_string(&log).map_err(|e| e.to_string())?;
    let o = h2load::parse(&raw)?;
    let mut m = BTreeMap::new();
    m.insert("rps".into(), o.requests_per_s);
    m.insert("bytes".into(), o.bytes);
    m.insert("elapsed_s".into(), o.duration_s);
    if let Some(x) = o.mean_us {
        m.insert("mean_us".into(), x);
    }
    // Keep only the summary: the progress lines are noise.
    let raw = raw
        .lines()
        .skip_while(|l| !l.starts_with("finished in"))
        .collect::<Vec<_>>()
        .join("\n");
    Ok(LoadOut {
        metrics: m,
        raw,
        requests: o.done,
        socket_errors: o.errors,
        unexpected_status: o.done.saturating_sub(o.status_2xx),
    })
}

fn run_open_loop(
    ctx: &mut Ctx,
    port: u16,
    dur: Duration,
    fraction: f64,
    conns: u32,
    threads: u32,
) -> Result<LoadOut, String> {
    let max = reference_rps(ctx)?;
    let rate = (max * fraction).max(100.0);
    let plan = openloop::Plan {
        port,
        path: "/0".into(),
        rate,
        conns,
        threads,
        duration: dur,
        cpu: 1,
    };
    let o = openloop::run(&plan)?;
    let mut m = BTreeMap::new();
    m.insert("offered_rps".into(), rate);
    m.insert("achieved_rps".into(), o.completed as f64 / o.elapsed_s);
    m.insert("elapsed_s".into(), o.elapsed_s);
    for (k, q) in crate::results::PERCENTILES {
        m.insert(k.to_string(), o.hist.value_at_quantile(q / 100.0) as f64);
    }
    let raw = format!(
        "open loop: offered {rate:.0} req/s on {conns} conns / {threads} threads for {:.1}s: completed {}, \
         errors {}, non-200 {}, max {} µs",
        o.elapsed_s,
        o.completed,
        o.errors,
        o.non_200,
        o.hist.max()
    );
    Ok(LoadOut {
        metrics: m,
        raw,
        requests: o.completed,
        socket_errors: o.errors,
        unexpected_status: o.non_200,
    })
}

/// HAProxy's scenario-1 maximum: from this run, else the latest results file, else measured now.
fn reference_rps(ctx: &mut Ctx) -> Result<f64, String> {
    if let Some(x) = ctx.haproxy_max_rps {
        return Ok(x);
    }
    if let Some(x) = crate::report::latest_haproxy_rps(&ctx.args.out_dir, "1-c64") {
        println!(
            "  (scenario 10 reference: HAProxy 1-c64 median {x:.0} req/s from the latest results)"
        );
        ctx.haproxy_max_rps = Some(x);
        return Ok(x);
    }
    let sc = scenarios::scenario("1").ok_or("no scenario 1")?;
    let v = sc.variants.into_iter().next().ok_or("no variant")?;
    let port = procs::free_port()?;
    let cfg = ctx.dir.file("reference.cfg");
    let inputs = CfgInputs {
        listen_port: port,
        origin_port: ctx.origin_port,
        pem: String::new(),
    };
    fs::write(&cfg, scenarios::proxy_config(&v, &inputs)).map_err(|e| e.to_string())?;
    let h = Subject {
        name: BASELINE.into(),
        kind: Kind::Haproxy,
    };
    let mut p = start(ctx, &h, &v, &cfg, port)?;
    run_load(ctx, &v, port, ctx.warmup)?;
    let out = run_load(ctx, &v, port, ctx.round)?;
    p.stop();
    let x = out.metrics.get("rps").copied().ok_or("no rps")?;
    println!("  (scenario 10 reference: HAProxy 1-c64 measured now: {x:.0} req/s)");
    ctx.haproxy_max_rps = Some(x);
    Ok(x)
}

/// Scenario 8: scenario 1's load without idle connections, then with `IDLE_CONNS` held.
fn measure_idle(ctx: &mut Ctx, v: &Variant, port: u16, pid: u32) -> Result<Measured, String> {
    run_load(ctx, v, port, ctx.warmup)?;
    let (no_idle, raw1, reason1) = measured_load(ctx, v, port, pid)?;
    let rss_before = procfs::memory(pid)?.rss_kib;
    let holder = IdleHolder::open(port, IDLE_CONNS as usize, "/0", Duration::from_secs(60))?;
    std::thread::sleep(Duration::from_millis(500));
    let rss_idle = procfs::memory(pid)?.rss_kib;
    let (mut m, raw2, reason2) = measured_load(ctx, v, port, pid)?;
    let alive = holder.alive();
    let held = holder.len();
    drop(holder);
    let mem = procfs::memory(pid)?;
    m.insert("rss_peak_kib".into(), mem.peak_kib as f64);
    m.insert("rss_kib".into(), rss_idle as f64);
    m.insert(
        "idle_bytes_per_conn".into(),
        (rss_idle as f64 - rss_before as f64) * 1024.0 / held as f64,
    );
    m.insert("idle_alive".into(), alive as f64);
    if let Some(r) = no_idle.get("rps").copied() {
        m.insert("rps_no_idle".into(), r);
        if let Some(w) = m.get("rps").copied() {
            m.insert("idle_slowdown".into(), w / r);
        }
    }
    let mut reason = reason1.or(reason2);
    if reason.is_none() && alive < held {
        reason = Some(format!(
            "the proxy closed {} of {held} idle connections",
            held - alive
        ));
    }
    Ok((
        m,
        format!("{raw1}\n--- with {held} idle connections held ---\n{raw2}"),
        reason,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_429_counts() {
        // 60,000 requests over 10,000 ids: 6 each, limit 3 → 3 denied each.
        assert_eq!(expected_429(60_000, 10_000, 3), 30_000);
        // 65,000: 5,000 ids get 7 (4 denied), 5,000 get 6 (3 denied).
        assert_eq!(expected_429(65_000, 10_000, 3), 35_000);
        // Under the limit: none.
        assert_eq!(expected_429(25_000, 10_000, 3), 0);
        assert_eq!(expected_429(0, 10_000, 3), 0);
    }

    #[test]
    fn relay_command_follows_the_contract() {
        let s = Subject {
            name: "relay-x".into(),
            kind: Kind::Relay("/b/relay-x".into()),
        };
        let c = command(&s, std::path::Path::new("/c.cfg"), 8000, 9000);
        assert_eq!(
            c,
            [
                "/b/relay-x",
                "--listen",
                "127.0.0.1:8000",
                "--upstream",
                "127.0.0.1:9000",
                "--cpu",
                "0"
            ]
        );
        let h = Subject {
            name: "haproxy".into(),
            kind: Kind::Haproxy,
        };
        assert_eq!(
            command(&h, std::path::Path::new("/c.cfg"), 1, 2),
            ["haproxy", "-db", "-f", "/c.cfg"]
        );
        let r = Subject {
            name: "ringlb".into(),
            kind: Kind::Ringlb("/t/ringlb".into()),
        };
        assert_eq!(
            command(&r, std::path::Path::new("/c.cfg"), 1, 2),
            ["/t/ringlb", "-f", "/c.cfg"]
        );
    }
}
