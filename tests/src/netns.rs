//! Several hosts on one machine: network namespaces joined by a bridge, made and removed by
//! the test itself (needs root and iproute2). Each host gets a veth pair whose outer end is
//! on the bridge; the bridge carries an address in the root namespace, where the coordinator
//! and the printer simulators listen.

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
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let seed = std::process::id().wrapping_mul(7).wrapping_add(n);
        let net = 100 + (seed % 150) as u8;
        let prefix = format!("sp{}n{net}", std::process::id() % 100_000);
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

    /// Cuts host `h` off the LAN (its cable pulled) or plugs it back.
    pub fn set_link(&self, h: usize, up: bool) -> anyhow::Result<()> {
        let outer = format!("{}o{h}", self.prefix);
        ip(&["link", "set", &outer, if up { "up" } else { "down" }])
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
