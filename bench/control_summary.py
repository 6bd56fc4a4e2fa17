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

ups = glob.glob(os.path.join(d, "upstream-*-r*.json"))
if ups:
    print("== upstream request/reply through one gateway (wsbench's responder), each rate over rate/5 connections")
    print("rate    run   sent/s   replies/s  replies  errors            p50 / p90 / p99 / max ms             CPU µs per request: gateway / NATS / wsbench   (cores: gateway / NATS / wsbench)")
    byrate = {}
    for f in ups:
        m = re.search(r"upstream-(\d+)-r(\d+)\.json$", f)
        byrate.setdefault(int(m.group(1)), []).append((int(m.group(2)), f))
    for rate in sorted(byrate):
        rps, p50, p99, gw = [], [], [], []
        for rn, f in sorted(byrate[rate]):
            r = json.load(open(f))
            u = r["upstream"]
            lat = u["latency_us"]
            print(f"{rate:>6}  r{rn:<3} {u['sent_per_s']:>7.0f}  {u['replies_per_s']:>9.0f}  {u['replies']:>7}  {str(u['errors'] or '-'):<16}  "
                  f"{ms(lat['p50'])} / {ms(lat['p90'])} / {ms(lat['p99'])} / {ms(lat['max']):<10}  "
                  f"{u['server_cpu_ms_per_1000']:>6.1f} / {u['nats_cpu_ms_per_1000']:>5.1f} / {u['client_cpu_ms_per_1000']:>5.1f}   "
                  f"({u['server_cpu_share']:.2f} / {u['nats_cpu_share']:.2f} / {u['client_cpu_share']:.2f})")
            rps.append(u["replies_per_s"]); p50.append(lat["p50"]); p99.append(lat["p99"]); gw.append(u["server_cpu_ms_per_1000"])
        print(f"{rate:>6}  median  replies/s {med(rps):.0f}, p50 {ms(med(p50))} ms, p99 {ms(med(p99))} ms, gateway {med(gw):.1f} µs CPU per request")
    print()

checks = glob.glob(os.path.join(d, "check-wsbench-*-r*.json"))
if checks:
    rows = []
    for f in sorted(checks):
        m = re.search(r"check-wsbench-(\d+)-r(\d+)\.json$", f)
        rate, rn = m.group(1), m.group(2)
        nf = os.path.join(d, f"check-node-{rate}-r{rn}.json")
        if not os.path.exists(nf):
            continue
        u = json.load(open(f))["upstream"]
        n = json.loads(open(nf).read().strip().splitlines()[-1])
        rows.append((rate, rn, u, n))
    print(f"== second client, same gateway, same responder (wsgate upstream --echo); wsbench upstream --no-responder, then {rows[0][3]['client'] if rows else ''}")
    print("rate   run  client   sent    replies  replies/s  p50 / p90 / p99 / max ms        errors   unanswered")
    rr, r50, r99 = [], [], []
    for rate, rn, u, n in rows:
        lat, nl = u["latency_us"], n["latency_ms"]
        print(f"{rate:>5}  r{rn:<3} wsbench  {u['sent']:>6}  {u['replies']:>7}  {u['replies_per_s']:>9.0f}  "
              f"{ms(lat['p50'])} / {ms(lat['p90'])} / {ms(lat['p99'])} / {ms(lat['max']):<8}  {u['errors'] or '-'}")
        print(f"{rate:>5}  r{rn:<3} node     {n['sent']:>6}  {n['replies']:>7}  {n['replies_per_s']:>9.0f}  "
              f"{nl['p50']:.2f} / {nl['p90']:.2f} / {nl['p99']:.2f} / {nl['max']:<8.2f}  {n['errors'] or '-'}  {n['unanswered']}  (node CPU {n['cpu_s']} s)")
        if lat["p50"] > 0 and lat["p99"] > 0 and u["replies_per_s"] > 0:
            rr.append(n["replies_per_s"] / u["replies_per_s"]); r50.append(nl["p50"] * 1000 / lat["p50"]); r99.append(nl["p99"] * 1000 / lat["p99"])
    print(f"median ratio node / wsbench: replies/s {med(rr):.3f}, p50 {med(r50):.2f}, p99 {med(r99):.2f}")
    print()
