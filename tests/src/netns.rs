//! Several hosts on one machine: network namespaces joined by a bridge, made and removed by
//! the test itself (needs root and iproute2). Each host gets a veth pair whose outer end is
//! on the bridge; the bridge carries an address in the root namespace, where the coordinator
//! and the printer simulators listen.
//!
//! Every name starts with [`PREFIX`] and the creating process's id (`sk<pid>n<net>…`), so
//! leftovers of a killed run (namespaces, veths, bridges, the FORWARD rule) are recognised and
//! swept by the next run: only those whose process is gone, never another live run's.

use anyhow::{bail, Context as _};

/// A bridge with hosts in namespaces; everything is deleted on drop.
pub struct Lan {
    /// The bridge's name.
    pub bridge: String,
    /// Address of the bridge in the root namespace (the "router" host).
    pub gateway: String,
    /// Namespace names, one per host.
    pub hosts: Vec<String>,
    prefix: String,
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl Lan {
    /// Makes a bridge `10.<net>.0.1/24` and `hosts` namespaces `10.<net>.0.2…` on it. The
    /// names and the subnet derive from this process id and a counter, so tests running
    /// side by side (or leftovers of a killed run) never share a subnet.
    pub fn new(hosts: usize) -> anyhow::Result<Lan> {
        static SWEPT: std::sync::Once = std::sync::Once::new();
        SWEPT.call_once(sweep_stale);
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let seed = std::process::id().wrapping_mul(7).wrapping_add(n);
        let net = 100 + (seed % 150) as u8;
        // At most 15 bytes with "br" or "o<h>" appended (IFNAMSIZ): pids are below 2^22.
        let prefix = format!("{PREFIX}{}n{net}", std::process::id());
        let bridge = format!("{prefix}br");
        let gateway = format!("10.{net}.0.1");
        let mut lan = Lan {
            bridge: bridge.clone(),
            gateway: gateway.clone(),
            hosts: Vec::new(),
            prefix: prefix.clone(),
        };
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&["addr", "add", &format!("{gateway}/24"), "dev", &bridge])?;
        ip(&["link", "set", &bridge, "up"])?;
        // With br_netfilter loaded (Docker loads it), frames between two ports of a bridge go
        // through iptables' FORWARD chain, whose policy Docker sets to DROP: let our own
        // bridge's traffic through, and remove the rule on drop.
        lan.forward_rule(true)?;
        for h in 0..hosts {
            let ns = format!("{prefix}h{h}");
            let outer = format!("{prefix}o{h}");
            let inner = format!("{prefix}i{h}");
            ip(&["netns", "add", &ns])?;
            lan.hosts.push(ns.clone());
            ip(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ])?;
            ip(&["link", "set", &outer, "master", &bridge])?;
            ip(&["link", "set", &outer, "up"])?;
            ip(&["link", "set", &inner, "netns", &ns])?;
            let addr = format!("10.{net}.0.{}/24", h + 2);
            ip(&["-n", &ns, "addr", "add", &addr, "dev", &inner])?;
            ip(&["-n", &ns, "link", "set", &inner, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            // mDNS is multicast: the namespace needs a route for it on the LAN interface.
            ip(&["-n", &ns, "route", "add", "224.0.0.0/4", "dev", &inner])?;
        }
        Ok(lan)
    }

    fn forward_rule(&self, add: bool) -> anyhow::Result<()> {
        if !std::path::Path::new("/proc/sys/net/bridge/bridge-nf-call-iptables").exists() {
            return Ok(());
        }
        let op = if add { "-I" } else { "-D" };
        let out = std::process::Command::new("iptables")
            .args([
                op,
                "FORWARD",
                "-i",
                &self.bridge,
                "-o",
                &self.bridge,
                "-j",
                "ACCEPT",
            ])
            .output()
            .context("running iptables")?;
        if !out.status.success() {
            bail!("iptables: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(())
    }

    /// Runs `iptables ARGS` inside host `h`'s namespace.
    fn iptables(&self, h: usize, args: &[&str]) -> anyhow::Result<()> {
        let ns = self.hosts.get(h).context("no such host")?;
        let mut full = vec!["netns", "exec", ns.as_str(), "iptables"];
        full.extend_from_slice(args);
        ip(&full)
    }

    /// Cuts (or heals) host `h`'s traffic with the TCP service at `ip:port` in both
    /// directions, leaving everything else up: a WAN link down while the LAN works. Packets
    /// are dropped silently, so open connections hang as they would on a real cut.
    pub fn set_service_cut(&self, h: usize, ip: &str, port: u16, cut: bool) -> anyhow::Result<()> {
        let op = if cut { "-I" } else { "-D" };
        let port = port.to_string();
        self.iptables(
            h,
            &[
                op, "OUTPUT", "-p", "tcp", "-d", ip, "--dport", &port, "-j", "DROP",
            ],
        )?;
        self.iptables(
            h,
            &[
                op, "INPUT", "-p", "tcp", "-s", ip, "--sport", &port, "-j", "DROP",
            ],
        )
    }

    /// Drops each packet host `h` sends or receives with probability `p` (iptables'
    /// statistic match: this kernel has no `tc netem`).
    pub fn set_random_loss(&self, h: usize, p: f64) -> anyhow::Result<()> {
        let p = format!("{p}");
        for chain in ["INPUT", "OUTPUT"] {
            self.iptables(
                h,
                &[
                    "-I",
                    chain,
                    "-m",
                    "statistic",
                    "--mode",
                    "random",
                    "--probability",
                    &p,
                    "-j",
                    "DROP",
                ],
            )?;
        }
        Ok(())
    }

    /// Packets dropped so far by the DROP rules in host `h`'s namespace (cuts and loss),
    /// from iptables' counters.
    pub fn dropped_packets(&self, h: usize) -> anyhow::Result<u64> {
        let ns = self.hosts.get(h).context("no such host")?;
        let mut total = 0;
        for chain in ["INPUT", "OUTPUT"] {
            let out = std::process::Command::new("ip")
                .args(["netns", "exec", ns, "iptables", "-nvx", "-L", chain])
                .output()
                .context("running iptables")?;
            if !out.status.success() {
                bail!(
                    "iptables -L: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            total += drop_counts(&String::from_utf8_lossy(&out.stdout));
        }
        Ok(total)
    }

    /// Cuts host `h` off the LAN (its cable pulled) or plugs it back.
    pub fn set_link(&self, h: usize, up: bool) -> anyhow::Result<()> {
        let outer = format!("{}o{h}", self.prefix);
        ip(&["link", "set", &outer, if up { "up" } else { "down" }])
    }
}

/// What every name of this module starts with ("sealprint kit").
pub const PREFIX: &str = "sk";

/// The packet counts of the DROP rules in `iptables -nvx -L CHAIN` output.
fn drop_counts(listing: &str) -> u64 {
    listing
        .lines()
        .filter_map(|l| {
            let mut cols = l.split_whitespace();
            let pkts = cols.next()?.parse::<u64>().ok()?;
            let _bytes = cols.next()?;
            (cols.next()? == "DROP").then_some(pkts)
        })
        .sum()
}

/// The process id in a name of this module (`sk<pid>n…`), if it is one.
fn owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let digits = rest.find('n')?;
    let pid: u32 = rest[..digits].parse().ok()?;
    let net = &rest[digits + 1..];
    net.starts_with(|c: char| c.is_ascii_digit()).then_some(pid)
}

/// Whether `name` belongs to a run whose process is gone.
fn stale(name: &str) -> bool {
    owner(name).is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
}

fn output(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Removes the namespaces, links and FORWARD rules a killed run left (names with
/// [`PREFIX`] whose process is gone). Best effort: what cannot be removed is reported.
pub fn sweep_stale() {
    for line in output("ip", &["netns", "list"]).lines() {
        let Some(ns) = line.split_whitespace().next() else {
            continue;
        };
        if stale(ns) {
            report(ns, ip(&["netns", "del", ns]));
        }
    }
    for line in output("ip", &["-o", "link", "show"]).lines() {
        // "12: sk123n140o0@if11: <…>": the name is the second field, up to '@' or ':'.
        let Some(name) = line.split_whitespace().nth(1) else {
            continue;
        };
        let name = name.trim_end_matches(':');
        let name = name.split('@').next().unwrap_or(name);
        if stale(name) {
            report(name, ip(&["link", "del", name]));
        }
    }
    for rule in output("iptables", &["-S", "FORWARD"]).lines() {
        let words: Vec<&str> = rule.split_whitespace().collect();
        let stale_rule = words.windows(2).any(|w| w[0] == "-i" && stale(w[1]));
        if stale_rule && words.first() == Some(&"-A") {
            let mut del = vec!["-D"];
            del.extend_from_slice(&words[1..]);
            let ok = std::process::Command::new("iptables")
                .args(&del)
                .status()
                .is_ok_and(|s| s.success());
            report(
                rule,
                if ok {
                    Ok(())
                } else {
                    Err(anyhow::anyhow!("iptables -D failed"))
                },
            );
        }
    }
}

fn report(what: &str, result: anyhow::Result<()>) {
    match result {
        Ok(()) => eprintln!("netns: swept {what} (left by a killed run)"),
        Err(e) => eprintln!("netns: could not sweep {what}: {e:#}"),
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in &self.hosts {
            let _ = ip(&["netns", "del", ns]);
        }
        for h in 0..self.hosts.len() {
            let _ = ip(&["link", "del", &format!("{}o{h}", self.prefix)]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
        let _ = self.forward_rule(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_dead_runs_are_stale_and_others_are_not() {
        assert_eq!(owner("sk4194303n249br"), Some(4_194_303));
        assert_eq!(owner("sk12n100h0"), Some(12));
        assert_eq!(owner("skip"), None);
        assert_eq!(owner("sp123n140br"), None);
        assert!(!stale(&format!("{PREFIX}{}n100br", std::process::id())));
        assert!(!stale("eth0"));
    }

    #[test]
    fn drop_counters_are_summed() {
        let listing = "Chain INPUT (policy ACCEPT 10 packets, 900 bytes)\n\
             \x20   pkts      bytes target     prot opt in     out     source               destination\n\
             \x20     3      180 DROP       all  --  *      *       0.0.0.0/0            0.0.0.0/0            statistic mode random probability 0.01\n\
             \x20     7      420 ACCEPT     all  --  *      *       0.0.0.0/0            0.0.0.0/0\n\
             \x20     2       80 DROP       tcp  --  *      *       10.1.0.1             0.0.0.0/0            tcp spt:7000\n";
        assert_eq!(drop_counts(listing), 5);
    }
}
