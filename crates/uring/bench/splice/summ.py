import json, sys, statistics as st
rows = [json.loads(l) for f in sys.argv[1:] for l in open(f) if l.startswith("{")]
by = {}
for r in rows:
    by.setdefault(r["variant"], []).append(r)
for v, rs in by.items():
    ok = [r for r in rs if r.get("ok", True)]
    for k in ("cpu_s_per_gib", "gbit"):
        xs = [r[k] for r in ok]
        print(f"{v:15} {k:14} n={len(xs)} median={st.median(xs):.3f} min={min(xs):.3f} max={max(xs):.3f}")
    if "threads" in ok[0]:
        wrk = [sum(t[1] for t in r["threads"].values() if t[0].startswith("iou-wrk")) / (r["bytes"] / 2**30) for r in ok]
        print(f"{v:15} iowq_s_per_gib median={st.median(wrk):.3f}")
    print(f"{v:15} load1 {min(r['load1'] for r in ok):.2f}-{max(r['load1'] for r in ok):.2f}")
