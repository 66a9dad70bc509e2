//! The `module_t` radiusd loads and its callbacks. Each callback checks its
//! pointers, runs inside [`guard`], and hands owned values to the core.

use std::ffi::{c_int, c_void, CString};
use std::ptr;
use std::time::{Duration, Instant};

use radius_core::account;
use radius_core::accounting::{AcctOutcome, AcctRecord, AcctStatus};
use radius_core::authorize::Rcode;
use radius_core::config::{Durability, ModuleConfig};
use radius_core::login::{self, Attempt, BlockingIo, Policy, Verdict, Verified, VerifyError};
use radius_core::metrics::{self, Section};
use radius_core::postauth::PostAuthRecord;
use radius_core::store::Store;
use radius_core::usage;

use crate::ffi::{self, Attr, ConfItem, Dict, Request};
use crate::guard::{guard, guard_int, install_panic_hook};
use crate::{logger, sys};

mod two_factor;

/// What radiusd allocates per instance (`inst_size` zeroed bytes): only a
/// pointer to the Rust state, created in instantiate, freed in detach.
#[repr(C)]
struct Instance {
    state: *mut State,
    /// The group comparison's attribute (`Rust-Group`, or
    /// `<instance>-Rust-Group`), registered in bootstrap, dropped in detach.
    group_attr: *mut CString,
}

struct State {
    name: String,
    cfg: ModuleConfig,
    store: Store,
    dict: Dict,
    user_name_fmt: CString,
    policy: Policy,
    rt: tokio::runtime::Runtime,
}

/// The `module_t` is plain data with pointers to static strings and
/// functions; wrapping it lets it be a `static`.
#[repr(transparent)]
pub struct Module(sys::module_t);

// SAFETY: the wrapped module_t is immutable and only holds pointers to
// 'static data and functions.
unsafe impl Sync for Module {}

const fn methods() -> [sys::packetmethod; sys::MOD_COUNT as usize] {
    let mut m: [sys::packetmethod; sys::MOD_COUNT as usize] = [None; sys::MOD_COUNT as usize];
    m[sys::MOD_AUTHENTICATE as usize] = Some(mod_authenticate);
    m[sys::MOD_AUTHORIZE as usize] = Some(mod_authorize);
    m[sys::MOD_PREACCT as usize] = Some(mod_preacct);
    m[sys::MOD_ACCOUNTING as usize] = Some(mod_accounting);
    m[sys::MOD_POST_AUTH as usize] = Some(mod_post_auth);
    m[sys::MOD_SESSION as usize] = Some(mod_checksimul);
    m
}

/// radiusd looks this symbol up after dlopen("rlm_rust.so").
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
pub static rlm_rust: Module = Module(sys::module_t {
    magic: sys::RLM_MODULE_INIT,
    name: c"rust".as_ptr(),
    type_: sys::RLM_TYPE_THREAD_SAFE as c_int,
    inst_size: std::mem::size_of::<Instance>(),
    // Items are read by walking the section in instantiate, so unknown
    // items can be refused by name.
    config: ptr::null(),
    bootstrap: Some(mod_bootstrap),
    instantiate: Some(mod_instantiate),
    detach: Some(mod_detach),
    methods: methods(),
});

/// The internal attribute holding a hash this module verifies itself.
const PASSWORD_HASH_ATTR: &std::ffi::CStr = c"Rust-Password-Hash";
/// The internal attribute marking a request whose outcome the lockout
/// counts: it holds the name looked up, and post-auth records the outcome.
const LOGIN_NAME_ATTR: &std::ffi::CStr = c"Rust-Login-Name";

extern "C" fn mod_bootstrap(cs: *mut sys::CONF_SECTION, instance: *mut c_void) -> c_int {
    guard_int("bootstrap", || {
        install_panic_hook();
        logger::install();
        if cs.is_null() || instance.is_null() {
            ffi::radlog(sys::L_ERR, "rlm_rust: bootstrap called without a section");
            return -1;
        }
        let fail = |e: String| {
            ffi::cf_log_err(cs, &format!("rlm_rust: {e}"));
            -1
        };
        for attr in [PASSWORD_HASH_ATTR, LOGIN_NAME_ATTR] {
            if let Err(e) = ffi::register_attribute(attr, sys::PW_TYPE_STRING) {
                return fail(e);
            }
        }
        // rlm_sqlcounter's check items (integer64, so limits past 4 GiB
        // parse in radcheck rows) and the octets left in the reply.
        let counters = usage::COUNTERS.iter().map(|c| c.attr);
        for attr in counters.chain([usage::OCTETS_REMAINING]) {
            if let Err(e) = ffi::register_attribute(&ffi::cstring(attr), sys::PW_TYPE_INTEGER64) {
                return fail(e);
            }
        }
        // As rlm_sql's SQL-Group: before the sites are compiled, so that
        // unlang can name it.
        let group = ffi::cstring(&match ffi::section_name2(cs) {
            Some(n) => format!("{n}-Rust-Group"),
            None => "Rust-Group".to_string(),
        });
        if let Err(e) = ffi::register_compare(&group, rust_group_cmp, instance) {
            return fail(e);
        }
        // SAFETY: instance is radiusd's zeroed inst_size allocation for
        // this module (an Instance), ours until detach.
        unsafe { (*(instance as *mut Instance)).group_attr = Box::into_raw(Box::new(group)) };
        0
    })
}

/// `Rust-Group == "name"` in unlang or a check item: whether the request's
/// user (sql_user_name) is in that group, from the cached user data.
/// 0 is a match; anything else (also before instantiate) is not.
extern "C" fn rust_group_cmp(
    instance: *mut c_void,
    request: *mut sys::REQUEST,
    _request_vp: *mut sys::VALUE_PAIR,
    check: *mut sys::VALUE_PAIR,
    _check_list: *mut sys::VALUE_PAIR,
    _reply_list: *mut *mut sys::VALUE_PAIR,
) -> c_int {
    guard_int("Rust-Group", || {
        if instance.is_null() || request.is_null() {
            return 1;
        }
        // SAFETY: check is the live check pair of this comparison.
        let Some(want) = (unsafe { ffi::pair_string(check) }) else {
            return 1;
        };
        // SAFETY: instance is our Instance (registered with it in
        // bootstrap); its state is null before instantiate.
        let state = unsafe { (*(instance as *const Instance)).state };
        if state.is_null() {
            return 1;
        }
        // SAFETY: the state lives until detach, which unregisters this
        // comparison first; request is the live request being compared.
        let (state, req) = unsafe { (&*state, Request::new(request)) };
        match state.in_group(&req, &String::from_utf8_lossy(&want)) {
            Ok(true) => 0,
            Ok(false) => 1,
            Err(e) => {
                req.error(&format!("Rust-Group: {e}"));
                1
            }
        }
    })
}

extern "C" fn mod_instantiate(cs: *mut sys::CONF_SECTION, instance: *mut c_void) -> c_int {
    guard_int("instantiate", || {
        if cs.is_null() || instance.is_null() {
            ffi::radlog(sys::L_ERR, "rlm_rust: instantiate called without a section");
            return -1;
        }
        match State::new(cs) {
            Ok(state) => {
                // SAFETY: instance is radiusd's zeroed inst_size allocation
                // for this module, i.e. an Instance, owned by us until detach.
                unsafe { (*(instance as *mut Instance)).state = Box::into_raw(Box::new(state)) };
                0
            }
            Err(msg) => {
                ffi::cf_log_err(cs, &msg);
                -1
            }
        }
    })
}

extern "C" fn mod_detach(instance: *mut c_void) -> c_int {
    guard_int("detach", || {
        if instance.is_null() {
            return 0;
        }
        // SAFETY: instance is our Instance; group_attr is null or the Box
        // leaked in bootstrap, taken back exactly once.
        let group = unsafe {
            let inst = &mut *(instance as *mut Instance);
            std::mem::replace(&mut inst.group_attr, ptr::null_mut())
        };
        if !group.is_null() {
            // SAFETY: see above.
            let group = unsafe { Box::from_raw(group) };
            // Before the state goes: no comparison may reach it after.
            ffi::unregister_compare(&group, rust_group_cmp);
        }
        // SAFETY: instance is our Instance; the state pointer is either null
        // or the Box we leaked in instantiate, taken back exactly once.
        let state = unsafe {
            let inst = &mut *(instance as *mut Instance);
            std::mem::replace(&mut inst.state, ptr::null_mut())
        };
        if !state.is_null() {
            // SAFETY: see above.
            let state = unsafe { Box::from_raw(state) };
            state.shutdown();
        }
        0
    })
}

/// Every request callback: checks the pointers radiusd passed, runs `f` on
/// the instance state behind the panic guard, and reports the section, the
/// answer (`fail` for a panic) and the time taken to the metrics: the one
/// place they are counted.
fn request_callback(
    section: Section,
    instance: *mut c_void,
    request: *mut sys::REQUEST,
    f: impl FnOnce(&State, &Request) -> sys::rlm_rcode_t,
) -> sys::rlm_rcode_t {
    guard(section.as_str(), || {
        if instance.is_null() || request.is_null() {
            ffi::radlog(
                sys::L_ERR,
                "rlm_rust: called with a null instance or request",
            );
            return sys::RLM_MODULE_FAIL;
        }
        // SAFETY: instance is our Instance (see mod_instantiate); request is the
        // live request of this callback, with its packet checked below.
        let (state, has_packet) = unsafe {
            (
                (*(instance as *const Instance)).state,
                !(*request).packet.is_null() && !(*request).reply.is_null(),
            )
        };
        if state.is_null() || !has_packet {
            ffi::radlog(
                sys::L_ERR,
                "rlm_rust: called before instantiate or without a packet",
            );
            return sys::RLM_MODULE_FAIL;
        }
        // SAFETY: the state lives from instantiate to detach, and radiusd runs
        // no request callbacks outside that span. Request: see above.
        let (state, req) = unsafe { (&*state, Request::new(request)) };
        let started = Instant::now();
        let rc = guard(section.as_str(), || f(state, &req));
        state
            .store
            .metrics()
            .request(section, metrics_rcode(rc), started.elapsed());
        rc
    })
}

extern "C" fn mod_authorize(instance: *mut c_void, request: *mut sys::REQUEST) -> sys::rlm_rcode_t {
    request_callback(Section::Authorize, instance, request, State::authorize)
}

extern "C" fn mod_authenticate(
    instance: *mut c_void,
    request: *mut sys::REQUEST,
) -> sys::rlm_rcode_t {
    request_callback(
        Section::Authenticate,
        instance,
        request,
        State::authenticate,
    )
}

extern "C" fn mod_preacct(instance: *mut c_void, request: *mut sys::REQUEST) -> sys::rlm_rcode_t {
    request_callback(Section::Preacct, instance, request, State::preacct)
}

extern "C" fn mod_accounting(
    instance: *mut c_void,
    request: *mut sys::REQUEST,
) -> sys::rlm_rcode_t {
    request_callback(Section::Accounting, instance, request, State::accounting)
}

extern "C" fn mod_post_auth(instance: *mut c_void, request: *mut sys::REQUEST) -> sys::rlm_rcode_t {
    request_callback(Section::PostAuth, instance, request, State::post_auth)
}

extern "C" fn mod_checksimul(
    instance: *mut c_void,
    request: *mut sys::REQUEST,
) -> sys::rlm_rcode_t {
    request_callback(Section::Session, instance, request, State::checksimul)
}

/// `journal_dir`, or `${radacctdir}/rlm_rust/<instance>`: beside
/// FreeRADIUS's own accounting spool, writable by the server's user.
fn journal_dir(cfg: &ModuleConfig, name: &str) -> Result<std::path::PathBuf, String> {
    if let Some(d) = &cfg.journal_dir {
        return Ok(d.clone());
    }
    let base = ffi::radacct_dir()
        .filter(|d| d.starts_with('/'))
        .ok_or_else(|| {
            format!("rlm_rust ({name}): radiusd has no absolute radacctdir: set journal_dir")
        })?;
    Ok(std::path::Path::new(&base).join("rlm_rust").join(name))
}

/// This server's name in `rlm_rust_journal`.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// radiusd's answer code as the metrics name it.
fn metrics_rcode(rc: sys::rlm_rcode_t) -> metrics::Rcode {
    match rc {
        sys::RLM_MODULE_REJECT => metrics::Rcode::Reject,
        sys::RLM_MODULE_OK => metrics::Rcode::Ok,
        sys::RLM_MODULE_HANDLED => metrics::Rcode::Handled,
        sys::RLM_MODULE_INVALID => metrics::Rcode::Invalid,
        sys::RLM_MODULE_USERLOCK => metrics::Rcode::Userlock,
        sys::RLM_MODULE_NOTFOUND => metrics::Rcode::NotFound,
        sys::RLM_MODULE_NOOP => metrics::Rcode::Noop,
        sys::RLM_MODULE_UPDATED => metrics::Rcode::Updated,
        // RLM_MODULE_FAIL, and anything a module should not answer.
        _ => metrics::Rcode::Fail,
    }
}

fn rcode(r: Rcode) -> sys::rlm_rcode_t {
    match r {
        Rcode::Ok => sys::RLM_MODULE_OK,
        Rcode::Noop => sys::RLM_MODULE_NOOP,
        Rcode::NotFound => sys::RLM_MODULE_NOTFOUND,
        Rcode::Updated => sys::RLM_MODULE_UPDATED,
        Rcode::Fail => sys::RLM_MODULE_FAIL,
        Rcode::Reject => sys::RLM_MODULE_REJECT,
        Rcode::Invalid => sys::RLM_MODULE_INVALID,
    }
}

impl State {
    fn new(cs: *mut sys::CONF_SECTION) -> Result<State, String> {
        let name = ffi::section_instance_name(cs);
        let mut items = Vec::new();
        for item in ffi::conf_items(cs) {
            match item {
                ConfItem::Pair(n, v) => items.push((n, v)),
                ConfItem::Section(s) => {
                    return Err(format!(
                        "rlm_rust ({name}): unknown subsection '{s}' (this module takes only plain items)"
                    ))
                }
            }
        }
        let cfg = ModuleConfig::from_items(items.iter().map(|(n, v)| (n.as_str(), v.as_str())))
            .map_err(|e| format!("rlm_rust ({name}): invalid configuration item {e}"))?;
        let dict = Dict::resolve().map_err(|e| format!("rlm_rust ({name}): {e}"))?;
        let user_name_fmt = CString::new(cfg.sql_user_name.as_str()).map_err(|_| {
            format!("rlm_rust ({name}): invalid configuration item 'sql_user_name': contains NUL")
        })?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("rlm_rust")
            .enable_all()
            .build()
            .map_err(|e| format!("rlm_rust ({name}): cannot start the I/O runtime: {e}"))?;
        // Before the core's TLS connector exists (see the function).
        ffi::reserve_freeradius_ssl_ex_indices();
        let mut store = Store::new(&cfg).map_err(|e| format!("rlm_rust ({name}): {e}"))?;
        // Not under `radiusd -C`: the journal belongs to the running server.
        let journal = match (cfg.durability, ffi::checking_config()) {
            (Durability::Journal, false) => {
                let dir = journal_dir(&cfg, &name)?;
                store
                    .start_journal(&dir, cfg.journal_max_bytes, &host_name())
                    .map_err(|e| {
                        format!("rlm_rust ({name}): journal_dir {}: {e}", dir.display())
                    })?;
                format!(", journal {}", dir.display())
            }
            (Durability::Journal, true) => ", journal".to_string(),
            (Durability::Database, _) => ", durability database".to_string(),
        };
        store
            .start_background(rt.handle(), cfg.cache_size, cfg.cache_preload)
            .map_err(|e| format!("rlm_rust ({name}): {e}"))?;
        // Not under `radiusd -C` either: the running server holds the port.
        let metrics = match cfg.metrics_listen.filter(|_| !ffi::checking_config()) {
            Some(addr) => {
                let listener =
                    metrics::bind(addr).map_err(|e| format!("rlm_rust ({name}): {e}"))?;
                let at = listener.local_addr().unwrap_or(addr);
                store.serve_metrics(rt.handle(), listener);
                format!(", metrics on http://{at}/metrics")
            }
            None => String::new(),
        };
        let mut policy = Policy::from_config(&cfg, &name);
        if let Some(path) = &cfg.secret_file {
            let secret = radius_core::secret::Secret::load(path).map_err(|e| {
                format!("rlm_rust ({name}): invalid configuration item 'secret_file': {e}")
            })?;
            policy.second_factor.secret = Some(secret);
        }
        ffi::radlog(
            sys::L_INFO,
            &format!(
                "rlm_rust ({name}): version {}, database {}, pool_size {}, cache_size {}{}{journal}{metrics}",
                radius_core::VERSION,
                cfg.dsn_for_log(),
                cfg.pool_size,
                cfg.cache_size,
                if cfg.cache_preload { ", preloaded" } else { "" }
            ),
        );
        // A database that is down must not stop radiusd: requests fail
        // until it is back.
        match rt.block_on(store.ping()) {
            Ok(()) => ffi::radlog(sys::L_INFO, &format!("rlm_rust ({name}): database reachable")),
            Err(e) => ffi::radlog(
                sys::L_WARN,
                &format!("rlm_rust ({name}): database not reachable at start ({e}); requests fail until it is back"),
            ),
        }
        Ok(State {
            name,
            cfg,
            store,
            dict,
            user_name_fmt,
            policy,
            rt,
        })
    }

    fn shutdown(self) {
        let State {
            name, store, rt, ..
        } = self;
        // Records a commit carried on average: how well the group commit
        // amortised its fixed cost (a transaction, a WAL flush).
        let [(pc, pr), (ac, ar)] = store.commit_totals();
        if store.journal_status().is_none() {
            log::info!(
                "{name}: group commits: post-auth {pr} records in {pc} commits, \
             accounting {ar} records in {ac} commits"
            );
        }
        if let Some(j) = store.journal_status() {
            log::info!(
                "{name}: journal {}: {} records shipped in {} transactions, {} set aside, \
                 {} waiting for PostgreSQL",
                j.dir.display(),
                j.shipped,
                j.transactions,
                j.set_aside,
                j.pending
            );
        }
        drop(store);
        rt.shutdown_timeout(Duration::from_secs(2));
    }

    fn fail(&self, req: &Request, what: &str, e: impl std::fmt::Display) -> sys::rlm_rcode_t {
        req.error(&format!("{what}: {e}"));
        sys::RLM_MODULE_FAIL
    }

    fn authorize(&self, req: &Request) -> sys::rlm_rcode_t {
        let username = match req.xlat(&self.user_name_fmt) {
            Ok(u) => u,
            Err(e) => return self.fail(req, "sql_user_name", e),
        };
        #[cfg(feature = "panic-test")]
        if username == "panic-now" {
            panic!("panic-test build: forced panic in authorize");
        }
        // A cache hit needs no runtime at all.
        let lookup = match self.store.cached(&username) {
            Some(l) => l,
            None => match self.rt.block_on(self.store.lookup(&username)) {
                Ok(l) => l,
                Err(e) => return self.fail(req, "authorize", e),
            },
        };
        // One scan of the packet for both attributes authorize needs.
        let attrs = req.packet_attrs(&self.dict);
        let password = attrs.get(Attr::UserPassword).map(|v| v.text);
        let eap_message = attrs.get(Attr::EapMessage);
        let eap = eap_message.is_some();
        let attempt = Attempt {
            username: &username,
            password: password.as_deref(),
            now: account::now(),
        };
        let mut engine = req.engine(&self.dict);
        let verdict = match login::authorize(
            &mut engine,
            &mut BlockingIo {
                store: &self.store,
                rt: self.rt.handle(),
            },
            &lookup,
            &self.policy,
            &attempt,
        ) {
            Ok(v) => v,
            Err(e) => return self.fail(req, "authorize", e),
        };
        // An EAP conversation's outcome is counted once, in the tunnel's
        // inner request (PEAP, TTLS) or in the request itself (EAP-MD5,
        // PAP, MS-CHAP): the outer request of a tunnel carries only the
        // identity.
        if verdict.counts() && (req.is_inner() || !eap) {
            if let Err(e) = req.set_control(LOGIN_NAME_ATTR, &to_marker(&username)) {
                return self.fail(req, "authorize", e);
            }
        }
        if two_factor::outer_tunnel(&verdict, req, eap_message.as_ref()) {
            return sys::RLM_MODULE_NOOP;
        }
        match verdict {
            Verdict::NotFound => sys::RLM_MODULE_NOTFOUND,
            Verdict::Reject(why) => {
                req.error(&format!("{username}: {why}"));
                sys::RLM_MODULE_REJECT
            }
            Verdict::TokenAccepted => sys::RLM_MODULE_OK,
            Verdict::Continue(rc) => rcode(rc),
        }
    }

    fn authenticate(&self, req: &Request) -> sys::rlm_rcode_t {
        if let Some(rc) = self.authenticate_second_factor(req) {
            return rc;
        }
        let Some(hash) = req.control(&self.dict, Attr::PasswordHash) else {
            req.error("no control:Rust-Password-Hash to authenticate against");
            return sys::RLM_MODULE_INVALID;
        };
        let Some(pw) = req.packet_attrs(&self.dict).get(Attr::UserPassword) else {
            req.error(
                "rlm_rust: no User-Password in the request (CHAP and MS-CHAP need a clear-text or NT password, not a one-way hash)",
            );
            return sys::RLM_MODULE_INVALID;
        };
        let username = match self.login_name(req) {
            Some(name) => name,
            None => match req.xlat(&self.user_name_fmt) {
                Ok(u) => u,
                Err(e) => return self.fail(req, "sql_user_name", e),
            },
        };
        match self
            .store
            .verifier()
            .verify(&username, &pw.text, &hash.text)
        {
            Ok(v) if v.ok() => {
                if v == Verified::Computed(true) && self.policy.store_nt_hash {
                    self.store.store_nt_hash_later(
                        self.rt.handle(),
                        &username,
                        &hash.text,
                        &pw.text,
                    );
                }
                sys::RLM_MODULE_OK
            }
            Ok(_) => {
                req.debug("password incorrect");
                sys::RLM_MODULE_REJECT
            }
            Err(e) => {
                // Not a wrong password: the lockout must not count it.
                let _ = req.set_control(LOGIN_NAME_ATTR, "");
                req.error(&e.to_string());
                match e {
                    VerifyError::Busy(_) => sys::RLM_MODULE_FAIL,
                    VerifyError::BadHash(_) => sys::RLM_MODULE_INVALID,
                }
            }
        }
    }

    /// Refuses, before any module writes it, an accounting request that
    /// cannot be stored under its key.
    fn preacct(&self, req: &Request) -> sys::rlm_rcode_t {
        let attrs = req.packet_attrs(&self.dict);
        let Some(code) = attrs.int(Attr::AcctStatusType) else {
            req.error("accounting request without Acct-Status-Type");
            return sys::RLM_MODULE_INVALID;
        };
        let status = AcctStatus::from_code(code);
        if is_session(status) && attrs.text(Attr::AcctUniqueSessionId).is_empty() {
            req.warn("no Acct-Unique-Session-Id yet: call acct_unique before rust in preacct");
        }
        sys::RLM_MODULE_NOOP
    }

    fn accounting(&self, req: &Request) -> sys::rlm_rcode_t {
        let a = req.packet_attrs(&self.dict);
        let Some(code) = a.int(Attr::AcctStatusType) else {
            req.warn("accounting request without Acct-Status-Type: nothing stored");
            return sys::RLM_MODULE_NOOP;
        };
        let status = AcctStatus::from_code(code);
        if let AcctStatus::Other(_) = status {
            return sys::RLM_MODULE_NOOP;
        }
        let unique_id = a.text(Attr::AcctUniqueSessionId);
        if is_session(status) && unique_id.is_empty() {
            return self.fail(
                req,
                "accounting",
                "no Acct-Unique-Session-Id: call the acct_unique policy in preacct",
            );
        }
        let username = match req.xlat(&self.user_name_fmt) {
            Ok(u) => u,
            Err(e) => return self.fail(req, "sql_user_name", e),
        };
        #[cfg(feature = "panic-test")]
        if username == "panic-now" {
            panic!("panic-test build: forced panic in accounting");
        }
        let mut nas_ip = a.text(Attr::NasIpv6Address);
        if nas_ip.is_empty() {
            nas_ip = a.text(Attr::NasIpAddress);
        }
        if nas_ip.is_empty() {
            // RFC 2866 lets a NAS identify itself by NAS-Identifier only;
            // rlm_sql's query would fail on '' forever, we use the sender.
            nas_ip = req.src_ip();
        }
        let mut nas_port_id = a.text(Attr::NasPortId);
        if nas_port_id.is_empty() {
            nas_port_id = a.text(Attr::NasPort);
        }
        let rec = AcctRecord {
            session_id: a.text(Attr::AcctSessionId),
            unique_id,
            username,
            realm: a.text(Attr::Realm),
            nas_ip,
            nas_port_id,
            nas_port_type: a.text(Attr::NasPortType),
            event_time: a
                .int(Attr::EventTimestamp)
                .map(i64::from)
                .unwrap_or_else(|| req.timestamp()),
            session_time: a.int(Attr::AcctSessionTime).map(i64::from),
            authentic: a.text(Attr::AcctAuthentic),
            connect_info: a.text(Attr::ConnectInfo),
            input_octets: a.int(Attr::AcctInputOctets).unwrap_or(0),
            input_gigawords: a.int(Attr::AcctInputGigawords).unwrap_or(0),
            output_octets: a.int(Attr::AcctOutputOctets).unwrap_or(0),
            output_gigawords: a.int(Attr::AcctOutputGigawords).unwrap_or(0),
            called_station_id: a.text(Attr::CalledStationId),
            calling_station_id: a.text(Attr::CallingStationId),
            terminate_cause: a.text(Attr::AcctTerminateCause),
            service_type: a.text(Attr::ServiceType),
            framed_protocol: a.text(Attr::FramedProtocol),
            framed_ip_address: a.text(Attr::FramedIpAddress),
            framed_ipv6_address: a.text(Attr::FramedIpv6Address),
            framed_ipv6_prefix: a.text(Attr::FramedIpv6Prefix),
            framed_interface_id: a.text(Attr::FramedInterfaceId),
            delegated_ipv6_prefix: a.text(Attr::DelegatedIpv6Prefix),
        };
        match self.store.commit_accounting(status, rec) {
            Ok(AcctOutcome::Written) => sys::RLM_MODULE_OK,
            Ok(AcctOutcome::Unchanged) => sys::RLM_MODULE_NOOP,
            Err(e) => self.fail(req, "accounting", e),
        }
    }

    fn post_auth(&self, req: &Request) -> sys::rlm_rcode_t {
        let reply = match req.reply_code() {
            2 => "Access-Accept",
            3 => "Access-Reject",
            11 => "Access-Challenge",
            _ => return sys::RLM_MODULE_NOOP,
        };
        let a = req.packet_attrs(&self.dict);
        #[cfg(feature = "panic-test")]
        if a.text(Attr::UserName) == "panic-post-auth" {
            panic!("panic-test build: forced panic in post-auth");
        }
        let pass = (reply == "Access-Reject" && self.cfg.store_rejected_password)
            .then(|| {
                a.get(Attr::UserPassword)
                    .or_else(|| a.get(Attr::ChapPassword))
                    .map(|v| v.text)
            })
            .flatten();
        let non_empty = |s: String| (!s.is_empty()).then_some(s);
        let rec = PostAuthRecord {
            username: a.text(Attr::UserName),
            pass,
            reply: reply.to_string(),
            called_station_id: non_empty(a.text(Attr::CalledStationId)),
            calling_station_id: non_empty(a.text(Attr::CallingStationId)),
            authdate: req.packet_time(),
        };
        self.record_outcome(req, reply);
        match self.store.commit_postauth(rec) {
            Ok(()) => sys::RLM_MODULE_OK,
            Err(e) => self.fail(req, "post-auth", e),
        }
    }

    /// The session section (radiusd runs it after authenticate when the
    /// control list has Simultaneous-Use): the user's open sessions, which
    /// radiusd compares with the limit and, at or above it, rejects with
    /// its "You are already logged in" message. A failure here lets the
    /// login through, as with rlm_sql (radiusd ignores a session section
    /// that does not answer `ok`).
    fn checksimul(&self, req: &Request) -> sys::rlm_rcode_t {
        let username = match req.xlat(&self.user_name_fmt) {
            Ok(u) => u,
            Err(e) => return self.fail(req, "sql_user_name", e),
        };
        let open = match self
            .rt
            .block_on(self.store.open_sessions(&username, account::now() as i64))
        {
            Ok(n) => n,
            Err(e) => return self.fail(req, "Simultaneous-Use", e),
        };
        req.set_simul_count(open);
        let max = u32::try_from(req.simul_max()).unwrap_or(0);
        if usage::over_simultaneous(open, max) {
            // Refused for its sessions, not its password: the lockout
            // must not count it.
            let _ = req.set_control(LOGIN_NAME_ATTR, "");
            req.warn(&format!(
                "{username}: {} open sessions, Simultaneous-Use = {max}",
                open
            ));
        } else {
            req.debug(&format!("{username}: {open} open sessions"));
        }
        sys::RLM_MODULE_OK
    }

    /// Whether the request's user is in `group`: their radusergroup
    /// groups, then those of their profile (control:User-Profile, else
    /// default_profile), as authorize reads them.
    fn in_group(&self, req: &Request, group: &str) -> Result<bool, String> {
        let username = req.xlat(&self.user_name_fmt)?;
        let get = |name: &str| match self.store.cached(name) {
            Some(l) => Ok(l),
            None => self
                .rt
                .block_on(self.store.lookup(name))
                .map_err(|e| e.to_string()),
        };
        if get(&username)?.user.in_group(group) {
            return Ok(true);
        }
        if !self.cfg.read_profiles {
            return Ok(false);
        }
        let profile = req
            .control(&self.dict, Attr::UserProfile)
            .map(|v| v.text)
            .or_else(|| self.cfg.default_profile.clone())
            .filter(|p| !p.is_empty());
        match profile {
            Some(p) => Ok(get(&p)?.user.in_group(group)),
            None => Ok(false),
        }
    }

    /// The name authorize marked the request with, if it did.
    fn login_name(&self, req: &Request) -> Option<String> {
        from_marker(&req.control(&self.dict, Attr::LoginName)?.text)
    }

    /// Step 6 of the login procedure for requests authorize marked: a
    /// reject counts towards the lockout, an accept ends the streak. A
    /// database error here is logged, not turned into a failed request.
    fn record_outcome(&self, req: &Request, reply: &str) {
        let Some(name) = self.login_name(req) else {
            return;
        };
        let r = match reply {
            "Access-Reject" => self
                .rt
                .block_on(self.store.record_failure(&name, &self.policy.lockout))
                .map(|count| {
                    if let Some(c) = count.filter(|c| c.locked_until.is_some()) {
                        req.warn(&format!(
                            "{name}: locked after {} failed logins",
                            c.failures
                        ));
                    }
                }),
            "Access-Accept" => self.rt.block_on(self.store.note_success(&name)),
            _ => Ok(()),
        };
        if let Err(e) = r {
            req.error(&format!("lockout: {e}"));
        }
    }
}

/// The looked-up name as `Rust-Login-Name` holds it: hex, because
/// FreeRADIUS parses a string value's escapes, so `demo\000x` would come
/// back as another name (and count failures against `demo`).
fn to_marker(name: &str) -> String {
    name.bytes().map(|b| format!("{b:02x}")).collect()
}

fn from_marker(hex: &str) -> Option<String> {
    if hex.is_empty() || hex.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

fn is_session(s: AcctStatus) -> bool {
    matches!(
        s,
        AcctStatus::Start | AcctStatus::Stop | AcctStatus::InterimUpdate
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn markers_round_trip_any_name() {
        for name in ["demo", "demo\\000x", "x\0y", "ünï", "a b\"c"] {
            assert_eq!(
                super::from_marker(&super::to_marker(name)).as_deref(),
                Some(name)
            );
        }
        assert_eq!(super::from_marker(""), None);
        assert_eq!(super::from_marker("zz"), None);
    }
}
