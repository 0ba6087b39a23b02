//! Tests of the `serve` configuration: parsing, merging, validation and the disk checks.

use super::*;

fn flags() -> Overrides {
    Overrides {
        data_dir: Some("/var/lib/sealprint".into()),
        master_key_file: Some("/etc/sealprint/master.key".into()),
        api_listen: Some("127.0.0.1:0".into()),
        mesh_listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
        ..Overrides::default()
    }
}

#[test]
fn flags_alone_suffice_with_defaults() {
    let c = resolve(FileConfig::default(), flags()).expect("valid");
    assert_eq!(c.heartbeat_interval, Duration::from_secs(10));
    assert_eq!(c.drain_grace, Duration::from_secs(10));
    assert_eq!(c.log_format, LogFormat::Plain);
    assert!(c.mesh_advertise.is_empty());
}

#[test]
fn flags_override_file() {
    let file = parse_file(
        r#"
        data_dir = "/srv/a"
        master-key-file = "/etc/k"
        api_listen = "0.0.0.0:8443"
        mesh_listen = ["/ip4/0.0.0.0/tcp/4001"]
        mesh_advertise = ["/dns4/coord.example/tcp/4001"]
        heartbeat_interval_secs = 5
        log_format = "json"
        "#,
    )
    .expect("parses");
    let c = resolve(
        file,
        Overrides {
            api_listen: Some("127.0.0.1:9000".into()),
            ..Overrides::default()
        },
    )
    .expect("valid");
    assert_eq!(c.data_dir, PathBuf::from("/srv/a"));
    assert_eq!(c.api_listen, "127.0.0.1:9000".parse().expect("addr"));
    assert_eq!(c.heartbeat_interval, Duration::from_secs(5));
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.mesh_advertise.len(), 1);
}

#[test]
fn unknown_keys_are_refused() {
    assert!(matches!(
        parse_file("data_dirr = \"/x\""),
        Err(ConfigError::Toml(_))
    ));
}

#[test]
fn every_problem_is_reported() {
    let err = resolve(
        FileConfig::default(),
        Overrides {
            api_listen: Some("nope".into()),
            mesh_listen: vec!["/ip4/1.2.3.4".into(), "garbage".into()],
            heartbeat_interval_secs: Some(0),
            drain_grace_secs: Some(301),
            ..Overrides::default()
        },
    )
    .expect_err("invalid");
    let ConfigError::Invalid(problems) = err else {
        panic!("expected Invalid, got {err:?}");
    };
    assert_eq!(problems.len(), 7, "{problems:#?}");
}

#[test]
fn retention_is_bounded() {
    let c = resolve(FileConfig::default(), flags()).expect("valid");
    assert_eq!(c.retention.pii, Duration::from_secs(30 * 24 * 3600));
    assert_eq!(c.retention.audit, Duration::from_secs(365 * 24 * 3600));
    let file = parse_file("pii_retention_days = 7\naudit-retention-days = 90").expect("toml");
    let c = resolve(file, flags()).expect("valid");
    assert_eq!(c.retention.pii, Duration::from_secs(7 * 24 * 3600));
    let file =
        parse_file("pii_retention_days = 31\naudit_retention_days = 89\nmonitor_interval_secs = 0")
            .expect("toml");
    let Err(ConfigError::Invalid(problems)) = resolve(file, flags()) else {
        panic!("expected problems");
    };
    assert_eq!(problems.len(), 3, "{problems:#?}");
}

#[test]
fn check_paths_reports_missing_things() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = resolve(FileConfig::default(), flags()).expect("valid");
    c.data_dir = dir.path().join("absent");
    c.master_key_file = dir.path().join("absent.key");
    let Err(ConfigError::Invalid(problems)) = c.check_paths() else {
        panic!("expected problems");
    };
    assert_eq!(problems.len(), 2, "{problems:#?}");
}

#[test]
fn webhook_secret_must_be_private_and_long() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("secret");
    std::fs::write(&p, "whsec_0123456789abcdef\n").expect("write");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    assert!(matches!(
        load_secret(Some(&p)),
        Err(ConfigError::Invalid(_))
    ));
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let s = load_secret(Some(&p)).expect("ok").expect("some");
    assert_eq!(s.as_slice(), b"whsec_0123456789abcdef");
    std::fs::write(&p, "short").expect("write");
    assert!(matches!(
        load_secret(Some(&p)),
        Err(ConfigError::Invalid(_))
    ));
    assert!(load_secret(None).expect("none").is_none());
}

#[test]
fn agent_versions_default_to_the_floor_and_are_validated_strictly() {
    use crate::core::agents::MIN_AGENT_VERSION;
    use sealprint_protocol::Version;
    let c = resolve(FileConfig::default(), flags()).expect("valid");
    assert_eq!(c.agent_versions.min, MIN_AGENT_VERSION);
    assert_eq!(c.agent_versions.next, None);

    let file = parse_file(
        r#"
        min-agent-version = "0.2.0"
        next_min_agent_version = "0.3.0"
        next_min_agent_version_from = 1767225600
        "#,
    )
    .expect("parses");
    let c = resolve(file.clone(), flags()).expect("valid");
    assert_eq!(c.agent_versions.min, Version::new(0, 2, 0));
    let next = c.agent_versions.next.expect("announced");
    assert_eq!(
        (next.min, next.from_s),
        (Version::new(0, 3, 0), 1_767_225_600)
    );
    // The flag wins over the file.
    let c = resolve(
        file,
        Overrides {
            min_agent_version: Some("0.2.5".into()),
            ..flags()
        },
    )
    .expect("valid");
    assert_eq!(c.agent_versions.min, Version::new(0, 2, 5));

    let err = resolve(
        FileConfig::default(),
        Overrides {
            min_agent_version: Some("1.2".into()),
            next_min_agent_version: Some("v2.0.0".into()),
            ..flags()
        },
    )
    .expect_err("invalid");
    let ConfigError::Invalid(problems) = err else {
        panic!("expected Invalid, got {err:?}");
    };
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(
        problems[0].starts_with("min_agent_version: \"1.2\""),
        "{problems:#?}"
    );

    for (next, from) in [
        (Some("0.3.0"), None),
        (None, Some(5)),
        (Some("0.0.9"), Some(5)),
    ] {
        let err = resolve(
            FileConfig::default(),
            Overrides {
                next_min_agent_version: next.map(str::to_owned),
                next_min_agent_version_from: from,
                ..flags()
            },
        );
        assert!(
            matches!(err, Err(ConfigError::Invalid(p)) if p.len() == 1),
            "{next:?} {from:?}"
        );
    }
}

#[test]
fn metrics_listen_is_off_by_default_and_checked() {
    let c = resolve(FileConfig::default(), flags()).expect("valid");
    assert_eq!(c.metrics_listen, None);
    let file = parse_file("metrics-listen = \"127.0.0.1:9464\"").expect("parses");
    let c = resolve(file, flags()).expect("valid");
    assert_eq!(
        c.metrics_listen,
        Some("127.0.0.1:9464".parse().expect("addr"))
    );
    let err = resolve(
        FileConfig::default(),
        Overrides {
            metrics_listen: Some("localhost".into()),
            ..flags()
        },
    )
    .expect_err("invalid");
    assert!(err.to_string().contains("metrics_listen"), "{err}");
}
