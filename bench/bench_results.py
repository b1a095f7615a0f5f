# The reporting half of bench/run.py: rows merged over rounds, Krait's ratios and targets, the table,
# and bench/RESULTS.md.
#
# Strategy: every measurement is one Row (a test, a server, the settings it ran with). Rounds are
# merged into their median round by req/s, so a cell's req/s, p50 and p99 come from one run; the notes
# give the spread. Krait's ratio to each peer is its req/s over the peer's for the same test, and a
# target (a minimum ratio, and maybe a lower p99) is checked in the peer's row.
import dataclasses
import datetime
import os
import platform
import shlex
import subprocess


@dataclasses.dataclass
class Row:
    test: str
    server: str
    label: str
    rps: float = None
    p50: float = None  # milliseconds
    p99: float = None
    error: str = None
    notes: list = dataclasses.field(default_factory=list)
    settings: str = ""  # how the server ran: its defaults, or what the harness changed


def clip(text, width=110):
    return text if len(text) <= width else text[: width - 3] + "..."


def median_rows(rows):
    """One Row per (test, server): the median of its rounds by req/s (the lower middle one for an
    even count), noting the spread; a cell that failed in every round keeps its first error."""
    merged = {}
    for row in rows:
        merged.setdefault((row.test, row.server), []).append(row)
    out = []
    for runs in merged.values():
        good = sorted((r for r in runs if r.error is None), key=lambda r: r.rps)
        if not good:
            out.append(runs[0])
            continue
        row = good[(len(good) - 1) // 2]
        if len(runs) > 1:
            failed = len(runs) - len(good)
            row.notes.append(f"median of {len(good)}: {good[0].rps:,.0f}-{good[-1].rps:,.0f}/s"
                             + (f", {failed} failed" if failed else ""))
        out.append(row)
    return out


def judge(rows, targets):
    """Fill in Krait ratios and the verdicts of `targets` ({(test, server): (ratio, lower p99)});
    return {(test, server): ratio}."""
    krait = {r.test: r for r in rows if r.server == "krait"}
    ratios = {}
    for row in rows:
        k = krait.get(row.test)
        if row.server == "krait" or k is None or k.rps is None or row.rps is None:
            continue
        ratio = ratios[row.test, row.server] = k.rps / row.rps
        target = targets.get((row.test, row.server))
        if target:
            ok = ratio >= target[0] and (not target[1] or k.p99 < row.p99)
            want = f">= {target[0]}x" + (" and lower p99" if target[1] else "")
            row.notes.insert(0, f"target {want}: {'met' if ok else 'MISSED'}")
    return ratios


def targets_text(targets, test_labels, server_names):
    """The targets in words, for the foot of the table."""
    return "; ".join(f"{test_labels[test]} >= {ratio}x {server_names[server]}"
                     + (" with a lower p99" if lower_p99 else "")
                     for (test, server), (ratio, lower_p99) in targets.items())


def table(rows, ratios, tests, server_order):
    """Header and lines, in test order, Krait first and then the servers in `server_order`."""
    header = ["test", "server", "settings", "req/s", "p50", "p99", "Krait ratio", "notes"]
    labels = dict((t[0], t[1]) for t in tests)
    order = [t[0] for t in tests]
    lines = []
    for row in sorted(rows, key=lambda r: (order.index(r.test), server_order.index(r.server))):
        ratio = ratios.get((row.test, row.server))
        notes = list(row.notes)
        if row.error:
            cells = ["-", "-", "-", "-"]
            notes.insert(0, "failed: " + clip(row.error))
        else:
            cells = [f"{row.rps:,.0f}", f"{row.p50:.2f} ms", f"{row.p99:.2f} ms",
                     f"{ratio:.2f}x" if ratio else "-"]
        lines.append([labels[row.test], row.label, row.settings] + cells + ["; ".join(notes)])
    return header, lines


def print_table(header, lines):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=True)]
    for cells in [header] + lines:
        print("  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())


def machine_info():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{os.cpu_count()} CPUs (nproc), {model}, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def load_average():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def write_results(path, header, lines, ctx, argv, footer):
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split()
    versions = ", ".join(f"{k} {v}" for k, v in ctx["versions"].items())
    out = [
        "# Krait benchmark results", "",
        f"- Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"- Command: `{shlex.join(['python', 'bench/run.py'] + argv)}`",
        f"- Machine: {machine_info()}; load average {ctx['load_before']} before the run, "
        f"{load_average()} after",
        f"- Pinning: servers on CPU {ctx['server_cpu']}, load generator on CPU "
        f"{ctx['client_cpu']}" + ("" if ctx["taskset"] else " (taskset missing: NOT pinned)"),
        f"- HTTP load: wrk {wrk[1] if len(wrk) > 1 else '?'}, 1 thread, {ctx['connections']} "
        f"connections, {ctx['duration']} s per row after a {ctx['warmup']} s warm-up",
        f"- Rounds: {ctx['rounds']} (server order reversed every other round); each row is the "
        "median round, the notes give the range of req/s",
        f"- WebSocket load: 1 connection, sequential round trips: {ctx['ws_small']} x 32-byte "
        f"text, {ctx['ws_big']} x 1 MiB binary (req/s = messages/s)",
        f"- Versions: Krait {ctx.get('krait_version', 'not run')}; "
        f"{versions or 'venv not installed'}",
        "- Settings: each server at its own defaults unless the column says otherwise",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
            for cells in lines]
    out += ["", footer, ""]
    with open(path, "w") as f:
        f.write("\n".join(out))
