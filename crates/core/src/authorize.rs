//! rlm_sql's authorize algorithm (FreeRADIUS 3.2), step for step, over data
//! that has already been fetched.
//!
//! What is FreeRADIUS-specific (turning a row into a VALUE_PAIR, comparing
//! check items against the request with `paircompare()`, merging with
//! `radius_pairmove()`) is behind [`PairEngine`], so the module uses the
//! server's own functions (exact semantics, registered comparisons such as
//! `Huntgroup-Name` included) while this file keeps the control flow:
//! user check → user reply → groups by priority with Fall-Through → profile.

use std::sync::Arc;

use crate::attrs::{AttrRow, FallThrough};

/// What authorize found, as an rlm_rcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    Ok,
    Noop,
    NotFound,
    Updated,
    Fail,
    Reject,
    Invalid,
}

/// The stock tables' data for one user, in rlm_sql's query order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserData {
    /// radcheck rows, by id.
    pub check: Vec<AttrRow>,
    /// radreply rows, by id.
    pub reply: Vec<AttrRow>,
    /// radusergroup memberships, by priority. Shared: every member of a
    /// group holds the same rows, so a preload keeps them once.
    pub groups: Vec<Arc<GroupData>>,
}

impl UserData {
    /// Whether radusergroup puts the user in `group` (rlm_sql's
    /// SQL-Group: exact, case-sensitive).
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g.name == group)
    }
}

/// One group with its radgroupcheck and radgroupreply rows, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupData {
    pub name: String,
    pub check: Vec<AttrRow>,
    pub reply: Vec<AttrRow>,
}

/// Which list a row set is parsed for (FreeRADIUS allocates them in
/// different talloc contexts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    Check,
    Reply,
}

/// The server-side operations the algorithm needs.
pub trait PairEngine {
    type List;
    /// Parses rows into a pair list. An error (unknown attribute, bad
    /// operator, unparsable value) fails the request, as in rlm_sql.
    fn build(&mut self, rows: &[AttrRow], kind: ListKind) -> Result<Self::List, String>;
    /// True when every comparison item matches the request.
    fn compare(&mut self, check: &Self::List) -> bool;
    fn merge_control(&mut self, check: Self::List);
    fn merge_reply(&mut self, reply: Self::List);
    fn fall_through(&self, reply: &Self::List) -> FallThrough;
    /// `control:User-Profile`, read after the user's items were merged.
    fn user_profile(&self) -> Option<String>;
    /// Debug output for the request (radiusd -X shows it).
    fn debug(&mut self, _msg: &str) {}
    /// The first `control:name`, as `%{control:name}` prints it.
    fn control(&self, name: &str) -> Option<String>;
    /// `control:name := value`, replacing any earlier ones.
    fn set_control(&mut self, name: &str, value: &str) -> Result<(), String>;
    /// The first `reply:name`, printed.
    fn reply(&self, _name: &str) -> Option<String> {
        None
    }
    /// `reply:name := value`, replacing any earlier ones.
    fn set_reply(&mut self, name: &str, _value: &str) -> Result<(), String> {
        Err(format!("cannot set reply:{name} here"))
    }
}

/// The options of rlm_sql that change the algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub read_groups: bool,
    pub read_profiles: bool,
    pub default_profile: Option<String>,
}

/// Where the algorithm needs more data: the groups of a profile.
pub trait ProfileSource {
    fn profile_groups(&mut self, profile: &str) -> Result<Vec<Arc<GroupData>>, String>;
}

/// Runs rlm_sql's `mod_authorize` over `user`.
pub fn authorize<E: PairEngine, P: ProfileSource>(
    engine: &mut E,
    user: &UserData,
    opts: &Options,
    profiles: &mut P,
) -> Result<Rcode, String> {
    let mut rcode = Rcode::Noop;
    let mut user_found = false;
    let mut fall = FallThrough::Default;

    // rlm_sql skips the reply rows too when the user has no check rows or
    // the check items do not match; groups are still processed.
    'user: {
        if user.check.is_empty() {
            engine.debug("User not found in radcheck table");
            break 'user;
        }
        user_found = true;
        let check = engine.build(&user.check, ListKind::Check)?;
        if !engine.compare(&check) {
            engine.debug("check items do not match");
            break 'user;
        }
        engine.merge_control(check);
        rcode = Rcode::Ok;

        if user.reply.is_empty() {
            break 'user;
        }
        let reply = engine.build(&user.reply, ListKind::Reply)?;
        fall = engine.fall_through(&reply);
        engine.merge_reply(reply);
        rcode = Rcode::Ok;
    }

    if fall == FallThrough::Yes || (opts.read_groups && fall == FallThrough::Default) {
        let ret = process_groups(engine, &user.groups, &mut fall)?;
        if let Some(r) = merge_group_rcode(ret, &mut rcode, &mut user_found) {
            return Ok(r);
        }
    }

    if fall == FallThrough::Yes || (opts.read_profiles && fall == FallThrough::Default) {
        let profile = engine
            .user_profile()
            .or_else(|| opts.default_profile.clone())
            .filter(|p| !p.is_empty());
        if let Some(profile) = profile {
            engine.debug(&format!("Checking profile {profile}"));
            let groups = profiles.profile_groups(&profile)?;
            let ret = process_groups(engine, &groups, &mut fall)?;
            if let Some(r) = merge_group_rcode(ret, &mut rcode, &mut user_found) {
                return Ok(r);
            }
        }
    }

    Ok(if user_found { rcode } else { Rcode::NotFound })
}

/// How rlm_sql folds a group pass into the request's result. `Some` ends
/// authorize with that code.
fn merge_group_rcode(ret: Rcode, rcode: &mut Rcode, user_found: &mut bool) -> Option<Rcode> {
    match ret {
        Rcode::Updated | Rcode::Ok | Rcode::Noop => {
            if ret == Rcode::Updated {
                *rcode = Rcode::Updated;
            } else if ret == Rcode::Ok && *rcode != Rcode::Updated {
                *rcode = Rcode::Ok;
            }
            *user_found = true;
            None
        }
        Rcode::NotFound => None,
        other => Some(other),
    }
}

/// rlm_sql's `rlm_sql_process_groups`.
fn process_groups<E: PairEngine>(
    engine: &mut E,
    groups: &[Arc<GroupData>],
    fall: &mut FallThrough,
) -> Result<Rcode, String> {
    if groups.is_empty() {
        engine.debug("User not found in any groups");
        *fall = FallThrough::Default;
        return Ok(Rcode::NotFound);
    }
    let mut rcode = Rcode::Noop;
    for group in groups {
        if !group.check.is_empty() {
            let check = engine.build(&group.check, ListKind::Check)?;
            // A group whose check items do not match is skipped without
            // consulting Fall-Through.
            if !engine.compare(&check) {
                continue;
            }
            engine.debug(&format!(
                "Group \"{}\": Conditional check items matched",
                group.name
            ));
            engine.merge_control(check);
        }
        rcode = Rcode::Ok;
        let reply = engine.build(&group.reply, ListKind::Reply)?;
        *fall = engine.fall_through(&reply);
        engine.debug(&format!("Group \"{}\": Merging reply items", group.name));
        engine.merge_reply(reply);
        if *fall != FallThrough::Yes {
            break;
        }
    }
    Ok(rcode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attrs::Op;

    /// A tiny engine over string pairs: enough to pin down the control flow
    /// (the module uses FreeRADIUS' own comparisons and merging).
    #[derive(Default)]
    struct Strings {
        request: Vec<(String, String)>,
        control: Vec<(String, String)>,
        reply: Vec<(String, String)>,
    }

    impl PairEngine for Strings {
        type List = Vec<(String, Op, String)>;
        fn build(&mut self, rows: &[AttrRow], _: ListKind) -> Result<Self::List, String> {
            rows.iter()
                .map(|r| {
                    let op = r.op().map_err(|e| e.to_string())?;
                    Ok((r.attribute.clone(), op, r.value.clone()))
                })
                .collect()
        }
        fn compare(&mut self, check: &Self::List) -> bool {
            check.iter().all(|(a, op, v)| {
                let found = self.request.iter().find(|(ra, _)| ra == a);
                match op {
                    Op::Set | Op::Add | Op::Eq => true,
                    Op::CmpEq => found.is_some_and(|(_, rv)| rv == v),
                    Op::Ne => found.is_some_and(|(_, rv)| rv != v),
                    Op::CmpTrue => found.is_some(),
                    Op::CmpFalse => found.is_none(),
                    _ => false,
                }
            })
        }
        fn merge_control(&mut self, check: Self::List) {
            for (a, op, v) in check {
                if matches!(op, Op::Set | Op::Eq | Op::Add) {
                    self.control.push((a, v));
                }
            }
        }
        fn merge_reply(&mut self, reply: Self::List) {
            for (a, _, v) in reply {
                if a != "Fall-Through" {
                    self.reply.push((a, v));
                }
            }
        }
        fn fall_through(&self, reply: &Self::List) -> FallThrough {
            match reply.iter().find(|(a, _, _)| a == "Fall-Through") {
                Some((_, _, v)) if v.eq_ignore_ascii_case("yes") => FallThrough::Yes,
                Some(_) => FallThrough::No,
                None => FallThrough::Default,
            }
        }
        fn user_profile(&self) -> Option<String> {
            self.control("User-Profile")
        }
        fn control(&self, name: &str) -> Option<String> {
            self.control
                .iter()
                .find(|(a, _)| a == name)
                .map(|(_, v)| v.clone())
        }
        fn set_control(&mut self, name: &str, value: &str) -> Result<(), String> {
            self.control.retain(|(a, _)| a != name);
            self.control.push((name.into(), value.into()));
            Ok(())
        }
    }

    struct Profiles(Vec<(String, Vec<Arc<GroupData>>)>);
    impl ProfileSource for Profiles {
        fn profile_groups(&mut self, p: &str) -> Result<Vec<Arc<GroupData>>, String> {
            Ok(self
                .0
                .iter()
                .find(|(n, _)| n == p)
                .map(|(_, g)| g.clone())
                .unwrap_or_default())
        }
    }

    fn row(a: &str, op: &str, v: &str) -> AttrRow {
        AttrRow::new(a, op, v)
    }

    fn group(name: &str, check: Vec<AttrRow>, reply: Vec<AttrRow>) -> Arc<GroupData> {
        Arc::new(GroupData {
            name: name.into(),
            check,
            reply,
        })
    }

    fn opts() -> Options {
        Options {
            read_groups: true,
            read_profiles: true,
            default_profile: None,
        }
    }

    fn run(user: &UserData, request: &[(&str, &str)]) -> (Rcode, Strings) {
        let mut e = Strings {
            request: request
                .iter()
                .map(|(a, v)| (a.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
        let r = authorize(&mut e, user, &opts(), &mut Profiles(vec![])).unwrap();
        (r, e)
    }

    fn names(l: &[(String, String)]) -> Vec<String> {
        l.iter().map(|(a, v)| format!("{a}={v}")).collect()
    }

    #[test]
    fn unknown_user_is_notfound() {
        let (r, e) = run(&UserData::default(), &[]);
        assert_eq!(r, Rcode::NotFound);
        assert!(e.control.is_empty() && e.reply.is_empty());
    }

    #[test]
    fn user_and_first_group_without_fall_through() {
        let user = UserData {
            check: vec![row("Cleartext-Password", ":=", "pw")],
            reply: vec![row("Reply-Message", ":=", "hi")],
            groups: vec![
                group("g1", vec![], vec![row("Idle-Timeout", ":=", "600")]),
                group("g2", vec![], vec![row("Session-Timeout", ":=", "1")]),
            ],
        };
        let (r, e) = run(&user, &[]);
        assert_eq!(r, Rcode::Ok);
        assert_eq!(names(&e.control), ["Cleartext-Password=pw"]);
        // g2 is not reached: g1's reply has no Fall-Through = Yes.
        assert_eq!(names(&e.reply), ["Reply-Message=hi", "Idle-Timeout=600"]);
    }

    #[test]
    fn fall_through_yes_continues_and_no_stops() {
        let g = vec![
            group(
                "g1",
                vec![],
                vec![row("A", "+=", "1"), row("Fall-Through", "=", "Yes")],
            ),
            group("g2", vec![], vec![row("B", "+=", "2")]),
        ];
        let mut user = UserData {
            check: vec![row("Cleartext-Password", ":=", "pw")],
            reply: vec![row("Fall-Through", "=", "No")],
            groups: g,
        };
        let (_, e) = run(&user, &[]);
        assert!(e.reply.iter().all(|(a, _)| a != "A" && a != "B"));

        user.reply = vec![];
        let (_, e) = run(&user, &[]);
        assert_eq!(names(&e.reply), ["A=1", "B=2"]);
    }

    #[test]
    fn group_check_mismatch_skips_that_group_only() {
        let user = UserData {
            check: vec![row("Cleartext-Password", ":=", "pw")],
            reply: vec![],
            groups: vec![
                group(
                    "nas1",
                    vec![row("NAS-Identifier", "==", "nas1")],
                    vec![row("A", ":=", "1")],
                ),
                group("all", vec![], vec![row("B", ":=", "2")]),
            ],
        };
        let (_, e) = run(&user, &[("NAS-Identifier", "nas2")]);
        assert_eq!(names(&e.reply), ["B=2"]);
        let (_, e) = run(&user, &[("NAS-Identifier", "nas1")]);
        assert_eq!(names(&e.reply), ["A=1"]);
    }

    #[test]
    fn user_check_mismatch_skips_user_reply_but_not_groups() {
        let user = UserData {
            check: vec![
                row("Cleartext-Password", ":=", "pw"),
                row("NAS-Identifier", "==", "x"),
            ],
            reply: vec![row("R", ":=", "user")],
            groups: vec![group("g", vec![], vec![row("G", ":=", "grp")])],
        };
        let (r, e) = run(&user, &[("NAS-Identifier", "y")]);
        assert_eq!(r, Rcode::Ok);
        assert!(e.control.is_empty());
        assert_eq!(names(&e.reply), ["G=grp"]);
    }

    #[test]
    fn reply_only_user_without_groups_is_notfound_like_rlm_sql() {
        let user = UserData {
            check: vec![],
            reply: vec![row("R", ":=", "x")],
            groups: vec![],
        };
        let (r, e) = run(&user, &[]);
        assert_eq!(r, Rcode::NotFound);
        assert!(e.reply.is_empty());
    }

    #[test]
    fn groups_alone_make_the_user_found() {
        let user = UserData {
            groups: vec![group("g", vec![], vec![])],
            ..Default::default()
        };
        assert_eq!(run(&user, &[]).0, Rcode::Ok);
    }

    #[test]
    fn profile_groups_apply_after_user_groups() {
        let user = UserData {
            check: vec![
                row("Cleartext-Password", ":=", "pw"),
                row("User-Profile", ":=", "prof"),
            ],
            ..Default::default()
        };
        let mut e = Strings::default();
        let mut p = Profiles(vec![(
            "prof".into(),
            vec![group("pg", vec![], vec![row("P", ":=", "1")])],
        )]);
        let r = authorize(&mut e, &user, &opts(), &mut p).unwrap();
        assert_eq!(r, Rcode::Ok);
        assert_eq!(names(&e.reply), ["P=1"]);
    }

    #[test]
    fn bad_row_fails_the_request() {
        let user = UserData {
            check: vec![row("Cleartext-Password", "??", "pw")],
            ..Default::default()
        };
        let mut e = Strings::default();
        assert!(authorize(&mut e, &user, &opts(), &mut Profiles(vec![])).is_err());
    }
}
