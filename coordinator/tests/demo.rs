//! The README's main job, as a user runs it: `c2c demo` syncs two embedded clusters
//! while writing, commits once `canCommit`, and reports no differences.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_syncs_commits_and_verifies() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_c2c"))
        .args([
            "demo",
            "--documents",
            "5000",
            "--write-seconds",
            "2",
            "--port",
            "0",
        ])
        .kill_on_drop(true)
        .output()
        .await
        .expect("c2c demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("COMMITTED"), "{stdout}");
    assert!(stdout.contains("verifier stream hashing"), "{stdout}");
    assert!(stdout.contains("canWrite true"), "{stdout}");
    assert!(stdout.contains(", 0 differences"), "{stdout}");
    assert!(!stdout.contains("verified: 0 namespaces"), "{stdout}");
}
