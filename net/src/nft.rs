//! The nftables table oz owns for one bridge, built as nftables JSON (`nft -j -f -`) from the
//! bridge and the current leases, and replaced as a whole in one transaction whenever a lease
//! comes or goes; deleted with the last lease.
//!
//! Chains (family inet):
//! - `forward` (hook forward, policy accept: other traffic is not oz's business): traffic
//!   between two ports of the bridge is dropped; replies into the bridge pass, new connections
//!   into it do not; packets from the bridge with a source outside the range are dropped; a
//!   sandbox with firewall rules jumps to its own chain; the rest from the bridge is accepted.
//!   When oz had to turn forwarding on, everything else forwarded is dropped, so the host
//!   forwards for the bridge only.
//! - `input` (hook input): the same source check and per-sandbox jumps for traffic to the host
//!   itself (the bridge address).
//! - `postrouting` (nat): masquerade the range when it leaves by another interface.
//! - `sandbox-<id>`: a VPN sandbox's servers, the profile's rules in order (allow: accept,
//!   deny: reject), then reject.

use crate::lease::{Lease, Rule};
use crate::range::Range;
use serde_json::{json, Value};

/// The table of bridge `bridge` (one per bridge, so two daemons with their own bridges never
/// remove each other's rules).
pub fn table_name(bridge: &str) -> String {
    format!("oz-{bridge}")
}

/// What the table is built from.
pub struct Ruleset<'a> {
    pub bridge: &'a str,
    pub range: Range,
    /// Drop forwarded traffic that does not involve the bridge (oz turned forwarding on).
    pub guard_forwarding: bool,
    pub leases: &'a [Lease],
}

fn table(name: &str) -> Value {
    json!({"family": "inet", "name": name})
}

fn meta(key: &str, op: &str, right: Value) -> Value {
    json!({"match": {"op": op, "left": {"meta": {"key": key}}, "right": right}})
}

fn ip(field: &str, op: &str, right: Value) -> Value {
    json!({"match": {"op": op, "left": {"payload": {"protocol": "ip", "field": field}}, "right": right}})
}

fn prefix(addr: std::net::Ipv4Addr, len: u8) -> Value {
    if len == 32 {
        json!(addr.to_string())
    } else {
        json!({"prefix": {"addr": addr.to_string(), "len": len}})
    }
}

fn ct_state(states: &[&str]) -> Value {
    json!({"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": states}})
}

fn verdict(v: &str) -> Value {
    json!({ v: null })
}

fn chain_name(id: u64) -> String {
    format!("sandbox-{id}")
}

impl Ruleset<'_> {
    fn rule(&self, chain: &str, expr: Vec<Value>) -> Value {
        json!({"add": {"rule": {"family": "inet", "table": table_name(self.bridge), "chain": chain, "expr": expr}}})
    }

    fn base_chain(&self, name: &str, kind: &str, hook: &str, prio: i32) -> Value {
        json!({"add": {"chain": {"family": "inet", "table": table_name(self.bridge), "name": name,
            "type": kind, "hook": hook, "prio": prio, "policy": "accept"}}})
    }

    /// The commands replacing the whole table (add, delete, add: works whether it exists or not).
    pub fn commands(&self) -> Value {
        let t = table_name(self.bridge);
        let br = json!(self.bridge);
        let range = prefix(self.range.net, self.range.len);
        let mut cmds = vec![
            json!({"add": {"table": table(&t)}}),
            json!({"delete": {"table": table(&t)}}),
            json!({"add": {"table": table(&t)}}),
            self.base_chain("forward", "filter", "forward", 0),
            self.base_chain("input", "filter", "input", 0),
            self.base_chain("postrouting", "nat", "postrouting", 100),
        ];
        let fenced: Vec<&Lease> = self.leases.iter().filter(|l| !l.rules.is_empty() || !l.vpn.is_empty()).collect();
        for l in &fenced {
            cmds.push(json!({"add": {"chain": {"family": "inet", "table": &t, "name": chain_name(l.sandbox_id)}}}));
        }
        let from_bridge = || meta("iifname", "==", br.clone());
        let mut forward = vec![
            vec![from_bridge(), meta("oifname", "==", br.clone()), verdict("drop")],
            vec![meta("oifname", "==", br.clone()), ct_state(&["established", "related"]), verdict("accept")],
            vec![meta("oifname", "==", br.clone()), verdict("drop")],
            vec![from_bridge(), ip("saddr", "!=", range.clone()), verdict("drop")],
        ];
        let mut input = vec![vec![from_bridge(), ip("saddr", "!=", range.clone()), verdict("drop")]];
        for l in &fenced {
            let jump = json!({"jump": {"target": chain_name(l.sandbox_id)}});
            let m = vec![from_bridge(), ip("saddr", "==", json!(l.address.to_string())), jump];
            forward.push(m.clone());
            input.push(m);
        }
        forward.push(vec![from_bridge(), verdict("accept")]);
        if self.guard_forwarding {
            forward.push(vec![verdict("drop")]);
        }
        cmds.extend(forward.into_iter().map(|e| self.rule("forward", e)));
        cmds.extend(input.into_iter().map(|e| self.rule("input", e)));
        let masq = vec![ip("saddr", "==", range), meta("oifname", "!=", br), verdict("masquerade")];
        cmds.push(self.rule("postrouting", masq));
        for l in &fenced {
            let chain = chain_name(l.sandbox_id);
            cmds.push(self.rule(&chain, vec![ct_state(&["established", "related"]), verdict("accept")]));
            for e in &l.vpn {
                let to = vec![
                    ip("daddr", "==", json!(e.addr.to_string())),
                    meta("l4proto", "==", json!(e.proto)),
                    json!({"match": {"op": "==", "left": {"payload": {"protocol": "th", "field": "dport"}}, "right": e.port}}),
                    verdict("accept"),
                ];
                cmds.push(self.rule(&chain, to));
            }
            for r in &l.rules {
                cmds.push(self.rule(&chain, sandbox_rule(r)));
            }
            cmds.push(self.rule(&chain, vec![verdict("reject")]));
        }
        json!({ "nftables": cmds })
    }
}

/// One profile rule: destination network, port (0: any) for TCP and UDP, accept or reject.
fn sandbox_rule(r: &Rule) -> Vec<Value> {
    let mut e = vec![ip("daddr", "==", prefix(r.net, r.len))];
    if r.port != 0 {
        e.push(meta("l4proto", "==", json!({"set": ["tcp", "udp"]})));
        e.push(
            json!({"match": {"op": "==", "left": {"payload": {"protocol": "th", "field": "dport"}}, "right": r.port}}),
        );
    }
    e.push(verdict(if r.allow { "accept" } else { "reject" }));
    e
}

/// The command deleting the table (`nft` fails when it does not exist).
pub fn delete_commands(bridge: &str) -> Value {
    json!({"nftables": [{"delete": {"table": table(&table_name(bridge))}}]})
}

/// Run `nft -j -f -` with `commands` on its stdin.
pub fn apply(commands: &Value) -> Result<(), String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("nft")
        .args(["-j", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("run nft: {e}"))?;
    let text = commands.to_string();
    let written = child.stdin.take().map(|mut i| i.write_all(text.as_bytes()));
    let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if let Some(Err(e)) = written {
        return Err(format!("nft: write the ruleset: {e}"));
    }
    match out.status.success() {
        true => Ok(()),
        false => Err(format!("nft: {}", String::from_utf8_lossy(&out.stderr).trim())),
    }
}

/// `nft -j list ruleset`, parsed.
pub fn list_ruleset() -> Result<Value, String> {
    let out = std::process::Command::new("nft")
        .args(["-j", "list", "ruleset"])
        .output()
        .map_err(|e| format!("run nft: {e}"))?;
    if !out.status.success() {
        return Err(format!("nft list ruleset: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("nft list ruleset: {e}"))
}

/// Base chains of other tables on the forward hook whose policy drops: they may drop the
/// bridge's traffic whatever oz's table accepts ("table family name").
pub fn dropping_forward_chains(ruleset: &Value, ours: &str) -> Vec<String> {
    let items = ruleset.get("nftables").and_then(Value::as_array).cloned().unwrap_or_default();
    items
        .iter()
        .filter_map(|i| i.get("chain"))
        .filter(|c| c.get("hook").and_then(Value::as_str) == Some("forward"))
        .filter(|c| c.get("policy").and_then(Value::as_str) == Some("drop"))
        .filter(|c| c.get("table").and_then(Value::as_str) != Some(ours))
        .map(|c| {
            let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
            format!("table {} {} chain {}", s("family"), s("table"), s("name"))
        })
        .collect()
}

#[cfg(test)]
mod tests;
