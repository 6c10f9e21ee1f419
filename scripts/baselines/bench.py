"""Runs the variants of compare.sh interleaved and writes the markdown report.

Standard library only (it runs under the host's Python, outside the venvs). compare.sh prepares
everything and calls it; run it directly only with the same arguments (`--help` lists them).

Each run is a fresh process in its own session, timed from fork to exit. While it runs, every
0.1 s, the sampler walks its process tree through /proc (Ray's raylet, GCS and worker processes
included) and sums VmRSS and Pss (smaps_rollup); the report gives the peak sums, the main
process's exact peak RSS (ru_maxrss from wait4) and the tree's CPU time (utime + stime, sampled;
exact for the main process). After the main process exits, whatever it left running is stopped:
SIGTERM, then SIGKILL after 5 s. Every wait is bounded by --timeout.
"""

import argparse
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")
SAMPLE_S = 0.1
MIB = 1024 * 1024

FLSPEC_ARGS = ["--collaborators", "2", "--rounds", "2", "--quiet"]

# name -> (label, runner, arguments, counterpart for the ratio)
VARIANTS = {
    "flspec-secagg": (
        "flspec, SecAgg (default --threads)", "flspec", FLSPEC_ARGS, None),
    "flspec-secagg-t2": (
        "flspec, SecAgg, --threads 2", "flspec", FLSPEC_ARGS + ["--threads", "2"], "flspec-secagg"),
    "flspec-plain": (
        "flspec, plain FedAvg (--no-secagg)", "flspec", FLSPEC_ARGS + ["--no-secagg"], None),
    "openfl-secagg": (
        "OpenFL 1.9, seed flow (SecAgg), checkpoint off", "openfl",
        ["openfl_seed_flow.py", "--rounds", "2", "--collaborators", "2"], "flspec-secagg"),
    "torch-raw": (
        "raw PyTorch loop (no framework, no SecAgg)", "openfl",
        ["raw_torch.py", "--rounds", "2", "--collaborators", "2"], "flspec-plain"),
    "flower-plain": (
        "Flower 1.42, simulation, plain FedAvg", "flower",
        ["flower_sim.py", "--mode", "plain", "--rounds", "2", "--clients", "2"], "flspec-plain"),
    "flower-secaggplus": (
        "Flower 1.42, simulation, SecAgg+", "flower",
        ["flower_sim.py", "--mode", "secaggplus", "--rounds", "2", "--clients", "2"],
        "flspec-secagg"),
    # Scale, 1 round; not run unless named in --only.
    "flspec-secagg-n31": (
        "flspec, SecAgg, 31 collaborators, 1 round", "flspec",
        ["--collaborators", "31", "--rounds", "1", "--quiet"], None),
    "openfl-secagg-n31": (
        "OpenFL 1.9, seed flow, 31 collaborators, 1 round", "openfl",
        ["openfl_seed_flow.py", "--rounds", "1", "--collaborators", "31"], "flspec-secagg-n31"),
    "flspec-secaggplus-n100": (
        "flspec, SecAgg+ (k = 14), 100 collaborators, 1 round", "flspec",
        ["--collaborators", "100", "--rounds", "1", "--secagg-plus", "--quiet"], None),
    "flower-secaggplus-n100": (
        "Flower 1.42, SecAgg+ (11 shares, t = 7), 100 clients, 1 round", "flower",
        ["flower_sim.py", "--mode", "secaggplus", "--rounds", "1", "--clients", "100",
         "--num-shares", "0.1", "--threshold", "7"], "flspec-secaggplus-n100"),
}
DEFAULT_VARIANTS = [n for n in VARIANTS if not n.endswith(("-n31", "-n100"))]


def parse_args(argv):
    p = argparse.ArgumentParser(description="interleaved comparison (called by compare.sh)")
    p.add_argument("--list", action="store_true", help="list the variants and exit")
    p.add_argument("--render", metavar="JSON",
                   help="write the report again from the raw runs of an earlier run (its .json)")
    p.add_argument("--root", help="the repository")
    p.add_argument("--venv", help="the folder compare.sh set up")
    p.add_argument("--data", help="the folder with MNIST/raw (prepare_data.py)")
    p.add_argument("--flspec", help="the secagg_mnist release binary")
    p.add_argument("--flspec-source", default="", help="where the binary was built from (default: the repository's HEAD and whether the tree has changes)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--only", default="", help="comma-separated variants")
    p.add_argument("--out", help="the markdown report")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds one run may take")
    p.add_argument("--threads", type=int, default=0,
                   help="libtorch threads per operation for every variant (0: each system's default)")
    args = p.parse_args(argv)
    if not args.list:
        for name in ("root", "venv", "data", "flspec", "out"):
            if getattr(args, name) is None:
                p.error(f"--{name} is required (compare.sh passes it)")
        if args.reps < 1:
            p.error("--reps must be at least 1")
    return args


# ---------------------------------------------------------------------------------------------
# /proc sampling


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("ascii", "replace")
    except OSError:
        return None


def proc_stat(pid):
    """(ppid, utime + stime in s, start time in ticks) of PID, or None when it is gone."""
    text = read(f"/proc/{pid}/stat")
    if text is None:
        return None
    # The command name is in parentheses and may hold spaces: split after the last ')'.
    fields = text[text.rfind(")") + 2:].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS, int(fields[19])


class Tree:
    """The live descendants of one process, found by scanning /proc incrementally.

    Processes seen outside the tree are remembered and not read again (a process never moves
    into another's subtree), so a tick reads only new and member processes.
    """

    def __init__(self, root):
        self.root = root
        self.members = {root}
        self.outside = set()

    def walk(self):
        """The members alive now, ROOT first."""
        pending = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                pid = int(entry)
                if pid not in self.outside:
                    st = proc_stat(pid)
                    if st is not None:
                        pending[pid] = st[0]
        alive = {self.root} if self.root in pending else set()
        changed = True
        while changed:
            changed = False
            for pid, ppid in list(pending.items()):
                if pid in alive:
                    del pending[pid]
                elif ppid in alive or (pid in self.members and pid != self.root):
                    alive.add(pid)
                    del pending[pid]
                    changed = True
        # What is left is not ours (members that died and were reparented stay members).
        self.outside.update(p for p in pending if p not in self.members)
        self.members |= alive
        return sorted(alive, key=lambda p: (p != self.root, p))


def memory_kib(pid):
    """(RSS, PSS) of PID in KiB; (0, 0) when it is gone or unreadable."""
    rss = pss = 0
    status = read(f"/proc/{pid}/status")
    if status:
        m = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        rss = int(m.group(1)) if m else 0
    rollup = read(f"/proc/{pid}/smaps_rollup")
    if rollup:
        m = re.search(r"^Pss:\s+(\d+) kB", rollup, re.M)
        pss = int(m.group(1)) if m else 0
    return rss, pss


def stop(pids):
    """SIGTERM, then SIGKILL after 5 s, to the processes of PIDS that still run (same start)."""
    alive = {pid: start for pid, start in pids.items() if (proc_stat(pid) or (0, 0, None))[2] == start}
    for pid in alive:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + 5
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = {p: s for p, s in alive.items() if (proc_stat(p) or (0, 0, None))[2] == s}
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return len(alive)


def measure(cmd, env, cwd, log_path, timeout):
    """Runs CMD once; returns wall, exit status, memory peaks and CPU time."""
    with open(log_path, "wb") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        seen = {}  # pid -> (start ticks, last CPU s)
        peak_rss = peak_pss = 0
        status, usage, timed_out = None, None, False
        deadline = t0 + timeout
        members = Tree(proc.pid)
        while True:
            pid, st, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                t1 = time.perf_counter()
                status, usage = st, ru
                break
            if time.perf_counter() > deadline:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)
                _, status, usage = os.wait4(proc.pid, 0)
                t1 = time.perf_counter()
                break
            rss = pss = 0
            for p in members.walk():
                stat = proc_stat(p)
                if stat is None:
                    continue
                r, s = memory_kib(p)
                rss += r
                pss += s
                seen[p] = (stat[2], stat[1])
            peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
            time.sleep(SAMPLE_S)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    leftovers = stop({p: start for p, (start, _) in seen.items() if p != proc.pid})
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    main_cpu = usage.ru_utime + usage.ru_stime
    others_cpu = sum(cpu for p, (_, cpu) in seen.items() if p != proc.pid)
    return {
        "wall_s": t1 - t0,
        "exit": os.waitstatus_to_exitcode(status),
        "timed_out": timed_out,
        "main_peak_rss_mib": usage.ru_maxrss / 1024,
        "tree_peak_rss_mib": max(peak_rss / 1024, usage.ru_maxrss / 1024),
        "tree_peak_pss_mib": peak_pss / 1024,
        "processes": len(seen) or 1,
        "cpu_s": main_cpu + others_cpu,
        "left_running": leftovers,
    }


# ---------------------------------------------------------------------------------------------
# Output parsers


def parse_flspec(text):
    """Accuracies, round times and total from the secagg_mnist results table."""
    rounds, results = [], []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 5 and cells[0].isdigit():
            try:
                values = [float(c) for c in cells[:5]]
            except ValueError:
                continue
            results.append(values[:4])
            rounds.append(values[4])
    m = re.search(r"^total ([0-9.]+) s", text, re.M)
    return {"run_s": float(m.group(1)) if m else None, "rounds_s": rounds, "results": results}


def parse_python(text):
    """The BASELINE_RESULT line of a Python baseline."""
    marker = "BASELINE_RESULT "
    for line in reversed(text.splitlines()):
        # OpenFL colours its output: an escape sequence may precede the marker.
        i = line.find(marker)
        if i >= 0:
            return json.loads(line[i + len(marker):])
    return None


# ---------------------------------------------------------------------------------------------
# Environment facts


def command_output(cmd, timeout=60):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        return out.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def cpu_model():
    for line in command_output(["lscpu"]).splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def cpu_flags():
    text = read("/proc/cpuinfo") or ""
    m = re.search(r"^flags\s*:\s*(.*)$", text, re.M)
    flags = set(m.group(1).split()) if m else set()
    return ", ".join(f for f in ("avx2", "avx512f", "avx512_vnni", "amx_tile") if f in flags) or "none of avx2/avx512"


def mem_total_gib():
    m = re.search(r"^MemTotal:\s+(\d+) kB", read("/proc/meminfo") or "", re.M)
    return int(m.group(1)) / 1024 / 1024 if m else 0.0


def versions(python, packages):
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {'python': sys.version.split()[0]}\n"
        f"for p in {packages!r}:\n"
        "    try: out[p] = m.version(p)\n"
        "    except m.PackageNotFoundError: out[p] = None\n"
        "print(json.dumps(out))\n"
    )
    text = command_output([python, "-c", code])
    try:
        return json.loads(text)
    except ValueError:
        return {}


# ---------------------------------------------------------------------------------------------


def runner(args, kind, extra):
    """(command, env) for one variant."""
    env = dict(os.environ)
    env.update({
        "CUDA_VISIBLE_DEVICES": "",
        "FLWR_TELEMETRY_ENABLED": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    # Metaflow (under OpenFL's workflow interface) refuses to run without a user name.
    env.setdefault("USERNAME", env.get("USER") or "flspec-baselines")
    if kind == "flspec":
        if args.threads and "--threads" not in extra:
            extra = extra + ["--threads", str(args.threads)]
        return [args.flspec] + extra, env
    if args.threads:
        # torch sizes its intra-op pool from these at start-up; Ray actors inherit them.
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.threads)
    env["PYTHONPATH"] = HERE
    python = os.path.join(args.venv, kind, "bin", "python")
    script = os.path.join(HERE, extra[0])
    return [python, script, "--data", args.data] + extra[1:], env


def label_of(args, name):
    """The variant's label, with the thread setting when --threads overrides the default."""
    label = VARIANTS[name][0]
    if args.threads and name == "flspec-secagg":
        label = f"flspec, SecAgg, --threads {args.threads}"
    elif args.threads and name == "flspec-plain":
        label = f"flspec, plain FedAvg (--no-secagg), --threads {args.threads}"
    return label


def one_run(args, name, rep, logs):
    label, kind, extra, _ = VARIANTS[name]
    cmd, env = runner(args, kind, extra)
    log_path = os.path.join(logs, f"{name}-{rep}.log")
    load_before = os.getloadavg()[0]
    m = measure(cmd, env, args.root, log_path, args.timeout)
    m["load1_before"] = load_before
    m["variant"], m["rep"] = name, rep
    text = read(log_path) or ""
    parsed = parse_flspec(text) if kind == "flspec" else parse_python(text)
    m["ok"] = m["exit"] == 0 and not m["timed_out"] and parsed is not None and bool(parsed.get("rounds_s"))
    m["run_s"] = (parsed or {}).get("run_s")
    m["rounds_s"] = (parsed or {}).get("rounds_s") or []
    m["detail"] = parsed
    m["log"] = log_path
    state = "ok" if m["ok"] else f"FAILED (exit {m['exit']}{', timed out' if m['timed_out'] else ''}; log {log_path})"
    rounds = " / ".join(f"{r:.2f}" for r in m["rounds_s"])
    print(
        f"  {name:22} rep {rep}: wall {m['wall_s']:6.2f} s  rounds {rounds or '-':13}  "
        f"RSS tree {m['tree_peak_rss_mib']:6.0f} MiB  PSS tree {m['tree_peak_pss_mib']:6.0f} MiB  "
        f"load {load_before:.1f}  {state}",
        flush=True,
    )
    return m


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=2):
    return "–" if v is None else f"{v:.{digits}f}"


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def fmt_ratio(v):
    return "–" if v is None else f"**{v:.1f}x**" if v >= 1.95 else f"**{v:.2f}x**"


def summarise(runs, names):
    by = {n: [r for r in runs if r["variant"] == n and r["ok"]] for n in names}
    rows = {}
    for n in names:
        ok = by[n]
        n_rounds = max((len(r["rounds_s"]) for r in ok), default=0)
        rows[n] = {
            "ok": len(ok),
            "failed": len([r for r in runs if r["variant"] == n and not r["ok"]]),
            "wall": med([r["wall_s"] for r in ok]),
            "wall_min": min((r["wall_s"] for r in ok), default=None),
            "wall_max": max((r["wall_s"] for r in ok), default=None),
            "run": med([r["run_s"] for r in ok]),
            "rounds": [med([r["rounds_s"][i] for r in ok if len(r["rounds_s"]) > i]) for i in range(n_rounds)],
            "warm": med([r["rounds_s"][-1] for r in ok if len(r["rounds_s"]) > 1]),
            "main_rss": med([r["main_peak_rss_mib"] for r in ok]),
            "tree_rss": med([r["tree_peak_rss_mib"] for r in ok]),
            "tree_pss": med([r["tree_peak_pss_mib"] for r in ok]),
            "cpu": med([r["cpu_s"] for r in ok]),
            "imports": med([(r["detail"] or {}).get("import_s") for r in ok]),
            # One process: its exact peak RSS. Several (Ray): the peak PSS summed over the tree,
            # which counts a page shared by the processes once. (The PSS of one process also
            # depends on what else maps the same libraries, e.g. other programs using libtorch.)
            "mem": med([r["tree_peak_pss_mib"] if r["processes"] > 1 else r["main_peak_rss_mib"] for r in ok]),
            "procs": med([r["processes"] for r in ok]),
            "by_rep": {r["rep"]: r for r in ok},
        }
    return rows


def paired(rows, a, b, key):
    """Median over repetitions of A's KEY / B's KEY measured in the same repetition."""
    ra, rb = rows[a]["by_rep"], rows[b]["by_rep"]
    values = [ratio(key(ra[k]), key(rb[k])) for k in ra if k in rb]
    return med(values)


def report(args, runs, names, facts, started, finished, loads):
    rows = summarise(runs, names)
    lines = []
    add = lines.append
    add("# Baselines, measured side by side: flspec, OpenFL 1.9, Flower 1.42, raw PyTorch")
    add("")
    add(f"Produced by `scripts/baselines/compare.sh` ({args.reps} measured "
        f"repetition{'s' if args.reps != 1 else ''}, "
        f"{args.warmup} warm-up pass{'es' if args.warmup != 1 else ''}), "
        f"{started} to {finished} UTC.")
    add("")
    add(f"- Machine: **{facts['cpu']}**, {facts['cores']} cores, {facts['mem']:.1f} GiB RAM, "
        f"vector extensions: {facts['flags']}; {facts['os']}.")
    add(f"- 1-minute load average before the runs: min {min(loads):.1f}, median "
        f"{statistics.median(loads):.1f}, max {max(loads):.1f} (the machine has {facts['cores']} cores; "
        "other work ran on it, so every variant ran interleaved with the others, the order "
        "rotated every repetition, and the tables give medians).")
    add(f"- flspec: `{os.path.relpath(args.flspec, args.root)}` (release; "
        f"{facts['flspec_commit']}; {facts['rustc']}; libtorch 2.13.0 CPU).")
    for kind in ("openfl", "flower"):
        v = facts["versions"].get(kind) or {}
        add(f"- {kind} venv: " + ", ".join(f"{k} {val}" for k, val in v.items() if val) + ".")
    if args.threads:
        threads = (f"**{args.threads} libtorch thread{'s' if args.threads != 1 else ''} per operation everywhere** (flspec "
                   f"`--threads {args.threads}` unless the variant names another; Python: "
                   f"`OMP_NUM_THREADS={args.threads}`, which Ray's actors inherit)")
    else:
        threads = ("each system's default libtorch threads (flspec: its `--threads` default; "
                   "PyTorch: one per core; Flower: Ray gives each actor, `num_cpus=1`, one thread)")
    add("- Every Python variant runs the seed's PyTorch code (`seed_common.py`) on the same files "
        "through torchvision's `MNIST` class. CUDA is hidden: CPU only. Threads: " + threads + ".")
    add("")
    add("## Medians per variant")
    add("")
    add("Wall: the whole process, fork to exit (imports, start-up, data, the run, shutdown). Run: "
        "what the program reports for the run itself (flspec: `total`; OpenFL: `flow.run()`; "
        "raw loop: the round loop; Flower: `run_simulation`, Ray start-up included). Imports: a "
        "Python program's own imports (the interpreter's start is not included). Rounds: round 0 "
        "/ round 1, each as the program times it (flspec prints them to 2 decimals). Memory: peak "
        "RSS of the largest single process (exact, from wait4), and the peak sums of RSS and of PSS over the whole process tree "
        "(sampled every 0.1 s).")
    add("")
    add("| variant | runs | wall s (min–max) | imports s | run s | rounds s | CPU s (tree) | processes | "
        "peak RSS largest process MiB | peak RSS tree MiB | peak PSS tree MiB |")
    add("|---|---|---|---|---|---|---|---|---|---|---|")
    for n in names:
        r = rows[n]
        runs_cell = f"{r['ok']}" + (f" (+{r['failed']} failed)" if r["failed"] else "")
        rounds = " / ".join(fmt(v) for v in r["rounds"]) or "–"
        add(f"| {label_of(args, n)} | {runs_cell} | {fmt(r['wall'])} ({fmt(r['wall_min'])}–{fmt(r['wall_max'])}) "
            f"| {fmt(r['imports'])} | {fmt(r['run'])} | {rounds} | {fmt(r['cpu'], 1)} | {fmt(r['procs'], 0)} | {fmt(r['main_rss'], 0)} "
            f"| {fmt(r['tree_rss'], 0)} | {fmt(r['tree_pss'], 0)} |")
    add("")
    add("## Ratios, competitor / flspec, from this one run")
    add("")
    add("Each ratio divides two medians measured in the same run; \"paired\" is the median of the "
        "per-repetition ratios. Warm round: the last round (round 1). Memory: the peak RSS of a "
        "single-process run; for a run of several processes (Flower: the driver, Ray's GCS, "
        "raylet and workers), the peak PSS summed over the tree, which counts every shared page "
        "once.")
    add("")
    add("| comparison | wall | wall, paired | run | warm round | peak memory |")
    add("|---|---|---|---|---|---|")
    for n in names:
        base = VARIANTS[n][3]
        if base is None or base not in rows or rows[n]["ok"] == 0 or rows[base]["ok"] == 0:
            continue
        a, b = rows[n], rows[base]
        add(f"| {label_of(args, n)} / {label_of(args, base)} | {fmt_ratio(ratio(a['wall'], b['wall']))} "
            f"| {fmt_ratio(paired(rows, n, base, lambda r: r['wall_s']))} "
            f"| {fmt_ratio(ratio(a['run'], b['run']))} | {fmt_ratio(ratio(a['warm'], b['warm']))} "
            f"| {fmt_ratio(ratio(a['mem'], b['mem']))} |")
    if "openfl-secagg" in rows and "torch-raw" in rows and rows["openfl-secagg"]["ok"] and rows["torch-raw"]["ok"]:
        o, t = rows["openfl-secagg"], rows["torch-raw"]
        add("")
        add(f"OpenFL's own overhead in this run (seed flow / raw PyTorch loop, the same training): "
            f"wall {fmt_ratio(ratio(o['wall'], t['wall']))}, run {fmt_ratio(ratio(o['run'], t['run']))}, "
            f"warm round {fmt_ratio(ratio(o['warm'], t['warm']))}.")
    failed = [r for r in runs if not r["ok"]]
    if failed:
        add("")
        add("## Failed runs")
        add("")
        for r in failed:
            add(f"- {r['variant']} rep {r['rep']}: exit {r['exit']}"
                f"{', timed out' if r['timed_out'] else ''}; log `{r['log']}`")
    add("")
    add("## Commands")
    add("")
    add("Run from the repository root, each in a fresh process (the environment also sets "
        "`CUDA_VISIBLE_DEVICES=`, `FLWR_TELEMETRY_ENABLED=0`, `RAY_USAGE_STATS_ENABLED=0`"
        + (f", `OMP_NUM_THREADS={args.threads}`" if args.threads else "") + "):")
    add("")
    for n in names:
        cmd, _ = runner(args, VARIANTS[n][1], VARIANTS[n][2])
        shown = " ".join(os.path.relpath(c, args.root) if os.path.isabs(c) else c for c in cmd)
        add(f"- `{n}`: `{shown}`")
    add("")
    accuracy = accuracy_lines(args, runs, names)
    if accuracy:
        add("## Same work: accuracies of the first measured repetition")
        add("")
        add("| variant | per round: aggregated-model accuracy / train loss / local accuracy |")
        add("|---|---|")
        lines.extend(accuracy)
        add("")
    return "\n".join(lines)


def accuracy_lines(args, runs, names):
    out = []
    for n in names:
        ok = [r for r in runs if r["variant"] == n and r["ok"] and r["rep"] >= 0]
        if not ok:
            continue
        d = ok[0]["detail"] or {}
        res = d.get("results")
        if not res:
            continue
        if n.startswith("flower"):
            cells = "; ".join(
                f"after round {row[0]}: aggregated {fmt(row[1], 4)}, train loss {fmt(row[2], 4)}" for row in res
            )
        else:
            cells = "; ".join(f"round {int(row[0])}: " + " / ".join(fmt(v, 4) for v in row[1:4]) for row in res)
        out.append(f"| {label_of(args, n)} | {cells} |")
    return out


def gather_facts(args):
    commit = command_output(["git", "-C", args.root, "rev-parse", "--short", "HEAD"]) or "unknown"
    dirty = command_output(["git", "-C", args.root, "status", "--porcelain", "--untracked-files=no"])
    source = args.flspec_source or (
        f"built from commit {commit}" + (" with uncommitted changes in the tree" if dirty else ""))
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "mem": mem_total_gib(),
        "flags": cpu_flags(),
        "os": f"{platform.system()} {platform.release()}",
        "rustc": command_output(["rustc", "--version"]) or "rustc unknown",
        "flspec_commit": source,
        "versions": {
            "openfl": versions(os.path.join(args.venv, "openfl", "bin", "python"),
                               ["openfl", "torch", "torchvision", "ray", "metaflow", "pycryptodome", "numpy"]),
            "flower": versions(os.path.join(args.venv, "flower", "bin", "python"),
                               ["flwr", "ray", "torch", "torchvision", "numpy"]),
        },
    }


def main(argv):
    args = parse_args(argv)
    if args.list:
        for name, (label, *_rest) in VARIANTS.items():
            extra = "" if name in DEFAULT_VARIANTS else "  (only with --only)"
            print(f"{name:22} {label}{extra}")
        return 0
    names = [n for n in (args.only.split(",") if args.only else DEFAULT_VARIANTS) if n]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        sys.exit(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    args.flspec = os.path.abspath(args.flspec)
    out_dir = os.path.dirname(os.path.abspath(args.out))
    logs = os.path.join(out_dir, "logs")
    os.makedirs(logs, exist_ok=True)
    if args.render:
        with open(args.render, encoding="utf-8") as f:
            saved = json.load(f)
        runs = [r for r in saved["runs"] if r["rep"] >= 0]
        text = report(args, runs, names, saved["facts"], saved["started"], saved["finished"],
                      [r["load1_before"] for r in runs])
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        print(text)
        return 0
    facts = gather_facts(args)
    started = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    print(f"compare: {facts['cpu']}, {facts['cores']} cores; variants: {', '.join(names)}", flush=True)
    runs, loads = [], []
    for w in range(args.warmup):
        print(f"warm-up pass {w + 1}/{args.warmup} (not measured)", flush=True)
        for name in names:
            one_run(args, name, -1 - w, logs)
    for rep in range(args.reps):
        k = rep % len(names)
        order = names[k:] + names[:k]
        print(f"repetition {rep + 1}/{args.reps}: {' '.join(order)}", flush=True)
        for name in order:
            m = one_run(args, name, rep, logs)
            runs.append(m)
            loads.append(m["load1_before"])
    finished = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    text = report(args, runs, names, facts, started, finished, loads)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    with open(os.path.splitext(args.out)[0] + ".json", "w", encoding="utf-8") as f:
        json.dump({"facts": facts, "started": started, "finished": finished, "runs": runs}, f, indent=1)
    print()
    print(text)
    print(f"\nreport: {args.out} (raw runs: {os.path.splitext(args.out)[0]}.json; logs: {logs})")
    return 0 if all(r["ok"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
