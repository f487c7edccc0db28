//! Does the host's firewall filter ICMP echo requests on input? XDP runs before netfilter, so
//! such rules do not apply to the requests the responder answers; the responder says so in one
//! line at start, and `check` reports the rules.
//!
//! The ruleset is read with `nft -j list ruleset` (nftables' documented JSON interface,
//! `libnftables-json(5)`), parsed with serde_json. No `nft` (or no permission to read the ruleset):
//! nothing is said. iptables-nft rules are nftables rules and are seen; rules of the legacy
//! iptables backend are not.
//!
//! A rule counts when it is in a base chain on the `input`, `prerouting` or `ingress` hook, its
//! verdict is `drop` or `reject`, and it matches echo requests: an ICMP / ICMPv6 type match that
//! includes `echo-request`, a match on the ICMP protocol, or only matches that are not about the
//! protocol (addresses, interfaces: such a rule drops some echo requests too). A base chain with
//! policy `drop` counts unless one of its rules accepts echo requests. Jumps to other chains are
//! not followed.

use serde_json::Value;

/// The filtering rules found, one line each; `None` when the ruleset cannot be read.
pub fn echo_filtering_rules() -> Option<Vec<String>> {
    let output = std::process::Command::new("nft")
        .args(["-j", "list", "ruleset"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    parse_ruleset(&String::from_utf8_lossy(&output.stdout)).ok()
}

/// The warning the responder prints when `rules` is not empty.
pub fn warning(rules: &[String]) -> String {
    format!(
        "the host firewall filters ICMP echo requests on input ({} nftables rule(s), e.g. {}), but XDP runs before \
         netfilter: requests to the answered addresses are answered regardless; use --allow-from/--deny-from for such \
         policy (docs/security.md)",
        rules.len(),
        rules.first().map_or("", String::as_str)
    )
}

const HOOKS: [&str; 3] = ["input", "prerouting", "ingress"];

/// Parses `nft -j list ruleset` output; see the module documentation for what counts.
pub fn parse_ruleset(json: &str) -> Result<Vec<String>, String> {
    let doc: Value = serde_json::from_str(json).map_err(|e| format!("nft -j output is not JSON: {e}"))?;
    let items = doc
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or("nft -j output has no `nftables` array")?;
    let mut found = Vec::new();
    // Base chains on an input-side hook: (family, table, name, policy).
    let chains: Vec<(String, String, String, String)> = items
        .iter()
        .filter_map(|i| i.get("chain"))
        .filter(|c| {
            c.get("hook")
                .and_then(Value::as_str)
                .is_some_and(|h| HOOKS.contains(&h))
        })
        .map(|c| {
            let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            (s("family"), s("table"), s("name"), s("policy"))
        })
        .collect();
    for (family, table, name, policy) in &chains {
        let rules: Vec<&Value> = items
            .iter()
            .filter_map(|i| i.get("rule"))
            .filter(|r| {
                let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("");
                s("family") == family && s("table") == table && s("chain") == name
            })
            .collect();
        let mut echo_accepted = false;
        for rule in &rules {
            let exprs = rule
                .get("expr")
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice);
            let Some(verdict) = verdict(exprs) else { continue };
            let Some(what) = matches_echo(exprs) else { continue };
            if verdict == "accept" {
                echo_accepted = true;
            } else if verdict == "drop" || verdict == "reject" {
                let handle = rule.get("handle").and_then(Value::as_u64).unwrap_or(0);
                found.push(format!("{family} {table} {name} (handle {handle}): {what} {verdict}"));
            }
        }
        if policy == "drop" && !echo_accepted {
            found.push(format!(
                "{family} {table} {name}: policy drop without a rule that accepts echo requests"
            ));
        }
    }
    Ok(found)
}

/// The rule's verdict: `accept`, `drop`, `reject` (or another statement that ends it).
fn verdict(exprs: &[Value]) -> Option<&'static str> {
    exprs.iter().find_map(|e| {
        // iptables-nft's REJECT target is an `xt` target, not a native statement.
        let xt_target = e
            .get("xt")
            .filter(|x| x.get("type").and_then(Value::as_str) == Some("target"))
            .and_then(|x| x.get("name").and_then(Value::as_str));
        match xt_target {
            Some("REJECT") => Some("reject"),
            Some("DROP") => Some("drop"),
            Some("ACCEPT") => Some("accept"),
            _ => ["accept", "drop", "reject"].into_iter().find(|v| e.get(*v).is_some()),
        }
    })
}

/// Whether the rule's matches can match an ICMP(v6) echo request, and how to describe them.
fn matches_echo(exprs: &[Value]) -> Option<String> {
    let mut described = Vec::new();
    // (`xt` matches of iptables-nft are not `match` expressions: such a rule is judged by its
    // native matches only.)
    for m in exprs.iter().filter_map(|e| e.get("match")) {
        let left = m.get("left")?;
        let right = m.get("right")?;
        let op = m.get("op").and_then(Value::as_str).unwrap_or("==");
        let negated = op == "!=";
        let values = right_values(right);
        if let Some(payload) = left.get("payload") {
            let protocol = payload.get("protocol").and_then(Value::as_str).unwrap_or("");
            let field = payload.get("field").and_then(Value::as_str).unwrap_or("");
            match (protocol, field) {
                ("icmp" | "icmpv6", "type") => {
                    let has = values.iter().any(|v| v == "echo-request");
                    if has == negated {
                        return None;
                    }
                    described.push(format!("{protocol} type {}", values.join(",")));
                }
                ("ip", "protocol") | ("ip6", "nexthdr") => {
                    let has = values.iter().any(|v| is_icmp_name(v));
                    if has == negated {
                        return None;
                    }
                    described.push(format!("{protocol} {field} {}", values.join(",")));
                }
                ("ip" | "ip6", _) => described.push(format!("{protocol} {field} {}", values.join(","))),
                // Any other protocol's header (tcp, udp, …): not an echo request.
                _ => return None,
            }
        } else if let Some(meta) = left.get("meta") {
            let key = meta.get("key").and_then(Value::as_str).unwrap_or("");
            if key == "l4proto" {
                let has = values.iter().any(|v| is_icmp_name(v));
                if has == negated {
                    return None;
                }
                described.push(format!("meta l4proto {}", values.join(",")));
            } else {
                described.push(format!("meta {key} {}", values.join(",")));
            }
        } else {
            described.push("(other match)".to_string());
        }
    }
    Some(if described.is_empty() {
        "every packet".to_string()
    } else {
        described.join(" ")
    })
}

fn is_icmp_name(v: &str) -> bool {
    matches!(v, "icmp" | "icmpv6" | "ipv6-icmp" | "1" | "58")
}

/// The values of a match's right-hand side: a string or number, or a set of them.
fn right_values(right: &Value) -> Vec<String> {
    match right {
        Value::String(s) => vec![s.clone()],
        Value::Number(n) => vec![n.to_string()],
        Value::Object(o) => o
            .get("set")
            .and_then(Value::as_array)
            .map(|items| items.iter().flat_map(right_values).collect())
            .unwrap_or_default(),
        Value::Array(items) => items.iter().flat_map(right_values).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `nft -j list ruleset` of a namespace with the rules named in each line (nft 1.0.6).
    const RULESET: &str = r#"{"nftables": [
{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
{"table": {"family": "inet", "name": "filter", "handle": 1}},
{"chain": {"family": "inet", "table": "filter", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}},
{"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 2, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "icmp", "field": "type"}}, "right": "echo-request"}}, {"drop": null}]}},
{"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 4, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "icmpv6", "field": "type"}}, "right": {"set": ["echo-request", "nd-neighbor-solicit"]}}}, {"reject": {"type": "icmpv6", "expr": "port-unreachable"}}]}},
{"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 5, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "icmp"}}, {"counter": {"packets": 0, "bytes": 0}}, {"drop": null}]}},
{"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 6, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "198.18.0.9"}}, {"drop": null}]}},
{"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 7, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, {"drop": null}]}},
{"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 8, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "icmp", "field": "type"}}, "right": "timestamp-request"}}, {"drop": null}]}},
{"table": {"family": "ip", "name": "t2", "handle": 2}},
{"chain": {"family": "ip", "table": "t2", "name": "c", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}},
{"rule": {"family": "ip", "table": "t2", "chain": "c", "handle": 2, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, {"accept": null}]}},
{"chain": {"family": "ip", "table": "t2", "name": "out", "handle": 3, "type": "filter", "hook": "output", "prio": 0, "policy": "drop"}}
]}"#;

    #[test]
    fn finds_the_rules_that_drop_echo_requests() {
        let found = parse_ruleset(RULESET).unwrap();
        assert_eq!(
            found,
            [
                "inet filter input (handle 2): icmp type echo-request drop",
                "inet filter input (handle 4): icmpv6 type echo-request,nd-neighbor-solicit reject",
                "inet filter input (handle 5): meta l4proto icmp drop",
                "inet filter input (handle 6): ip saddr 198.18.0.9 drop",
                "ip t2 c: policy drop without a rule that accepts echo requests",
            ]
        );
    }

    #[test]
    fn an_accepting_ruleset_says_nothing() {
        let accept = r#"{"nftables": [{"metainfo": {}},
{"chain": {"family": "inet", "table": "f", "name": "in", "hook": "input", "policy": "drop"}},
{"rule": {"family": "inet", "table": "f", "chain": "in", "handle": 3, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": {"set": ["icmp", "ipv6-icmp"]}}}, {"accept": null}]}}
]}"#;
        assert_eq!(parse_ruleset(accept).unwrap(), Vec::<String>::new());
        assert_eq!(parse_ruleset(r#"{"nftables": []}"#).unwrap(), Vec::<String>::new());
        let xt_reject = r#"{"nftables": [
{"chain": {"family": "ip", "table": "filter", "name": "INPUT", "hook": "input", "policy": "accept"}},
{"rule": {"family": "ip", "table": "filter", "chain": "INPUT", "handle": 4, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "protocol"}}, "right": "icmp"}}, {"counter": null}, {"xt": {"type": "target", "name": "REJECT"}}]}}
]}"#;
        assert_eq!(
            parse_ruleset(xt_reject).unwrap(),
            ["ip filter INPUT (handle 4): ip protocol icmp reject"]
        );
        assert!(parse_ruleset("not json").is_err());
    }
}
