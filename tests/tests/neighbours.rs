//! Issue 11: no verified site peer can forge a print. A rogue station
//! ([`sealprint_testkit::rogue`]), enrolled like any other, relays for a neighbour and lies;
//! the real coordinator and agent binaries must believe nothing it cannot prove. Each test
//! ends with every label printed once: none twice, none lost that a printer could print.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use hyper::{Method, StatusCode};
use sealprint_protocol::{
    ErrorCode, JobHeader, ReceiptState, RelayReply, Request, Response, SealedJob,
};
use sealprint_testkit::cluster::{wait_for, AgentProc};
use sealprint_testkit::rogue::{ForwardTactic, ReplyTactic, Rogue, Target};
use sealprint_testkit::scenario::{label_index, marker, zpl_label, Site, Station};
use serde_json::json;

const FINAL: Duration = Duration::from_secs(90);

/// A scratch directory, removed at the end unless `SEALPRINT_KEEP_LOGS` is set.
fn scratch() -> tempfile::TempDir {
    let mut dir = tempfile::Builder::new()
        .prefix("sealprint-neighbours-")
        .tempdir()
        .expect("temp dir");
    if std::env::var_os("SEALPRINT_KEEP_LOGS").is_some() {
        dir.disable_cleanup(true);
        eprintln!("logs kept in {}", dir.path().display());
    }
    dir
}

fn log_has(path: &Path, needle: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.contains(needle))
}

async fn wait_log(what: &str, path: &Path, needle: &str) -> anyhow::Result<()> {
    wait_for(what, Duration::from_secs(40), || async {
        Ok(log_has(path, needle).then_some(()))
    })
    .await
}

/// How often each label of `marker` reached the printers of `stations`.
fn printed(stations: &[&Station], marker: &str) -> HashMap<usize, usize> {
    let mut seen = HashMap::new();
    for s in stations {
        for (_, sim) in &s.printers {
            for job in sim.jobs() {
                if let Some(i) = label_index(&job, marker) {
                    *seen.entry(i).or_default() += 1;
                }
            }
        }
    }
    seen
}

/// Every one of labels `0..n` printed exactly once, and every job says "printed".
async fn each_printed_once(
    site: &Site,
    ids: &[String],
    stations: &[&Station],
    marker: &str,
) -> anyhow::Result<()> {
    for id in ids {
        let job = site.wait_final(id, FINAL).await?;
        assert_eq!(job["status"], "printed", "{job}");
    }
    // The printers' counts settle once every job is final.
    let want: HashMap<usize, usize> = (0..ids.len()).map(|i| (i, 1)).collect();
    wait_for("each label printed", Duration::from_secs(10), || async {
        Ok((printed(stations, marker) == want).then_some(()))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}: {:?}", printed(stations, marker)))
}

/// A site whose station 1 has no uplink and relays through the rogue; station 0 is honest
/// and has its own uplink. Both serve pool `outbound`.
async fn rogue_site(root: &Path) -> anyhow::Result<(Site, Station, Rogue, Station)> {
    let site = Site::new_with(root, &["--attempt-window-secs".into(), "4".into()]).await?;
    let honest = site.station(0, 1, "outbound", &[]).await?;
    let rogue = Rogue::start(&site.token().await?).await?;
    let victim_start = tokio::time::Instant::now();
    let victim = site
        .station(
            1,
            1,
            "outbound",
            &[
                "--no-uplink".into(),
                "--peer".into(),
                rogue.dial_addr.clone(),
            ],
        )
        .await?;
    site.wait_printers(2).await?;
    // A lost answer is reassigned only when the agent was provably running at the send (its
    // boot, known to the second from its uptime, plus the allowed 2 s skew, before it);
    // otherwise it is in doubt. Jobs sent earlier than this would end in doubt by design.
    tokio::time::sleep_until(victim_start + Duration::from_secs(4)).await;
    Ok((site, honest, rogue, victim))
}

/// The relay answers "printed" for jobs it never delivers, then "not printed" (three ways)
/// for jobs it delivered and that were printed. Neither is believed: the first are
/// reassigned once the victim's receipts show it never had them, the second are settled as
/// printed from those receipts. No label is printed twice, none is marked printed unprinted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_cannot_forge_an_outcome_either_way() -> anyhow::Result<()> {
    let tmp = scratch();
    let (site, honest, rogue, victim) = rogue_site(tmp.path()).await?;
    let victim_printer = format!("{}.{}", victim.agent.device_id, victim.printers[0].0);

    // "Printed" for jobs it drops: two jobs for the victim's printer by pool.
    rogue.set(ForwardTactic::ForgePrinted, ReplyTactic::Honest);
    let mark = marker();
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(
            site.submit(json!({"pool": "outbound"}), &zpl_label(&mark, i))
                .await?,
        );
    }
    each_printed_once(&site, &ids, &[&honest, &victim], &mark).await?;
    let seen = rogue.observed();
    assert!(seen.forged > 0, "the rogue got no job to lie about");
    assert!(
        victim.printers[0].1.jobs().is_empty(),
        "the rogue delivered"
    );
    assert!(log_has(&site.coordinator.log, "outcome refused"));

    // "Not printed" for jobs it delivered and the victim printed: signed by the rogue,
    // the victim's signed "printed" rewritten, and a bare "unreachable".
    rogue.set(ForwardTactic::DeliverThenDeny, ReplyTactic::Honest);
    let mark = marker();
    let before = rogue.observed().forged;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            site.submit(json!({"printer": victim_printer}), &zpl_label(&mark, i))
                .await?,
        );
    }
    for i in 3..9 {
        ids.push(
            site.submit(json!({"pool": "outbound"}), &zpl_label(&mark, i))
                .await?,
        );
    }
    each_printed_once(&site, &ids, &[&honest, &victim], &mark).await?;
    assert!(
        rogue.observed().forged >= before + 3,
        "the rogue denied fewer than 3 deliveries"
    );
    Ok(())
}

/// A garbage envelope for `job_id` addressed to `device_id`: it can never open.
fn forged_envelope(site: &Site, device_id: &str, printer: &str, job_id: &str) -> SealedJob {
    SealedJob {
        header: JobHeader {
            job_id: job_id.to_owned(),
            tenant_id: site.tenant.clone(),
            site_id: site.site.clone(),
            device_id: device_id.to_owned(),
            printer: printer.to_owned(),
            deadline_ms: sealprint_testkit::now_ms() + 60_000,
            attempt: 1,
        },
        handshake: vec![7u8; 96],
        chunks: vec![vec![7u8; 64]],
    }
}

/// The relay rewrites and replays the heartbeat replies it carries back, replays and alters
/// the heartbeats it carries up, forges a receipt for a job and floods the victim with
/// envelopes that do not open. The victim applies no reply it cannot verify, the
/// coordinator records no heartbeat twice, and the victim's receipts hold only its own jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_cannot_rewrite_or_replay_replies_and_heartbeats_nor_forge_receipts(
) -> anyhow::Result<()> {
    let tmp = scratch();
    let (site, honest, rogue, victim) = rogue_site(tmp.path()).await?;
    let victim_printer = format!("{}.{}", victim.agent.device_id, victim.printers[0].0);
    let printer_name = victim.printers[0].0.clone();
    let mark = marker();
    let real = site
        .submit(json!({"printer": victim_printer}), &zpl_label(&mark, 0))
        .await?;
    assert_eq!(site.wait_final(&real, FINAL).await?["status"], "printed");
    let has_real = |r: &Rogue| {
        r.observed()
            .last_receipts
            .iter()
            .any(|p| p.job_id == real && matches!(p.state, ReceiptState::Done(_)))
    };
    wait_for(
        "the real receipt relayed",
        Duration::from_secs(20),
        || async { Ok(has_real(&rogue).then_some(())) },
    )
    .await?;

    // A heartbeat replayed, and one altered: the coordinator refuses both.
    let old = rogue.observed().relayed[0].clone();
    match rogue
        .ask(Target::Coordinator, Request::Relay(old.clone()))
        .await?
    {
        Response::Relayed(RelayReply::Error { code, message }) => {
            assert_eq!(code, ErrorCode::BadRequest, "{message}");
            assert!(message.contains("stale heartbeat"), "{message}");
        }
        other => panic!("a replayed heartbeat was answered {other:?}"),
    }
    let mut altered = rogue.observed().relayed.last().cloned().expect("relayed");
    let last = altered.payload.len() - 1;
    altered.payload[last] ^= 1;
    assert!(matches!(
        rogue
            .ask(Target::Coordinator, Request::Relay(altered))
            .await?,
        Response::Relayed(RelayReply::Error {
            code: ErrorCode::Forbidden,
            ..
        })
    ));

    // Replies rewritten (revocations emptied, a printer identity added), then replayed.
    let revocations = victim.agent.data_dir.join("revocations.bin");
    let kept = std::fs::read(&revocations)?;
    rogue.set(ForwardTactic::Honest, ReplyTactic::Rewrite);
    wait_log(
        "a rewritten reply refused",
        &victim.agent.log,
        "bad coordinator signature",
    )
    .await?;
    rogue.set(ForwardTactic::Honest, ReplyTactic::ReplayFirst);
    wait_log(
        "a replayed reply refused",
        &victim.agent.log,
        "stale or replayed heartbeat reply",
    )
    .await?;
    assert_eq!(std::fs::read(&revocations)?, kept, "revocations rewritten");
    assert!(!log_has(&victim.agent.log, "ROGUE-SERIAL"));
    rogue.set(ForwardTactic::Honest, ReplyTactic::Honest);

    // A receipt forged for a job, and a flood of envelopes that do not open: each refused,
    // none recorded, and the real receipt not pushed out of the bounded list.
    let victim_addr: libp2p::Multiaddr = victim.agent.dial_addr().parse()?;
    let device = victim.agent.device_id.clone();
    let forged = forged_envelope(&site, &device, &printer_name, "job-forged");
    match rogue
        .ask(Target::Peer(victim_addr.clone()), Request::Job(forged))
        .await?
    {
        Response::Error { code, .. } => assert_eq!(code, ErrorCode::BadRequest),
        other => panic!("a forged envelope was answered {other:?}"),
    }
    for i in 0..2_100 {
        let job = forged_envelope(&site, &device, &printer_name, &format!("job-flood-{i}"));
        let answer = rogue
            .ask(Target::Peer(victim_addr.clone()), Request::Job(job))
            .await?;
        assert!(matches!(answer, Response::Error { .. }), "{answer:?}");
    }
    let count = rogue.observed().relayed.len();
    wait_for(
        "a heartbeat after the flood",
        Duration::from_secs(20),
        || async { Ok((rogue.observed().relayed.len() > count + 1).then_some(())) },
    )
    .await?;
    let receipts = rogue.observed().last_receipts;
    assert!(has_real(&rogue), "the real receipt was pushed out");
    assert!(
        receipts
            .iter()
            .all(|r| r.job_id != "job-forged" && !r.job_id.starts_with("job-flood-")),
        "a forged receipt was recorded"
    );

    // Still a working station: labels print once each.
    let mark = marker();
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            site.submit(json!({"pool": "outbound"}), &zpl_label(&mark, i))
                .await?,
        );
    }
    each_printed_once(&site, &ids, &[&honest, &victim], &mark).await?;
    Ok(())
}

/// A revoked station presents the certificate it had before its last renewal: its site
/// peer and the coordinator refuse it, and the peer still does after a restart without an
/// uplink (the signed revocation list is on its disk).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_devices_old_certificate_stays_refused_across_restarts() -> anyhow::Result<()> {
    let tmp = scratch();
    let validity = ["--device-cert-validity-secs".to_owned(), "75".to_owned()];
    let site = Site::new_with(tmp.path(), &validity).await?;
    let mut peer = site.station(0, 1, "outbound", &[]).await?;
    site.wait_printers(1).await?;
    let rogue = Rogue::start(&site.token().await?).await?;
    let peer_addr: libp2p::Multiaddr = peer.agent.dial_addr().parse()?;
    let hello = |cert: Vec<u8>| {
        Request::Hello(sealprint_protocol::Hello {
            certificate: cert,
            has_uplink: true,
        })
    };
    let first = rogue.certificates.lock().expect("lock")[0].clone();
    assert!(matches!(
        rogue
            .ask(Target::Peer(peer_addr.clone()), hello(first.clone()))
            .await?,
        Response::Hello(_)
    ));

    // Renewed over its uplink (a third of the validity before expiry), then revoked.
    wait_for("the rogue's renewal", Duration::from_secs(70), || async {
        Ok((rogue.certificates.lock().expect("lock").len() >= 2).then_some(()))
    })
    .await?;
    let (status, _) = site
        .admin
        .call(
            Method::POST,
            &format!(
                "/v1/tenants/{}/agents/{}/revoke",
                site.tenant, rogue.device_id
            ),
            Some(json!({})),
        )
        .await?;
    assert_eq!(status, StatusCode::OK);
    wait_log(
        "the peer's signed revocation list",
        &peer.agent.log,
        "revocation list updated",
    )
    .await?;

    // The certificate from before the renewal, to the peer and to the coordinator.
    rogue.present(first.clone()).await?;
    // A refusal comes as an error, or as the connection closed under the request (the
    // refuser disconnects); the logs below say why.
    let refused = |r: anyhow::Result<Response>| !matches!(r, Ok(Response::Hello(_)));
    assert!(refused(
        rogue
            .ask(Target::Peer(peer_addr.clone()), hello(first.clone()))
            .await
    ));
    wait_log("the peer refusing it", &peer.agent.log, "is revoked").await?;
    assert!(refused(
        rogue.ask(Target::Coordinator, hello(first.clone())).await
    ));
    wait_log(
        "the coordinator refusing it",
        &site.coordinator.log,
        "is revoked",
    )
    .await?;

    // The peer restarts without an uplink: only its disk knows the revocation.
    peer.agent.stop().await?;
    let log = tmp.path().join("agent-0-restarted.log");
    let config = tmp.path().join("agent-0.toml");
    let restarted = AgentProc::start(
        &peer.agent.data_dir,
        &log,
        &[
            "--config".into(),
            config.display().to_string(),
            "--no-uplink".into(),
        ],
    )
    .await?;
    let addr: libp2p::Multiaddr = restarted.dial_addr().parse()?;
    let current = rogue
        .certificates
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .expect("cert");
    for cert in [first, current] {
        assert!(refused(
            rogue.ask(Target::Peer(addr.clone()), hello(cert)).await
        ));
    }
    wait_log("the restarted peer refusing it", &log, "is revoked").await?;
    assert!(!log_has(&log, "site peer verified"));
    peer.agent = restarted;
    Ok(())
}
