# Per-message cost: SIZE (default 1 KiB) ping-pong, N (default 20000) round trips, through the relay (CPU 0) to an echo upstream (CPU 1);
# then idle-connection cost: kernel threads of the relay with 100 idle tunnels open.
import json, os, socket, subprocess, sys, time, glob
import bench
HERE = bench.HERE
def one(variant, port, n, size):
    up = port + 1
    echo = subprocess.Popen(["timeout", "120", "taskset", "-c", "1", "python3", os.path.join(HERE, "echo.py"), str(up), "60"])
    time.sleep(0.3)
    if variant.startswith("haproxy"):
        cmd = ["taskset", "-c", "0", "haproxy", "-db", "-f", bench.haproxy_cfg(port, up, variant == "haproxy-splice")]
    else:
        cmd = [f"{bench.T}/{variant.removesuffix('-poll')}", "--listen", f"127.0.0.1:{port}", "--upstream", f"127.0.0.1:{up}", "--cpu", "0"]
    proxy = subprocess.Popen(cmd, stderr=subprocess.DEVNULL, env=dict(os.environ, RELAY_SPLICE_POLL="1" if variant.endswith("-poll") else "0"))
    time.sleep(0.5)
    try:
        c0 = bench.cpu_of(proxy.pid)
        out = subprocess.run(["timeout", "60", "taskset", "-c", "1", "python3", os.path.join(HERE, "pingpong.py"), str(port), str(n), str(size)],
                             capture_output=True, text=True).stdout
        c1 = bench.cpu_of(proxy.pid)
        # idle tunnels
        socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(100)]
        time.sleep(1.0)
        th = bench.threads(proxy.pid)
        wrk = sum(1 for v in th.values() if v[0].startswith("iou-wrk"))
        for s in socks: s.close()
    finally:
        proxy.kill(); proxy.wait(); echo.kill(); echo.wait()
    rec = dict(variant=variant, size=size, rtt_us=round(float(out), 1), cpu_us_per_rt=round((c1 - c0) / n * 1e6, 1),
               iowq_threads_with_100_idle=wrk, load1=os.getloadavg()[0])
    print(json.dumps(rec), flush=True)
port = 24400
size = int(sys.argv[3]) if len(sys.argv) > 3 else 1024
n = int(sys.argv[4]) if len(sys.argv) > 4 else 20000
for r in range(int(sys.argv[1])):
    for v in sys.argv[2].split(","):
        port += 2
        one(v, port, n, size)
