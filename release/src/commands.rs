//! The file side of `sealprint-release`: reading keys and artifacts, writing manifests.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use sealprint_release::{Artifact, Manifest, ReleaseKey, ReleasePublicKey, SignedManifest};
use zeroize::Zeroizing;

/// Environment variable holding the private key's 64 hex digits (a CI secret).
const KEY_ENV: &str = "SEALPRINT_RELEASE_KEY";

fn write_new(path: &Path, mode: u32, text: &str) -> anyhow::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| {
            format!(
                "creating {} (an existing file is never overwritten)",
                path.display()
            )
        })?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

pub fn keygen(out: &Path) -> anyhow::Result<()> {
    let key = ReleaseKey::generate();
    let public = key.public();
    write_new(out, 0o600, &format!("{}\n", key.to_hex().as_str()))?;
    let mut pub_path = out.as_os_str().to_owned();
    pub_path.push(".pub");
    write_new(
        Path::new(&pub_path),
        0o644,
        &format!("{}\n", public.to_hex()),
    )?;
    println!("public key {} (id {})", public.to_hex(), public.id());
    Ok(())
}

fn load_key(key_file: Option<&Path>) -> anyhow::Result<ReleaseKey> {
    let text = match (key_file, std::env::var(KEY_ENV)) {
        (Some(path), _) => Zeroizing::new(
            fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        ),
        (None, Ok(hex)) => Zeroizing::new(hex),
        (None, Err(_)) => {
            bail!("no release key: give --key-file, SEALPRINT_RELEASE_KEY_FILE or {KEY_ENV}")
        }
    };
    Ok(ReleaseKey::from_hex(&text)?)
}

fn measure(spec: &str) -> anyhow::Result<Artifact> {
    let (platform, path) = spec
        .split_once('=')
        .ok_or_else(|| anyhow!("artifact {spec:?} is not PLATFORM=PATH"))?;
    let path = Path::new(path);
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow!("artifact {} has no file name", path.display()))?;
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(Artifact::measure(name, platform, file)?)
}

pub fn sign(
    key_file: Option<&Path>,
    version: &str,
    specs: &[String],
    out: &Path,
) -> anyhow::Result<()> {
    let key = load_key(key_file)?;
    let artifacts = specs
        .iter()
        .map(|s| measure(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let signed = SignedManifest::sign(Manifest::new(version, artifacts)?, &key)?;
    write_new(out, 0o644, &format!("{}\n", signed.to_json()))?;
    println!(
        "signed {} artifact(s) of {version} with key {}",
        signed.manifest.artifacts.len(),
        signed.key_id
    );
    Ok(())
}

pub fn verify(public_key: &str, manifest: &Path, dir: Option<&Path>) -> anyhow::Result<()> {
    let key_text = if Path::new(public_key).is_file() {
        fs::read_to_string(public_key).with_context(|| format!("reading {public_key}"))?
    } else {
        public_key.to_owned()
    };
    let trusted = ReleasePublicKey::from_hex(&key_text)?;
    let text =
        fs::read_to_string(manifest).with_context(|| format!("reading {}", manifest.display()))?;
    let signed = SignedManifest::from_json(&text)?;
    let verified = signed.verify(&trusted)?;
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => manifest.parent().unwrap_or(Path::new(".")).to_path_buf(),
    };
    for listed in &verified.manifest().artifacts {
        let path = dir.join(&listed.name);
        let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        verified.check_artifact(&Artifact::measure(&listed.name, &listed.platform, file)?)?;
        println!(
            "ok {} {} {} bytes",
            listed.platform, listed.name, listed.size
        );
    }
    println!(
        "verified {} {} (key {})",
        verified.manifest().version,
        manifest.display(),
        trusted.id()
    );
    Ok(())
}
