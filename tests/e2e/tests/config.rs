//! Module configuration errors fail `freeradius -C` and name the bad item.

use e2e::{e2e_env, rust_only, Radiusd, TestDb};

#[test]
fn bad_items_fail_the_config_check_with_their_name() {
    let env = e2e_env!();
    // rlm_rust-only: the module's own config items and error messages
    rust_only!(env);
    let db = TestDb::create(env, "config_bad");
    for (line, item) in [
        ("bogus_item = 1", "bogus_item"),
        ("pool_size = 0", "pool_size"),
        ("query_timeout = \"soon\"", "query_timeout"),
        ("read_groups = maybe", "read_groups"),
        ("dsn = \"\"", "dsn"),
    ] {
        let check = Radiusd::builder(env, &db, "config_bad")
            .config(line)
            .check_config();
        assert!(
            !check.success,
            "`{line}` passed the config check:\n{}",
            check.output
        );
        assert!(
            check.output.contains(item),
            "`{line}`: the output does not name '{item}':\n{}",
            check.output
        );
        let _ = std::fs::remove_dir_all(&check.dir);
    }
}

#[test]
fn good_config_passes_and_keeps_the_dsn_password_out_of_the_log() {
    let env = e2e_env!();
    // rlm_rust-only: the module's dsn item and its log line
    rust_only!(env);
    let db = TestDb::create(env, "config_good");
    // Trust authentication never asks for the password; it must still not be
    // written to the log.
    let dsn = format!("{} password=s3cret-do-not-log", db.dsn);
    let check = Radiusd::builder(env, &db, "config_good")
        .config(&format!("dsn = \"{dsn}\""))
        .check_config();
    assert!(check.success, "{}", check.output);
    let rad = Radiusd::builder(env, &db, "config_good")
        .config(&format!("dsn = \"{dsn}\""))
        .start();
    db.user("alice", "pw");
    assert!(rad.pap("alice", "pw").is_accept());
    let log = rad.log();
    assert!(
        !log.contains("s3cret-do-not-log"),
        "DSN password in the log:\n{log}"
    );
    // The start line names the database with the password masked: the test
    // must not pass because the line (or the log) is missing.
    let masked = format!("database {} password=***, pool_size", db.dsn);
    let start_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("rlm_rust (") && l.contains(", database "))
        .collect();
    assert!(
        !start_lines.is_empty(),
        "no rlm_rust start line naming the database in the log:\n{log}"
    );
    for line in &start_lines {
        assert!(
            line.contains(&masked),
            "start line without `{masked}`:\n{line}"
        );
    }
}
