//! Packages and signed releases, with the real tools: the `.deb`s built by
//! `deploy/debian/build-debs.sh` from the harness's binaries, inspected with `dpkg-deb`,
//! installed, reinstalled, removed and purged with `dpkg` on this machine (CI runs as root);
//! the MSI built by `deploy/windows/build-msi.sh` with wixl from the Windows agent, inspected
//! with `msiinfo`/`msiextract`, Authenticode-signed and verified with `osslsigncode`; and the
//! release manifest signed and refused by the `sealprint-release` binary. Nothing is skipped:
//! a missing tool or privilege fails the test and says what to install.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("release/ has a parent")
        .to_path_buf()
}

/// Runs a command; its output, whatever the exit status.
fn output(cmd: &mut Command) -> anyhow::Result<Output> {
    cmd.output()
        .with_context(|| format!("running {cmd:?} (is the tool installed? see .ci/run step 1)"))
}

/// Runs a command that must succeed; its stdout.
fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = output(cmd)?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `dpkg` with its arguments, retried while another dpkg/apt holds the lock (a shared CI box).
fn dpkg(args: &[&str]) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let out = output(Command::new("dpkg").args(args))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        if stderr.contains("lock") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_secs(2));
            continue;
        }
        bail!("dpkg {args:?} failed: {stderr}");
    }
}

fn mode_owner(path: &str) -> anyhow::Result<String> {
    Ok(run(Command::new("stat").args(["-c", "%a %U %G", path]))?
        .trim()
        .to_owned())
}

/// Purges both packages when dropped, so a failed assertion leaves the machine clean.
struct Purge;
impl Drop for Purge {
    fn drop(&mut self) {
        let _ = dpkg(&["--purge", "sealprint-agent", "sealprint-coordinator"]);
    }
}

#[test]
fn debs_build_inspect_install_run_reinstall_remove_purge() -> anyhow::Result<()> {
    let bins = sealprint_testkit::cluster::binaries()?;
    let bin_dir = bins.agent.parent().context("agent has a directory")?;
    let out = tempfile::tempdir()?;
    let started = Instant::now();
    // gzip, not the default xz: the debug binaries are large and CI's cores are few.
    run(
        Command::new(workspace().join("deploy/debian/build-debs.sh"))
            .arg("--bin-dir")
            .arg(bin_dir)
            .arg("--out")
            .arg(out.path())
            .args(["--version", "0.1.0", "--compression", "gzip"]),
    )?;
    eprintln!("packages: both .debs built in {:?}", started.elapsed());
    let arch = run(Command::new("dpkg").arg("--print-architecture"))?;
    let deb = |name: &str| out.path().join(format!("{name}_0.1.0_{}.deb", arch.trim()));
    for (name, user) in [
        ("sealprint-agent", "sealprint-agent"),
        ("sealprint-coordinator", "sealprint"),
    ] {
        let path = deb(name);
        eprintln!(
            "packages: {} is {} bytes",
            path.display(),
            fs::metadata(&path)?.len()
        );
        let info = run(Command::new("dpkg-deb").arg("--info").arg(&path))?;
        for want in [
            format!("Package: {name}"),
            "Version: 0.1.0".into(),
            "Depends: libc6".into(),
        ] {
            ensure!(
                info.contains(&want),
                "{name}: --info lacks {want:?}:\n{info}"
            );
        }
        for script in ["postinst", "prerm", "postrm"] {
            ensure!(info.contains(script), "{name}: no {script}:\n{info}");
        }
        let contents = run(Command::new("dpkg-deb").arg("--contents").arg(&path))?;
        let exe_line = contents
            .lines()
            .find(|l| l.ends_with(&format!("./usr/bin/{name}")))
            .with_context(|| format!("{name}: no /usr/bin/{name}:\n{contents}"))?;
        ensure!(exe_line.starts_with("-rwxr-xr-x root/root"), "{exe_line}");
        for want in [
            format!("./lib/systemd/system/{name}.service\n"),
            format!("./usr/share/doc/{name}/copyright\n"),
        ] {
            ensure!(
                contents.contains(&want),
                "{name}: contents lack {want:?}:\n{contents}"
            );
        }
        let control = run(Command::new("dpkg-deb")
            .arg("-I")
            .arg(&path)
            .arg("postinst"))?;
        ensure!(control.contains("useradd --system") && control.contains(user));
        ensure!(!control.contains("systemctl enable") && !control.contains("systemctl start"));
    }
    ensure!(
        run(Command::new("id").arg("-u"))?.trim() == "0",
        "installing the .debs needs root (CI runs as root)"
    );

    let _purge = Purge;
    dpkg(&["--purge", "sealprint-agent", "sealprint-coordinator"])?;
    // The users stay after a purge (Debian policy): delete them, so that this run sees the
    // maintainer scripts create them.
    for user in ["sealprint-agent", "sealprint"] {
        if run(Command::new("getent").args(["passwd", user])).is_ok() {
            run(Command::new("userdel").arg(user))?;
        }
        if run(Command::new("getent").args(["group", user])).is_ok() {
            run(Command::new("groupdel").arg(user))?;
        }
    }
    let debs = [deb("sealprint-agent"), deb("sealprint-coordinator")];
    let debs: Vec<&str> = debs
        .iter()
        .map(|p| p.to_str().expect("utf-8 temp path"))
        .collect();
    let mut install = vec!["-i"];
    install.extend(&debs);
    dpkg(&install)?;
    for name in ["sealprint-agent", "sealprint-coordinator"] {
        let version = run(Command::new(format!("/usr/bin/{name}")).arg("--version"))?;
        ensure!(version.contains("0.1.0"), "{name} --version: {version}");
        let unit = fs::read_to_string(format!("/lib/systemd/system/{name}.service"))?;
        ensure!(
            unit.contains(&format!("ExecStart=/usr/bin/{name} ")),
            "{name}.service ExecStart"
        );
        ensure!(
            !Path::new(&format!(
                "/etc/systemd/system/multi-user.target.wants/{name}.service"
            ))
            .exists(),
            "{name} was enabled by the package"
        );
    }
    // systemd's own parser: an unknown directive or a bad value (say `DeviceAllow=… rwz`) is
    // a warning naming the file, with exit status 0, so the warnings are what is checked.
    for name in ["sealprint-agent", "sealprint-coordinator"] {
        let unit = format!("/lib/systemd/system/{name}.service");
        let out = output(Command::new("systemd-analyze").args(["verify", &unit]))?;
        let said = String::from_utf8_lossy(&out.stderr);
        ensure!(
            out.status.success() && !said.contains(&unit),
            "{unit}: {said}"
        );
    }
    let agent_unit = fs::read_to_string("/lib/systemd/system/sealprint-agent.service")?;
    for want in [
        "DevicePolicy=closed",
        "DeviceAllow=char-usb rw",
        "SupplementaryGroups=lp",
    ] {
        ensure!(agent_unit.contains(want), "agent unit lacks {want}");
    }
    ensure!(
        !agent_unit
            .lines()
            .any(|l| l.trim() == "PrivateDevices=true"),
        "agent unit hides /dev/usb"
    );
    let groups = run(Command::new("id").args(["-nG", "sealprint-agent"]))?;
    ensure!(
        groups.split_whitespace().any(|g| g == "lp"),
        "agent user not in lp: {groups}"
    );
    ensure!(
        run(Command::new("getent").args(["passwd", "sealprint"]))?.contains("/usr/sbin/nologin")
    );
    ensure!(mode_owner("/var/lib/sealprint-agent")? == "700 sealprint-agent sealprint-agent");
    ensure!(mode_owner("/var/lib/sealprint")? == "700 sealprint sealprint");
    ensure!(mode_owner("/etc/sealprint")? == "755 root root");

    // Reinstall (the same version over itself: maintainer scripts run again) keeps state.
    fs::write("/var/lib/sealprint-agent/marker", b"state")?;
    dpkg(&install)?;
    ensure!(
        Path::new("/var/lib/sealprint-agent/marker").exists(),
        "reinstall lost state"
    );
    // Remove keeps the data and the users; the binaries go.
    dpkg(&["--remove", "sealprint-agent"])?;
    ensure!(
        !Path::new("/usr/bin/sealprint-agent").exists(),
        "remove left the binary"
    );
    ensure!(
        Path::new("/var/lib/sealprint-agent/marker").exists(),
        "remove lost state"
    );
    // Install after remove, then purge: the data directory goes, the users stay.
    dpkg(&["-i", debs[0]])?;
    dpkg(&["--purge", "sealprint-agent", "sealprint-coordinator"])?;
    ensure!(
        !Path::new("/var/lib/sealprint-agent").exists(),
        "purge left the agent's data"
    );
    ensure!(
        !Path::new("/var/lib/sealprint").exists(),
        "purge left the coordinator's data"
    );
    ensure!(!Path::new("/usr/bin/sealprint-coordinator").exists());
    ensure!(run(Command::new("getent").args(["passwd", "sealprint-agent"])).is_ok());
    // Purge twice is harmless.
    dpkg(&["--purge", "sealprint-agent"])?;
    Ok(())
}

/// The Windows agent: `SEALPRINT_WINDOWS_AGENT_EXE` when set, else built once in the test's
/// profile for x86_64-pc-windows-gnu by the testkit (`rustup target add x86_64-pc-windows-gnu`
/// and mingw-w64 needed, as for CI's Windows check; the Wine test runs the same exe).
fn windows_agent() -> anyhow::Result<PathBuf> {
    let started = Instant::now();
    let exe = sealprint_testkit::cluster::windows_agent()?;
    eprintln!("packages: Windows agent ready in {:?}", started.elapsed());
    Ok(exe)
}

/// A self-signed code-signing certificate and key, made with openssl for this test only.
fn test_certificate(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (cert, key) = (dir.join("code-signing.pem"), dir.join("code-signing.key"));
    run(Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:3072", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=sealprint test code signing"])
        .args(["-addext", "extendedKeyUsage=codeSigning"])
        .args(["-addext", "keyUsage=critical,digitalSignature"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert))?;
    Ok((cert, key))
}

fn osslsigncode_verify(file: &Path, ca: &Path) -> anyhow::Result<Output> {
    output(
        Command::new("osslsigncode")
            .arg("verify")
            .arg("-CAfile")
            .arg(ca)
            .arg("-in")
            .arg(file),
    )
}

/// The rows of one MSI table (tab-separated, after the three header lines).
fn msi_table(msi: &Path, table: &str) -> anyhow::Result<Vec<Vec<String>>> {
    let text = run(Command::new("msiinfo").arg("export").arg(msi).arg(table))?;
    Ok(text
        .lines()
        .skip(3)
        .map(|l| {
            l.trim_end_matches('\r')
                .split('\t')
                .map(str::to_owned)
                .collect()
        })
        .collect())
}

fn row<'a>(rows: &'a [Vec<String>], key: &str) -> anyhow::Result<&'a [String]> {
    rows.iter()
        .find(|r| r.first().is_some_and(|k| k == key))
        .map(Vec::as_slice)
        .with_context(|| format!("no row {key:?} in {rows:?}"))
}

#[test]
fn msi_from_windows_agent_signed_inspected_and_verified() -> anyhow::Result<()> {
    let exe = windows_agent()?;
    let dir = tempfile::tempdir()?;
    let (cert, key) = test_certificate(dir.path())?;
    let out = dir.path().join("dist");
    run(
        Command::new(workspace().join("deploy/windows/build-msi.sh"))
            .arg("--exe")
            .arg(&exe)
            .arg("--out")
            .arg(&out)
            .args(["--version", "0.1.0"])
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key),
    )?;
    let msi = out.join("sealprint-agent-0.1.0-x64.msi");
    let signed_exe = out.join("sealprint-agent.exe");
    eprintln!(
        "packages: exe {} bytes, signed exe {} bytes, MSI {} bytes",
        fs::metadata(&exe)?.len(),
        fs::metadata(&signed_exe)?.len(),
        fs::metadata(&msi)?.len()
    );

    // Both signatures verify against the test certificate, and fail on one changed byte.
    for file in [&signed_exe, &msi] {
        let ok = osslsigncode_verify(file, &cert)?;
        ensure!(
            ok.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&ok.stdout)
        );
        let mut bytes = fs::read(file)?;
        let at = bytes.len() / 3;
        bytes[at] ^= 0x01;
        let changed = dir.path().join("changed");
        fs::write(&changed, &bytes)?;
        ensure!(
            !osslsigncode_verify(&changed, &cert)?.status.success(),
            "{}: a changed byte still verifies",
            file.display()
        );
    }
    // Another certificate is not trusted.
    let other = tempfile::tempdir()?;
    let (stranger, _) = test_certificate(other.path())?;
    ensure!(
        !osslsigncode_verify(&msi, &stranger)?.status.success(),
        "a stranger's CA verifies"
    );

    let files = msi_table(&msi, "File")?;
    let file = row(&files, "AgentExeFile")?;
    ensure!(file[2] == "sealprint-agent.exe", "{file:?}");
    ensure!(
        file[3] == fs::metadata(&signed_exe)?.len().to_string(),
        "File size {file:?}"
    );
    let services = msi_table(&msi, "ServiceInstall")?;
    let service = row(&services, "AgentService")?;
    // Name, DisplayName, ServiceType 16 (own process), StartType 2 (automatic), ErrorControl 1,
    // …, StartName LocalSystem, …, Arguments, Component_.
    ensure!(
        service[1] == "sealprint-agent" && service[3] == "16" && service[4] == "2",
        "{service:?}"
    );
    ensure!(
        service[8] == "LocalSystem" && service[11] == "AgentExe",
        "{service:?}"
    );
    let controls = msi_table(&msi, "ServiceControl")?;
    // 2 stop at install + 32 stop at uninstall + 128 remove at uninstall.
    ensure!(
        row(&controls, "AgentServiceControl")?[2] == "162",
        "{controls:?}"
    );
    let dirs = msi_table(&msi, "Directory")?;
    ensure!(
        row(&dirs, "INSTALLDIR")?[1] == "ProgramFiles64Folder",
        "{dirs:?}"
    );
    ensure!(
        row(&dirs, "DATADIR")?[1..] == ["CommonAppDataFolder", "sealprint"],
        "{dirs:?}"
    );
    ensure!(row(&msi_table(&msi, "CreateFolder")?, "DATADIR")?[1] == "DataDir");
    // 5 JScript in the Binary table + 1024 deferred + 2048 no impersonation (LocalSystem).
    ensure!(row(&msi_table(&msi, "CustomAction")?, "Harden")?[1] == "3077");
    let sequence = msi_table(&msi, "InstallExecuteSequence")?;
    ensure!(row(&sequence, "Harden")?[1] == "NOT REMOVE", "{sequence:?}");

    // The exe inside the MSI is the signed one, byte for byte.
    let extract = dir.path().join("extract");
    fs::create_dir(&extract)?;
    run(Command::new("msiextract").arg("-C").arg(&extract).arg(&msi))?;
    let inside = walk(&extract)?
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == "sealprint-agent.exe"))
        .context("no sealprint-agent.exe in the MSI")?;
    ensure!(
        fs::read(&inside)? == fs::read(&signed_exe)?,
        "the MSI holds another exe"
    );
    ensure!(osslsigncode_verify(&inside, &cert)?.status.success());
    Ok(())
}

fn walk(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(walk(&path)?);
        } else {
            out.push(path);
        }
    }
    Ok(out)
}

fn release_tool() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sealprint-release"));
    cmd.env_remove("SEALPRINT_RELEASE_KEY")
        .env_remove("SEALPRINT_RELEASE_KEY_FILE");
    cmd
}

/// Runs `sealprint-release` expecting a refusal; its stderr, which must contain `why`.
fn refused(cmd: &mut Command, why: &str) -> anyhow::Result<()> {
    let out = output(cmd)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "{cmd:?} was accepted");
    ensure!(
        stderr.contains(why),
        "{cmd:?}: wanted {why:?}, got: {stderr}"
    );
    Ok(())
}

#[test]
fn release_manifest_signs_verifies_and_refuses() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let key = d.join("release.key");
    run(release_tool().arg("keygen").arg("--out").arg(&key))?;
    ensure!(
        mode_owner(key.to_str().context("utf-8")?)?.starts_with("600 "),
        "key file mode"
    );
    let public = fs::read_to_string(d.join("release.key.pub"))?
        .trim()
        .to_owned();
    refused(
        release_tool().arg("keygen").arg("--out").arg(&key),
        "never overwritten",
    )?;

    let dist = d.join("dist");
    fs::create_dir(&dist)?;
    fs::write(
        dist.join("sealprint-agent_0.2.0_amd64.deb"),
        b"!<arch>\ndebian-binary",
    )?;
    fs::write(
        dist.join("sealprint-agent-0.2.0-x64.msi"),
        vec![0xd0u8; 4096],
    )?;
    let manifest = dist.join("release.json");
    let sign = |out: &Path| {
        let mut cmd = release_tool();
        cmd.arg("sign")
            .args(["--version", "0.2.0", "--out"])
            .arg(out)
            .arg("--artifact")
            .arg(format!(
                "linux-amd64={}",
                dist.join("sealprint-agent_0.2.0_amd64.deb").display()
            ))
            .arg("--artifact")
            .arg(format!(
                "windows-x86_64={}",
                dist.join("sealprint-agent-0.2.0-x64.msi").display()
            ));
        cmd
    };
    refused(&mut sign(&manifest), "no release key")?;
    run(sign(&manifest).arg("--key-file").arg(&key))?;
    let verify = |manifest: &Path, public: &str| {
        let mut cmd = release_tool();
        cmd.arg("verify")
            .args(["--public-key", public, "--manifest"])
            .arg(manifest)
            .arg("--dir")
            .arg(&dist);
        cmd
    };
    let ok = run(&mut verify(&manifest, &public))?;
    ensure!(
        ok.contains("verified 0.2.0") && ok.contains("ok windows-x86_64"),
        "{ok}"
    );
    let text = fs::read_to_string(&manifest)?;
    ensure!(
        text.contains("\"sha256\"") && text.contains("\"size\": 4096"),
        "{text}"
    );

    // The key from the environment (a CI secret) signs the same bytes.
    let from_env = d.join("from-env.json");
    run(sign(&from_env).env("SEALPRINT_RELEASE_KEY", fs::read_to_string(&key)?.trim()))?;
    run(&mut verify(&from_env, &public))?;

    // A wrong key.
    let other = d.join("other.key");
    run(release_tool().arg("keygen").arg("--out").arg(&other))?;
    let other_public = fs::read_to_string(d.join("other.key.pub"))?;
    refused(&mut verify(&manifest, other_public.trim()), "expected key")?;
    // A changed value in the manifest (the signature is over every field).
    let bumped = d.join("bumped.json");
    fs::write(&bumped, text.replace("\"size\": 4096", "\"size\": 4097"))?;
    refused(&mut verify(&bumped, &public), "signature does not verify")?;
    // A forged signature.
    let forged = d.join("forged.json");
    let sig_at = text.find("\"signature\": \"").context("signature field")? + 14;
    let mut forged_text = text.clone().into_bytes();
    forged_text[sig_at] = if forged_text[sig_at] == b'A' {
        b'B'
    } else {
        b'A'
    };
    fs::write(&forged, forged_text)?;
    refused(&mut verify(&forged, &public), "signature does not verify")?;
    // An unknown field is refused, not ignored.
    let extra = d.join("extra.json");
    fs::write(&extra, text.replacen('{', "{\"note\": \"x\",", 1))?;
    refused(&mut verify(&extra, &public), "malformed manifest")?;
    // A changed byte in an artifact.
    let msi = dist.join("sealprint-agent-0.2.0-x64.msi");
    let mut bytes = fs::read(&msi)?;
    bytes[100] ^= 0x01;
    fs::write(&msi, &bytes)?;
    refused(&mut verify(&manifest, &public), "SHA-256")?;
    bytes.push(0);
    fs::write(&msi, &bytes)?;
    refused(&mut verify(&manifest, &public), "4097 bytes")?;
    Ok(())
}
