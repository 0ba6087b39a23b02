//! Tests of the dispatch rules: choosing a printer and judging lost answers, on explicit time.

use super::*;

fn printer(name: &str, pool: &str, status: PrinterStatus) -> PrinterReport {
    PrinterReport {
        name: name.into(),
        pool: pool.into(),
        uri: "raw://127.0.0.1:9100".into(),
        verdict: PrinterVerdict::Verified,
        reason: "ok".into(),
        identity: Some("SN1".into()),
        status,
    }
}

/// One ready printer `p` in pool `default`.
fn ready() -> Vec<PrinterReport> {
    vec![printer("p", "default", PrinterStatus::Ready)]
}

fn hb(device: &str, printers: Vec<PrinterReport>, clock_ms: u64, uptime_s: u64) -> Heartbeat {
    Heartbeat {
        device_id: device.into(),
        seq: 1,
        version: "0.1.0".into(),
        uptime_s,
        clock_ms,
        printers,
        peers: vec![],
        receipts: vec![],
        findings: vec![],
    }
}

fn live(device: &str, peer: Option<PeerId>) -> AgentLive {
    AgentLive {
        device_id: device.into(),
        tenant_id: "t".into(),
        site_id: "s".into(),
        x25519_public: [0; 32],
        ed25519_public: [0u8; 32],
        peer,
        relay: None,
        printers: vec![],
        last_heartbeat_ms: None,
        boot_ms: 0,
        clock_skew_ms: VecDeque::new(),
        outdated: false,
    }
}

/// `hb` arriving at `at_ms`, over `peer`'s connection or through `relay`.
fn beat(fleet: &mut Fleet, hb: &Heartbeat, peer: Option<PeerId>, relay: Option<&str>, at_ms: u64) {
    fleet.heartbeat(live(&hb.device_id, peer), hb, relay, at_ms);
}

/// `device` connected as `peer`, its first heartbeat (with `printers`) at 1 s.
fn online(fleet: &mut Fleet, device: &str, peer: PeerId, printers: Vec<PrinterReport>) {
    fleet.connected(live(device, Some(peer)));
    beat(fleet, &hb(device, printers, 0, 0), Some(peer), None, 1_000);
}

fn want(excluded: &[String]) -> Want<'_> {
    Want {
        tenant_id: "t",
        pool: Some("default"),
        printer: None,
        excluded,
        backoff_over: false,
    }
}

/// The judgement of a lost answer (sent at `sent`, deadline `deadline`) by a heartbeat of an
/// agent whose clock says `clock_ms` and that has been up `uptime_s`.
fn judge(clock_ms: u64, uptime_s: u64, sent: u64, deadline: u64) -> LostAnswer {
    let cfg = DispatchConfig::default();
    judge_lost_answer(&hb("a", vec![], clock_ms, uptime_s), sent, deadline, &cfg)
}

#[test]
fn spreads_load_and_skips_unready() {
    let cfg = DispatchConfig::default();
    let mut fleet = Fleet::default();
    for (d, status) in [
        ("a", PrinterStatus::Ready),
        ("b", PrinterStatus::Ready),
        ("c", PrinterStatus::PaperOut),
    ] {
        online(
            &mut fleet,
            d,
            PeerId::random(),
            vec![printer("p", "default", status)],
        );
    }
    let mut seen = std::collections::HashMap::new();
    for _ in 0..10 {
        let c = fleet.choose(&want(&[]), &cfg, 2_000).expect("a printer");
        fleet.begin(&c.printer_id);
        *seen.entry(c.device_id).or_insert(0) += 1;
    }
    assert_eq!(seen.get("a"), Some(&5));
    assert_eq!(seen.get("b"), Some(&5));
    assert_eq!(seen.get("c"), None, "paper-out printer never chosen");
}

#[test]
fn stale_or_unreachable_agents_get_nothing() {
    let cfg = DispatchConfig::default();
    let mut fleet = Fleet::default();
    beat(&mut fleet, &hb("a", ready(), 0, 0), None, None, 1_000);
    assert_eq!(fleet.choose(&want(&[]), &cfg, 2_000), None, "no route");
    fleet.connected(live("a", Some(PeerId::random())));
    assert!(fleet.choose(&want(&[]), &cfg, 2_000).is_some());
    assert!(
        fleet.choose(&want(&[]), &cfg, 1_000 + 30_000).is_some(),
        "fresh for three heartbeat intervals"
    );
    assert_eq!(
        fleet.choose(&want(&[]), &cfg, 1_000 + 30_001),
        None,
        "stale"
    );
}

#[test]
fn an_agent_whose_clock_is_off_gets_no_jobs() {
    let cfg = DispatchConfig::default();
    let mut fleet = Fleet::default();
    let p = Some(PeerId::random());
    fleet.connected(live("a", p));
    // 2 s ahead: exactly the 2 s allowed.
    beat(&mut fleet, &hb("a", ready(), 12_000, 0), p, None, 10_000);
    assert_eq!(fleet.agent("a").map(AgentLive::worst_skew_ms), Some(2_000));
    assert!(fleet.choose(&want(&[]), &cfg, 10_100).is_some());
    // One heartbeat 3 s behind: no jobs until it leaves the window of the last five.
    beat(&mut fleet, &hb("a", ready(), 8_000, 1), p, None, 11_000);
    assert_eq!(fleet.agent("a").map(AgentLive::worst_skew_ms), Some(3_000));
    assert_eq!(fleet.choose(&want(&[]), &cfg, 11_100), None);
    for i in 0..SKEW_SAMPLES as u64 - 1 {
        let at = 12_000 + i * 1_000;
        beat(&mut fleet, &hb("a", ready(), at + 100, 2), p, None, at);
        assert_eq!(
            fleet.choose(&want(&[]), &cfg, at + 10),
            None,
            "still in the window"
        );
    }
    beat(&mut fleet, &hb("a", ready(), 16_100, 6), p, None, 16_000);
    assert!(fleet.choose(&want(&[]), &cfg, 16_010).is_some());
}

#[test]
fn a_relayed_heartbeat_drops_the_direct_route() {
    let cfg = DispatchConfig::default();
    let mut fleet = Fleet::default();
    let relay_peer = PeerId::random();
    let direct = PeerId::random();
    online(&mut fleet, "r", relay_peer, vec![]);
    fleet.connected(live("a", Some(direct)));
    beat(
        &mut fleet,
        &hb("a", ready(), 1_000, 0),
        Some(direct),
        None,
        1_000,
    );
    let mut only_a = want(&[]);
    only_a.printer = Some("a.p");
    let route_at = |fleet: &mut Fleet, now_ms| fleet.choose(&only_a, &cfg, now_ms).map(|c| c.route);
    assert_eq!(route_at(&mut fleet, 1_100), Some(Route::Direct(direct)));
    // Its uplink died: the heartbeat came through r.
    beat(
        &mut fleet,
        &hb("a", ready(), 2_000, 1),
        None,
        Some("r"),
        2_000,
    );
    assert_eq!(route_at(&mut fleet, 2_100), Some(Route::Relay(relay_peer)));
    // Back over a direct connection.
    beat(
        &mut fleet,
        &hb("a", ready(), 3_000, 2),
        Some(direct),
        None,
        3_000,
    );
    assert_eq!(route_at(&mut fleet, 3_100), Some(Route::Direct(direct)));
}

#[test]
fn relayed_agent_routes_through_its_peer() {
    let cfg = DispatchConfig::default();
    let mut fleet = Fleet::default();
    let relay_peer = PeerId::random();
    online(&mut fleet, "r", relay_peer, vec![]);
    beat(&mut fleet, &hb("a", ready(), 0, 0), None, Some("r"), 1_000);
    let c = fleet.choose(&want(&[]), &cfg, 2_000).expect("a printer");
    assert_eq!(c.device_id, "a");
    assert_eq!(c.route, Route::Relay(relay_peer));
}

/// A relay of another site (its heartbeats fresh) is no route: jobs never cross sites.
#[test]
fn a_relay_of_another_site_is_no_route() {
    let cfg = DispatchConfig::default();
    let mut fleet = Fleet::default();
    let relay_peer = PeerId::random();
    let mut relay = live("r", Some(relay_peer));
    relay.site_id = "elsewhere".into();
    fleet.connected(relay.clone());
    fleet.heartbeat(relay, &hb("r", vec![], 0, 0), None, 1_000);
    beat(&mut fleet, &hb("a", ready(), 0, 0), None, Some("r"), 1_000);
    assert_eq!(fleet.choose(&want(&[]), &cfg, 2_000), None);
}

#[test]
fn refused_printer_waits_for_backoff() {
    let cfg = DispatchConfig::default();
    let mut fleet = Fleet::default();
    online(&mut fleet, "a", PeerId::random(), ready());
    let excluded = vec!["a.p".to_owned()];
    assert_eq!(fleet.choose(&want(&excluded), &cfg, 2_000), None);
    let mut w = want(&excluded);
    w.backoff_over = true;
    assert!(fleet.choose(&w, &cfg, 2_000).is_some());
}

#[test]
fn lost_answers_are_judged_by_receipts_theory() {
    // Agent up since t=0, job sent at 10s with deadline 40s.
    assert_eq!(judge(20_000, 20, 10_000, 40_000), LostAnswer::Wait);
    assert_eq!(judge(42_001, 42, 10_000, 40_000), LostAnswer::Reassign);
    // Agent restarted at 30s: its memory of the job is gone.
    assert_eq!(judge(50_000, 20, 10_000, 40_000), LostAnswer::InDoubt);
}

/// An agent that restarted shortly after the job was sent (within the rounding of its
/// uptime and the skew) may have printed it before dying: in doubt after the deadline,
/// never reassigned. Before the deadline a young process waits: the job may still come.
#[test]
fn an_agent_restarted_just_after_the_send_is_in_doubt() {
    let skew = DispatchConfig::default().allowed_skew_ms;
    let (sent, deadline) = (10_000, 40_000);
    for boot in [sent - 500, sent + 500] {
        let clock = sent + 3_000;
        assert_eq!(
            judge(clock, (clock - boot) / 1000, sent, deadline),
            LostAnswer::Wait,
            "agent booted at {boot}, before the deadline"
        );
    }
    for boot in [sent - skew, sent, sent + 500, sent + 2_900] {
        let clock = deadline + skew + 5_000;
        assert_eq!(
            judge(clock, (clock - boot) / 1000, sent, deadline),
            LostAnswer::InDoubt,
            "agent booted at {boot}"
        );
    }
    // Provably running at the send (its boot, plus the skew, a second before it): the job
    // never reached it, and goes elsewhere.
    for boot in [sent - skew - 1_000, 1_000] {
        let clock = deadline + skew + 5_000;
        assert_eq!(
            judge(clock, (clock - boot) / 1000, sent, deadline),
            LostAnswer::Reassign,
            "agent booted at {boot}"
        );
    }
}

/// A process that booted more than the skew plus a second (uptime is whole seconds) after
/// the send surely replaced the one that got the job: in doubt at once, even before the
/// deadline. One that may have started a moment earlier still waits.
#[test]
fn a_process_surely_started_after_the_send_is_in_doubt_before_the_deadline() {
    let skew = DispatchConfig::default().allowed_skew_ms;
    let (sent, deadline) = (100_000, 130_000);
    let latest_possible_old = sent + skew + 1_000;
    let clock = latest_possible_old + 5_000;
    assert_eq!(
        judge(clock + 1, 5, sent, deadline),
        LostAnswer::InDoubt,
        "booted 1 ms after the latest instant it could have had the job"
    );
    assert_eq!(
        judge(clock, 5, sent, deadline),
        LostAnswer::Wait,
        "booted at that instant: it may be the process that got the job"
    );
}

/// Between the deadline and the deadline plus the allowed skew, the agent's clock may be
/// behind: it may still print, so the job is not sent elsewhere yet.
#[test]
fn no_reassignment_before_the_deadline_plus_skew() {
    let skew = DispatchConfig::default().allowed_skew_ms;
    let (sent, deadline) = (10_000, 40_000);
    for clock in [deadline, deadline + 1, deadline + skew / 2, deadline + skew] {
        assert_eq!(
            judge(clock, clock / 1000, sent, deadline),
            LostAnswer::Wait,
            "agent clock {clock}"
        );
    }
    let after = deadline + skew + 1;
    assert_eq!(
        judge(after, after / 1000, sent, deadline),
        LostAnswer::Reassign
    );
}

#[test]
fn an_outdated_agent_gets_no_jobs_but_relays() {
    let cfg = DispatchConfig::default();
    let mut fleet = Fleet::default();
    let p = PeerId::random();
    online(&mut fleet, "a", p, ready());
    assert!(fleet.choose(&want(&[]), &cfg, 1_100).is_some());
    assert!(fleet.set_outdated("a", true));
    assert!(!fleet.set_outdated("a", true), "no change");
    assert!(!fleet.set_outdated("unknown", true));
    // Neither its pool nor a job aimed at its printer reaches it; heartbeats keep it fresh.
    assert_eq!(fleet.choose(&want(&[]), &cfg, 1_200), None);
    let aimed = Want {
        printer: Some("a.p"),
        pool: None,
        ..want(&[])
    };
    assert_eq!(fleet.choose(&aimed, &cfg, 1_200), None);
    beat(
        &mut fleet,
        &hb("a", ready(), 2_000, 1),
        Some(p),
        None,
        2_000,
    );
    assert_eq!(
        fleet.choose(&want(&[]), &cfg, 2_100),
        None,
        "a heartbeat keeps the flag"
    );
    // Another agent of the pool takes the job.
    online(&mut fleet, "b", PeerId::random(), ready());
    let c = fleet.choose(&want(&[]), &cfg, 2_100).expect("b");
    assert_eq!(c.device_id, "b");
    // An outdated site peer still carries another agent's sealed job.
    let relayed = PeerId::random();
    fleet.connected(live("c", Some(relayed)));
    beat(
        &mut fleet,
        &hb("c", ready(), 2_000, 0),
        None,
        Some("a"),
        2_000,
    );
    assert_eq!(
        fleet
            .choose(
                &Want {
                    printer: Some("c.p"),
                    pool: None,
                    ..want(&[])
                },
                &cfg,
                2_100
            )
            .map(|c| c.route),
        Some(Route::Relay(p))
    );
    // Updated: jobs again.
    assert!(fleet.set_outdated("a", false));
    assert!(fleet.choose(&aimed, &cfg, 2_100).is_some());
}
