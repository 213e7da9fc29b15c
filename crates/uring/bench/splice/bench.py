# Bulk TCP through one pinned relay (CPU 0); sender and sink pinned on CPU 1. Bounded: every
# process has a timeout and is killed by pid. Prints one JSON line per run.
import json, os, subprocess, sys, time, glob
HERE = os.path.dirname(os.path.abspath(__file__))
T = os.environ.get("CARGO_TARGET_DIR", "target") + "/release"
HZ = os.sysconf("SC_CLK_TCK")
GIB = 1 << 30
DATA = "/dev/shm/ringlb-splice-64m.bin"  # head -c 64M /dev/urandom > it

def cpu_of(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / HZ  # utime, stime of the whole thread group (incl. exited threads)

def threads(pid):
    out = {}
    for t in glob.glob(f"/proc/{pid}/task/*"):
        try:
            s = open(t + "/stat").read()
        except OSError:
            continue
        name = s[s.index("(") + 1:s.rindex(")")]
        f = s.rsplit(")", 1)[1].split()
        try:
            aff = [l.split()[1] for l in open(t + "/status") if l.startswith("Cpus_allowed_list")][0]
        except (OSError, IndexError):
            aff = "?"
        out[t.rsplit("/", 1)[1]] = (name, (int(f[11]) + int(f[12])) / HZ, int(f[36]), aff)  # last cpu, allowed
    return out

def haproxy_cfg(port, up, splice):
    p = f"/tmp/ringlb-splice-h{port}.cfg"
    open(p, "w").write(f"""global
  nbthread 1
  cpu-map 1/1 0
  maxconn 100
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  {'option splice-auto' if splice else ''}
frontend f
  bind 127.0.0.1:{port}
  default_backend b
backend b
  server s 127.0.0.1:{up}
""")
    return p

def run(variant, gib, port):
    up = port + 1
    sink = subprocess.Popen(["timeout", "120", "taskset", "-c", "1", "python3", os.path.join(HERE, "sink.py"), str(up), "100"],
                            stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)
    if variant.startswith("haproxy"):
        cmd = ["taskset", "-c", "0", "haproxy", "-db", "-f", haproxy_cfg(port, up, variant == "haproxy-splice")]
    else:
        cmd = [f"{T}/{variant.removesuffix('-poll')}", "--listen", f"127.0.0.1:{port}", "--upstream", f"127.0.0.1:{up}", "--cpu", "0"]
    proxy = subprocess.Popen(cmd, stderr=subprocess.DEVNULL, env=dict(os.environ, RELAY_SPLICE_POLL="1" if variant.endswith("-poll") else "0"))
    time.sleep(0.5)
    try:
        c0 = cpu_of(proxy.pid)
        load = os.getloadavg()[0]
        w0 = time.monotonic()
        snd = subprocess.run(["timeout", "120", "taskset", "-c", "1", "python3", os.path.join(HERE, "send.py"), str(port), str(gib * GIB),
                              DATA])
        wall = time.monotonic() - w0
        th = threads(proxy.pid)
        c1 = cpu_of(proxy.pid)
        out, _ = sink.communicate(timeout=30)
        n, secs = out.split()
        n, secs = int(n), float(secs)
    finally:
        proxy.kill(); proxy.wait()
        if sink.poll() is None:
            sink.kill()
        sink.wait()
    ok = n == gib * GIB and snd.returncode == 0
    rec = dict(variant=variant, ok=ok, bytes=n, secs=round(secs, 3), gbit=round(n * 8 / secs / 1e9, 2),
               cpu_s=round(c1 - c0, 2), cpu_s_per_gib=round((c1 - c0) / (n / GIB), 3), load1=load,
               threads={k: v for k, v in th.items()})
    print(json.dumps(rec), flush=True)
    return rec

if __name__ == "__main__":
    variants = sys.argv[1].split(",")
    rounds, gib = int(sys.argv[2]), int(sys.argv[3])
    port = 23400
    for r in range(rounds):
        for v in variants:
            port += 2
            run(v, gib, port)
