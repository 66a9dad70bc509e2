//! authenticate for users with a second factor (`token_auth`): the core
//! decides ([`radius_core::login::second_factor`]); this file reads the
//! request and writes the answer. authorize gave such a PAP request
//! `Auth-Type := <instance>` (and refused CHAP, MS-CHAP and EAP-MSCHAPv2),
//! so the password is checked here against whatever credential authorize
//! served, and then:
//!
//! * the password alone, right: Access-Challenge with a `State` (bound to
//!   the user in the database, for `code_lifetime`) and a `Reply-Message`
//!   prompt, after queueing an e-mail/SMS code for such users; returns
//!   `handled`, as rlm_eap does for its challenges;
//! * an Access-Request with that `State`: the User-Password is the code;
//! * the password followed at once by the code, in one User-Password: for
//!   NASes that cannot answer a challenge.
//!
//! Wrong passwords and wrong codes are rejected and counted by the lockout
//! (post-auth); refusals that are no guess (a forged State, a code that
//! cannot be checked, a database error) are not.

use radius_core::account::{self, RejectReason};
use radius_core::login::second_factor::{self, Io, Issued, Method, Offer, Outcome, Refusal};
use radius_core::login::Verdict;
use radius_core::Error;

use super::{State, LOGIN_NAME_ATTR};
use crate::ffi::{Attr, Request, Value};
use crate::sys;

/// EAP types whose conversation ends in an inner request of their own
/// (TTLS, PEAP, FAST), plus the Identity and Nak that lead to one.
const TUNNEL_EAP_TYPES: [u8; 5] = [1, 3, 21, 25, 43];

/// Whether authorize's refusal of a second-factor user for lack of a
/// password ([`Refusal::NeedsPap`]) is the outer request of a PEAP/TTLS
/// conversation, which the site's `eap` lets through to this module:
/// its tunnel's inner request (this module again, with the inner
/// method's credentials) decides, so the outer one is answered `noop`.
/// Any other EAP method (MD5, GTC, MSCHAPv2 without a tunnel) stays
/// refused: it would be verified against the stock credential alone.
pub(super) fn outer_tunnel(verdict: &Verdict, req: &Request, eap: Option<&Value>) -> bool {
    if *verdict != Verdict::Reject(RejectReason::SecondFactor(Refusal::NeedsPap)) || req.is_inner()
    {
        return false;
    }
    // An EAP-Response (code 2): code, id, length (2), type.
    let Some(msg) = eap.and_then(|v| unhex(&v.text)) else {
        return false;
    };
    msg.len() >= 5 && msg[0] == 2 && TUNNEL_EAP_TYPES.contains(&msg[4])
}

impl State {
    /// `Some(rcode)` for a user with a second factor, None for everyone
    /// else (the usual authenticate follows).
    pub(super) fn authenticate_second_factor(&self, req: &Request) -> Option<sys::rlm_rcode_t> {
        let username = match self.login_name(req) {
            Some(name) => name,
            None => match req.xlat(&self.user_name_fmt) {
                Ok(u) => u,
                Err(e) => return Some(self.fail(req, "sql_user_name", e)),
            },
        };
        // authorize just read this user: normally a cache hit.
        let lookup = match self.store.cached(&username) {
            Some(l) => l,
            None => match self.rt.block_on(self.store.lookup(&username)) {
                Ok(l) => l,
                Err(e) => return Some(self.fail(req, "authenticate", e)),
            },
        };
        let profile = lookup.profile.as_ref()?;
        let method = profile.second_factor?;
        Some(self.second_factor(req, &username, profile.id, method))
    }

    fn second_factor(
        &self,
        req: &Request,
        username: &str,
        user_id: i64,
        method: Method,
    ) -> sys::rlm_rcode_t {
        let attrs = req.packet_attrs(&self.dict);
        let Some(pw) = attrs.get(Attr::UserPassword) else {
            self.not_counted(req);
            req.error(&format!("{username}: {}", Refusal::NeedsPap));
            return sys::RLM_MODULE_REJECT;
        };
        let io = Io {
            store: &self.store,
            rt: self.rt.handle(),
            settings: &self.policy.second_factor,
        };
        let now = account::now();
        let outcome = match attrs.get(Attr::State) {
            // The answer to a challenge: User-Password is the code.
            Some(state) => {
                let state = unhex(&state.text).unwrap_or_default();
                match self
                    .rt
                    .block_on(self.store.take_challenge(username, &state))
                {
                    Err(e) => return self.fail_uncounted(req, e),
                    Ok(Some(id)) if id == user_id => {
                        match second_factor::verify_code(&io, user_id, method, &pw.text, now) {
                            Ok(Ok(())) => Outcome::Accept,
                            Ok(Err(r)) => Outcome::Refused(r),
                            Err(e) => return self.fail_uncounted(req, e),
                        }
                    }
                    Ok(_) => Outcome::Refused(Refusal::BadState),
                }
            }
            None => {
                let control = req.control_pairs();
                let verifier = self.store.verifier();
                let mut check = |p: &str| {
                    second_factor::check_password(&control, verifier, username, p)
                        .map_err(Error::Busy)
                };
                let offer = Offer::Appended(&pw.text);
                match second_factor::decide(&io, user_id, method, offer, now, &mut check) {
                    Ok(o) => o,
                    Err(e) => return self.fail_uncounted(req, e),
                }
            }
        };
        match outcome {
            Outcome::Accept => sys::RLM_MODULE_OK,
            Outcome::WrongPassword(_) => {
                req.debug("password incorrect");
                sys::RLM_MODULE_REJECT
            }
            Outcome::Refused(Refusal::CodeRequired) => {
                self.challenge(req, username, user_id, method)
            }
            Outcome::Refused(r) => {
                if !r.counts() {
                    self.not_counted(req);
                }
                req.error(&format!("{username}: {r}"));
                sys::RLM_MODULE_REJECT
            }
        }
    }

    /// Answers Access-Challenge: a code queued for e-mail/SMS users, a
    /// State bound to the user, the prompt.
    fn challenge(
        &self,
        req: &Request,
        username: &str,
        user_id: i64,
        method: Method,
    ) -> sys::rlm_rcode_t {
        let settings = &self.policy.second_factor;
        let mut prompt = method.prompt().to_string();
        if method.sends_code() {
            let Some(secret) = &settings.secret else {
                return self.fail_uncounted(req, "no secret_file");
            };
            let issued = self.rt.block_on(self.store.issue_login_code(
                secret,
                user_id,
                method,
                settings.code_lifetime,
            ));
            match issued {
                Err(e) => return self.fail_uncounted(req, e),
                Ok(Err(r)) => {
                    self.not_counted(req);
                    req.error(&format!("{username}: {r}"));
                    return sys::RLM_MODULE_REJECT;
                }
                Ok(Ok(Issued::Limited)) => {
                    req.warn(&format!(
                        "{username}: no new code sent: {} went out in the last {} minutes",
                        second_factor::SEND_LIMIT,
                        second_factor::SEND_WINDOW.as_secs() / 60
                    ));
                    prompt = "Enter the last 6-digit code sent to you (no new code: too many were sent lately)".into();
                }
                Ok(Ok(Issued::Sent { .. })) => {}
            }
        }
        let state = match self.rt.block_on(self.store.open_challenge(
            username,
            user_id,
            settings.code_lifetime,
        )) {
            Ok(s) => s,
            Err(e) => return self.fail_uncounted(req, e),
        };
        let state: String = state.iter().map(|b| format!("{b:02x}")).collect();
        for (attr, value) in [(c"State", format!("0x{state}")), (c"Reply-Message", prompt)] {
            if let Err(e) = req.add_reply(attr, &value) {
                return self.fail_uncounted(req, e);
            }
        }
        req.set_reply_code(sys::PW_CODE_ACCESS_CHALLENGE);
        req.debug("password right: Access-Challenge for the second factor");
        sys::RLM_MODULE_HANDLED
    }

    /// The lockout must not count this request's refusal: no credential
    /// was guessed wrong.
    fn not_counted(&self, req: &Request) {
        let _ = req.set_control(LOGIN_NAME_ATTR, "");
    }

    fn fail_uncounted(&self, req: &Request, e: impl std::fmt::Display) -> sys::rlm_rcode_t {
        self.not_counted(req);
        self.fail(req, "second factor", e)
    }
}

/// An octets value as FreeRADIUS prints it (`0x0a1b...`).
fn unhex(text: &str) -> Option<Vec<u8>> {
    let hex = text.strip_prefix("0x")?;
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn octets_are_read_back() {
        assert_eq!(super::unhex("0x00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(super::unhex("0x"), Some(vec![]));
        assert_eq!(super::unhex("00ff"), None);
        assert_eq!(super::unhex("0x0"), None);
        assert_eq!(super::unhex("0xzz"), None);
        assert_eq!(super::unhex("0xé1"), None);
    }
}
