//! `cordon.toml` as `serve` reads it: the environment's overrides, each key documented.

use cordon_gateway::Config;

fn written(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("cordon.toml");
    std::fs::write(&path, Config::default().to_toml().unwrap()).unwrap();
    path
}

#[test]
fn the_environment_sets_any_key_as_its_type_or_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = written(dir.path());
    let vars = |pairs: &[(&str, &str)]| {
        pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect::<Vec<_>>()
    };
    let read = |pairs: &[(&str, &str)]| Config::load_with(&path, vars(pairs));

    let config = read(&[
        ("CORDON_SERVER_LISTEN", "0.0.0.0:8443"),
        ("CORDON_DETECTION_ENABLED", "false"),
        ("CORDON_DETECTION_THRESHOLDS_ALERT_RISK", "5"),
        ("CORDON_LIMITS_HISTORY_EVENTS_MAX", "500"),
        ("CORDON_CUSTOMER_VIEW_SHOW_AGENT_NAMES", "true"),
        ("CORDON_INCIDENT_CONTACT", "dpo@exchange.example"),
        ("CORDON_POLICY_POLICIES", "policies/ours.cedar"),
        // Not configuration: left alone.
        ("CORDON_LOG", "debug"),
        ("CORDON_DATA", "/somewhere"),
        ("HOME", "/root"),
    ])
    .unwrap();
    assert_eq!(config.server.listen, "0.0.0.0:8443");
    assert!(!config.detection.enabled);
    assert!((config.detection.thresholds.alert_risk - 5.0).abs() < f64::EPSILON);
    assert_eq!(config.limits.history_events_max, 500);
    assert!(config.customer_view.show_agent_names);
    assert_eq!(config.incident.contact, "dpo@exchange.example");
    assert_eq!(config.policy.policies.as_deref(), Some("policies/ours.cedar"));
    assert_eq!(read(&[("CORDON_LISTEN", "127.0.0.1:9")]).unwrap().server.listen, "127.0.0.1:9", "the older name");
    for (url, allowed) in [
        ("http://127.0.0.1:9000/hook", "false"),
        ("http://[::1]:9000/hook", "false"),
        ("http://localhost/hook", "false"),
        ("https://hooks.exchange.example/cordon", "false"),
        ("http://hooks.internal/cordon", "true"),
    ] {
        let config =
            read(&[("CORDON_INCIDENT_PROTECT_WEBHOOK_URL", url), ("CORDON_WEBHOOKS_ALLOW_INSECURE_HTTP", allowed)]);
        assert!(config.is_ok(), "{url}: {config:?}");
    }

    let refused = [
        ("CORDON_DETECTION_ENABLED", "yes", "true or false"),
        ("CORDON_LIMITS_HISTORY_EVENTS_MAX", "lots", "a whole number"),
        ("CORDON_DETECTION_THRESHOLDS_ALERT_RISK", "high", "a number"),
        ("CORDON_SERVER_LISTN", "x", "names no key of [server]"),
        ("CORDON_CATEGORIES_REFUND", "email", "names no key of [categories]"),
        // A value of the right type that the checks refuse: thresholds out of order.
        ("CORDON_DETECTION_THRESHOLDS_ALERT_RISK", "20", "alert_risk (20) < step_up_risk"),
        ("CORDON_SERVER_TLS_CERT", "cert.pem", "go together"),
        // Alerts name agents and customers: no plain HTTP to another host unless allowed.
        ("CORDON_DETECTION_WEBHOOK_URL", "http://hooks.exchange.example/cordon", "plain HTTP to another host"),
    ];
    for (name, value, words) in refused {
        let error = read(&[(name, value)]).unwrap_err();
        assert!(error.contains(words), "{name}={value}: {error}");
        if !words.contains('<') && !words.contains("together") && !words.contains("plain HTTP") {
            assert!(error.contains(name), "the error names the variable: {error}");
        }
    }
    // Detection's numbers: none negative or not a number (negative points would lower the risk
    // of what should raise it), weights and shares at most 1. The error names the key.
    let thresholds_refused = [
        ("CORDON_DETECTION_THRESHOLDS_ARRANGED_POINTS", "-1", "arranged_points = -1 must be a number of 0 or more"),
        ("CORDON_DETECTION_THRESHOLDS_DRIFT_LIMIT", "inf", "drift_limit = inf must be a number of 0 or more"),
        ("CORDON_DETECTION_THRESHOLDS_TAKEN_WEIGHT", "1.5", "taken_weight = 1.5 must be between 0 and 1"),
        ("CORDON_DETECTION_THRESHOLDS_HANDOFF_PAIR_SHARE", "NaN", "handoff_pair_share = NaN must be between 0 and 1"),
    ];
    for (name, value, words) in thresholds_refused {
        let error = read(&[(name, value)]).unwrap_err();
        assert!(error.contains(words), "{name}={value}: {error}");
    }
    // [oidc]: what an operator (or whoever can set the service's environment) might put there.
    let issuer = ("CORDON_OIDC_ISSUER", "https://id.exchange.example");
    let audience = ("CORDON_OIDC_AUDIENCE", "https://cordon.exchange.example/api");
    assert!(read(&[issuer, audience]).is_ok());
    let oidc_refused: [(&[(&str, &str)], &str); 11] = [
        (&[("CORDON_OIDC_ISSUER", "http://id.exchange.example"), audience], "must be an https:// URL"),
        (&[("CORDON_OIDC_ISSUER", "https://id.exchange.example/\u{1b}[2J"), audience], "must be an https:// URL"),
        (&[("CORDON_OIDC_ISSUER", "ftp://id.exchange.example"), audience], "must be an https:// URL"),
        (&[issuer], "audience must name the API"),
        (&[issuer, audience, ("CORDON_OIDC_AGENT_CLAIM", "role")], "must be `email` or `sub`"),
        (&[issuer, audience, ("CORDON_OIDC_KEYS_REFRESH_SECONDS", "1")], "keys_refresh_seconds = 1 is outside"),
        (&[issuer, audience, ("CORDON_OIDC_MAX_AUTH_AGE_SECONDS", "-5")], "max_auth_age_seconds = -5 is outside"),
        (&[issuer, audience, ("CORDON_OIDC_CLIENT_ID", "cordon-console")], "go together"),
        (
            &[
                issuer,
                audience,
                ("CORDON_OIDC_CLIENT_ID", "cordon-console"),
                ("CORDON_OIDC_CLIENT_SECRET_FILE", "oidc-secret"),
                ("CORDON_OIDC_REDIRECT_URL", "http://cordon.exchange.example/console/oidc/callback"),
            ],
            "redirect_url",
        ),
        (
            &[
                issuer,
                audience,
                ("CORDON_OIDC_CLIENT_ID", "cordon-console"),
                ("CORDON_OIDC_CLIENT_SECRET_FILE", "oidc-secret"),
                ("CORDON_OIDC_REDIRECT_URL", "https://cordon.exchange.example/console/oidc/callback"),
                ("CORDON_OIDC_CLIENTS", "support-tool"),
            ],
            "leaves out the console's own client",
        ),
        (&[("CORDON_OIDC_REQUIRE_AMR", "otp")], "has settings but no issuer"),
    ];
    for (pairs, words) in oidc_refused {
        let error = read(pairs).unwrap_err();
        assert!(error.contains(words), "{pairs:?}: {error}");
    }
    // The file itself is never changed by an override.
    assert_eq!(std::fs::read_to_string(&path).unwrap(), Config::default().to_toml().unwrap());
}

#[test]
fn files_the_configuration_names_must_exist_in_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    assert_eq!(config.check_files(dir.path()), Ok(()));
    config.webhooks.ca_file = "internal-ca.pem".into();
    let error = config.check_files(dir.path()).unwrap_err();
    assert!(error.contains("[webhooks] ca_file = `internal-ca.pem`") && error.contains("is not a file"), "{error}");
    std::fs::write(dir.path().join("internal-ca.pem"), "").unwrap();
    assert_eq!(config.check_files(dir.path()), Ok(()), "a relative name is read from the data directory");
    config.policy.schema = Some(dir.path().join("nowhere.cedarschema").display().to_string());
    assert!(config.check_files(dir.path()).unwrap_err().contains("[policy] schema"));
}

/// docs/CONFIG.md documents every key `cordon init` writes, so a key added to the code and
/// not to the page fails here.
#[test]
fn every_key_is_documented() {
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/CONFIG.md")).unwrap();
    let defaults: toml::Table = toml::from_str(&Config::default().to_toml().unwrap()).unwrap();
    fn keys(table: &toml::Table, section: &str, found: &mut Vec<(String, String)>) {
        for (key, value) in table {
            match value {
                toml::Value::Table(inner) => {
                    let name = if section.is_empty() { key.clone() } else { format!("{section}.{key}") };
                    keys(inner, &name, found);
                }
                _ => found.push((section.to_string(), key.clone())),
            }
        }
    }
    let mut found = Vec::new();
    keys(&defaults, "", &mut found);
    found.push(("policy".into(), "policies".into()));
    found.push(("policy".into(), "schema".into()));
    assert!(found.len() > 60, "{found:?}");
    for (section, key) in found {
        assert!(page.contains(&format!("## [{section}]")), "docs/CONFIG.md has no section [{section}]");
        assert!(page.contains(&format!("| `{key}` |")), "docs/CONFIG.md does not document [{section}] {key}");
    }
}
