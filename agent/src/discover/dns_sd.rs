//! DNS-SD browsing for `printers --discover`: one mDNS question for `_ipp._tcp.local` and
//! `_pdl-datastream._tcp.local`, sent from an ephemeral port (a "legacy unicast" query, RFC 6762
//! §6.7, which responders answer to that port), and the answers gathered for a short wait.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::net::UdpSocket;

use super::{name_from, Candidate, Source};

/// The mDNS group and port.
const MDNS: (Ipv4Addr, u16) = (Ipv4Addr::new(224, 0, 0, 251), 5353);

/// The service types asked for, and the URI scheme each is printed to.
const SERVICES: [(&str, &str); 2] = [
    ("_ipp._tcp.local.", "ipp"),
    ("_pdl-datastream._tcp.local.", "raw"),
];

/// Asks the LAN and returns the printers announced within `wait` (nothing when `wait` is 0).
///
/// # Errors
/// Why the question could not be sent (no multicast route, no network).
pub(super) async fn browse(wait: Duration) -> Result<Vec<Candidate>, String> {
    if wait.is_zero() {
        return Ok(Vec::new());
    }
    let fail = |e: &dyn std::fmt::Display| format!("dns-sd: {e}");
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .await
        .map_err(|e| fail(&e))?;
    let mut question = Message::query();
    question.metadata.recursion_desired = false;
    for (service, _) in SERVICES {
        let name = Name::from_ascii(service).expect("the service names are valid");
        question.add_query(Query::query(name, RecordType::PTR));
    }
    let bytes = question.to_vec().map_err(|e| fail(&e))?;
    socket.send_to(&bytes, MDNS).await.map_err(|e| fail(&e))?;
    let deadline = tokio::time::Instant::now() + wait;
    let mut answers = Vec::new();
    let mut buf = vec![0u8; 9000];
    while let Ok(received) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
        let Ok((n, from)) = received else { break };
        // Anything that does not parse, or answers another question, is skipped.
        match Message::from_vec(&buf[..n]) {
            Ok(m) if m.metadata.id == question.metadata.id => answers.push((m, from.ip())),
            _ => {}
        }
    }
    Ok(resolve(&answers))
}

/// The printers the answers describe: each PTR to an instance of a service asked for, with
/// the instance's SRV (port, host), the host's address (or the responder's) and its TXT
/// (`rp` resource path, `ty` make and model). Pure.
fn resolve(answers: &[(Message, IpAddr)]) -> Vec<Candidate> {
    let mut srv: HashMap<Name, (Name, u16)> = HashMap::new();
    let mut txt: HashMap<Name, HashMap<String, String>> = HashMap::new();
    let mut addr: HashMap<Name, IpAddr> = HashMap::new();
    let mut instances: Vec<(Name, &str, IpAddr)> = Vec::new();
    let records = answers.iter().flat_map(|(m, from)| {
        m.answers
            .iter()
            .chain(&m.additionals)
            .map(move |r| (r, *from))
    });
    for (r, from) in records {
        let key = lower(&r.name);
        match &r.data {
            RData::PTR(ptr) => {
                if let Some((_, scheme)) = SERVICES
                    .iter()
                    .find(|(s, _)| key.to_ascii().eq_ignore_ascii_case(s))
                {
                    instances.push((lower(&ptr.0), scheme, from));
                }
            }
            RData::SRV(s) => {
                srv.insert(key, (lower(&s.target), s.port));
            }
            RData::TXT(t) => {
                txt.insert(key, txt_pairs(t.txt_data.iter().map(|b| &b[..])));
            }
            RData::A(a) => {
                addr.entry(key).or_insert(IpAddr::V4(a.0));
            }
            _ => {}
        }
    }
    let mut found: Vec<Candidate> = Vec::new();
    for (instance, scheme, from) in instances {
        let Some((host, port)) = srv.get(&instance) else {
            continue;
        };
        let ip = addr.get(host).copied().unwrap_or(from);
        let host = match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        let pairs = txt.get(&instance);
        let uri = if scheme == "ipp" {
            let rp = pairs
                .and_then(|p| p.get("rp"))
                .map_or("ipp/print", String::as_str);
            format!("ipp://{host}:{port}/{}", rp.trim_start_matches('/'))
        } else {
            format!("raw://{host}:{port}")
        };
        if found.iter().any(|c| c.uri == uri) {
            continue;
        }
        let label = instance
            .iter()
            .next()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .unwrap_or_default();
        let model = pairs.and_then(|p| p.get("ty")).cloned().unwrap_or_default();
        found.push(Candidate {
            name: name_from(&label),
            uri,
            source: Source::DnsSd,
            detail: if model.is_empty() { label } else { model },
        });
    }
    found
}

fn lower(name: &Name) -> Name {
    let mut n = name.to_lowercase();
    n.set_fqdn(true);
    n
}

/// `key=value` strings of a TXT record, keys lower-cased; values cut to 128 characters.
fn txt_pairs<'a>(strings: impl Iterator<Item = &'a [u8]>) -> HashMap<String, String> {
    strings
        .filter_map(|s| {
            let s = String::from_utf8_lossy(s);
            let (k, v) = s.split_once('=')?;
            Some((k.to_ascii_lowercase(), v.chars().take(128).collect()))
        })
        .collect()
}

/// For the tests: an answer as a responder would send it.
#[cfg(test)]
pub(super) fn announcement(
    id: u16,
    instance: &str,
    service: &str,
    host: &str,
    ip: Ipv4Addr,
    port: u16,
    txt: &[&str],
) -> Message {
    use hickory_proto::rr::rdata::{PTR, SRV, TXT};
    use hickory_proto::rr::Record;
    let name = |s: &str| Name::from_utf8(s).expect("test name");
    let full = Name::from_labels([instance.as_bytes()])
        .and_then(|i| i.append_domain(&name(service)))
        .expect("test instance name");
    let mut m = Message::response(id, hickory_proto::op::OpCode::Query);
    m.answers.push(Record::from_rdata(
        name(service),
        120,
        RData::PTR(PTR(full.clone())),
    ));
    m.additionals.push(Record::from_rdata(
        full.clone(),
        120,
        RData::SRV(SRV::new(0, 0, port, name(host))),
    ));
    m.additionals.push(Record::from_rdata(
        full.clone(),
        120,
        RData::TXT(TXT::new(txt.iter().map(|s| (*s).to_owned()).collect())),
    ));
    m.additionals.push(Record::from_rdata(
        name(host),
        120,
        RData::A(hickory_proto::rr::rdata::A(ip)),
    ));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_ipp_and_raw_announcements() {
        let ipp = announcement(
            7,
            "Zebra ZD420",
            "_ipp._tcp.local.",
            "zebra.local.",
            Ipv4Addr::new(10, 0, 0, 5),
            8631,
            &["rp=ipp/print", "ty=Zebra ZD420"],
        );
        let raw = announcement(
            7,
            "dock",
            "_pdl-datastream._tcp.local.",
            "DOCK.local.",
            Ipv4Addr::new(10, 0, 0, 6),
            9100,
            &[],
        );
        let from = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 99));
        let found = resolve(&[(ipp, from), (raw, from)]);
        let uris: Vec<_> = found.iter().map(|c| c.uri.as_str()).collect();
        assert_eq!(
            uris,
            ["ipp://10.0.0.5:8631/ipp/print", "raw://10.0.0.6:9100"]
        );
        assert_eq!(found[0].detail, "Zebra ZD420");
        assert_eq!(found[0].name, "zebra-zd420");
    }

    #[test]
    fn an_instance_without_srv_is_skipped() {
        let mut m = announcement(
            1,
            "x",
            "_ipp._tcp.local.",
            "h.local.",
            Ipv4Addr::LOCALHOST,
            631,
            &[],
        );
        m.additionals.clear();
        assert!(resolve(&[(m, IpAddr::V4(Ipv4Addr::LOCALHOST))]).is_empty());
    }
}
