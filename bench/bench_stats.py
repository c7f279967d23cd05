#!/usr/bin/env python3
"""Percentile math and reporting for bench/probe_vs_fping.sh (stdlib only).

Two sub-commands:

  summarize  parse one tool run (stdout/stderr/GNU time output/exit code) into a summary JSON
  report     read every summary of a bench run and print the side-by-side table with ratios
             and the goal verdicts

RTT percentiles: echomesh only reports per-target percentiles, so the comparable figure for both
tools is the *median over targets of the per-target p50 / p99*. For fping, which prints every
sample with -C, the pooled percentile over all samples is recorded as well (pooled_p50_us, ...).
Percentiles on raw samples use the nearest-rank method.
"""

import argparse
import glob
import json
import math
import os
import re
import sys

# GNU time is invoked with -f '%e %U %S %M': wall seconds, user seconds, system seconds, max RSS KiB.
TIME_RE = re.compile(r"^\s*([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)\s*$")
# fping -C (verbose count) result line: "10.250.0.1 : 0.004 0.003 - 0.005"
FPING_VCOUNT_RE = re.compile(r"^(\S+)\s+:((?:\s+(?:-|\d+(?:\.\d+)?))+)\s*$")
# fping -Q interval summary line: "10.250.0.1 : xmt/rcv/%loss = 4/4/0%, min/avg/max = ..."
FPING_INTERVAL_RE = re.compile(r"^(\S+)\s+: xmt/rcv/%loss = (\d+)/(\d+)/")
# fping 5.x aborts when its shared 16-bit sequence space is exhausted:
# "fping error: not enough sequence numbers available! (expire_timeout=..., host_nr=535, ping_count=65, ...)"
FPING_SEQ_ABORT_RE = re.compile(r"not enough sequence numbers.*host_nr=(\d+), ping_count=(\d+)")


def nearest_rank(sorted_vals, pct):
    """Nearest-rank percentile of an already sorted list (None when empty)."""
    if not sorted_vals:
        return None
    rank = max(1, math.ceil(pct / 100.0 * len(sorted_vals)))
    return sorted_vals[rank - 1]


def median(vals):
    vals = sorted(v for v in vals if v is not None)
    if not vals:
        return None
    mid = len(vals) // 2
    return vals[mid] if len(vals) % 2 else (vals[mid - 1] + vals[mid]) / 2.0


def read_text(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except FileNotFoundError:
        return ""


def parse_time(path):
    """Last matching line of GNU time's -o file (it prepends 'Command exited with ...' on failure)."""
    for line in reversed(read_text(path).splitlines()):
        m = TIME_RE.match(line)
        if m:
            return {
                "wall_s": float(m.group(1)),
                "user_s": float(m.group(2)),
                "sys_s": float(m.group(3)),
                "maxrss_kb": int(m.group(4)),
            }
    return {"wall_s": None, "user_s": None, "sys_s": None, "maxrss_kb": None}


def parse_fping(text, targets):
    """fping -q -C N [-Q S] output (all on stderr)."""
    per_target = {}
    interval_xmt = interval_rcv = 0
    have_intervals = False
    abort_note = None
    abort_sent = None
    for line in text.splitlines():
        m = FPING_VCOUNT_RE.match(line)
        if m:
            per_target[m.group(1)] = m.group(2).split()
            continue
        m = FPING_INTERVAL_RE.match(line)
        if m:
            have_intervals = True
            interval_xmt += int(m.group(2))
            interval_rcv += int(m.group(3))
            continue
        m = FPING_SEQ_ABORT_RE.search(line)
        if m:
            # fping sends round-robin: ping_count full rounds, then host_nr hosts of the next one.
            abort_sent = int(m.group(2)) * targets + int(m.group(1))
            abort_note = line.strip()
        elif line.startswith("fping error") or line.startswith("fping:"):
            abort_note = abort_note or line.strip()

    out = {"aborted": False, "note": None}
    if per_target:
        sent = received = 0
        pooled = []
        p50s, p99s = [], []
        for tokens in per_target.values():
            sent += len(tokens)
            rtts = sorted(float(t) * 1000.0 for t in tokens if t != "-")  # ms -> us
            received += len(rtts)
            pooled.extend(rtts)
            p50s.append(nearest_rank(rtts, 50))
            p99s.append(nearest_rank(rtts, 99))
        pooled.sort()
        out.update(
            sent=sent,
            received=received,
            p50_us=median(p50s),
            p99_us=median(p99s),
            pooled_p50_us=nearest_rank(pooled, 50),
            pooled_p99_us=nearest_rank(pooled, 99),
            mean_us=(sum(pooled) / len(pooled)) if pooled else None,
        )
    else:
        # No final report: fping aborted. Probes sent come from the abort message; replies only
        # from the -Q interval summaries (whole seconds before the abort), so loss is computed on
        # those intervals alone.
        out.update(aborted=True, sent=abort_sent, received=None, p50_us=None, p99_us=None)
        if have_intervals:
            out["received"] = interval_rcv
            out["interval_sent"] = interval_xmt
            if out["sent"] is None:
                out["sent"] = interval_xmt
        out["note"] = abort_note or "no fping -C report (killed or crashed)"
        if have_intervals:
            out["note"] += (f"; replies and loss cover only the whole-second -Q summaries before the abort "
                            f"({interval_xmt:,} probes)")
    if out.get("received") is not None:
        base = out.get("interval_sent") or out.get("sent")
        out["loss_pct"] = 100.0 * (base - out["received"]) / base if base else None
    else:
        out["loss_pct"] = None
    return out


def _count(v):
    """echomesh 'errors' may be a plain count or an object of counts by kind."""
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, dict):
        return sum(_count(x) for x in v.values())
    return 0


def parse_echomesh(text):
    """echomesh-agent probe -o json: one JSON array of per-target objects."""
    # The whole of stdout should be the array; fall back to the first line that parses as one in
    # case something else was printed around it.
    rows, err = None, "no JSON array on stdout"
    for candidate in [text] + [ln for ln in text.splitlines() if ln.lstrip().startswith("[")]:
        try:
            rows = json.loads(candidate)
        except json.JSONDecodeError as exc:
            err = f"JSON: {exc}"
            continue
        if isinstance(rows, list):
            break
    if not isinstance(rows, list):
        return {"aborted": True, "sent": None, "received": None, "loss_pct": None,
                "p50_us": None, "p99_us": None, "note": f"unparsable output: {err}"}
    sent = sum(int(r.get("sent") or 0) for r in rows)
    received = sum(int(r.get("received") or 0) for r in rows)
    rtts = [r.get("rtt_us") or {} for r in rows]
    means = [(x.get("mean"), int(r.get("received") or 0)) for x, r in zip(rtts, rows)]
    weight = sum(n for m, n in means if m is not None)
    return {
        "aborted": False,
        "note": None,
        "sent": sent,
        "received": received,
        "loss_pct": 100.0 * (sent - received) / sent if sent else None,
        "duplicates": sum(_count(r.get("duplicates")) for r in rows),
        "errors": sum(_count(r.get("errors")) for r in rows),
        "p50_us": median(x.get("p50") for x in rtts),
        "p99_us": median(x.get("p99") for x in rtts),
        "mean_us": (sum(m * n for m, n in means if m is not None) / weight) if weight else None,
        "result_rows": len(rows),
    }


def cmd_sample(a):
    """Sample an interface's packet counters every --period s until SIGTERM/SIGINT.

    Runs inside the sink namespace on the sink's veth: rx_packets are the echo requests that
    reached the sink, tx_packets its replies. This is a wire-level count independent of what
    either tool reports about itself.
    """
    import signal
    import time

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    base = f"/sys/class/net/{a.iface}/statistics/"
    with open(a.out, "w", encoding="utf-8") as out:
        while not stop:
            with open(base + "rx_packets") as rx, open(base + "tx_packets") as tx:
                out.write(f"{time.monotonic():.6f} {rx.read().strip()} {tx.read().strip()}\n")
            out.flush()
            time.sleep(a.period)


def analyze_wire(path):
    """Wire figures from the sampler: packets while active, mean and worst 1-second rate."""
    samples = []
    for line in read_text(path).splitlines():
        parts = line.split()
        if len(parts) == 3:
            samples.append((float(parts[0]), int(parts[1]), int(parts[2])))
    if len(samples) < 2:
        return {}
    t0, rx0, tx0 = samples[0]
    # A sample interval counts as active when it carried a real share of the traffic, so the odd
    # ARP/neighbour probe on the veth before or after the run does not stretch the active period.
    steps = [samples[i][1] - samples[i - 1][1] for i in range(1, len(samples))]
    threshold = max(5, 0.02 * max(steps))
    moving = [i for i in range(1, len(samples)) if steps[i - 1] >= threshold]
    if not moving:
        return {"wire_requests": 0, "wire_replies": 0}
    # Active period: from the last idle sample before the first increase to the last increase.
    first, last = moving[0] - 1, moving[-1]
    active_s = samples[last][0] - samples[first][0]
    requests = samples[-1][1] - rx0
    replies = samples[-1][2] - tx0
    res = {
        "wire_requests": requests,
        "wire_replies": replies,
        "wire_active_s": active_s,
        "wire_rate_pps": (samples[last][1] - samples[first][1]) / active_s if active_s > 0 else None,
    }
    # Worst whole second strictly inside the active period (the ramp-up and tail samples are
    # partial by construction, so they are left out).
    worst = None
    j = first + 1
    for i in range(first + 1, last + 1):
        while j <= last and samples[j][0] - samples[i][0] < 1.0:
            j += 1
        if j > last:
            break
        rate = (samples[j][1] - samples[i][1]) / (samples[j][0] - samples[i][0])
        worst = rate if worst is None else min(worst, rate)
    res["wire_min_1s_pps"] = worst
    return res


def cmd_summarize(a):
    prefix = a.prefix
    rc_text = read_text(prefix + ".rc").strip()
    summary = {
        "scenario": a.scenario,
        "order": a.order,
        "label": a.label,
        "tool": a.tool,
        "role": a.role,
        "targets": a.targets,
        "planned": a.targets * a.count,
        "cmd": read_text(prefix + ".cmd").strip(),
        "rc": int(rc_text) if rc_text.lstrip("-").isdigit() else None,
    }
    summary.update(parse_time(prefix + ".time"))
    if a.tool == "fping":
        summary.update(parse_fping(read_text(prefix + ".stderr"), a.targets))
    else:
        summary.update(parse_echomesh(read_text(prefix + ".stdout")))
        # Not part of the JSON contract, but when echomesh prints its "summary: k=v ..." line on
        # stderr it carries percentiles of the merged histogram of all targets (the pooled
        # figures) and the counters that explain loss (socket drops, late replies, schedule lag).
        fields = dict(re.findall(r"\b(\w+)=([\d.]+)\b", read_text(prefix + ".stderr")))
        for key in ("p50", "p99"):
            if f"rtt_{key}_us" in fields:
                summary[f"pooled_{key}_us"] = float(fields[f"rtt_{key}_us"])
        for key in ("socket_drops", "late", "rejected", "send_errors", "max_schedule_lag_ms",
                    "kernel_tx_stamps", "user_send_stamps", "batch_unstamped", "send_calls"):
            if key in fields:
                summary[key] = float(fields[key])
        # exit 0 = all answered, 1 = some loss; anything else means the run did not complete.
        if summary["rc"] not in (0, 1):
            summary["aborted"] = True
            tail = read_text(prefix + ".stderr").strip().splitlines()[-1:]
            summary["note"] = f"exit {summary['rc']}" + (f": {tail[0]}" if tail else "")
    load = read_text(prefix + ".load").split()
    summary["loadavg_1m"] = float(load[0]) if load else None
    cpu = None
    if summary["user_s"] is not None:
        cpu = summary["user_s"] + summary["sys_s"]
    summary["cpu_s"] = cpu
    sent, wall = summary.get("sent"), summary.get("wall_s")
    # Achieved rate = probes actually sent / whole process wall time (start-up and the final
    # wait for replies included), so it can only understate a tool.
    summary["rate_pps"] = sent / wall if sent and wall else None
    summary["cpu_us_per_probe"] = cpu * 1e6 / sent if sent and cpu is not None else None
    replies = summary.get("received")
    summary["cpu_us_per_reply"] = cpu * 1e6 / replies if replies and cpu is not None else None
    summary.update(analyze_wire(prefix + ".wire"))
    with open(prefix + ".summary.json", "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=1)
    one_line(summary)


def fmt(v, kind):
    if v is None:
        return "-"
    if kind == "int":
        return f"{int(v):,}"
    if kind == "pct":
        return f"{v:.3f}%"
    if kind == "f1":
        return f"{v:,.1f}"
    if kind == "f2":
        return f"{v:,.2f}"
    if kind == "mb":
        return f"{v / 1024.0:,.1f}"
    return str(v)


def one_line(s):
    state = "ABORTED " if s.get("aborted") else ""
    print(f"    {state}{s['label']}: sent {fmt(s.get('sent'), 'int')}, replies "
          f"{fmt(s.get('received'), 'int')}, loss {fmt(s.get('loss_pct'), 'pct')}, "
          f"{fmt(s.get('rate_pps'), 'int')} probes/s, {fmt(s.get('cpu_us_per_probe'), 'f2')} us CPU/probe, "
          f"RSS {fmt(s.get('maxrss_kb'), 'mb')} MB, p50/p99 {fmt(s.get('p50_us'), 'f1')}/"
          f"{fmt(s.get('p99_us'), 'f1')} us" + (f"  [{s['note']}]" if s.get("note") else ""))


METRICS = [
    ("targets", "targets", "int"),
    ("planned", "probes planned", "int"),
    ("sent", "probes sent", "int"),
    ("received", "replies", "int"),
    ("loss_pct", "loss", "pct"),
    ("wall_s", "wall s", "f2"),
    ("rate_pps", "probes/s (sent/wall)", "int"),
    ("wire_requests", "wire: requests at sink", "int"),
    ("wire_replies", "wire: replies from sink", "int"),
    ("wire_active_s", "wire: active s", "f2"),
    ("wire_rate_pps", "wire: probes/s active", "int"),
    ("wire_min_1s_pps", "wire: worst 1 s probes/s", "int"),
    ("user_s", "CPU user s", "f2"),
    ("sys_s", "CPU sys s", "f2"),
    ("cpu_us_per_probe", "CPU us/probe", "f2"),
    ("cpu_us_per_reply", "CPU us/answered probe", "f2"),
    ("maxrss_kb", "max RSS MB", "mb"),
    ("p50_us", "RTT p50 us (med/target)", "f1"),
    ("p99_us", "RTT p99 us (med/target)", "f1"),
    ("pooled_p50_us", "RTT p50 us (pooled)", "f1"),
    ("pooled_p99_us", "RTT p99 us (pooled)", "f1"),
    ("socket_drops", "socket drops (own count)", "int"),
    ("late", "late replies (own count)", "int"),
    ("max_schedule_lag_ms", "max schedule lag ms", "f1"),
    ("kernel_tx_stamps", "kernel TX stamps (own count)", "int"),
    ("user_send_stamps", "user send stamps (own count)", "int"),
    ("batch_unstamped", "batched, no kernel stamp (own count)", "int"),
    ("send_calls", "send syscalls (own count)", "int"),
    ("loadavg_1m", "host loadavg at start", "f2"),
    ("rc", "exit status", "str"),
]

SCENARIO_TITLES = {
    "1": "Scenario 1 - sustained throughput",
    "2": "Scenario 2 - CPU cost at ~6,000 probes/s (1000 targets)",
    "3": "Scenario 3 - footprint: 1000 targets x 10 Hz",
    "4": "Scenario 4 - RTT accuracy on the unimpaired veth path",
    "5": "Scenario 5 - CPU cost at ~6,000 probes/s, each tool's own (sink's kernel on the other CPU)",
}


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def load(run_dir):
    runs = []
    for path in glob.glob(os.path.join(run_dir, "*.summary.json")):
        with open(path, encoding="utf-8") as fh:
            runs.append(json.load(fh))
    runs.sort(key=lambda r: (r["scenario"], r["order"]))
    return runs


def print_scenario(scen, runs):
    print()
    print(SCENARIO_TITLES.get(scen, f"Scenario {scen}"))
    em = [r for r in runs if r["tool"] == "echomesh"]
    fp = [r for r in runs if r["tool"] == "fping"]
    cols = [r["label"] for r in runs]
    # One ratio column per fping run: echomesh / that fping run.
    ratio_cols = [(e, f) for e in em[:1] for f in fp]
    headers = ["metric"] + cols + [f"em/{f['label']}" for _, f in ratio_cols]
    rows = []
    for key, name, kind in METRICS:
        if all(r.get(key) is None for r in runs):
            continue
        row = [name] + [fmt(r.get(key), kind) for r in runs]
        for e, f in ratio_cols:
            # Ratios of inputs (targets, planned) or of exit codes say nothing.
            row.append(ratio(e.get(key), f.get(key)) if key not in ("targets", "planned", "rc", "loadavg_1m") else "")
        rows.append(row)
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    line = "  ".join(h.ljust(widths[0]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(headers))
    print("  " + line)
    print("  " + "-" * len(line))
    for row in rows:
        print("  " + "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)))
    for r in runs:
        if r.get("note"):
            print(f"  note {r['label']}: {r['note']}")
    for r in runs:
        print(f"  cmd  {r['label']}: {r['cmd']}")


def verdicts(runs, quick):
    by = {(r["scenario"], r["label"]): r for r in runs}
    out = []

    def v(goal, ok, detail):
        state = "n/a " if ok is None else ("PASS" if ok else "FAIL")
        out.append(f"  [{state}] {goal}: {detail}")

    def le(a, b):
        return None if a is None or b is None else a <= b

    e1, f1 = by.get(("1", "echomesh")), by.get(("1", "fping-sustained"))
    if e1:
        # Judged on the wire: requests reaching the sink per second while the tool was sending,
        # over at least 30 s. sent/wall (start-up and drain included) is shown alongside.
        def rate_of(r):
            return r.get("wire_rate_pps") or r.get("rate_pps")

        def dur_of(r):
            return r.get("wire_active_s") or r.get("wall_s") or 0

        rate, loss = rate_of(e1), e1.get("loss_pct")
        dur_ok = quick or dur_of(e1) >= 30.0
        # "Sustained" also means no long stall made up for by a catch-up burst: no whole second
        # on the wire below 90% of the goal.
        worst = e1.get("wire_min_1s_pps")
        steady = worst is None or worst >= 90_000
        ok = None if rate is None or loss is None else (
            rate >= 100_000 and loss < 1.0 and dur_ok and steady and not e1["aborted"])
        detail = (f"{fmt(rate, 'int')} probes/s on the wire for {fmt(dur_of(e1), 'f1')} s "
                  f"(worst second {fmt(e1.get('wire_min_1s_pps'), 'int')}/s; sent/wall {fmt(e1.get('rate_pps'), 'int')}/s) "
                  f"at {fmt(loss, 'pct')} loss")
        if f1 and rate_of(f1) and rate:
            detail += f"; {rate / rate_of(f1):.1f}x fping's sustained {fmt(rate_of(f1), 'int')}/s (goal >=15x)"
            if ok is not None:
                ok = ok and rate / rate_of(f1) >= 15
        if quick:
            detail += " (quick mode: duration not checked)"
        v("1 sustained >=100k probes/s (no second <90k), 30 s, 65,536 targets, <1% loss", ok, detail)

    e2 = by.get(("2", "echomesh"))
    f2p, f2b = by.get(("2", "fping-paced")), by.get(("2", "fping-burst"))
    if e2:
        ec = e2.get("cpu_us_per_probe")
        for f in (f2p, f2b):
            if f:
                v(f"2 CPU/probe <= {f['label']} at ~6,000/s", le(ec, f.get("cpu_us_per_probe")),
                  f"echomesh {fmt(ec, 'f2')} us vs {fmt(f.get('cpu_us_per_probe'), 'f2')} us "
                  f"({ratio(ec, f.get('cpu_us_per_probe'))})")

    # The engine's CPU goal: per answered probe, at most 0.8x fping's in the same run. Scenario 2
    # bills both tools the sink kernel's answers (veth runs them inside the sender's send call);
    # scenario 5 moves those to the other CPU, so it compares what each tool costs itself.
    for scen in ("2", "5"):
        e = by.get((scen, "echomesh"))
        if not e:
            continue
        ec = e.get("cpu_us_per_reply")
        for label in ("fping-paced", "fping-burst"):
            f = by.get((scen, label))
            if not f:
                continue
            fc = f.get("cpu_us_per_reply")
            ok = None if ec is None or fc is None else ec <= 0.8 * fc
            v(f"{scen} CPU/answered probe <= 0.8x {label}", ok,
              f"echomesh {fmt(ec, 'f2')} us vs {fmt(fc, 'f2')} us ({ratio(ec, fc)})")

    e3 = by.get(("3", "echomesh"))
    if e3:
        complete = (not e3["aborted"]) and e3.get("sent") == e3.get("planned")
        v("3 1000 targets x 10 Hz without abort", complete,
          f"sent {fmt(e3.get('sent'), 'int')} of {fmt(e3.get('planned'), 'int')}, exit {e3.get('rc')}")
        rss = e3.get("maxrss_kb")
        # An incomplete run's RSS proves nothing.
        v("3 max RSS <= 20 MB", None if rss is None or not complete else rss <= 20 * 1024, f"{fmt(rss, 'mb')} MB")
        ec = e3.get("cpu_us_per_probe")
        for f in (f2p, f2b):
            if f:
                v(f"3 CPU/probe <= {f['label']} at ~6,000/s (scenario 2)", le(ec, f.get("cpu_us_per_probe")),
                  f"echomesh {fmt(ec, 'f2')} us vs {fmt(f.get('cpu_us_per_probe'), 'f2')} us")
        f3 = by.get(("3", "fping"))
        if f3:
            out.append(f"  [info] 3 fping at the same load: "
                       + (f"aborted after {fmt(f3.get('wall_s'), 'f1')} s ({fmt(f3.get('sent'), 'int')} probes sent)"
                          if f3["aborted"] else f"completed, {fmt(f3.get('sent'), 'int')} probes"))

    e4 = by.get(("4", "echomesh"))
    for f4 in (by.get(("4", "fping-paced")), by.get(("4", "fping-burst"))):
        if e4 and f4:
            for q in ("p50", "p99"):
                # Judged on the pooled percentile (all probes of all targets) when both tools give
                # one; the median of per-target percentiles hides tails that sit on a few targets
                # (fping's burst mode: the first targets of each round are the slow ones).
                pooled = e4.get(f"pooled_{q}_us") is not None and f4.get(f"pooled_{q}_us") is not None
                key = f"pooled_{q}_us" if pooled else f"{q}_us"
                other = f"{q}_us" if pooled else None
                detail = (f"{'pooled' if pooled else 'median of per-target'}: echomesh {fmt(e4.get(key), 'f1')} us "
                          f"vs {fmt(f4.get(key), 'f1')} us ({ratio(e4.get(key), f4.get(key))})")
                if other:
                    detail += (f"; median of per-target: {fmt(e4.get(other), 'f1')} vs "
                               f"{fmt(f4.get(other), 'f1')} us")
                v(f"4 RTT {q} <= {f4['label']}", le(e4.get(key), f4.get(key)), detail)
    return out


def cmd_report(a):
    runs = load(a.run_dir)
    if not runs:
        print("no results found in", a.run_dir)
        return 1
    for scen in sorted({r["scenario"] for r in runs}):
        print_scenario(scen, [r for r in runs if r["scenario"] == scen])
    lines = verdicts(runs, a.quick)
    if lines:
        print()
        print("Goal verdicts (echomesh vs fping, same lab, same run)")
        print("\n".join(lines))
    return 0


def cmd_markdown(a):
    """The compact table used in bench/README.md, from one run's summaries."""
    runs = load(a.run_dir)
    print("| scenario | run | targets | sent | loss | probes/s (wire) | CPU µs/probe | max RSS "
          "| RTT p50 / p99 µs pooled | RTT p50 / p99 µs med/target |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        sent = fmt(r.get("sent"), "int")
        if r.get("aborted"):
            sent += f", **aborted at {fmt(r.get('wall_s'), 'f1')} s** (exit {r.get('rc')})"
        rate = fmt(r.get("wire_rate_pps") or r.get("rate_pps"), "int")
        if r.get("wire_min_1s_pps"):
            rate += f" (worst 1 s {fmt(r['wire_min_1s_pps'], 'int')})"
        label = f"**{r['label']}**" if r["tool"] == "echomesh" else r["label"]
        print(f"| {r['scenario']} | {label} | {fmt(r.get('targets'), 'int')} | {sent} | "
              f"{fmt(r.get('loss_pct'), 'pct')} | {rate} | {fmt(r.get('cpu_us_per_probe'), 'f2')} | "
              f"{fmt(r.get('maxrss_kb'), 'mb')} MB | {fmt(r.get('pooled_p50_us'), 'f1')} / "
              f"{fmt(r.get('pooled_p99_us'), 'f1')} | {fmt(r.get('p50_us'), 'f1')} / {fmt(r.get('p99_us'), 'f1')} |")
    lines = verdicts(runs, a.quick)
    if lines:
        print()
        print("```")
        print("\n".join(lines))
        print("```")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("sample")
    w.add_argument("iface")
    w.add_argument("out")
    w.add_argument("--period", type=float, default=0.05)
    s = sub.add_parser("summarize")
    s.add_argument("--prefix", required=True, help="path prefix of .cmd/.rc/.time/.stdout/.stderr")
    s.add_argument("--scenario", required=True)
    s.add_argument("--order", type=int, default=0)
    s.add_argument("--label", required=True)
    s.add_argument("--tool", choices=["fping", "echomesh"], required=True)
    s.add_argument("--role", default="")
    s.add_argument("--targets", type=int, required=True)
    s.add_argument("--count", type=int, required=True)
    r = sub.add_parser("report")
    r.add_argument("run_dir")
    r.add_argument("--quick", action="store_true")
    m = sub.add_parser("markdown")
    m.add_argument("run_dir")
    m.add_argument("--quick", action="store_true")
    a = p.parse_args()
    cmds = {"sample": cmd_sample, "summarize": cmd_summarize, "report": cmd_report, "markdown": cmd_markdown}
    return cmds[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main() or 0)
