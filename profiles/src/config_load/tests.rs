use super::*;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;

fn parse(text: &str) -> Result<crate::load::Loaded<Config>, ConfigError> {
    parse_config(text.as_bytes(), Path::new("oz.conf"))
}

#[test]
fn file_selection_order() {
    let flag = Path::new("/a/flag.conf");
    assert_eq!(config_path(Some(flag), Some(OsStr::new("/b/env.conf"))), (flag.to_path_buf(), true));
    assert_eq!(config_path(None, Some(OsStr::new("/b/env.conf"))), (PathBuf::from("/b/env.conf"), true));
    assert_eq!(config_path(None, Some(OsStr::new(""))), (PathBuf::from(DEFAULT_CONFIG_PATH), false));
    assert_eq!(config_path(None, None), (PathBuf::from(DEFAULT_CONFIG_PATH), false));
}

#[test]
fn keys_override_defaults_and_unknown_keys_warn() {
    let text = "# shipped\n{\"log_xpra\": false, \"Prefix_Path\": \"/usr\",\n \"route_table_base\": 9000,\n \"bogus\": 1, \"profile_dri\": \"/x\"}";
    let l = parse(text).unwrap();
    let c = l.value;
    assert!(!c.log_xpra);
    assert_eq!(c.prefix_path, PathBuf::from("/usr"));
    assert_eq!(c.route_table_base, 9000);
    assert_eq!(c.profile_dir, Config::default().profile_dir);
    assert_eq!(l.warnings.len(), 2);
    assert_eq!(l.warnings[0].to_string(), "oz.conf:4:2: bogus: unknown key (ignored)");
    assert!(l.warnings[1].message.contains("did you mean profile_dir"));
}

#[test]
fn errors_are_positioned() {
    let e = parse("{\"profile_dir\": \"relative\",\n \"log_xpra\": \"yes\"}").unwrap_err();
    assert_eq!(
        e.lines(),
        vec![
            "oz.conf:1:17: profile_dir: path \"relative\" must be absolute",
            "oz.conf:2:14: log_xpra: expected a boolean, found a string",
        ]
    );
    assert!(matches!(parse(""), Err(ConfigError::Invalid(d)) if d[0].message == "empty file"));
    assert!(parse("[]").is_err());
}

#[test]
fn etc_includes_are_prepended_and_deduplicated() {
    let c = parse("{\"etc_includes\": [\"/etc/hosts\", \"/etc/passwd\"]}").unwrap().value;
    assert_eq!(c.etc_includes[0], PathBuf::from("/etc/hosts"));
    assert_eq!(c.etc_includes[1], PathBuf::from("/etc/passwd"));
    assert_eq!(c.etc_includes.len(), crate::config::DEFAULT_ETC_INCLUDES.len() + 1);
    assert!(parse("{\"etc_includes\": [\"/var/x\"]}").is_err());
    assert!(parse("{\"etc_includes\": [\"/etc/../root\"]}").is_err());
}

#[test]
fn lists_replace_defaults() {
    let c = parse("{\"default_groups\": [\"audio\"], \"environment_vars\": []}").unwrap().value;
    assert_eq!(c.default_groups, ["audio"]);
    assert!(c.environment_vars.is_empty());
    let e = parse("{\"environment_vars\": [\"A\", \"=x\"]}").unwrap_err();
    assert_eq!(e.lines(), ["oz.conf:1:28: environment_vars[1]: invalid entry \"=x\", expected NAME or NAME=value"]);
}

#[test]
fn describe_lists_every_key() {
    let c = Config::default();
    let rows = c.describe();
    assert_eq!(rows.len(), CONFIG_KEYS.len());
    assert!(rows.iter().all(|r| !r.description.is_empty()));
    let row = |k: &str| rows.iter().find(|r| r.key == k).unwrap().value.clone();
    assert_eq!(row("socket_path"), "/run/oz/control.sock");
    assert_eq!(row("route_table_base"), "8000");
    assert_eq!(row("default_groups"), "audio video");
    assert!(row("agent_path").ends_with("/oz-agent"));
    // Every field of the model has a row: serde sees the same key set.
    let json = serde_json::to_value(&c).unwrap();
    let mut fields: Vec<&String> = json.as_object().unwrap().keys().collect();
    fields.sort();
    let mut keys: Vec<&str> = CONFIG_KEYS.iter().map(|(k, _)| *k).collect();
    keys.sort();
    assert_eq!(fields, keys);
}

#[test]
fn agent_path_resolution() {
    let mut c = Config::default();
    let exe_dir = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    assert_eq!(c.agent_path(), exe_dir.join("oz-agent"));
    c.agent_path = Some("/opt/oz/oz-agent".into());
    assert_eq!(c.agent_path(), PathBuf::from("/opt/oz/oz-agent"));
}

#[test]
fn load_reads_file_and_checks_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("oz.conf");
    std::fs::write(&file, "{\"log_xpra\": false}").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let l = load_config(Some(&file)).unwrap();
    assert!(l.from_file);
    assert!(!l.config.log_xpra);

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
    let e = load_config(Some(&file)).unwrap_err().to_string();
    assert!(e.contains("file is writable by everyone (mode 0666)"), "{e}");

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = load_config(Some(&file)).unwrap_err().to_string();
    assert!(e.contains("directory is writable by everyone"), "{e}");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();

    std::os::unix::fs::chown(&file, Some(1000), None).unwrap();
    let e = load_config(Some(&file)).unwrap_err().to_string();
    assert!(e.contains("file is owned by uid 1000, not root"), "{e}");

    std::os::unix::fs::chown(&file, Some(0), Some(1000)).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o664)).unwrap();
    let e = load_config(Some(&file)).unwrap_err().to_string();
    assert!(e.contains("writable by group 1000"), "{e}");
}

#[test]
fn explicit_missing_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = load_config(Some(&dir.path().join("absent.conf"))).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }), "{e}");
}
