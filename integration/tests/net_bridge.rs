//! Bridged networking end to end: a real daemon, real sandboxes of the unprivileged test user.
//!
//! Each test builds its own world of network namespaces, so that nothing on the machine is
//! touched and no packet leaves them: "host" (the daemon runs there, so the bridge, oz's
//! nftables table and the forwarding setting are all inside it), and "world", linked to host by
//! a veth pair on TEST-NET-2 (198.51.100.0/24), where a TCP server and a DNS server run. The
//! daemon sees a resolv.conf naming the world's DNS server (bound over /etc/resolv.conf in a
//! mount namespace of its own). The bridge has a test name and range (oz.conf).

mod common_daemon;

use common_daemon::{profile, user_a, wait_until, Daemon};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BRIDGE: &str = "ozt0";
const RANGE: &str = "10.213.0.0/24";
const GATEWAY: &str = "10.213.0.1";
const HOST_UPLINK: &str = "198.51.100.1";
const WORLD: &str = "198.51.100.2";
const PY: &str = "/usr/bin/python3";

/// Probes run inside sandboxes, and the test's servers.
const PROBE: &str = r#"
import socket, struct, sys, threading
cmd = sys.argv[1]
if cmd == "connect":
    try:
        s = socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=1.5)
        print("ozt-ok", s.recv(100).decode().strip())
    except Exception as e:
        print("ozt-fail", type(e).__name__)
elif cmd == "resolve":
    try:
        print("ozt-addr", socket.gethostbyname(sys.argv[2]))
    except Exception as e:
        print("ozt-fail", type(e).__name__)
elif cmd == "resolve-tcp":
    # One A query over TCP to the sandbox's resolver.
    labels = b"".join(bytes([len(l)]) + l.encode() for l in sys.argv[2].split("."))
    q = b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + labels + b"\x00\x00\x01\x00\x01"
    try:
        s = socket.create_connection(("127.0.0.1", 53), timeout=3)
        s.sendall(struct.pack(">H", len(q)) + q)
        n = struct.unpack(">H", s.recv(2))[0]; a = s.recv(n)
        print("ozt-addr", socket.inet_ntoa(a[-4:]) if a[7] else "none")
    except Exception as e:
        print("ozt-fail", type(e).__name__)
elif cmd == "serve":
    # A TCP server on each port that tells the client the address it came from.
    def serve(port):
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((sys.argv[2], port)); s.listen()
        while True:
            c, a = s.accept(); c.sendall(("from " + a[0] + "\n").encode()); c.close()
    for p in sys.argv[3:]:
        threading.Thread(target=serve, args=(int(p),), daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()
elif cmd == "dns":
    # An authoritative DNS server (UDP and TCP): A records name=addr, NXDOMAIN otherwise.
    records = dict(a.split("=") for a in sys.argv[3:])
    def answer(q):
        qid = struct.unpack(">H", q[:2])[0]
        i, labels = 12, []
        while q[i]:
            labels.append(q[i + 1:i + 1 + q[i]].decode()); i += 1 + q[i]
        qtype = struct.unpack(">H", q[i + 1:i + 3])[0]
        question, ip = q[12:i + 5], records.get(".".join(labels).lower())
        if ip and qtype == 1:
            rr = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton(ip)
            return struct.pack(">HHHHHH", qid, 0x8580, 1, 1, 0, 0) + question + rr
        return struct.pack(">HHHHHH", qid, 0x8580 | (0 if ip else 3), 1, 0, 0, 0) + question
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind((sys.argv[2], 53))
    t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind((sys.argv[2], 53)); t.listen()
    def tcp():
        while True:
            c, _ = t.accept()
            n = struct.unpack(">H", c.recv(2))[0]; a = answer(c.recv(n))
            c.sendall(struct.pack(">H", len(a)) + a); c.close()
    threading.Thread(target=tcp, daemon=True).start()
    print("ready", flush=True)
    while True:
        q, peer = u.recvfrom(4096)
        u.sendto(answer(q), peer)
"#;

fn sh(what: &str, cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ip(args: &[&str]) -> String {
    sh(&format!("ip {}", args.join(" ")), Command::new("ip").args(args))
}

/// The test's namespaces, servers and files; all removed when dropped. They exist only while
/// the test holds the host lock (the daemon harness nests in it): another test's leftover check
/// never sees them.
struct Net {
    host: String,
    world: String,
    dir: tempfile::TempDir,
    servers: Vec<Child>,
    _serial: oz_integration::serial::Serial,
}

impl Net {
    fn new() -> Net {
        let serial = oz_integration::serial::acquire();
        let tag = std::process::id();
        let (host, world) = (format!("ozt-h{tag}"), format!("ozt-w{tag}"));
        let dir = tempfile::Builder::new().prefix("ozt-net").tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let net = Net { host, world, dir, servers: Vec::new(), _serial: serial };
        for ns in [&net.host, &net.world] {
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        ip(&["-n", &net.host, "link", "add", "ozt-up", "type", "veth", "peer", "ozt-wd", "netns", &net.world]);
        ip(&["-n", &net.host, "addr", "add", &format!("{HOST_UPLINK}/24"), "dev", "ozt-up"]);
        ip(&["-n", &net.world, "addr", "add", &format!("{WORLD}/24"), "dev", "ozt-wd"]);
        ip(&["-n", &net.host, "link", "set", "ozt-up", "up"]);
        ip(&["-n", &net.world, "link", "set", "ozt-wd", "up"]);
        std::fs::write(net.probe(), PROBE).unwrap();
        std::fs::write(net.resolv(), format!("nameserver {WORLD}\n")).unwrap();
        net
    }

    fn probe(&self) -> PathBuf {
        self.dir.path().join("probe.py")
    }

    fn resolv(&self) -> PathBuf {
        self.dir.path().join("resolv.conf")
    }

    /// Start `probe.py ARGS` in namespace `ns` and wait for its "ready".
    fn server(&mut self, ns: &str, args: &[&str]) {
        let mut c = Command::new("ip")
            .args(["netns", "exec", ns, PY])
            .arg(self.probe())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(c.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "server {args:?}");
        self.servers.push(c);
    }

    /// The command prefix that runs the daemon in the host namespace with the test's resolv.conf.
    fn daemon_prefix(&self) -> Vec<String> {
        let mount = format!("mount --bind {} /etc/resolv.conf && exec \"$0\" \"$@\"", self.resolv().display());
        ["nsenter", &format!("--net=/run/netns/{}", self.host), "unshare", "-m", "--propagation", "private"]
            .iter()
            .map(|s| s.to_string())
            .chain(["sh".into(), "-c".into(), mount])
            .collect()
    }

    fn in_host(&self, args: &[&str]) -> String {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.host]).args(args);
        sh(&format!("{} in host", args.join(" ")), &mut c)
    }

    /// Link names in the host namespace.
    fn links(&self) -> Vec<String> {
        let out = ip(&["-n", &self.host, "-o", "link", "show"]);
        out.lines().filter_map(|l| l.split(": ").nth(1)).map(|n| n.split('@').next().unwrap().to_string()).collect()
    }

    /// oz's nftables table in the host namespace, as JSON (None: there is none).
    fn table(&self) -> Option<Value> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.host, "nft", "-j", "list", "table", "inet", &format!("oz-{BRIDGE}")])
            .output()
            .unwrap();
        out.status.success().then(|| serde_json::from_slice(&out.stdout).unwrap())
    }

    fn ip_forward(&self) -> String {
        self.in_host(&["cat", "/proc/sys/net/ipv4/ip_forward"]).trim().to_string()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for c in &mut self.servers {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.host, &self.world] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn conf(net: &Net) -> Value {
    json!({"bridge_name": BRIDGE, "bridge_range": RANGE, "nm_ignore_file": net.dir.path().join("nm/oz-test.conf")})
}

/// A bridged profile running `sleep 600`, with the probe readable inside, plus `extra` keys.
fn bridged(name: &str, net: &Net, extra: Value) -> Value {
    let mut p = profile(
        name,
        "/bin/sleep",
        json!({
            "multi": true,
            "networking": {"type": "bridge", "hosts": format!("{GATEWAY} gateway.ozt\n")},
            "whitelist": [{"path": net.probe().to_str().unwrap(), "read_only": true}],
        }),
    );
    if let (Some(obj), Value::Object(extra)) = (p.as_object_mut(), extra) {
        obj.extend(extra);
    }
    p
}

/// Run `probe.py ARGS` in sandbox `id` (through `oz shell`); its output line.
fn probe(d: &Daemon, net: &Net, id: u64, args: &[&str]) -> String {
    let script = format!("{PY} {} {}; exit\n", net.probe().display(), args.join(" "));
    let out = d.oz_input(&user_a(), &["shell", &id.to_string()], script.as_bytes(), Duration::from_secs(15));
    out.assert_ok(&format!("probe {args:?} in sandbox {id}"), d);
    // The pty echoes the command; the prompt may precede the answer on its line.
    let answer = out.stdout.lines().find_map(|l| {
        ["ozt-ok", "ozt-fail", "ozt-addr"].iter().find_map(|m| l.find(m)).map(|i| l[i..].trim().to_string())
    });
    answer.unwrap_or_else(|| panic!("probe printed {out:?}"))
}

/// The sandbox's address on the bridge, read from inside.
fn address(d: &Daemon, id: u64) -> String {
    let out =
        d.oz_input(&user_a(), &["shell", &id.to_string()], b"cat /proc/net/fib_trie; exit\n", Duration::from_secs(10));
    out.assert_ok("fib_trie", d);
    // The "/32 host LOCAL" leaf of eth0's address is the line before it.
    let lines: Vec<&str> = out.stdout.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[1].contains("/32 host LOCAL"))
        .filter_map(|w| w[0].split_whitespace().last())
        .find(|a| a.starts_with("10.213."))
        .unwrap_or_else(|| panic!("no bridge address in sandbox {id}: {}", out.stdout))
        .to_string()
}

fn veths(net: &Net) -> Vec<String> {
    net.links().into_iter().filter(|l| l.starts_with("ozv")).collect()
}

fn start(net: &Net, profiles: &[Value], extra: Value) -> Daemon {
    let mut c = conf(net);
    if let (Some(obj), Value::Object(extra)) = (c.as_object_mut(), extra) {
        obj.extend(extra);
    }
    Daemon::start_under(profiles, c, net.daemon_prefix())
}

/// `oz kill ID`, and wait until the sandbox is gone.
fn kill(d: &Daemon, id: u64) {
    d.oz(&user_a(), &["kill", &id.to_string()]).assert_ok("oz kill", d);
    d.wait_gone(id, Duration::from_secs(10)).unwrap();
}

/// Everything oz created in the host namespace is gone, forwarding is back to off.
fn assert_all_gone(net: &Net, log: &str) {
    let gone = wait_until(Duration::from_secs(5), || net.links().iter().all(|l| l != BRIDGE && !l.starts_with("ozv")));
    assert!(gone, "links left: {:?}\n{log}", net.links());
    assert!(net.table().is_none(), "oz's nftables table left behind");
    assert_eq!(net.ip_forward(), "0", "forwarding restored");
    assert!(!net.dir.path().join("nm/oz-test.conf").exists(), "NetworkManager file removed");
}

#[test]
fn two_sandboxes_reach_the_bridge_but_not_each_other() {
    let mut net = Net::new();
    std::fs::create_dir(net.dir.path().join("nm")).unwrap();
    net.server(&net.host.clone(), &["serve", "0.0.0.0", "7001"]);
    let serve_b = json!({"path": PY});
    let d = start(&net, &[bridged("ozt-a", &net, json!({})), bridged("ozt-b", &net, serve_b)], json!({}));
    assert_eq!(net.ip_forward(), "0");
    let a = d.launch(&user_a(), "ozt-a", &["600"]);
    let probe_path = net.probe().display().to_string();
    let b = d.launch(&user_a(), "ozt-b", &[&probe_path, "serve", "0.0.0.0", "7005"]);
    let (addr_a, addr_b) = (address(&d, a), address(&d, b));
    assert_ne!(addr_a, addr_b, "distinct addresses");
    // `oz list --json` names each sandbox's mode and address, as seen inside.
    let listed = d.list_json(&user_a());
    for (id, addr) in [(a, &addr_a), (b, &addr_b)] {
        let s = listed.iter().find(|s| s["id"] == id).unwrap_or_else(|| panic!("{id} not listed: {listed:?}"));
        assert_eq!(s["network"]["mode"], "bridge", "{s}");
        assert_eq!(s["network"]["address"], addr.as_str(), "{s}");
    }
    assert_eq!(veths(&net).len(), 2, "one veth per sandbox: {:?}", net.links());
    for v in veths(&net) {
        assert!(ip(&["-n", &net.host, "-d", "link", "show", &v]).contains("isolated on"), "{v}: port isolation");
    }
    assert!(net.dir.path().join("nm/oz-test.conf").exists(), "NetworkManager told to leave the bridge alone");
    assert_eq!(net.ip_forward(), "1", "forwarding on while bridged sandboxes run");
    for (id, addr) in [(a, &addr_a), (b, &addr_b)] {
        assert_eq!(probe(&d, &net, id, &["connect", GATEWAY, "7001"]), format!("ozt-ok from {addr}"), "sandbox {id}");
    }
    // B's server is up (it answers from B itself) but A cannot reach it.
    assert_eq!(probe(&d, &net, b, &["connect", "127.0.0.1", "7005"]), "ozt-ok from 127.0.0.1");
    assert!(probe(&d, &net, a, &["connect", &addr_b, "7005"]).starts_with("ozt-fail"), "A reached B");
    // Control: with bridge port isolation and the drop rule off, the same probe gets through.
    for v in veths(&net) {
        ip(&["-n", &net.host, "link", "set", &v, "type", "bridge_slave", "isolated", "off"]);
    }
    net.in_host(&["nft", "flush", "chain", "inet", &format!("oz-{BRIDGE}"), "forward"]);
    assert_eq!(probe(&d, &net, a, &["connect", &addr_b, "7005"]), format!("ozt-ok from {addr_a}"), "control");
    kill(&d, a);
    assert_eq!(veths(&net).len(), 1, "a's veth removed, b's kept: {:?}", net.links());
    assert!(net.table().is_some(), "the table stays while b runs");
    kill(&d, b);
    assert_all_gone(&net, &d.log_text());
    d.finish();
}

#[test]
fn dns_hosts_and_forwarding_through_the_host() {
    let mut net = Net::new();
    let world = net.world.clone();
    net.server(&world, &["dns", WORLD, "www.ozt.test=192.0.2.7"]);
    net.server(&world, &["serve", WORLD, "7003"]);
    let d = start(&net, &[bridged("ozt-a", &net, json!({}))], json!({}));
    let a = d.launch(&user_a(), "ozt-a", &["600"]);
    let out =
        d.oz_input(&user_a(), &["shell", &a.to_string()], b"cat /etc/resolv.conf; exit\n", Duration::from_secs(10));
    assert!(out.stdout.contains("nameserver 127.0.0.1"), "resolv.conf names the forwarder: {}", out.stdout);
    // A name only the world's DNS server knows, through the sandbox's forwarder (UDP).
    assert_eq!(probe(&d, &net, a, &["resolve", "www.ozt.test"]), "ozt-addr 192.0.2.7");
    assert!(probe(&d, &net, a, &["resolve", "nope.ozt.test"]).starts_with("ozt-fail"), "NXDOMAIN stays one");
    // The same over TCP.
    assert_eq!(probe(&d, &net, a, &["resolve-tcp", "www.ozt.test"]), "ozt-addr 192.0.2.7");
    // `hosts` entries.
    assert_eq!(probe(&d, &net, a, &["resolve", "gateway.ozt"]), format!("ozt-addr {GATEWAY}"));
    // A server in another namespace, routed through the host: it sees the host's address (NAT).
    assert_eq!(probe(&d, &net, a, &["connect", WORLD, "7003"]), format!("ozt-ok from {HOST_UPLINK}"));
    // Control: without forwarding in the host namespace the same probe fails.
    net.in_host(&["sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward"]);
    assert!(probe(&d, &net, a, &["connect", WORLD, "7003"]).starts_with("ozt-fail"), "reached without forwarding");
    net.in_host(&["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]);
    kill(&d, a);
    assert_all_gone(&net, &d.log_text());
    d.finish();
}

#[test]
fn firewall_rules_allow_one_port_and_deny_the_rest() {
    let mut net = Net::new();
    net.server(&net.host.clone(), &["serve", "0.0.0.0", "7001", "7002"]);
    let world = net.world.clone();
    net.server(&world, &["dns", WORLD, "www.ozt.test=192.0.2.7"]);
    let rules = json!({"firewall": [
        {"whitelist": true, "dst_host": GATEWAY, "dst_port": 7001},
        {"whitelist": false, "dst_host": "localhost", "dst_port": 0},
    ]});
    let d = start(&net, &[bridged("ozt-fw", &net, rules), bridged("ozt-open", &net, json!({}))], json!({}));
    let fenced = d.launch(&user_a(), "ozt-fw", &["600"]);
    let open = d.launch(&user_a(), "ozt-open", &["600"]);
    assert_eq!(probe(&d, &net, fenced, &["connect", GATEWAY, "7001"]), format!("ozt-ok from {}", address(&d, fenced)));
    assert!(probe(&d, &net, fenced, &["connect", GATEWAY, "7002"]).starts_with("ozt-fail"), "denied port answered");
    // Control: the same port answers a sandbox without rules.
    assert!(probe(&d, &net, open, &["connect", GATEWAY, "7002"]).starts_with("ozt-ok"));
    // DNS through oz's resolver still works under default deny.
    assert_eq!(probe(&d, &net, fenced, &["resolve", "www.ozt.test"]), "ozt-addr 192.0.2.7");
    // Host names are resolved at launch and logged.
    let logs = d.oz(&user_a(), &["logs", "--sandbox", &fenced.to_string()]).stdout;
    assert!(logs.contains("firewall: localhost resolved to 127.0.0.1"), "{logs}");
    let log = d.log_text();
    d.finish();
    assert_all_gone(&net, &log);
}

#[test]
fn kill9_of_the_agent_releases_veth_lease_and_rules_within_2s() {
    let net = Net::new();
    let rules = json!({"firewall": [{"whitelist": true, "dst_host": GATEWAY, "dst_port": 7001}]});
    let d = start(&net, &[bridged("ozt-fw", &net, rules), bridged("ozt-open", &net, json!({}))], json!({}));
    let fenced = d.launch(&user_a(), "ozt-fw", &["600"]);
    let open = d.launch(&user_a(), "ozt-open", &["600"]);
    let lease = d.ws.state_dir.join(format!("net/lease-{fenced}.json"));
    let lease_text = std::fs::read_to_string(&lease).expect("lease file while running");
    let veth = serde_json::from_str::<Value>(&lease_text).unwrap()["veth"].as_str().unwrap().to_string();
    assert!(net.links().contains(&veth));
    let chain = format!("sandbox-{fenced}");
    assert!(net.table().unwrap().to_string().contains(&chain));
    let agent = d.sandbox(fenced).unwrap().agent_pid;
    let t0 = Instant::now();
    common_daemon::procs::kill(agent as i32, libc::SIGKILL);
    let released = wait_until(Duration::from_secs(2), || {
        !net.links().contains(&veth) && !lease.exists() && !net.table().is_some_and(|t| t.to_string().contains(&chain))
    });
    let took = t0.elapsed();
    assert!(
        released,
        "after kill -9: links {:?}, lease {}, table {:?}\n{}",
        net.links(),
        lease.exists(),
        net.table(),
        d.log_text()
    );
    eprintln!("kill -9 of the agent: veth, lease and rules gone after {took:?}");
    assert_eq!(veths(&net).len(), 1, "the other sandbox keeps its veth");
    kill(&d, open);
    assert_all_gone(&net, &d.log_text());
    d.finish();
}

#[test]
fn a_range_colliding_with_a_host_network_is_refused_and_other_firewalls_are_named() {
    let net = Net::new();
    // Another firewall whose forward policy drops (as Docker's or ufw's may), in the test's host.
    let other = r#"{"nftables": [{"add": {"table": {"family": "ip", "name": "ozt-other"}}},
        {"add": {"chain": {"family": "ip", "table": "ozt-other", "name": "FORWARD", "type": "filter",
         "hook": "forward", "prio": 0, "policy": "drop"}}}]}"#;
    let f = net.dir.path().join("other.json");
    std::fs::write(&f, other).unwrap();
    net.in_host(&["nft", "-j", "-f", f.to_str().unwrap()]);
    let d = start(&net, &[bridged("ozt-a", &net, json!({}))], json!({"bridge_range": "198.51.100.0/25"}));
    let log = d.log_text();
    assert!(log.contains("table ip ozt-other chain FORWARD drops forwarded traffic"), "daemon warns: {log}");
    let out = d.oz(&user_a(), &["launch", "ozt-a", "--", "600"]);
    assert_ne!(out.code(), 0, "launch must fail: {out:?}");
    let msg = format!("{}{}", out.stderr, out.stdout);
    assert!(msg.contains("bridge_range 198.51.100.0/25 collides with 198.51.100.1/24 on ozt-up"), "{msg}");
    assert!(!net.links().iter().any(|l| l == BRIDGE), "no bridge created");
    d.finish();
}

/// Certificates (a CA, a server, a client) and both OpenVPN configurations under `dir`.
fn vpn_files(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    let ossl =
        |args: &[&str]| sh(&format!("openssl {}", args.join(" ")), Command::new("openssl").current_dir(dir).args(args));
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    ossl(
        &[&["req", "-x509"][..], &ec, &["-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=ozt-ca", "-days", "2"]]
            .concat(),
    );
    for who in ["server", "client"] {
        let (key, csr, crt) = (format!("{who}.key"), format!("{who}.csr"), format!("{who}.crt"));
        ossl(&[&["req"][..], &ec, &["-keyout", &key, "-out", &csr, "-subj", &format!("/CN={who}")]].concat());
        let sign = ["x509", "-req", "-in", &csr, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", &crt];
        ossl(&[&sign[..], &["-days", "2"]].concat());
    }
    let server = format!(
        "dev tun\nproto udp\nlocal {WORLD}\nport 1194\nserver 10.8.0.0 255.255.255.0\ntopology subnet\n\
         ca ca.crt\ncert server.crt\nkey server.key\ndh none\npush \"redirect-gateway def1\"\nkeepalive 1 4\nverb 1\n"
    );
    std::fs::write(dir.join("server.conf"), server).unwrap();
    // The client's `up` script and `script-security` must be stripped (the script would leave a
    // mark if it ran).
    let client = format!(
        "client\ndev tun\nproto udp\nremote {WORLD} 1194\nnobind\nca ca.crt\ncert client.crt\nkey client.key\n\
         script-security 2\nup \"/bin/sh -c 'touch {}'\"\nverb 1\n",
        dir.join("up-ran").display()
    );
    std::fs::write(dir.join("client.conf"), client).unwrap();
}

#[test]
fn vpn_carries_all_traffic_and_nothing_leaks_when_it_is_down() {
    let mut net = Net::new();
    let vpn_dir = net.dir.path().join("vpn");
    vpn_files(&vpn_dir);
    let world = net.world.clone();
    net.server(&world, &["serve", WORLD, "7003"]);
    let routes_before = ip(&["-n", &net.host, "-4", "route", "show", "table", "all"]);
    let mut ovpn = Command::new("ip")
        .args(["netns", "exec", &world, "openvpn", "--config", "server.conf"])
        .current_dir(&vpn_dir)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let up = wait_until(Duration::from_secs(10), || ip(&["-n", &world, "-o", "addr", "show"]).contains("10.8.0.1/24"));
    assert!(up, "the test's OpenVPN server did not come up");
    net.server(&world, &["serve", "10.8.0.1", "7010"]);
    net.server(&world, &["dns", "10.8.0.1", "inside.ozt.test=10.8.0.1"]);
    let vpn = json!({"networking": {"type": "bridge",
        "vpn": {"type": "openvpn", "configpath": "client.conf", "dns": ["10.8.0.1"]}}});
    let profiles = [bridged("ozt-vpn", &net, vpn), bridged("ozt-open", &net, json!({}))];
    let d = start(&net, &profiles, json!({"openvpn_conf_dir": vpn_dir}));
    let v = d.launch(&user_a(), "ozt-vpn", &["600"]);
    let open = d.launch(&user_a(), "ozt-open", &["600"]);
    // The service behind the VPN sees the sandbox's tunnel address.
    let mut last = String::new();
    let through = wait_until(Duration::from_secs(15), || {
        last = probe(&d, &net, v, &["connect", "10.8.0.1", "7010"]);
        last.starts_with("ozt-ok from 10.8.0.")
    });
    assert!(through, "service behind the VPN: {last}\n{}", d.log_text());
    // DNS goes through the tunnel to the VPN's server.
    assert_eq!(probe(&d, &net, v, &["resolve", "inside.ozt.test"]), "ozt-addr 10.8.0.1");
    // The world's own service, outside the tunnel: the bridge lets the sandbox reach only the
    // VPN server's port. Control: the sandbox without a VPN reaches it.
    assert!(probe(&d, &net, v, &["connect", WORLD, "7003"]).starts_with("ozt-fail"), "leaked around the tunnel");
    assert_eq!(probe(&d, &net, open, &["connect", WORLD, "7003"]), format!("ozt-ok from {HOST_UPLINK}"));
    // The tunnel device lives in the sandbox, not in the host.
    assert!(!net.links().iter().any(|l| l.starts_with("tun")), "host links: {:?}", net.links());
    // Server gone: nothing gets out, neither through the tunnel nor around it.
    let _ = ovpn.kill();
    let _ = ovpn.wait();
    for (host, port) in [("10.8.0.1", "7010"), (WORLD, "7003"), (GATEWAY, "7001")] {
        assert!(
            probe(&d, &net, v, &["connect", host, port]).starts_with("ozt-fail"),
            "{host}:{port} with the VPN down"
        );
    }
    let logs = d.oz(&user_a(), &["logs", "--sandbox", &v.to_string()]).stdout;
    assert!(logs.contains("vpn: directive up stripped"), "{logs}");
    assert!(!vpn_dir.join("up-ran").exists(), "the up script ran");
    kill(&d, v);
    kill(&d, open);
    assert_all_gone(&net, &d.log_text());
    assert_eq!(ip(&["-n", &net.host, "-4", "route", "show", "table", "all"]), routes_before, "host routing unchanged");
    d.finish();
}
