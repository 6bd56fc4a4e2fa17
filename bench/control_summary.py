#!/usr/bin/env python3
"""bench/control_summary.py DIR: the figures of bench/control.sh's runs in DIR,
side by side, with the medians over rounds and the ratios of same-round pairs."""
import glob
import json
import os
import re
import statistics
import sys

d = sys.argv[1]


def load(name):
    with open(os.path.join(d, name)) as f:
        return json.load(f)


def ms(us):
    return f"{us / 1000:.2f}"


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def rounds(prefix):
    files = glob.glob(os.path.join(d, prefix + "-r*.json"))
    return sorted(files, key=lambda f: int(re.search(r"-r(\d+)\.json$", f).group(1)))


runs = rounds("control")
if runs:
    print("== control: presence and disconnect across the gateways (ms)")
    print("run        gws  queries complete online  presence p50/p90/p99/max      disconnects complete closed  call p50/p99/max        close frame p50/p99/max (n)   close codes")
    p50s, p99s, d50, d99, c50, c99 = [], [], [], [], [], []
    for f in runs:
        r = json.load(open(f))
        c = r["control"]
        p, dl, cl = c["presence_latency_us"], c["disconnect_latency_us"], c["close_latency_us"]
        print(f"{r['label']:<10} {c['gateways']:>3}  {c['queries']:>7} {c['queries_complete']:>8} {c['queries_online']:>6}  "
              f"{ms(p['p50'])}/{ms(p['p90'])}/{ms(p['p99'])}/{ms(p['max']):<12} {c['disconnects']:>11} {c['disconnects_complete']:>8} {c['sockets_closed']:>6}  "
              f"{ms(dl['p50'])}/{ms(dl['p99'])}/{ms(dl['max']):<14} {ms(cl['p50'])}/{ms(cl['p99'])}/{ms(cl['max'])} ({cl['count']})   {c.get('close_codes')}")
        p50s.append(p["p50"]); p99s.append(p["p99"]); d50.append(dl["p50"]); d99.append(dl["p99"]); c50.append(cl["p50"]); c99.append(cl["p99"])
    print(f"median     presence p50 {ms(med(p50s))} p99 {ms(med(p99s))}; disconnect call p50 {ms(med(d50))} p99 {ms(med(d99))}; "
          f"close frame p50 {ms(med(c50))} p99 {ms(med(c99))}")
    print()

zero = rounds("connect-rev0")
if zero:
    print("== the revocation check at upgrade: connect rate with 0 and N revocations, same round")
    print("round  rate(0)   rate(N)   ratio   µs/connect(0) µs/connect(N) ratio   handshake p99 ms (0 / N)   stored, visible after (s)")
    ratios, cpu_ratios = [], []
    for f in zero:
        rn = re.search(r"-r(\d+)\.json$", f).group(1)
        others = [g for g in glob.glob(os.path.join(d, f"connect-rev*-r{rn}.json")) if not g.endswith(f"rev0-r{rn}.json")]
        if not others:
            continue
        a, b = json.load(open(f)), json.load(open(others[0]))
        ra, rb = a["connections"]["connect_rate_per_s"], b["connections"]["connect_rate_per_s"]
        ca, cb = a["server"]["cpu_us_per_connect"], b["server"]["cpu_us_per_connect"]
        ratios.append(rb / ra)
        cr = cb / ca if ca > 0 and cb > 0 else float("nan")
        cpu_ratios.append(cr)
        rv = b.get("revocations") or {}
        print(f"r{rn:<5} {ra:>8.0f}  {rb:>8.0f}  {rb / ra:>5.3f}   {ca:>12.1f}  {cb:>12.1f}  {cr:>5.3f}   "
              f"{ms(a['connections']['handshake_latency_us']['p99'])} / {ms(b['connections']['handshake_latency_us']['p99']):<16} "
              f"{rv.get('stored')} in {rv.get('store_s', 0):.2f}, {rv.get('visible_s', 0):.2f}  "
              f"(failed {a['connections']['failed']} / {b['connections']['failed']})")
    print(f"median ratio N/0: connect rate {med(ratios):.3f}, server CPU per connect {med(cpu_ratios):.3f}")
    print()

ups = sorted(glob.glob(os.path.join(d, "upstream-*.json")), key=lambda f: int(re.search(r"upstream-(\d+)", f).group(1)))
if ups:
    print("== upstream request/reply through one gateway (wsbench's responder)")
    print("rate     conns  sent/s    replies/s  replies  errors            p50 / p90 / p99 / max ms          CPU ms per 1000 req: gateway / NATS / wsbench   (core shares)")
    for f in ups:
        r = json.load(open(f))
        u = r["upstream"]
        lat = u["latency_us"]
        print(f"{u['rate_per_s']:>6.0f}  {u['connections']:>5}  {u['sent_per_s']:>8.0f}  {u['replies_per_s']:>9.0f}  {u['replies']:>7}  {str(u['errors'] or '-'):<16}  "
              f"{ms(lat['p50'])} / {ms(lat['p90'])} / {ms(lat['p99'])} / {ms(lat['max']):<10}  "
              f"{u['server_cpu_ms_per_1000']:.1f} / {u['nats_cpu_ms_per_1000']:.1f} / {u['client_cpu_ms_per_1000']:.1f}   "
              f"({u['server_cpu_share']:.2f} / {u['nats_cpu_share']:.2f} / {u['client_cpu_share']:.2f})")
    print()

checks = glob.glob(os.path.join(d, "check-wsbench-*.json"))
for f in checks:
    rate = re.search(r"check-wsbench-(\d+)", f).group(1)
    r = json.load(open(f))
    u = r["upstream"]
    lat = u["latency_us"]
    print(f"== second client, {rate} requests/s, same gateway, same responder (wsgate upstream --echo)")
    print(f"wsbench upstream --no-responder: {u['sent']} sent, {u['replies']} replies, {u['replies_per_s']:.0f}/s, "
          f"p50 {ms(lat['p50'])} p90 {ms(lat['p90'])} p99 {ms(lat['p99'])} max {ms(lat['max'])} ms, errors {u['errors'] or '-'}")
    nf = os.path.join(d, f"check-node-{rate}.json")
    if os.path.exists(nf):
        n = json.loads(open(nf).read().strip().splitlines()[-1])
        nl = n["latency_ms"]
        print(f"{n['client']}: {n['sent']} sent, {n['replies']} replies, {n['replies_per_s']:.0f}/s, "
              f"p50 {nl['p50']:.2f} p90 {nl['p90']:.2f} p99 {nl['p99']:.2f} max {nl['max']:.2f} ms, errors {n['errors'] or '-'}, "
              f"unanswered {n['unanswered']}, its CPU {n['cpu_s']} s")
        if lat["p50"] > 0:
            print(f"node / wsbench: replies/s {n['replies_per_s'] / u['replies_per_s']:.3f}, p50 {nl['p50'] * 1000 / lat['p50']:.2f}, p99 {nl['p99'] * 1000 / lat['p99']:.2f}")
    print()
