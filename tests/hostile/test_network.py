"""Network attacks: TCP and UDP to listeners the test opens on the host (loopback and the host's
own address), the metadata address and the internet, DNS, raw/packet/ping sockets, netlink
route changes, interfaces, ingress from the host into the sandbox, and abstract unix sockets
between the host and a sandbox and between two concurrent sandboxes."""
import json
import socket
import subprocess
import time


from conftest import TOKEN, finish, run, start

REFUSED = {"ECONNREFUSED", "ENETUNREACH", "EHOSTUNREACH", "ETIMEDOUT", "TIMEOUT", "EACCES",
           "EPERM", "EADDRNOTAVAIL", "ENOENT", "EAFNOSUPPORT", "ECONNRESET"}


def host_ipv4():
    out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True).stdout
    ips = []
    for ln in out.splitlines():
        f = ln.split()
        if len(f) >= 4 and f[1] != "lo":
            ips.append(f[3].split("/")[0])
    return ips


CONNECT = r"""
import errno, json, socket, time
def tcp(host, port, fam=socket.AF_INET):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(1.5)
    try:
        s.connect((host, port))
        return "CONNECTED"
    except socket.timeout:
        return "TIMEOUT"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    finally:
        s.close()
def unix(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return "CONNECTED"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
out = {}
for name, host, port in json.loads(@TARGETS@):
    t0 = time.monotonic()
    out[name] = tcp(host, port, socket.AF_INET6 if ":" in host else socket.AF_INET)
    out[name + "_s"] = round(time.monotonic() - t0, 2)
for path in ("/run/postgresql/.s.PGSQL.5432", "/var/run/docker.sock", "/run/dbus/system_bus_socket",
             "\0@ABSTRACT@"):
    out["unix:" + path.replace("\0", "@")] = unix(path)
print(json.dumps(out))
"""


def test_tcp_egress_to_host_and_internet_fails():
    lo = socket.socket()
    lo.bind(("127.0.0.1", 0))
    lo.listen(16)
    lo.setblocking(False)
    anyaddr = socket.socket()
    anyaddr.bind(("0.0.0.0", 0))
    anyaddr.listen(16)
    anyaddr.setblocking(False)
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind("\0kh-host-" + TOKEN)
    abstract.listen(4)
    abstract.setblocking(False)
    p_lo, p_any = lo.getsockname()[1], anyaddr.getsockname()[1]
    targets = [["lo_listener", "127.0.0.1", p_lo], ["any_listener_via_lo", "127.0.0.1", p_any],
               ["v6_loopback", "::1", p_any], ["internet", "1.1.1.1", 53],
               ["metadata", "169.254.169.254", 80], ["lan_gateway", "192.0.2.1", 80]]
    for ip in host_ipv4():
        targets.append(["host_ip_" + ip, ip, p_any])
    try:
        code = CONNECT.replace("@TARGETS@", repr(json.dumps(targets))).replace(
            "@ABSTRACT@", "kh-host-" + TOKEN)
        r = run("py", code, timeout=20)
        accepted = []
        for s in (lo, anyaddr, abstract):
            try:
                c, addr = s.accept()
                accepted.append(addr)
                c.close()
            except BlockingIOError:
                pass
    finally:
        lo.close()
        anyaddr.close()
        abstract.close()
    assert not accepted, "host listeners received connections from the sandbox: %s" % accepted
    r.expect_status("ok")
    res = json.loads(r.lines()[-1])
    for name, _, _ in targets:
        assert res[name] in REFUSED, "%s: %s" % (name, res[name])
        assert res[name + "_s"] < 2.0
    for k, v in res.items():
        if k.startswith("unix:"):
            assert v in ("ENOENT", "ECONNREFUSED", "EACCES", "EPERM"), (k, v)
    assert res["internet"] != "TIMEOUT", "egress hangs instead of failing at once"


def test_udp_egress_to_host_fails():
    rx_lo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx_lo.bind(("127.0.0.1", 0))
    rx_any = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx_any.bind(("0.0.0.0", 0))
    targets = [("127.0.0.1", rx_lo.getsockname()[1]), ("127.0.0.1", rx_any.getsockname()[1]),
               ("8.8.8.8", 53)] + [(ip, rx_any.getsockname()[1]) for ip in host_ipv4()]
    code = r"""
import errno, json, socket
for host, port in json.loads(@T@):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for _ in range(5):
            s.sendto(b"@TOKEN@", (host, port))
        print(host, port, "SENT")
    except OSError as e:
        print(host, port, errno.errorcode.get(e.errno))
""".replace("@T@", repr(json.dumps(targets))).replace("@TOKEN@", TOKEN)
    try:
        r = run("py", code, timeout=10)
        time.sleep(0.3)
        got = []
        for s in (rx_lo, rx_any):
            s.setblocking(False)
            try:
                got.append(s.recvfrom(100))
            except BlockingIOError:
                pass
    finally:
        rx_lo.close()
        rx_any.close()
    assert not got, "host received UDP datagrams from the sandbox: %s" % got
    r.expect_status("ok")
    assert len(r.lines()) == len(targets), r.describe()
    for ln in r.lines():
        if not ln.startswith("127.0.0.1"):
            assert not ln.endswith("SENT"), "UDP to a non-loopback address was sent: " + ln


def test_dns_resolution_fails_fast():
    code = r"""
import socket, time
for name in ("example.com", "metadata.google.internal", "kiln-hostile.invalid"):
    t0 = time.monotonic()
    try:
        print(name, "RESOLVED", socket.getaddrinfo(name, 80)[0][4][0], round(time.monotonic() - t0, 2))
    except OSError as e:
        print(name, "FAILED", type(e).__name__, round(time.monotonic() - t0, 2))
"""
    r = run("py", code, timeout=20)
    r.expect_status("ok")
    assert len(r.lines()) == 3, r.describe()
    for ln in r.lines():
        name, res = ln.split()[:2]
        assert res == "FAILED", ln
        assert float(ln.split()[-1]) < 5.0, "DNS hung: " + ln


def test_raw_packet_ping_and_netlink_fail():
    code = r"""
import errno, socket
tries = {
    "raw_icmp": (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
    "raw_tcp": (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP),
    "raw_v6": (socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6),
    "packet_raw": (socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)),
    "packet_dgram": (socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(3)),
    "ping": (socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP),
}
for name, args in tries.items():
    try:
        s = socket.socket(*args)
        if name == "ping":
            s.sendto(b"\x08\x00\xf7\xff\x00\x00\x00\x00", ("192.0.2.2", 0))
        print(name, "OPENED")
    except OSError as e:
        print(name, errno.errorcode.get(e.errno))
print("ifaces", ",".join(n for _, n in socket.if_nameindex()))
print("procnetdev", ",".join(l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:]))
"""
    r = run("py", code, timeout=10)
    r.expect_status("ok")
    kv = r.kv()
    for name in ("raw_icmp", "raw_tcp", "raw_v6", "packet_raw", "packet_dgram", "ping"):
        assert kv.get(name) in ("EPERM", "EACCES", "EAFNOSUPPORT", "EPROTONOSUPPORT",
                                "ENETUNREACH"), "%s: %s" % (name, kv.get(name))
    assert kv.get("ifaces") == "lo", "interfaces: %s" % kv.get("ifaces")
    assert kv.get("procnetdev") == "lo", "interfaces: %s" % kv.get("procnetdev")


def test_bash_network_tools_fail():
    code = r"""
ip route add 1.2.3.0/24 dev lo 2>/dev/null; echo "ROUTE $?"
ip link add kh0 type dummy 2>/dev/null; echo "LINK $?"
ip link set lo down 2>/dev/null; echo "LODOWN $?"
iptables -L 2>/dev/null >/dev/null; echo "IPTABLES $?"
(exec 3<>/dev/tcp/1.1.1.1/80) 2>/dev/null; echo "DEVTCP $?"
(exec 3<>/dev/tcp/192.0.2.2/22) 2>/dev/null; echo "DEVTCP_HOST $?"
"""
    r = run("bash", code, timeout=10)
    kv = r.kv()
    for k in ("ROUTE", "LINK", "LODOWN", "IPTABLES", "DEVTCP", "DEVTCP_HOST"):
        assert kv.get(k) not in (None, "0"), "%s succeeded\n%s" % (k, r.describe())


def test_host_cannot_reach_a_listener_inside():
    """Ingress: a server inside the sandbox is not reachable from the host's loopback or
    address, and accepts nothing."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    code = r"""
import socket, time
import errno
srv = []
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("0.0.0.0", @PORT@))
    s.listen(8)
    s.setblocking(False)
    srv.append(s)
except OSError as e:
    print("BINDFAIL", errno.errorcode.get(e.errno), flush=True)
print("LISTENING", time.time(), flush=True)
got = 0
end = time.monotonic() + 3
while time.monotonic() < end:
    for s in srv:
        try:
            s.accept()
            got += 1
        except BlockingIOError:
            pass
    time.sleep(0.02)
print("ACCEPTED", got, time.time())
""".replace("@PORT@", str(port))
    p = start("py", code, timeout=10)
    results = []
    t_end = time.monotonic() + 4
    time.sleep(0.5)
    while time.monotonic() < t_end:
        for ip in ["127.0.0.1"] + host_ipv4():
            s = socket.socket()
            s.settimeout(0.3)
            try:
                s.connect((ip, port))
                results.append((ip, "CONNECTED"))
            except OSError as e:
                results.append((ip, type(e).__name__))
            finally:
                s.close()
        time.sleep(0.1)
    r = finish(p)
    # Listening at all may be refused (Landlock denies TCP bind): then nothing can be reached
    assert "LISTENING" in r.stdout, r.describe()
    kv = r.kv()
    assert kv.get("BINDFAIL") in (None, "EACCES", "EPERM"), r.describe()
    assert "ACCEPTED 0" in r.stdout, r.describe()
    assert results and all(res != "CONNECTED" for _, res in results), results


ABSTRACT_SERVER = r"""
import socket, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("\0kh-a-@TOKEN@")
s.listen(8)
s.setblocking(False)
print("BOUND", time.time(), flush=True)
got = 0
end = time.monotonic() + 6
while time.monotonic() < end:
    try:
        s.accept()
        got += 1
    except BlockingIOError:
        time.sleep(0.02)
print("ACCEPTED", got)
print("END", time.time())
"""

ABSTRACT_CLIENT = r"""
import errno, socket, time
res = []
for name in ("\0kh-a-@TOKEN@", "\0kh-host2-@TOKEN@"):
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        c.connect(name)
        res.append("CONNECTED")
    except OSError as e:
        res.append(errno.errorcode.get(e.errno))
print("TRIED", time.time(), *res)
"""


def test_abstract_unix_sockets_do_not_cross_sandboxes():
    """Sandbox A listens on an abstract unix socket; sandbox B (running at the same time) and the
    host cannot connect to it, and B cannot connect to one the host listens on."""
    host = socket.socket(socket.AF_UNIX)
    host.bind("\0kh-host2-" + TOKEN)
    host.listen(4)
    host.setblocking(False)
    try:
        a = start("py", ABSTRACT_SERVER.replace("@TOKEN@", TOKEN), timeout=15)
        time.sleep(2.0)
        hc = socket.socket(socket.AF_UNIX)
        try:
            hc.connect("\0kh-a-" + TOKEN)
            host_to_a = "CONNECTED"
        except OSError as e:
            host_to_a = type(e).__name__
        finally:
            hc.close()
        rb = run("py", ABSTRACT_CLIENT.replace("@TOKEN@", TOKEN), timeout=10)
        ra = finish(a)
        try:
            host.accept()
            host_accepted = True
        except BlockingIOError:
            host_accepted = False
    finally:
        host.close()
    ka, kb = ra.kv(), rb.kv()
    assert "BOUND" in ka and "TRIED" in kb, ra.describe() + rb.describe()
    t_bound, t_end = float(ka["BOUND"]), float(ka["END"])
    tried = kb["TRIED"].split()
    assert t_bound < float(tried[0]) < t_end, "B did not run while A was listening"
    assert tried[1] in ("ECONNREFUSED", "EPERM", "EACCES"), "B -> A: %s" % tried[1]
    assert tried[2] in ("ECONNREFUSED", "EPERM", "EACCES"), "B -> host: %s" % tried[2]
    assert ka["ACCEPTED"] == "0", "A accepted a connection"
    assert host_to_a != "CONNECTED", "the host reached the sandbox's abstract socket"
    assert not host_accepted
