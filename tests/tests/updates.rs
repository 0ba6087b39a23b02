//! Remote updates against the real binaries (issue 14 item 4).
//!
//! The test run builds the agent a second time with `SEALPRINT_VERSION_OVERRIDE` (a bumped
//! patch version), keeps stripped copies of both builds under `target/update-test/`, and
//! rebuilds `target/debug/sealprint-agent` as it was, so the other tests never see the bumped
//! build. Each agent runs from its own copy of the binary (an update replaces the file it
//! runs from). The coordinator is started with `--release-public-key`, so enrollment tokens
//! carry the key the agents then trust.
//!
//! - a fleet of three agents goes from the built version to the bumped one (rollout 34 %, then
//!   100 %) while labels are submitted: each prints exactly once, counted at the printer
//!   simulators after every process stopped; the time from the desired-version change to the
//!   whole fleet on the new version is printed (`UPDATE_FIGURES`);
//! - each refusal: a bad signature and a manifest signed by another key (a coordinator whose
//!   store was tampered with), a changed byte in the artifact (its file on the coordinator),
//!   and a downgrade below the fleet minimum (an agent that allows downgrades): the agent
//!   stays on its version, says why, the coordinator audits `update.refused`, labels print;
//! - a rollback: the "new version" is a signed script that exits at once; the same process
//!   restores and re-executes the previous binary, which heartbeats, reports `rolled_back`
//!   and prints.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use hyper::{Method, StatusCode};
use sealprint_release::{Artifact, Manifest, ReleaseKey, SignedManifest};
use sealprint_testkit::api_client::ApiClient;
use sealprint_testkit::cluster::{binaries, wait_for, AgentProc, Launcher};
use sealprint_testkit::printer_sim::{self, SimConfig, SimHandle, SimMode};
use sealprint_testkit::scenario::{label_indices, marker, zpl_label, Site};
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(90);
const PLATFORM: &str = "linux-amd64";
const ARTIFACT: &str = "sealprint-agent";

/// The two builds: the one of this run and the bumped one, stripped copies.
struct Builds {
    base: PathBuf,
    base_version: String,
    bumped: PathBuf,
    bumped_version: String,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit has a parent")
        .to_path_buf()
}

fn strip_copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    let status = std::process::Command::new("strip")
        .arg("-o")
        .arg(to)
        .arg(from)
        .status()
        .context("running strip")?;
    if !status.success() {
        std::fs::copy(from, to)?;
    }
    Ok(())
}

fn cargo_build_agent(override_version: Option<&str>) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.current_dir(workspace()).args([
        "build",
        "--quiet",
        "-p",
        "sealprint-agent",
        "--bin",
        "sealprint-agent",
    ]);
    match override_version {
        Some(v) => cmd.env("SEALPRINT_VERSION_OVERRIDE", v),
        None => cmd.env_remove("SEALPRINT_VERSION_OVERRIDE"),
    };
    if !cmd.status().context("running cargo build")?.success() {
        bail!("cargo build of the agent failed");
    }
    Ok(())
}

fn build() -> anyhow::Result<Builds> {
    let bins = binaries()?;
    let dir = bins
        .agent
        .parent()
        .and_then(Path::parent)
        .context("target directory")?
        .join("update-test");
    std::fs::create_dir_all(&dir)?;
    let base_version = env!("CARGO_PKG_VERSION").to_owned();
    let mut parts: Vec<u64> = base_version
        .split('.')
        .map(|p| p.parse().unwrap_or(0))
        .collect();
    parts.resize(3, 0);
    let bumped_version = format!("{}.{}.{}", parts[0], parts[1], parts[2] + 1);
    let base = dir.join("agent-base");
    strip_copy(&bins.agent, &base)?;
    let t = Instant::now();
    cargo_build_agent(Some(&bumped_version))?;
    let bumped_build = t.elapsed();
    let bumped = dir.join("agent-bumped");
    strip_copy(&bins.agent, &bumped)?;
    let t = Instant::now();
    cargo_build_agent(None)?;
    let restore_build = t.elapsed();
    println!(
        "UPDATE_FIGURES bumped build {:.1} s, rebuild of the original {:.1} s, artifact {} bytes",
        bumped_build.as_secs_f64(),
        restore_build.as_secs_f64(),
        std::fs::metadata(&bumped)?.len()
    );
    Ok(Builds {
        base,
        base_version,
        bumped,
        bumped_version,
    })
}

/// Built once per test process, before any agent starts (every test calls this first, so
/// no agent runs while `target/debug/sealprint-agent` is the bumped build).
fn builds() -> anyhow::Result<&'static Builds> {
    static B: OnceLock<Result<Builds, String>> = OnceLock::new();
    B.get_or_init(|| build().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow!(e.clone()))
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sealprint-updates-")
        .tempdir()
        .expect("a scratch directory")
}

/// A coordinator with `key`'s public half as its release key, and a tenant and site.
async fn site_with_key(root: &Path, key: &ReleaseKey, extra: &[&str]) -> anyhow::Result<Site> {
    let key_file = root.join("release.pub");
    std::fs::write(&key_file, key.public().to_hex())?;
    let mut args = vec![
        "--release-public-key".to_owned(),
        key_file.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    Site::new_with(root, &args).await
}

/// An agent running from its own copy of `binary`, with one simulated printer of `pool`.
struct Station {
    agent: AgentProc,
    printer: SimHandle,
    exe: PathBuf,
}

async fn station(site: &Site, n: usize, binary: &Path, extra: &[&str]) -> anyhow::Result<Station> {
    let dir = site.root.join(format!("agent-{n}"));
    AgentProc::enroll(&dir, &site.token().await?).await?;
    let bin_dir = site.root.join(format!("bin-{n}"));
    std::fs::create_dir_all(&bin_dir)?;
    let exe = bin_dir.join("sealprint-agent");
    std::fs::copy(binary, &exe)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let printer = printer_sim::start(
        listener,
        SimConfig {
            serial: format!("SIM{n}0"),
            model: "ZD421-300dpi".into(),
            mode: SimMode::Normal,
        },
        None,
    )
    .await;
    let config = site.root.join(format!("agent-{n}.toml"));
    std::fs::write(
        &config,
        format!(
            "[[printer]]\nname = \"zebra-{n}\"\nuri = \"raw://{}\"\npool = \"outbound\"\n",
            printer.addr()
        ),
    )?;
    let mut args = vec!["--config".to_owned(), config.display().to_string()];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let launcher = Launcher {
        program: exe.clone(),
        args: Vec::new(),
        env: Vec::new(),
    };
    let agent = AgentProc::start_launched(
        launcher,
        "/ip4/127.0.0.1/tcp/0",
        &dir,
        &site.root.join(format!("agent-{n}.log")),
        &args,
        &[],
    )
    .await?;
    Ok(Station {
        agent,
        printer,
        exe,
    })
}

fn signed_manifest(key: &ReleaseKey, version: &str, bytes: &[u8]) -> anyhow::Result<String> {
    let artifact = Artifact::measure(ARTIFACT, PLATFORM, bytes)?;
    let manifest = Manifest::new(version, vec![artifact])?;
    Ok(SignedManifest::sign(manifest, key)?.to_json())
}

/// Uploads a release through the API (manifest, then artifact).
async fn publish(
    admin: &ApiClient,
    manifest: &str,
    version: &str,
    bytes: Vec<u8>,
) -> anyhow::Result<()> {
    let (s, v) = admin
        .call_raw(
            Method::PUT,
            &format!("/v1/releases/{version}/manifest"),
            manifest.as_bytes().to_vec(),
        )
        .await?;
    if s != StatusCode::OK {
        bail!("manifest upload answered {s}: {v}");
    }
    let (s, v) = admin
        .call_raw(
            Method::PUT,
            &format!("/v1/releases/{version}/artifacts/{ARTIFACT}"),
            bytes,
        )
        .await?;
    if s != StatusCode::OK {
        bail!("artifact upload answered {s}: {v}");
    }
    Ok(())
}

async fn set_desired(site: &Site, version: &str, percent: u8) -> anyhow::Result<()> {
    let (s, v) = site
        .admin
        .call(
            Method::PUT,
            &format!("/v1/tenants/{}/desired-version", site.tenant),
            Some(json!({"version": version, "rollout_percent": percent})),
        )
        .await?;
    if s != StatusCode::OK {
        bail!("desired version answered {s}: {v}");
    }
    Ok(())
}

async fn agents(site: &Site) -> anyhow::Result<Vec<Value>> {
    let v = site
        .admin
        .get(&format!("/v1/tenants/{}/agents", site.tenant))
        .await?;
    Ok(v.as_array().cloned().unwrap_or_default())
}

async fn agent_version(site: &Site, device: &str) -> anyhow::Result<Option<String>> {
    Ok(agents(site)
        .await?
        .iter()
        .find(|a| a["id"] == json!(device))
        .and_then(|a| a["version"].as_str().map(str::to_owned)))
}

async fn audit(site: &Site) -> anyhow::Result<Vec<Value>> {
    let v = site
        .admin
        .get(&format!("/v1/tenants/{}/audit", site.tenant))
        .await?;
    Ok(v.as_array().cloned().unwrap_or_default())
}

async fn wait_audit(site: &Site, action: &str, object: &str) -> anyhow::Result<Value> {
    wait_for(&format!("audit {action} of {object}"), LIMIT, || async {
        Ok(audit(site)
            .await?
            .into_iter()
            .find(|e| e["action"] == action && e["object"] == object))
    })
    .await
}

/// The rollout bucket of a device, as the coordinator computes it (`core::rollout`).
fn bucket(device_id: &str) -> u8 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"sealprint/rollout-bucket/v1\0");
    h.update(device_id.as_bytes());
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    (u64::from_be_bytes(first) % 100) as u8
}

/// Labels numbered `from..to` of `mark`, submitted to the pool.
async fn submit_range(
    site: &Site,
    mark: &str,
    range: std::ops::Range<usize>,
) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    for n in range {
        ids.push(
            site.submit(json!({"pool": "outbound"}), &zpl_label(mark, n))
                .await?,
        );
    }
    Ok(ids)
}

async fn all_printed(site: &Site, ids: &[String]) -> anyhow::Result<()> {
    for id in ids {
        let job = site.wait_final(id, LIMIT).await?;
        if job["status"] != "printed" {
            bail!("job {id} ended {job}");
        }
    }
    Ok(())
}

/// How many times each label of `mark` was printed, over every simulator.
fn printed_counts(printers: &[&SimHandle], mark: &str) -> std::collections::BTreeMap<usize, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for p in printers {
        for job in p.jobs() {
            for n in label_indices(&job, mark) {
                *counts.entry(n).or_insert(0) += 1;
            }
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_updates_to_a_signed_bumped_build_and_every_label_prints_once() -> anyhow::Result<()>
{
    let test_started = Instant::now();
    let b = builds()?;
    let tmp = scratch();
    let key = ReleaseKey::generate();
    let mut site = site_with_key(tmp.path(), &key, &[]).await?;
    let mut fleet = Vec::new();
    for n in 0..3 {
        fleet.push(station(&site, n, &b.base, &["--update-trial-secs", "60"]).await?);
    }
    site.wait_printers(3).await?;
    let pids: Vec<Option<u32>> = fleet.iter().map(|s| s.agent.pid()).collect();
    let mark = marker();
    let mut ids = submit_range(&site, &mark, 0..6).await?;
    all_printed(&site, &ids).await?;

    let bumped = std::fs::read(&b.bumped)?;
    let manifest = signed_manifest(&key, &b.bumped_version, &bumped)?;
    publish(&site.admin, &manifest, &b.bumped_version, bumped.clone()).await?;

    // A third of the fleet first, then all of it, labels submitted throughout.
    let changed = Instant::now();
    set_desired(&site, &b.bumped_version, 34).await?;
    let mut next = 6;
    let devices: Vec<String> = fleet.iter().map(|s| s.agent.device_id.clone()).collect();
    // The agents a 34 % rollout chooses (the coordinator's bucket rule, recomputed here):
    // exactly those update, and the others wait for 100 %.
    let chosen: Vec<&String> = devices.iter().filter(|d| bucket(d) < 34).collect();
    let stepped = !chosen.is_empty();
    if stepped {
        wait_for("the chosen agents on the new version", LIMIT, || async {
            for d in &chosen {
                if agent_version(&site, d).await?.as_deref() != Some(b.bumped_version.as_str()) {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        })
        .await?;
    }
    for d in devices.iter().filter(|d| !chosen.contains(d)) {
        assert_eq!(
            agent_version(&site, d).await?.as_deref(),
            Some(b.base_version.as_str()),
            "an agent outside the 34 % updated"
        );
    }
    ids.extend(submit_range(&site, &mark, next..next + 3).await?);
    next += 3;
    set_desired(&site, &b.bumped_version, 100).await?;
    let full = Instant::now();
    let mut rounds = 0;
    wait_for("the whole fleet on the new version", LIMIT, || async {
        for d in &devices {
            if agent_version(&site, d).await?.as_deref() != Some(b.bumped_version.as_str()) {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })
    .await?;
    let whole_fleet = changed.elapsed();
    let from_full = full.elapsed();
    // Labels during and after: they all print.
    while rounds < 2 {
        ids.extend(submit_range(&site, &mark, next..next + 3).await?);
        next += 3;
        rounds += 1;
    }
    all_printed(&site, &ids).await?;
    // Each agent kept its process id (re-executed, never respawned by the harness).
    let now_pids: Vec<Option<u32>> = fleet.iter().map(|s| s.agent.pid()).collect();
    assert_eq!(pids, now_pids);
    for d in &devices {
        for step in ["offered", "fetched", "applied", "running"] {
            wait_audit(&site, &format!("update.{step}"), d).await?;
        }
    }
    for s in &fleet {
        assert_eq!(std::fs::read(&s.exe)?, bumped, "the binary was replaced");
        let prev = PathBuf::from(format!("{}.prev", s.exe.display()));
        assert_eq!(std::fs::read(&prev)?, std::fs::read(&b.base)?);
    }
    for s in &mut fleet {
        s.agent.stop().await?;
    }
    site.coordinator.stop().await?;
    let printers: Vec<&SimHandle> = fleet.iter().map(|s| &s.printer).collect();
    let counts = printed_counts(&printers, &mark);
    let lost: Vec<usize> = (0..next).filter(|n| !counts.contains_key(n)).collect();
    let twice: Vec<(&usize, &usize)> = counts.iter().filter(|(_, c)| **c != 1).collect();
    println!(
        "UPDATE_FIGURES fleet of 3: {} -> {}, stepped 34%->100%: {stepped}, desired-version \
         change to whole fleet updated {:.1} s (from 100 %: {:.1} s), labels {next}, lost {}, \
         printed twice {}, test {:.1} s",
        b.base_version,
        b.bumped_version,
        whole_fleet.as_secs_f64(),
        from_full.as_secs_f64(),
        lost.len(),
        twice.len(),
        test_started.elapsed().as_secs_f64()
    );
    assert!(lost.is_empty(), "labels never printed: {lost:?}");
    assert!(twice.is_empty(), "labels printed more than once: {twice:?}");
    Ok(())
}

/// What a refusal test does to the release before the agent sees it.
enum Attack {
    /// The stored manifest's version changed after signing (signature no longer verifies).
    BadSignature,
    /// The stored manifest signed by another release key.
    WrongKey,
    /// One byte of the stored artifact changed.
    ChangedByte,
    /// A properly signed release below the fleet minimum, to an agent allowing downgrades.
    BelowMinimum,
}

/// Puts `manifest` for `version` straight into a stopped coordinator's store (what an
/// attacker with the coordinator's disk could do), then restarts it.
async fn tamper_store(site: &mut Site, version: &str, manifest: &str) -> anyhow::Result<()> {
    site.coordinator.stop().await?;
    {
        let key = sealprint_coordinator::MasterKey::load(&site.coordinator.master_key)?;
        let store = sealprint_coordinator::Store::open(&site.coordinator.data_dir, key)?;
        store.put_release(version, manifest)?;
        store.put_release_artifact(version, ARTIFACT)?;
        store.flush()?;
    }
    site.coordinator.start().await?;
    site.admin = site.coordinator.admin().await?;
    Ok(())
}

async fn refusal(attack: Attack, expect: &str) -> anyhow::Result<()> {
    let b = builds()?;
    let tmp = scratch();
    let key = ReleaseKey::generate();
    let extra: &[&str] = match attack {
        Attack::BelowMinimum => &["--min-agent-version", "0.1.0"],
        _ => &[],
    };
    let mut site = site_with_key(tmp.path(), &key, extra).await?;
    let agent_args: &[&str] = match attack {
        Attack::BelowMinimum => &["--allow-update-downgrade"],
        _ => &[],
    };
    let mut st = station(&site, 0, &b.base, agent_args).await?;
    site.wait_printers(1).await?;
    let device = st.agent.device_id.clone();
    let original = std::fs::read(&st.exe)?;
    // Small artifacts: the checks, not the size, are under test.
    let bytes = b"#!/bin/sh\nexit 0\n".to_vec();
    let version = match attack {
        Attack::BelowMinimum => "0.0.9",
        _ => "9.9.9",
    };
    let manifest = signed_manifest(&key, version, &bytes)?;
    publish(&site.admin, &manifest, version, bytes.clone()).await?;
    match attack {
        Attack::BadSignature => {
            // Another digest under the same signature and key id.
            let mut signed = SignedManifest::from_json(&manifest)?;
            let mut sha = signed.manifest.artifacts[0].sha256.clone().into_bytes();
            sha[0] = if sha[0] == b'0' { b'1' } else { b'0' };
            signed.manifest.artifacts[0].sha256 = String::from_utf8(sha)?;
            tamper_store(&mut site, version, &signed.to_json()).await?;
        }
        Attack::WrongKey => {
            let other = ReleaseKey::generate();
            tamper_store(
                &mut site,
                version,
                &signed_manifest(&other, version, &bytes)?,
            )
            .await?;
        }
        Attack::ChangedByte => {
            let file = site
                .coordinator
                .data_dir
                .join("releases")
                .join(version)
                .join(ARTIFACT);
            let mut stored = std::fs::read(&file)?;
            stored[3] ^= 0x01;
            std::fs::write(&file, stored)?;
        }
        Attack::BelowMinimum => {}
    }
    set_desired(&site, version, 100).await?;
    let entry = wait_audit(&site, "update.refused", &device).await?;
    let outcome = entry["outcome"].as_str().unwrap_or_default().to_owned();
    assert!(outcome.contains(expect), "{outcome}");
    assert!(
        !audit(&site)
            .await?
            .iter()
            .any(|e| e["action"] == "update.applied" || e["action"] == "update.fetched"),
        "nothing was applied"
    );
    // The agent says why, stays on its version and binary, and prints.
    let log = std::fs::read_to_string(&st.agent.log)?;
    assert!(log.contains("update refused"), "agent log: {log}");
    assert_eq!(
        agent_version(&site, &device).await?.as_deref(),
        Some(b.base_version.as_str())
    );
    assert_eq!(std::fs::read(&st.exe)?, original);
    let mark = marker();
    let ids = submit_range(&site, &mark, 0..1).await?;
    all_printed(&site, &ids).await?;
    st.agent.stop().await?;
    site.coordinator.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_release_whose_signature_does_not_verify() -> anyhow::Result<()> {
    refusal(Attack::BadSignature, "signature does not verify").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_release_signed_by_another_key() -> anyhow::Result<()> {
    refusal(Attack::WrongKey, "signed by another key").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_an_artifact_with_a_changed_byte() -> anyhow::Result<()> {
    refusal(Attack::ChangedByte, "does not match its signed manifest").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_downgrade_below_the_fleet_minimum() -> anyhow::Result<()> {
    refusal(Attack::BelowMinimum, "below the fleet minimum").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_binary_that_exits_at_once_is_rolled_back_and_the_agent_prints() -> anyhow::Result<()>
{
    let b = builds()?;
    let tmp = scratch();
    let key = ReleaseKey::generate();
    let mut site = site_with_key(tmp.path(), &key, &[]).await?;
    let mut st = station(&site, 0, &b.base, &["--update-trial-secs", "20"]).await?;
    site.wait_printers(1).await?;
    let device = st.agent.device_id.clone();
    let pid = st.agent.pid();
    let original = std::fs::read(&st.exe)?;
    let broken = b"#!/bin/sh\necho 'this release is broken' >&2\nexit 1\n".to_vec();
    let version = b.bumped_version.clone();
    let manifest = signed_manifest(&key, &version, &broken)?;
    publish(&site.admin, &manifest, &version, broken.clone()).await?;
    set_desired(&site, &version, 100).await?;
    wait_audit(&site, "update.applied", &device).await?;
    let rolled = wait_audit(&site, "update.rolled_back", &device).await?;
    assert!(
        rolled["outcome"]
            .as_str()
            .unwrap_or_default()
            .contains("exited before its first acknowledged heartbeat"),
        "{rolled}"
    );
    // The previous binary is back, in the same process, heartbeating and printing; the
    // version is not tried again.
    assert_eq!(std::fs::read(&st.exe)?, original);
    assert_eq!(st.agent.pid(), pid);
    assert_eq!(
        agent_version(&site, &device).await?.as_deref(),
        Some(b.base_version.as_str())
    );
    let mark = marker();
    let ids = submit_range(&site, &mark, 0..2).await?;
    all_printed(&site, &ids).await?;
    let applied = audit(&site)
        .await?
        .iter()
        .filter(|e| e["action"] == "update.applied")
        .count();
    assert_eq!(applied, 1, "the rolled-back version is not tried again");
    st.agent.stop().await?;
    site.coordinator.stop().await?;
    let counts = printed_counts(&[&st.printer], &mark);
    assert_eq!(
        counts.values().copied().collect::<Vec<_>>(),
        [1, 1],
        "{counts:?}"
    );
    Ok(())
}
