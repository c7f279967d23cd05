//! Tool lookup must agree with what a shell would run, or a test skips (or fails in CI) wrongly.

use super::find_command;

#[test]
fn finds_a_command_on_path_and_refuses_a_missing_one() {
    assert!(find_command(&["sh"]).is_some());
    assert!(find_command(&["echomesh-no-such-tool-4f1c"]).is_none());
    assert!(find_command(&["echomesh-no-such-tool-4f1c", "sh"]).is_some());
    assert!(find_command(&["/echomesh/no/such/path"]).is_none());
}

#[test]
fn require_command_evaluates_to_the_path() {
    let sh = crate::require_command!("sh");
    assert!(sh.ends_with("sh"));
}

#[test]
#[ignore = "run by skip_returns_locally_and_fails_in_ci in a child process"]
fn skipping_test() {
    crate::skip!("a reason given by the test");
}

/// Runs [`skipping_test`] in a child test process with `CI` set or not.
fn run_skipping_test(ci: bool) -> std::process::Output {
    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = std::process::Command::new(exe);
    cmd.args([
        "--ignored",
        "--exact",
        "root::tests::skipping_test",
        "--nocapture",
    ]);
    if ci {
        cmd.env("CI", "true");
    } else {
        cmd.env_remove("CI");
    }
    cmd.output().expect("run the test binary")
}

#[test]
fn skip_returns_locally_and_fails_in_ci() {
    let local = run_skipping_test(false);
    let err = String::from_utf8_lossy(&local.stderr);
    assert!(local.status.success(), "{err}");
    assert!(
        err.contains(
            "SKIP echomesh_testkit::root::tests::skipping_test: a reason given by the test"
        ),
        "{err}"
    );

    let ci = run_skipping_test(true);
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&ci.stdout),
        String::from_utf8_lossy(&ci.stderr)
    );
    assert!(!ci.status.success(), "{out}");
    assert!(out.contains("must not be skipped"), "{out}");
}
