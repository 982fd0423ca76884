//! What the CLI's integration tests share: running the real `ipsight` binary. `ENTITY` is removed
//! from its environment, so a tester's shell never changes a result.
#![allow(dead_code)] // each test file uses its own subset

use std::path::Path;
use std::process::{Command, Output};

/// `ipsight ARGS` with `envs` set, as it ended (not checked).
pub fn run_with(args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ipsight"))
        .args(args)
        .env_remove("ENTITY")
        .envs(envs.iter().copied())
        .output()
        .expect("running ipsight")
}

/// `ipsight ARGS`, as it ended (not checked).
pub fn run(args: &[&str]) -> Output {
    run_with(args, &[])
}

/// `ipsight ARGS` with `envs` set, which must succeed.
pub fn succeed_with(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let out = run_with(args, envs);
    assert!(
        out.status.success(),
        "ipsight {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `ipsight ARGS`, which must succeed.
pub fn succeed(args: &[&str]) -> Output {
    succeed_with(args, &[])
}

/// The standard output of `ipsight ARGS`, which must succeed.
pub fn ok(args: &[&str]) -> String {
    String::from_utf8(succeed(args).stdout).expect("UTF-8 output")
}

pub fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}
