//! Module configuration errors fail `freeradius -C` and name the bad item.

use e2e::{e2e_env, rust_only, Radiusd, TestDb};

#[test]
fn bad_items_fail_the_config_check_with_their_name() {
    let env = e2e_env!();
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
    assert!(
        !rad.log().contains("s3cret-do-not-log"),
        "DSN password in the log:\n{}",
        rad.log()
    );
}
