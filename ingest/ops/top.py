"""``ingest top``: a live terminal view of a running ingest.

It polls the process's metrics endpoint (``ingest listen --metrics ...``,
``GET /top.json``, version 1) once a second and draws, with ``rich``:

* per input: alerts received per second over the last second and the last
  minute, totals, malformed by reason;
* per sink: dispatched per second (1 s, 1 min), errors;
* drops by reason, queue fill (alerts, bytes of the byte budget), spool fill,
  reader threads alive/dead;
* the top signatures and talkers of the process's last minute.

The endpoint's counters are cumulative; rates are differences between
successive polls, timed by the endpoint's own clock (``time``), so a slow
poll does not fake a dip.  A restarted process (another ``pid``, or a
counter that went down) starts the history afresh.

``q`` quits (the terminal is in cbreak mode while it runs: keys arrive one
at a time, not echoed; Ctrl-C works as usual; both restore the terminal).
The view fits whatever the terminal is, down to 80x24: long input names are
shortened in the middle, rows past the bottom are cut, nothing wraps.  When
the endpoint cannot be reached the screen says so and it keeps retrying.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import select
import signal
import socket
import sys
import time
from collections import deque
from typing import Any

from .address import DEFAULT_PORT, MetricsAddress, parse_address

POLL_SECONDS = 1.0
#: how long a poll may take before it counts as unreachable
TIMEOUT = 2.0
#: the longest rate window (the history kept)
MINUTE = 60.0


# --- where to poll ------------------------------------------------------------
#: where top polls: the endpoint's own address type
Endpoint = MetricsAddress


def parse_endpoint(text: str) -> Endpoint:
    """``PORT``, ``HOST:PORT``, ``[V6]:PORT`` or ``unix:PATH``, as
    ``--metrics`` takes them (:func:`ingest.ops.address.parse_address`),
    but a real port: port 0 (the endpoint's "pick one") cannot be polled."""
    ep = parse_address(text)
    if ep.path is None and ep.port == 0:
        raise ValueError(f"{text!r}: port 0 cannot be polled; give the port the endpoint said it listens on")
    return ep


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.unix_path)
        except BaseException:
            s.close()
            raise
        self.sock = s


def fetch(ep: Endpoint, timeout: float = TIMEOUT) -> dict[str, Any]:
    """One ``GET /top.json`` (OSError, ValueError: unreachable or not an ingest endpoint)."""
    conn: http.client.HTTPConnection
    if ep.path is not None:
        conn = _UnixHTTPConnection(ep.path, timeout)
    else:
        conn = http.client.HTTPConnection(ep.host, ep.port, timeout=timeout)
    try:
        conn.request("GET", "/top.json", headers={"Accept": "application/json"})
        resp = conn.getresponse()
        body = resp.read(16 << 20)
        if resp.status != 200:
            raise ValueError(f"HTTP {resp.status} {resp.reason}")
    except http.client.HTTPException as e:
        raise ValueError(f"not an HTTP answer ({e!r})") from None
    finally:
        conn.close()
    try:
        doc = json.loads(body)
    except ValueError:
        raise ValueError("the answer is not JSON") from None
    if not isinstance(doc, dict) or doc.get("version") != 1:
        raise ValueError(f"not an ingest /top.json of version 1 (version {doc.get('version') if isinstance(doc, dict) else '?'})")
    return doc


# --- rates --------------------------------------------------------------------
def _num(x: Any) -> float:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else 0.0


class History:
    """Successive snapshots, at most a minute (and a bit) of them."""

    def __init__(self) -> None:
        self.snaps: deque[dict[str, Any]] = deque()

    def add(self, doc: dict[str, Any]) -> None:
        if self.snaps:
            last = self.snaps[-1]
            if doc.get("pid") != last.get("pid") or _num(doc.get("uptime_s")) < _num(last.get("uptime_s")) \
                    or _num(doc.get("time")) <= _num(last.get("time")):
                self.snaps.clear()  # another process (or the clock went back): rates start again
        self.snaps.append(doc)
        now = _num(doc.get("time"))
        while len(self.snaps) > 2 and now - _num(self.snaps[1].get("time")) >= MINUTE:
            self.snaps.popleft()

    def rate(self, value, window: float) -> float | None:
        """Per second of ``value(doc)`` over ``window`` seconds back (or as
        far back as there is); None with fewer than two snapshots."""
        if len(self.snaps) < 2:
            return None
        cur = self.snaps[-1]
        t = _num(cur.get("time"))
        base = self.snaps[-2]  # at least the previous poll, however long ago
        for d in list(self.snaps)[:-2]:  # else the oldest one within the window
            if t - _num(d.get("time")) <= window + 0.5:
                base = d
                break
        dt = t - _num(base.get("time"))
        if dt <= 0:
            return None
        diff = value(cur) - value(base)
        return max(diff, 0.0) / dt  # a counter reset is not a negative rate

    def span(self) -> float:
        return _num(self.snaps[-1].get("time")) - _num(self.snaps[0].get("time")) if self.snaps else 0.0


def _input(name: str, key: str):
    return lambda d: _num(((d.get("inputs") or {}).get(name) or {}).get(key))


def _sink(name: str, key: str):
    return lambda d: _num(((d.get("sinks") or {}).get(name) or {}).get(key))


# --- drawing ------------------------------------------------------------------
def human(n: float | None, *, rate: bool = False) -> str:
    if n is None:
        return "-"
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.1f}{unit}"
    return f"{n:.1f}" if rate and 0 < n < 10 else f"{n:.0f}"


def human_bytes(n: float) -> str:
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n:.0f} B"


def shorten(text: str, width: int) -> str:
    """``text`` in at most ``width`` cells, cut in the middle (an input's
    kind and its file name say more than the directories between): the
    kind (``eve-stream:``) is kept whole when it takes at most half."""
    if len(text) <= width:
        return text
    if width <= 1:
        return text[:width]
    kind = text.find(":") + 1
    head = kind if 0 < kind <= width // 2 else (width - 1) // 3
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def _uptime(s: float) -> str:
    s = int(s)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{d}d{h:02d}h" if d else f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def _bar(frac: float, width: int) -> str:
    frac = min(max(frac, 0.0), 1.0)
    full = round(frac * width)
    return "█" * full + "·" * (width - full)


def _reasons(d: dict[str, Any]) -> str:
    return ", ".join(f"{k} {human(_num(v))}" for k, v in sorted(d.items(), key=lambda kv: -_num(kv[1]))) or "none"


def render(doc: dict[str, Any] | None, hist: History, *, width: int, height: int, target: str,
           error: str | None = None):
    """The whole screen, as a rich renderable no wider than ``width`` and
    no taller than ``height``."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    rows: list[Any] = []

    def line(text: Text | str, style: str = "") -> None:
        t = text if isinstance(text, Text) else Text(text, style=style)
        t.no_wrap = True
        t.overflow = "ellipsis"
        t.truncate(width, overflow="ellipsis")
        rows.append(t)

    head = Text(no_wrap=True)
    head.append("ingest top", style="bold")
    if doc is not None:
        head.append(f"  {doc.get('sensor', '?')}  pid {doc.get('pid', '?')}  up {_uptime(_num(doc.get('uptime_s')))}")
    head.append(f"  {target}  ")
    head.append(time.strftime("%H:%M:%S"))
    head.append("  q quits", style="dim")
    line(head)
    if error is not None:
        line(f"cannot reach {target}: {error}; retrying every {POLL_SECONDS:.0f} s", "bold red")
    if doc is None:
        if error is None:
            line("waiting for the first answer ...")
        return Group(*rows)

    cols = (8, 8, 10, 10, 9)  # the numbers; one space before each
    name_w = max(12, width - sum(cols) - len(cols))
    inputs = doc.get("inputs") or {}
    t = _table("INPUT", name_w, zip(("rx/s", "rx/1m", "received", "decoded", "malformed"), cols, strict=True))
    for name in sorted(inputs):
        c = inputs[name] or {}
        mal = sum(_num(v) for v in (c.get("malformed") or {}).values())
        t.add_row(shorten(f"{name}", name_w), human(hist.rate(_input(name, "received"), 1.0), rate=True),
                  human(hist.rate(_input(name, "received"), MINUTE), rate=True),
                  human(_num(c.get("received"))), human(_num(c.get("decoded"))),
                  Text(human(mal), style="yellow" if mal else ""))
    rows.append(t)
    sinks = doc.get("sinks") or {}
    t = _table("SINK", name_w, zip(("out/s", "out/1m", "dispatched", "errors", "err/1m"), cols, strict=True))
    for name in sorted(sinks):
        c = sinks[name] or {}
        err = _num(c.get("errors"))
        t.add_row(shorten(name, name_w), human(hist.rate(_sink(name, "dispatched"), 1.0), rate=True),
                  human(hist.rate(_sink(name, "dispatched"), MINUTE), rate=True), human(_num(c.get("dispatched"))),
                  Text(human(err), style="red" if err else ""),
                  human(None if (per_s := hist.rate(_sink(name, "errors"), MINUTE)) is None else per_s * 60))
    rows.append(t)

    q = doc.get("queue") or {}
    qmax = _num(q.get("max_bytes"))
    qfrac = _num(q.get("bytes")) / qmax if qmax else 0.0
    fill = Text(no_wrap=True)
    fill.append("queue ", style="bold")
    fill.append(f"{human(_num(q.get('alerts')))} alerts {human_bytes(_num(q.get('bytes')))}/{human_bytes(qmax)} ")
    fill.append(_bar(qfrac, 10), style="red" if qfrac > 0.8 else "green")
    fill.append(f" {qfrac:4.0%}")
    sp = doc.get("spool")
    if isinstance(sp, dict):
        smax = _num(sp.get("max_bytes"))
        sfrac = _num(sp.get("bytes")) / smax if smax else 0.0
        fill.append("  spool ", style="bold")
        fill.append(f"{human_bytes(_num(sp.get('bytes')))} ")
        fill.append(_bar(sfrac, 6), style="red" if sfrac > 0.8 else "green")
        fill.append(f" {sfrac:4.0%}")
    line(fill)
    rd = doc.get("readers") or {}
    dead = _num(rd.get("dead"))
    misc = Text(no_wrap=True)
    misc.append("readers ", style="bold")
    misc.append(f"{human(_num(rd.get('alive')))} alive ")
    misc.append(f"{human(dead)} dead", style="bold red" if dead else "")
    dropped = doc.get("dropped") or {}
    misc.append("  dropped ", style="bold")
    misc.append(_reasons(dropped), style="bold red" if dropped else "")
    line(misc)
    malformed: dict[str, float] = {}
    for c in inputs.values():
        for k, v in ((c or {}).get("malformed") or {}).items():
            malformed[k] = malformed.get(k, 0.0) + _num(v)
    why = Text(no_wrap=True)
    why.append("malformed ", style="bold")
    why.append(_reasons(malformed), style="yellow" if malformed else "")
    line(why)

    # the last minute's signatures and talkers side by side, in what rows are left
    left = height - 1 - sum(_height(r) for r in rows)
    win = _num(doc.get("window_s")) or 60
    sigs = [s for s in (doc.get("top_signatures") or []) if isinstance(s, dict)]
    talk = [s for s in (doc.get("top_talkers") or []) if isinstance(s, dict)]
    if left >= 2:
        talk_w = 23  # an IPv4 address whole; IPv6 cut in the middle
        sig_w = width - talk_w - 1
        grid = Table.grid(padding=(0, 1))
        grid.add_column(width=sig_w, no_wrap=True, overflow="ellipsis")
        grid.add_column(width=talk_w, no_wrap=True, overflow="ellipsis")
        grid.add_row(Text(f"{'TOP SIGNATURES (' + str(int(win)) + ' s)':<{sig_w - 7}}{'count':>7}", style="bold reverse"),
                     Text(f"{'TOP TALKERS':<{talk_w - 7}}{'count':>7}", style="bold reverse"))
        for i in range(min(left - 1, max(len(sigs), len(talk)))):
            sig_cell = Text("")
            if i < len(sigs):
                s = sigs[i]
                ident = f"{s.get('gid', '?')}:{s.get('sid', '?')}:{s.get('rev', '?')}"
                msg = str(s.get("msg") or "")
                body = f"{ident} {msg}"
                body = body if len(body) <= sig_w - 8 else body[:sig_w - 9] + "…"  # a message reads from its start
                sig_cell = Text(f"{body:<{sig_w - 8}} {human(_num(s.get('count'))):>7}", style=_prio(s.get("priority")))
            talk_cell = Text("")
            if i < len(talk):
                a = talk[i]
                talk_cell = Text(f"{shorten(str(a.get('addr', '?')), talk_w - 8):<{talk_w - 8}} "
                                 f"{human(_num(a.get('count'))):>7}")
            grid.add_row(sig_cell, talk_cell)
        rows.append(grid)
    return Group(*rows)


def _table(first: str, first_w: int, cols) -> Any:
    from rich.table import Table

    t = Table(box=None, pad_edge=False, padding=(0, 0, 0, 1), show_edge=False, expand=False,
              header_style="bold reverse")
    t.add_column(first, no_wrap=True, overflow="ellipsis", width=first_w)
    for name, w in cols:
        t.add_column(name, justify="right", no_wrap=True, overflow="ellipsis", width=w)
    return t


def _prio(p: Any) -> str:
    return {1: "bold red", 2: "yellow"}.get(p if isinstance(p, int) else 0, "")


def _height(r: Any) -> int:
    from rich.table import Table

    if isinstance(r, Table):
        return len(r.rows) + (1 if r.show_header else 0)
    return 1


# --- the loop -------------------------------------------------------------------
@contextlib.contextmanager
def _cbreak(fd: int | None):
    """Keys one at a time, not echoed (Ctrl-C still interrupts); the old
    settings back on the way out, however it is left."""
    if fd is None:
        yield
        return
    import termios
    import tty

    old = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)


def _wait_key(fd: int | None, timeout: float) -> str | None:
    """A key pressed within ``timeout`` seconds, or None."""
    if fd is None:
        time.sleep(max(timeout, 0.0))
        return None
    r, _, _ = select.select([fd], [], [], max(timeout, 0.0))
    if not r:
        return None
    data = os.read(fd, 64)
    if not data:  # the terminal went away
        return "q"
    return data.decode(errors="replace")


def watch(ep: Endpoint, *, once: bool = False) -> int:
    from rich.console import Console
    from rich.live import Live

    console = Console()
    fd = sys.stdin.fileno() if sys.stdin.isatty() else None
    hist = History()
    doc: dict[str, Any] | None = None
    with _cbreak(fd), Live(console=console, screen=True, auto_refresh=False,
                           vertical_overflow="crop", redirect_stdout=False, redirect_stderr=False) as live:
        while True:
            started = time.monotonic()
            error = None
            try:
                doc = fetch(ep)
                hist.add(doc)
            except (OSError, ValueError) as e:
                error = e.strerror if isinstance(e, OSError) and e.strerror else str(e) or type(e).__name__
            w, h = console.size
            live.update(render(doc, hist, width=w, height=h, target=str(ep), error=error), refresh=True)
            if once:
                return 0
            deadline = started + POLL_SECONDS
            while (left := deadline - time.monotonic()) > 0:
                key = _wait_key(fd, left)
                if key is not None and ("q" in key or "Q" in key):
                    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("top", help="a live view of a running ingest (its --metrics endpoint): rates, drops, "
                                   "queue, top signatures and talkers; q quits")
    p.add_argument("endpoint", metavar="[HOST:]PORT|unix:PATH", nargs="?", default=str(DEFAULT_PORT),
                   help=f"the --metrics address of the ingest to watch (default {DEFAULT_PORT} on 127.0.0.1)")
    p.set_defaults(run=run)


def run(ns: argparse.Namespace) -> int:
    try:
        ep = parse_endpoint(ns.endpoint)
    except ValueError as e:
        print(f"ingest: error: {e}", file=sys.stderr)
        return 2
    try:
        import rich  # noqa: F401
    except ImportError:
        print("ingest: error: ingest top needs rich: pip install rich", file=sys.stderr)
        return 2
    if not sys.stdout.isatty():
        print("ingest: error: ingest top draws on a terminal; standard output is not one "
              "(for the numbers themselves: curl the endpoint's /top.json or /metrics)", file=sys.stderr)
        return 2

    def leave(signum: int, frame: Any) -> None:
        raise SystemExit(0)  # through the finally blocks: the terminal is restored

    signal.signal(signal.SIGTERM, leave)
    signal.signal(signal.SIGHUP, leave)
    try:
        return watch(ep)
    except KeyboardInterrupt:
        return 0
