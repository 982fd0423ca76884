//! The SAM template: it lints clean with cfn-lint (which applies the SAM transform first, as
//! `sam validate --lint` does), and every function it deploys is a crate of this workspace with a
//! binary of the same name (what `rust-cargolambda` builds).
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn tool(cmd: &str, args: &[&str]) -> std::process::Output {
    Command::new(cmd)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd} ({e}): run ./scripts/test, which installs it"))
}

#[test]
fn cfn_lint_is_clean() {
    let out = tool("cfn-lint", &["template.yaml"]);
    assert!(
        out.status.success(),
        "cfn-lint findings:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `Binary:` names under `BuildProperties` of `AWS::Serverless::Function` resources.
fn template_binaries() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    let mut out = Vec::new();
    let mut in_build_props = false;
    for line in text.lines() {
        let t = line.trim();
        if t == "BuildProperties:" {
            in_build_props = true;
        } else if in_build_props {
            if let Some(name) = t.strip_prefix("Binary:") {
                out.push(name.trim().to_owned());
            }
            in_build_props = false;
        }
    }
    out
}

#[test]
fn every_function_is_a_crate_with_its_binary() {
    let text = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    let functions = text.matches("Type: AWS::Serverless::Function").count();
    let bins = template_binaries();
    assert_eq!(
        bins.len(),
        functions,
        "every function needs Metadata.BuildProperties.Binary: {bins:?}"
    );
    assert_eq!(
        text.matches("BuildMethod: rust-cargolambda").count(),
        functions
    );
    for b in &bins {
        let dir = root().join("crates").join(b);
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml"))
            .unwrap_or_else(|e| panic!("crates/{b}/Cargo.toml: {e}"));
        assert!(
            manifest.contains(&format!("name = \"{b}\"")),
            "crates/{b} is not the package {b}"
        );
        assert!(
            dir.join("src/main.rs").exists(),
            "crates/{b} has no binary (src/main.rs)"
        );
    }
    let mut sorted = bins.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "extract-guardduty",
            "fuse",
            "ipcheck",
            "prepare-cloudtrail",
            "scheduled-retrain"
        ]
    );
}

#[test]
fn no_wildcard_actions_or_public_buckets() {
    let text = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    for bad in [
        "Action: \"*\"",
        "Action: '*'",
        "Action: *",
        "FullAccess",
        "AdministratorAccess",
    ] {
        assert!(!text.contains(bad), "{bad:?} in the template");
    }
    // Service-wide actions (`s3:*`, `sqs:*`) only in the TLS-only *Deny* statements.
    let mut wildcards = 0;
    for pat in ["\"s3:*\"", "\"sqs:*\""] {
        for (i, _) in text.match_indices(pat) {
            let before = &text[..i];
            let stmt = &before[before.rfind("- Sid:").expect("statement with a Sid")..];
            assert!(
                stmt.contains("Effect: Deny"),
                "{pat} outside a Deny statement"
            );
            wildcards += 1;
        }
    }
    assert_eq!(wildcards, 2);
    // Every Allow on a bucket object names a prefix (…/train/cloudtrail/*, …/scores/*), never the whole bucket.
    assert!(
        !text.contains("${DataBucket.Arn}/*\"")
            || text.matches("${DataBucket.Arn}/*\"").count() == 1
    );
    assert!(text.contains("BlockPublicPolicy: true") && text.contains("aws:SecureTransport"));
}
