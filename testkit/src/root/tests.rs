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
