#!/usr/bin/python3
"""See control_api.sh. Runs egress-control from the build tree on a socket in a temporary
directory (no root, no dataplane) and talks JSON-RPC to it directly."""
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time

BUILD = os.environ["EGRESS_BUILD"]
SRC = os.environ["EGRESS_SOURCE"]
CONTROL = os.path.join(BUILD, "control", "egress-control")
DATAPLANE = os.path.join(BUILD, "dataplane", "egress-dataplane")
CTL = os.path.join(BUILD, "tools", "egressctl")

passes = fails = 0
# Under AddressSanitizer freed memory waits in a quarantine and every allocation carries
# redzones: memory bounds are looser there (tools/test.sh sets this for its second run).
SANITIZED = os.environ.get("EGRESS_SANITIZED") == "1"
MEM_SLACK_KIB = 256 * 1024 if SANITIZED else 0


def check(what, ok, detail=""):
    global passes, fails
    if ok:
        passes += 1
        print("ok   - " + what)
    else:
        fails += 1
        print("FAIL - " + what + (": " + str(detail) if detail else ""))


def config(work, **over):
    cfg = {
        "instance": "api%d" % os.getpid(),
        "dataplane": {
            "eal": ["--no-huge", "--no-pci"],
            "ports": [
                {"name": "lan0", "role": "site", "device": "net_null0", "ipv4": "10.10.0.1/24"},
                {"name": "wan0", "role": "uplink", "device": "net_null1", "ipv4": "192.0.2.1/24",
                 "gateway": "192.0.2.254"},
            ],
        },
        "control": {"socket": os.path.join(work, "ctl.sock"),
                    "state_file": os.path.join(work, "state.json")},
        "egresses": [{"name": "direct-wan0", "type": "direct", "port": "wan0"}],
        "policies": [
            {"name": "bulk", "priority": 10, "match": {"proto": "udp", "dport": "5001"},
             "egresses": ["direct-wan0"]},
            {"name": "default", "priority": 1000, "match": {}, "egresses": ["direct-wan0"]},
        ],
    }
    cfg.update(over)
    return cfg


class Client:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(10)
        self.s.connect(path)
        self.buf = b""
        self.next_id = 1

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def call(self, method, params=None):
        req = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            req["params"] = params
        self.next_id += 1
        self.s.sendall(json.dumps(req).encode() + b"\n")
        return self.line()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    work = tempfile.mkdtemp(prefix="egress-api.")
    procs = []
    try:
        run(work, procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(work, ignore_errors=True)
    print("%d passed, %d failed" % (passes, fails))
    return 1 if fails else 0


def closed_soon(s, seconds):
    """Whether the server closed s within seconds (what it sent first is skipped)."""
    s.settimeout(seconds)
    try:
        while True:
            if s.recv(65536) == b"":
                return True
    except socket.timeout:
        return False
    except OSError:
        return True


def hostile(sock, ctl, c):
    """Clients that misbehave: each gets an error or is cut off, memory stays bounded and
    the well-behaved client keeps being served throughout."""
    rss0 = rss_kib(ctl.pid)
    # 1,000 connections at once (the server holds at most 1,024): every one is answered.
    conns = []
    try:
        for _ in range(1000):
            x = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            x.settimeout(10)
            for attempt in range(200):  # a full backlog says EAGAIN: retry, as clients do
                try:
                    x.connect(sock)
                    break
                except BlockingIOError:
                    time.sleep(0.01)
            conns.append(x)
        req = b'{"jsonrpc":"2.0","id":7,"method":"status"}\n'
        for x in conns:
            x.sendall(req)
        answered = 0
        for x in conns:
            buf = b""
            while b"\n" not in buf:
                chunk = x.recv(65536)
                if not chunk:
                    break
                buf += chunk
            answered += b'"result"' in buf
        check("1,000 concurrent connections are each answered", answered == 1000, answered)
    except OSError as e:
        check("1,000 concurrent connections are each answered", False, e)
    finally:
        for x in conns:
            x.close()
    check("... and the daemon is still serving others", "result" in c.call("status"))

    # Half a line, then silence: it waits (nothing is answered), and others are served.
    half = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    half.connect(sock)
    half.sendall(b'{"jsonrpc":"2.0","id":1,"meth')
    check("a client stalled in the middle of a line does not hold others up", "result" in c.call("status"))

    # A client that sends requests and never reads: cut off once its unread replies pass
    # the limit, without the daemon growing with them.
    mute = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    mute.connect(sock)
    mute.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    mute.settimeout(0.2)
    req = b'{"jsonrpc":"2.0","id":1,"method":"egress.list"}\n' * 200
    cut = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not cut:
        try:
            mute.sendall(req)
        except socket.timeout:
            pass
        except OSError:
            cut = True
    check("a client that never reads its replies is disconnected", cut)
    mute.close()
    check("... and the others are served", "result" in c.call("status"))

    # 100 MiB on one line: refused at 1 MiB and the connection closed, memory bounded.
    big = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    big.connect(sock)
    big.settimeout(5)
    chunk = b"7" * (1 << 20)
    sent = 0
    try:
        for _ in range(100):
            big.sendall(chunk)
            sent += len(chunk)
    except OSError:
        pass
    check("a 100 MiB line is cut off before the daemon reads it all (%d MiB sent)" % (sent >> 20),
          sent < (100 << 20) and closed_soon(big, 5), sent)
    big.close()

    # Deep nesting and invalid UTF-8: errors, and the connection stays usable.
    d = Client(sock)
    d.s.sendall(b"[" * 100000 + b"\n")
    r = d.line()
    check("100,000 nested brackets -> an error, not a crash",
          r.get("error", {}).get("code") in (-32700, -32600), r)
    d.s.sendall(b'{"jsonrpc":"2.0","id":5,"method":"egress.remove","params":{"name":"\xff\xfe\xc3("}}\n')
    r = d.line()
    check("invalid UTF-8 -> -32700", r.get("error", {}).get("code") == -32700, r)
    check("... and the same connection is served after both", "result" in d.call("status"))
    d.s.close()
    half.close()
    check("after all that the daemon grew by less than 32 MiB%s" % (" (+256 MiB under ASan)" if SANITIZED else ""),
          rss_kib(ctl.pid) - rss0 < 32768 + MEM_SLACK_KIB, "%d KiB -> %d KiB" % (rss0, rss_kib(ctl.pid)))
    check("... and still answers", "result" in c.call("status"))


def run(work, procs):
    # Bad configs: both daemons refuse them, naming the JSON path.
    bad = config(work)
    bad["policies"][1]["match"] = {"dst": ["10.0.0.0/33"]}
    path = os.path.join(work, "bad.json")
    with open(path, "w") as f:
        json.dump(bad, f)
    for exe in (CONTROL, DATAPLANE):
        r = subprocess.run([exe, "-c", path], capture_output=True, text=True, timeout=30)
        check("%s refuses a bad config naming its path" % os.path.basename(exe),
              r.returncode != 0 and "$.policies[1].match.dst[0]" in r.stderr, r.stderr.strip())
    bad = config(work)
    bad["policies"][0]["egresses"] = ["nowhere"]
    with open(path, "w") as f:
        json.dump(bad, f)
    r = subprocess.run([CONTROL, "-c", path], capture_output=True, text=True, timeout=30)
    check("egress-control refuses a policy naming an unknown egress",
          r.returncode != 0 and "$.policies[0].egresses[0]" in r.stderr, r.stderr.strip())

    good = os.path.join(work, "egress.json")
    with open(good, "w") as f:
        json.dump(config(work), f)
    sock = os.path.join(work, "ctl.sock")
    log = open(os.path.join(work, "control.log"), "w")
    ctl = subprocess.Popen([CONTROL, "-c", good], stderr=log)
    procs.append(ctl)
    deadline = time.monotonic() + 15
    while not os.path.exists(sock) and time.monotonic() < deadline:
        time.sleep(0.05)
    check("control socket has mode 0660", stat.S_IMODE(os.stat(sock).st_mode) == 0o660,
          oct(stat.S_IMODE(os.stat(sock).st_mode)))

    c = Client(sock)
    st = c.call("status")["result"]
    check("status says the dataplane is not attached", st["dataplane"]["attached"] is False, st)
    before = (c.call("policy.list")["result"], c.call("egress.list")["result"])

    cases = [
        ("status", {"x": 1}, "$.params"),
        ("stats.get", {"port": 5}, "$.params.port"),
        ("stats.get", {"port": "wan9"}, "$.params.port"),
        ("stats.get", {"bogus": 1}, "$.params"),
        ("egress.list", [1], "$.params"),
        ("egress.add", ["direct"], "$.params"),
        ("egress.add", {"name": 5, "type": "direct", "port": "wan0"}, "$.params.name"),
        ("egress.add", {"name": "x", "type": "warp"}, "$.params.type"),
        ("egress.add", {"name": "x", "type": "direct", "port": "nope"}, "$.params.port"),
        ("egress.add", {"name": "x", "type": "direct", "port": "lan0"}, "$.params.port"),
        ("egress.remove", {}, "$.params.name"),
        ("egress.remove", {"name": []}, "$.params.name"),
        ("policy.set", {}, "$.params.policies"),
        ("policy.set", {"policies": {}}, "$.params.policies"),
        ("policy.set", {"policies": [{"name": "a", "priority": "high", "egresses": ["direct-wan0"]}]},
         "$.params.policies[0].priority"),
        ("policy.set", {"policies": [
            {"name": "ok", "priority": 1, "egresses": ["direct-wan0"]},
            {"name": "a", "priority": 2, "match": {"dst": ["10.0.0.300/8"]}, "egresses": ["direct-wan0"]}]},
         "$.params.policies[1].match.dst[0]"),
        ("policy.set", {"policies": [{"name": "a", "priority": 1, "egresses": ["nowhere"]}]},
         "$.params.policies[0].egresses[0]"),
        ("policy.set", {"policies": [{"name": "a", "priority": 1, "match": {"dport": "9-1"},
                                      "egresses": ["direct-wan0"]}]}, None),
        ("policy.set", {"policies": [{"name": "a", "priority": 1, "strategy": "fastest",
                                      "egresses": ["direct-wan0"]}]}, "$.params.policies[0].strategy"),
        ("flow.lookup", {"src": "x", "dst": "1.2.3.4", "proto": "udp"}, "$.params.src"),
        ("flow.lookup", {"src": "10.10.0.2", "dst": "1.2.3.4"}, "$.params.proto"),
        ("flow.lookup", {"src": "10.10.0.2", "dst": "1.2.3.4", "proto": "udp", "dport": 70000},
         "$.params.dport"),
        ("flow.lookup", {"src": "10.10.0.2", "dst": "::1", "proto": "udp"}, "$.params.dst"),
        ("events.subscribe", {"types": "all"}, "$.params.types"),
    ]
    for method, params, want in cases:
        r = c.call(method, params)
        err = r.get("error", {})
        ok = err.get("code") == -32602 and (want is None or err.get("data") == want)
        if want is None:  # the path must point inside the policy at least
            ok = err.get("code") == -32602 and str(err.get("data", "")).startswith("$.params.policies[0]")
        check("%s %s -> -32602 at %s" % (method, json.dumps(params)[:60], want or "$.params.policies[0]..."),
              ok, r)
    after = (c.call("policy.list")["result"], c.call("egress.list")["result"])
    check("nothing changed after the malformed requests", before == after)

    r = c.call("policy.set", {"policies": [{"name": "x", "priority": 1, "egresses": ["direct-wan0"]}]})
    check("a valid policy.set without a dataplane fails with -32000",
          r.get("error", {}).get("code") == -32000, r)
    check("... and changes nothing", c.call("policy.list")["result"] == before[0])
    check("... and writes no state file", not os.path.exists(os.path.join(work, "state.json")))
    r = c.call("egress.remove", {"name": "nope"})
    check("egress.remove of an unknown egress -> -32002", r.get("error", {}).get("code") == -32002, r)
    r = c.call("egress.remove", {"name": "direct-wan0"})
    check("egress.remove of an egress a policy uses -> -32004 naming it",
          r.get("error", {}).get("code") == -32004 and "bulk" in r["error"]["message"], r)
    r = c.call("egress.add", {"name": "direct-wan0", "type": "direct", "port": "wan0"})
    check("egress.add of an existing name -> -32003", r.get("error", {}).get("code") == -32003, r)
    r = c.call("no.such.method")
    check("unknown method -> -32601", r.get("error", {}).get("code") == -32601, r)

    r = c.call("flow.lookup", {"src": "10.10.0.2", "dst": "203.0.113.10", "proto": "udp",
                               "sport": 40000, "dport": 5001})["result"]
    check("flow.lookup works without a dataplane (bulk)", r["policy"] == "bulk" and r["egress"] == "direct-wan0", r)
    r = c.call("flow.lookup", {"src": "fd00::2", "dst": "2001:db8::1", "proto": "tcp", "dport": 443})["result"]
    check("flow.lookup for IPv6 (default)", r["policy"] == "default", r)

    # Framing: a parse error, then a 2 MiB line without a newline.
    c.s.sendall(b"{not json\n")
    r = c.line()
    check("a line that is not JSON -> -32700", r.get("error", {}).get("code") == -32700, r)
    rss0 = rss_kib(ctl.pid)
    big = Client(sock)
    try:
        chunk = b"[" * 0 + b"x" * 65536
        for _ in range(32):
            big.s.sendall(chunk)
    except OSError:
        pass
    try:
        r = big.line()
        check("a 2 MiB line -> -32600", r.get("error", {}).get("code") == -32600, r)
    except (ConnectionError, OSError) as e:
        check("a 2 MiB line -> -32600", False, e)
    closed = False
    try:
        big.s.settimeout(5)
        closed = big.s.recv(1) == b""
    except OSError:
        closed = True
    check("... and the connection is closed", closed)
    check("... and the daemon did not grow by more than 8 MiB",
          rss_kib(ctl.pid) - rss0 < 8192 + MEM_SLACK_KIB, "%d KiB -> %d KiB" % (rss0, rss_kib(ctl.pid)))
    check("the first client is still served", "result" in c.call("status"))
    hostile(sock, ctl, c)

    # egressctl's exit codes.
    r = subprocess.run([CTL, "-s", sock, "status"], capture_output=True, text=True, timeout=10)
    check("egressctl status exits 0 and prints a table", r.returncode == 0 and r.stdout.strip() != "", r)
    r = subprocess.run([CTL, "-s", sock, "call", "no.such.method"], capture_output=True, text=True, timeout=10)
    check("egressctl exits 1 on an error reply", r.returncode == 1, r)
    r = subprocess.run([CTL, "-s", os.path.join(work, "none.sock"), "status"], capture_output=True,
                       text=True, timeout=10)
    check("egressctl exits 2 when it cannot connect", r.returncode == 2, r)
    r = subprocess.run([CTL, "-s", sock, "--json", "call", "flow.lookup",
                        '{"src":"10.10.0.2","dst":"1.1.1.1","proto":"tcp","dport":80}'],
                       capture_output=True, text=True, timeout=10)
    check("egressctl call prints the JSON result", r.returncode == 0 and json.loads(r.stdout)["policy"] == "default", r)

    ctl.terminate()
    check("egress-control stops cleanly on SIGTERM", ctl.wait(10) == 0)
    check("... and removes its socket", not os.path.exists(sock))


if __name__ == "__main__":
    sys.exit(main())
