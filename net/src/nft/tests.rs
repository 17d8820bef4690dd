use super::*;
use crate::lease::Endpoint;

fn lease(id: u64, addr: &str, rules: Vec<Rule>) -> Lease {
    Lease {
        sandbox_id: id,
        agent_pid: 1,
        bridge: "ozt9".into(),
        range: "10.77.0.0/24".into(),
        veth: format!("ozv{id}"),
        address: addr.parse().unwrap(),
        rules,
        vpn: Vec::new(),
    }
}

fn rule(allow: bool, net: &str, len: u8, port: u16) -> Rule {
    Rule { allow, host: net.into(), net: net.parse().unwrap(), len, port }
}

fn ruleset(leases: &[Lease], guard: bool) -> Value {
    Ruleset { bridge: "ozt9", range: Range::parse("10.77.0.0/24").unwrap(), guard_forwarding: guard, leases }.commands()
}

fn rules_of(v: &Value, chain: &str) -> Vec<Value> {
    v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c.get("add").and_then(|a| a.get("rule")))
        .filter(|r| r["chain"] == chain)
        .map(|r| r["expr"].clone())
        .collect()
}

#[test]
fn isolation_nat_and_forwarding_guard() {
    let v = ruleset(&[lease(1, "10.77.0.2", vec![])], true);
    let t = &v["nftables"];
    assert_eq!(t[0], json!({"add": {"table": {"family": "inet", "name": "oz-ozt9"}}}));
    assert_eq!(t[1]["delete"]["table"]["name"], "oz-ozt9");
    let fwd = rules_of(&v, "forward");
    assert_eq!(fwd[0][0]["match"]["right"], "ozt9");
    assert_eq!(fwd[0][1]["match"]["left"]["meta"]["key"], "oifname");
    assert_eq!(fwd[0][2], json!({"drop": null}), "bridge to bridge is dropped first");
    assert_eq!(fwd.last().unwrap(), &json!([{"drop": null}]), "the guard drops everything else");
    let nat = rules_of(&v, "postrouting");
    assert_eq!(nat[0][0]["match"]["right"], json!({"prefix": {"addr": "10.77.0.0", "len": 24}}));
    assert_eq!(nat[0][2], json!({"masquerade": null}));
    let unguarded = ruleset(&[], false);
    assert_eq!(rules_of(&unguarded, "forward").last().unwrap()[1], json!({"accept": null}));
    // No per-sandbox chain without rules.
    assert!(!v.to_string().contains("sandbox-1"));
}

#[test]
fn firewall_rules_become_a_chain_with_a_final_reject() {
    let rules = vec![rule(true, "10.77.0.1", 32, 8080), rule(false, "10.0.0.0", 8, 0)];
    let v = ruleset(&[lease(1, "10.77.0.2", vec![]), lease(4, "10.77.0.3", rules)], false);
    let chain = rules_of(&v, "sandbox-4");
    assert_eq!(chain.len(), 4);
    assert_eq!(chain[1][0]["match"]["right"], "10.77.0.1");
    assert_eq!(chain[1][2]["match"]["right"], 8080);
    assert_eq!(chain[1][3], json!({"accept": null}));
    assert_eq!(chain[2][0]["match"]["right"], json!({"prefix": {"addr": "10.0.0.0", "len": 8}}));
    assert_eq!(chain[2].as_array().unwrap().len(), 2, "port 0 matches any port");
    assert_eq!(chain[3], json!([{"reject": null}]));
    for base in ["forward", "input"] {
        let jumps: Vec<_> = rules_of(&v, base).into_iter().filter(|e| e.to_string().contains("jump")).collect();
        assert_eq!(jumps.len(), 1, "{base}");
        assert_eq!(jumps[0][1]["match"]["right"], "10.77.0.3");
    }
}

#[test]
fn a_vpn_sandbox_reaches_only_its_servers() {
    let mut l = lease(3, "10.77.0.4", vec![]);
    l.vpn = vec![Endpoint { addr: "198.51.100.2".parse().unwrap(), port: 1194, proto: "udp".into() }];
    let v = ruleset(&[l], false);
    let chain = rules_of(&v, "sandbox-3");
    assert_eq!(chain.len(), 3, "{chain:?}");
    assert_eq!(chain[1][0]["match"]["right"], "198.51.100.2");
    assert_eq!(chain[1][1]["match"]["right"], "udp");
    assert_eq!(chain[1][2]["match"]["right"], 1194);
    assert_eq!(chain[1][3], json!({"accept": null}));
    assert_eq!(chain[2], json!([{"reject": null}]));
}

/// nft itself accepts the generated JSON (`nft -c`: parse and check only, nothing applied).
#[test]
fn nft_accepts_the_ruleset() {
    let rules = vec![rule(true, "10.77.0.1", 32, 8080), rule(false, "192.168.0.0", 16, 0)];
    let mut vpn = lease(5, "10.77.0.9", vec![]);
    vpn.vpn = vec![Endpoint { addr: "198.51.100.2".parse().unwrap(), port: 1194, proto: "udp".into() }];
    let v = ruleset(&[lease(1, "10.77.0.2", vec![]), lease(2, "10.77.0.3", rules), vpn], true);
    let mut child = std::process::Command::new("nft")
        .args(["-c", "-j", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("nft (scripts/deps.sh installs nftables)");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(v.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn other_tables_dropping_forward_traffic_are_found() {
    let rs = json!({"nftables": [
        {"metainfo": {"version": "1.0.6"}},
        {"chain": {"family": "ip", "table": "filter", "name": "DOCKER-USER"}},
        {"chain": {"family": "ip", "table": "filter", "name": "FORWARD", "hook": "forward", "policy": "drop"}},
        {"chain": {"family": "inet", "table": "oz-ozt9", "name": "forward", "hook": "forward", "policy": "drop"}},
        {"chain": {"family": "inet", "table": "firewalld", "name": "filter_FORWARD", "hook": "forward", "policy": "accept"}}
    ]});
    assert_eq!(dropping_forward_chains(&rs, "oz-ozt9"), vec!["table ip filter chain FORWARD"]);
}
