//! Safe wrappers over the few FreeRADIUS functions the module calls. Every
//! raw pointer the server hands us is dereferenced here and nowhere else but
//! in `module.rs` (the callbacks themselves).

use std::ffi::{c_char, CStr, CString};
use std::ptr;

use radius_core::attrs::{AttrRow, FallThrough, Op, RowValue};
use radius_core::authorize::{ListKind, PairEngine};

use crate::sys;

const TALLOC_LOCATION: &CStr = c"rlm_rust";

/// A C string for the server; interior NULs (which no attribute name or
/// printable value has) are dropped rather than failing a log line.
pub fn cstring(s: &str) -> CString {
    CString::new(s).unwrap_or_else(|_| CString::new(s.replace('\0', "")).expect("no NUL left"))
}

/// Logs through radiusd's own log (stderr is not the server's log).
pub fn radlog(level: sys::log_type_t, msg: &str) {
    let msg = cstring(msg);
    // SAFETY: "%s" with one valid NUL-terminated string matches radlog's
    // printf contract; radlog copies the text before returning.
    unsafe {
        sys::radlog(level, c"%s".as_ptr(), msg.as_ptr());
    }
}

/// The last error FreeRADIUS' library recorded for this thread.
pub fn fr_strerror() -> String {
    // SAFETY: fr_strerror returns a pointer to a thread-local buffer that
    // stays valid until the next library call on this thread; we copy it.
    unsafe {
        let p = sys::fr_strerror();
        if p.is_null() {
            String::new()
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

/// Logs `msg` as a configuration error pointing at `cs` (file and line).
pub fn cf_log_err(cs: *const sys::CONF_SECTION, msg: &str) {
    let msg = cstring(msg);
    // SAFETY: cs is the module's live section (checked non-null by the
    // caller) and the format takes exactly one string.
    unsafe { sys::cf_log_err_cs(cs, c"%s".as_ptr(), msg.as_ptr()) }
}

/// One item of a module section: a `name = value` pair or a subsection.
pub enum ConfItem {
    Pair(String, String),
    Section(String),
}

/// The items of a configuration section, in file order.
pub fn conf_items(cs: *const sys::CONF_SECTION) -> Vec<ConfItem> {
    let mut out = Vec::new();
    let mut item: *mut sys::CONF_ITEM = ptr::null_mut();
    loop {
        // SAFETY: cs is a live section; item is null or the previous item
        // of the same section, as cf_item_find_next requires.
        item = unsafe { sys::cf_item_find_next(cs, item) };
        if item.is_null() {
            return out;
        }
        // SAFETY: item was just returned by the section walk and is live;
        // the strings it points to belong to the config tree and are copied.
        unsafe {
            if sys::cf_item_is_pair(item) {
                let pair = sys::cf_item_to_pair(item);
                let name = opt_str(sys::cf_pair_attr(pair)).unwrap_or_default();
                let value = opt_str(sys::cf_pair_value(pair)).unwrap_or_default();
                out.push(ConfItem::Pair(name, value));
            } else if sys::cf_item_is_section(item) {
                let sub = sys::cf_item_to_section(item);
                out.push(ConfItem::Section(
                    opt_str(sys::cf_section_name1(sub)).unwrap_or_default(),
                ));
            }
        }
    }
}

/// The instance name: `rust` for `rust { }`, `b` for `rust b { }`.
/// `radiusd -C`: the configuration is only checked, nothing is served.
pub fn checking_config() -> bool {
    // SAFETY: check_config is a plain global radiusd sets while parsing its
    // command line, before any module is loaded.
    unsafe { sys::check_config }
}

/// radiusd.conf's `radacctdir` (where FreeRADIUS keeps its own durable
/// accounting, the detail files), if set.
pub fn radacct_dir() -> Option<String> {
    // SAFETY: a plain global set from the main configuration before modules
    // are instantiated and not changed afterwards; NULL or a C string.
    let p = unsafe { sys::radacct_dir };
    if p.is_null() {
        return None;
    }
    // SAFETY: non-NULL and NUL-terminated (see above), alive for the
    // server's lifetime.
    Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

pub fn section_instance_name(cs: *const sys::CONF_SECTION) -> String {
    // SAFETY: cs is a live section; names are copied out.
    unsafe {
        opt_str(sys::cf_section_name2(cs))
            .or_else(|| opt_str(sys::cf_section_name1(cs)))
            .unwrap_or_else(|| "rust".to_string())
    }
}

/// The second name of a section (`b` for `rust b { }`), if any.
pub fn section_name2(cs: *const sys::CONF_SECTION) -> Option<String> {
    // SAFETY: cs is a live section; the name is copied out.
    unsafe { opt_str(sys::cf_section_name2(cs)) }
}

/// # Safety
/// `p` must be null or point to a NUL-terminated string valid for the call.
unsafe fn opt_str(p: *const c_char) -> Option<String> {
    if p.is_null() {
        None
    } else {
        // SAFETY: per the function contract.
        Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }
}

/// Dictionary attributes resolved once at instantiate. The pointers refer
/// to the server's dictionary, which is immutable while modules run.
pub struct Dict {
    das: Vec<*const sys::DICT_ATTR>,
}

// SAFETY: the dictionary entries are never freed or changed while the
// module instance exists, so sharing the pointers across threads is sound.
unsafe impl Send for Dict {}
// SAFETY: as above; the pointers are only read.
unsafe impl Sync for Dict {}

macro_rules! attrs {
    ($($variant:ident => $name:literal,)*) => {
        /// The attributes the module reads, by dictionary name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Attr { $($variant,)* }
        impl Attr {
            pub const ALL: &'static [Attr] = &[$(Attr::$variant,)*];
            pub fn name(self) -> &'static CStr {
                match self { $(Attr::$variant => $name,)* }
            }
        }
    };
}

attrs! {
    UserName => c"User-Name",
    UserPassword => c"User-Password",
    ChapPassword => c"CHAP-Password",
    AcctStatusType => c"Acct-Status-Type",
    AcctSessionId => c"Acct-Session-Id",
    AcctUniqueSessionId => c"Acct-Unique-Session-Id",
    Realm => c"Realm",
    NasIpAddress => c"NAS-IP-Address",
    NasIpv6Address => c"NAS-IPv6-Address",
    NasPortId => c"NAS-Port-Id",
    NasPort => c"NAS-Port",
    NasPortType => c"NAS-Port-Type",
    EventTimestamp => c"Event-Timestamp",
    AcctSessionTime => c"Acct-Session-Time",
    AcctAuthentic => c"Acct-Authentic",
    ConnectInfo => c"Connect-Info",
    AcctInputOctets => c"Acct-Input-Octets",
    AcctInputGigawords => c"Acct-Input-Gigawords",
    AcctOutputOctets => c"Acct-Output-Octets",
    AcctOutputGigawords => c"Acct-Output-Gigawords",
    CalledStationId => c"Called-Station-Id",
    CallingStationId => c"Calling-Station-Id",
    AcctTerminateCause => c"Acct-Terminate-Cause",
    ServiceType => c"Service-Type",
    FramedProtocol => c"Framed-Protocol",
    FramedIpAddress => c"Framed-IP-Address",
    FramedIpv6Address => c"Framed-IPv6-Address",
    FramedIpv6Prefix => c"Framed-IPv6-Prefix",
    FramedInterfaceId => c"Framed-Interface-Id",
    DelegatedIpv6Prefix => c"Delegated-IPv6-Prefix",
    FallThrough => c"Fall-Through",
    UserProfile => c"User-Profile",
    AuthType => c"Auth-Type",
    PasswordHash => c"Rust-Password-Hash",
    CleartextPassword => c"Cleartext-Password",
    NtPassword => c"NT-Password",
    CryptPassword => c"Crypt-Password",
    PasswordWithHeader => c"Password-With-Header",
    LoginName => c"Rust-Login-Name",
    EapMessage => c"EAP-Message",
    State => c"State",
}

impl Dict {
    /// Looks every attribute up; the error names the first one missing.
    pub fn resolve() -> Result<Dict, String> {
        let mut das = Vec::with_capacity(Attr::ALL.len());
        for a in Attr::ALL {
            // SAFETY: the name is a valid C string; the dictionary is loaded
            // before any module is instantiated.
            let da = unsafe { sys::dict_attrbyname(a.name().as_ptr()) };
            if da.is_null() {
                return Err(format!(
                    "attribute {} is not in the dictionary",
                    a.name().to_string_lossy()
                ));
            }
            das.push(da);
        }
        Ok(Dict { das })
    }

    pub fn da(&self, a: Attr) -> *const sys::DICT_ATTR {
        self.das[a as usize]
    }
}

/// Adds the module's own internal attributes to the dictionary (bootstrap),
/// so radcheck rows and unlang can use them by name. An attribute another
/// module registered first (rlm_sqlcounter registers its `Max-*` items as
/// integer64 too) is used as it is: the module reads values as text.
pub fn register_attribute(name: &CStr, kind: sys::PW_TYPE) -> Result<(), String> {
    // SAFETY: name is a valid C string; dict_attrbyname only reads.
    if !unsafe { sys::dict_attrbyname(name.as_ptr()) }.is_null() {
        return Ok(());
    }
    // dict_addattr copies name and flags; -1 asks for a free internal
    // number, as paircompare_register_byname does.
    // SAFETY: ATTR_FLAGS is plain old data whose all-zero value means "no flags".
    let rc = unsafe {
        let flags: sys::ATTR_FLAGS = std::mem::zeroed();
        sys::dict_addattr(name.as_ptr(), -1, 0, kind, flags)
    };
    if rc < 0 {
        return Err(format!(
            "cannot add attribute {}: {}",
            name.to_string_lossy(),
            fr_strerror()
        ));
    }
    Ok(())
}

/// The signature radiusd calls a registered comparison with: the instance,
/// the request, the request's pair, the check pair, the check list, the
/// reply list. 0 means "matches".
pub type CompareFn = unsafe extern "C" fn(
    *mut std::ffi::c_void,
    *mut sys::REQUEST,
    *mut sys::VALUE_PAIR,
    *mut sys::VALUE_PAIR,
    *mut sys::VALUE_PAIR,
    *mut *mut sys::VALUE_PAIR,
) -> std::ffi::c_int;

/// Registers `name` as a comparison attribute keyed on User-Name (as
/// rlm_sql registers SQL-Group), answered by `func` with `instance`.
pub fn register_compare(
    name: &CStr,
    func: CompareFn,
    instance: *mut std::ffi::c_void,
) -> Result<(), String> {
    // radiusd keeps `func` and `instance` until paircompare_unregister,
    // which detach calls before the instance memory goes away.
    // SAFETY: valid C strings; the dictionary is loaded before bootstrap.
    let rc = unsafe {
        let user_name = sys::dict_attrbyname(c"User-Name".as_ptr());
        sys::paircompare_register_byname(name.as_ptr(), user_name, false, Some(func), instance)
    };
    if rc < 0 {
        return Err(format!(
            "cannot register the comparison {}: {}",
            name.to_string_lossy(),
            fr_strerror()
        ));
    }
    Ok(())
}

/// Undoes [`register_compare`].
pub fn unregister_compare(name: &CStr, func: CompareFn) {
    // SAFETY: valid C string; unregistering an unknown pair is a no-op.
    unsafe {
        let da = sys::dict_attrbyname(name.as_ptr());
        if !da.is_null() {
            sys::paircompare_unregister(da, Some(func));
        }
    }
}

/// The string value of a pair radiusd hands a comparison (the check item
/// `Rust-Group == "staff"`); None for a null or non-string pair.
///
/// # Safety
/// `vp` must be null or a live pair for the duration of the call.
pub unsafe fn pair_string(vp: *const sys::VALUE_PAIR) -> Option<Vec<u8>> {
    if vp.is_null() {
        return None;
    }
    // SAFETY: per the contract; the union member read matches the type.
    unsafe {
        if (*(*vp).da).type_ != sys::PW_TYPE_STRING {
            return None;
        }
        let p = (*vp).data.strvalue;
        if p.is_null() {
            return Some(Vec::new());
        }
        Some(std::slice::from_raw_parts(p.cast::<u8>(), (*vp).length).to_vec())
    }
}

/// A request being processed by one radiusd thread.
pub struct Request {
    ptr: *mut sys::REQUEST,
}

impl Request {
    /// # Safety
    /// `ptr` must be the non-null REQUEST radiusd passed to the current
    /// callback; the wrapper must not outlive that callback.
    pub unsafe fn new(ptr: *mut sys::REQUEST) -> Request {
        Request { ptr }
    }

    fn req(&self) -> &sys::REQUEST {
        // SAFETY: per Request::new's contract the pointer is live and only
        // this thread touches the request during the callback.
        unsafe { &*self.ptr }
    }

    fn packet_vps(&self) -> *mut sys::VALUE_PAIR {
        let p = self.req().packet;
        if p.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: non-null packet of a live request.
        unsafe { (*p).vps }
    }

    fn reply_packet(&self) -> *mut sys::RADIUS_PACKET {
        self.req().reply
    }

    pub fn debug_enabled(&self) -> bool {
        // SAFETY: rad_debug_lvl is a plain global the server sets at start.
        let global = unsafe { sys::rad_debug_lvl };
        global > 0 || self.req().log.lvl > 0
    }

    /// RDEBUG2 equivalent.
    pub fn debug(&self, msg: &str) {
        if !self.debug_enabled() {
            return;
        }
        self.log(sys::L_DBG, sys::L_DBG_LVL_2, msg);
    }

    /// RERROR equivalent: goes to radiusd's log with the request number,
    /// in production as well as under -X.
    pub fn error(&self, msg: &str) {
        self.log(sys::L_ERR, sys::L_DBG_LVL_OFF, msg);
    }

    pub fn warn(&self, msg: &str) {
        self.log(sys::L_DBG_WARN, sys::L_DBG_LVL_OFF, msg);
    }

    fn log(&self, t: sys::log_type_t, lvl: sys::log_lvl_t, msg: &str) {
        let msg = cstring(msg);
        // SAFETY: live request, "%s" with one C string.
        unsafe { sys::radlog_request(t, lvl, self.ptr, c"%s".as_ptr(), msg.as_ptr()) }
    }

    /// Expands an xlat string (`%{User-Name}`) for this request.
    pub fn xlat(&self, fmt: &CStr) -> Result<String, String> {
        let mut out: *mut c_char = ptr::null_mut();
        // SAFETY: live request; out gets a talloc'd string or stays null.
        let len =
            unsafe { sys::radius_axlat(&mut out, self.ptr, fmt.as_ptr(), None, ptr::null_mut()) };
        if len < 0 || out.is_null() {
            return Err(format!(
                "expanding {}: {}",
                fmt.to_string_lossy(),
                fr_strerror()
            ));
        }
        // SAFETY: radius_axlat wrote a NUL-terminated talloc string of `len`
        // bytes that we own; copied, then freed exactly once.
        unsafe {
            let bytes = std::slice::from_raw_parts(out as *const u8, len as usize);
            let s = String::from_utf8_lossy(bytes).into_owned();
            sys::_talloc_free(out.cast(), TALLOC_LOCATION.as_ptr());
            Ok(s)
        }
    }

    /// The first instance of each of `attrs` in the request packet.
    pub fn packet_attrs(&self, dict: &Dict) -> Attrs {
        let mut found = Attrs {
            vps: [ptr::null_mut(); Attr::ALL.len()],
        };
        let mut vp = self.packet_vps();
        while !vp.is_null() {
            // SAFETY: vp walks the packet's list, whose nodes stay valid for
            // the callback; da is always set on a list member.
            let (da, next) = unsafe { ((*vp).da, (*vp).next) };
            for (i, a) in Attr::ALL.iter().enumerate() {
                if found.vps[i].is_null() && dict.da(*a) == da {
                    found.vps[i] = vp;
                    break;
                }
            }
            vp = next;
        }
        found
    }

    /// control:`attr`, if present.
    pub fn control(&self, dict: &Dict, a: Attr) -> Option<Value> {
        // SAFETY: config is the request's live control list.
        let vp =
            unsafe { sys::fr_pair_find_by_da(self.req().config, dict.da(a), sys::TAG_ANY as i8) };
        Value::from_vp(vp)
    }

    /// A request of an EAP tunnel's inner server (PEAP, TTLS), which
    /// radiusd runs as a child of the outer request.
    pub fn is_inner(&self) -> bool {
        !self.req().parent.is_null()
    }

    /// control:`name`, by dictionary name (None for an unknown name).
    pub fn control_named(&self, name: &str) -> Option<Value> {
        let name = CString::new(name).ok()?;
        // SAFETY: name is a valid C string; dict_attrbyname only reads.
        let da = unsafe { sys::dict_attrbyname(name.as_ptr()) };
        if da.is_null() {
            return None;
        }
        // SAFETY: config is the request's live control list.
        let vp = unsafe { sys::fr_pair_find_by_da(self.req().config, da, sys::TAG_ANY as i8) };
        Value::from_vp(vp)
    }

    /// Adds `control:attr := value`, replacing existing ones.
    pub fn set_control(&self, attr: &CStr, value: &str) -> Result<(), String> {
        let value = cstring(value);
        let mut list: *mut sys::VALUE_PAIR = ptr::null_mut();
        // The pair is talloc'd under the request, as pair_make_config does.
        // SAFETY: live request; radius_pairmove takes ownership of `list`.
        unsafe {
            let vp = sys::fr_pair_make(
                self.ptr.cast(),
                &mut list,
                attr.as_ptr(),
                value.as_ptr(),
                sys::T_OP_SET,
            );
            if vp.is_null() {
                return Err(fr_strerror());
            }
            sys::radius_pairmove(self.ptr, &mut (*self.ptr).config, list, false);
        }
        Ok(())
    }

    /// Adds `reply:attr := value`, replacing existing ones.
    pub fn set_reply(&self, attr: &CStr, value: &str) -> Result<(), String> {
        let value = cstring(value);
        let mut list: *mut sys::VALUE_PAIR = ptr::null_mut();
        let reply = self.reply_packet();
        if reply.is_null() {
            return Err("no reply packet".into());
        }
        // The pair is talloc'd under the reply packet, as pair_make_reply does.
        // SAFETY: live request and reply; radius_pairmove takes ownership
        // of `list`.
        unsafe {
            let vp = sys::fr_pair_make(
                reply.cast(),
                &mut list,
                attr.as_ptr(),
                value.as_ptr(),
                sys::T_OP_SET,
            );
            if vp.is_null() {
                return Err(fr_strerror());
            }
            sys::radius_pairmove(self.ptr, &mut (*reply).vps, list, false);
        }
        Ok(())
    }

    /// reply:`name`, by dictionary name.
    pub fn reply_named(&self, name: &str) -> Option<Value> {
        let name = CString::new(name).ok()?;
        let reply = self.reply_packet();
        if reply.is_null() {
            return None;
        }
        // SAFETY: valid C string; live reply packet whose list is read.
        let vp = unsafe {
            let da = sys::dict_attrbyname(name.as_ptr());
            if da.is_null() {
                return None;
            }
            sys::fr_pair_find_by_da((*reply).vps, da, sys::TAG_ANY as i8)
        };
        Value::from_vp(vp)
    }

    /// The limit radiusd's session check passes (`Simultaneous-Use`).
    pub fn simul_max(&self) -> i32 {
        self.req().simul_max
    }

    /// What the session section answers radiusd: the open sessions.
    pub fn set_simul_count(&self, n: u32) {
        // SAFETY: live request, only this thread touches it in the callback.
        unsafe { (*self.ptr).simul_count = i32::try_from(n).unwrap_or(i32::MAX) }
    }

    /// The control list as (name, printed value) pairs, in order: what the
    /// core's credential check reads (octets print as `0x...`, which it
    /// takes as FreeRADIUS' value parser does).
    pub fn control_pairs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut vp = self.req().config;
        while !vp.is_null() {
            // A da's name (a flexible array member) is a NUL-terminated
            // dictionary string.
            // SAFETY: vp walks the request's live control list.
            let (name, next) = unsafe {
                let da = (*vp).da;
                let name = if da.is_null() {
                    None
                } else {
                    Some(
                        CStr::from_ptr((*da).name.as_ptr())
                            .to_string_lossy()
                            .into_owned(),
                    )
                };
                (name, (*vp).next)
            };
            if let (Some(name), Some(v)) = (name, Value::from_vp(vp)) {
                out.push((name, v.text));
            }
            vp = next;
        }
        out
    }

    /// Adds `attr = value` to the reply (value parsed as FreeRADIUS
    /// parses it: `0x...` for octets).
    pub fn add_reply(&self, attr: &CStr, value: &str) -> Result<(), String> {
        let reply = self.reply_packet();
        if reply.is_null() {
            return Err("no reply packet".into());
        }
        let value = cstring(value);
        // fr_pair_make allocates the pair in the reply's talloc context and
        // links it into its list, copying both strings.
        // SAFETY: live reply packet and valid C strings.
        let vp = unsafe {
            sys::fr_pair_make(
                reply.cast(),
                &mut (*reply).vps,
                attr.as_ptr(),
                value.as_ptr(),
                sys::T_OP_EQ,
            )
        };
        if vp.is_null() {
            return Err(fr_strerror());
        }
        Ok(())
    }

    /// Sets the reply's code (an authenticate method that answers
    /// Access-Challenge sets it and returns `handled`, as rlm_eap does).
    pub fn set_reply_code(&self, code: u32) {
        let reply = self.reply_packet();
        if !reply.is_null() {
            // SAFETY: live reply packet of the request this thread runs.
            unsafe { (*reply).code = code }
        }
    }

    /// The reply code (Access-Accept = 2, Access-Reject = 3), 0 if none.
    pub fn reply_code(&self) -> u32 {
        let r = self.reply_packet();
        if r.is_null() {
            0
        } else {
            // SAFETY: non-null reply packet of a live request.
            unsafe { (*r).code }
        }
    }

    /// When the request packet arrived, seconds since the epoch.
    pub fn packet_time(&self) -> f64 {
        let p = self.req().packet;
        if p.is_null() {
            return self.req().timestamp as f64;
        }
        // SAFETY: non-null packet of a live request.
        let tv = unsafe { (*p).timestamp };
        tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6
    }

    /// `request->timestamp`, what `%l` expands to.
    pub fn timestamp(&self) -> i64 {
        self.req().timestamp
    }

    /// The packet's source address, printed.
    pub fn src_ip(&self) -> String {
        let p = self.req().packet;
        if p.is_null() {
            return String::new();
        }
        let mut buf = [0 as c_char; 64];
        // SAFETY: src_ipaddr is an initialised fr_ipaddr_t of a live packet
        // and buf is large enough for any IPv6 text form plus NUL.
        unsafe {
            let s = sys::ip_ntoh(&(*p).src_ipaddr, buf.as_mut_ptr(), buf.len());
            if s.is_null() {
                return String::new();
            }
            CStr::from_ptr(s).to_string_lossy().into_owned()
        }
    }

    pub fn engine<'a>(&'a self, dict: &'a Dict) -> FrEngine<'a> {
        FrEngine { req: self, dict }
    }
}

/// The attributes found in a packet, by [`Attr`].
pub struct Attrs {
    vps: [*mut sys::VALUE_PAIR; Attr::ALL.len()],
}

impl Attrs {
    pub fn get(&self, a: Attr) -> Option<Value> {
        Value::from_vp(self.vps[a as usize])
    }

    /// The printed value, or "" when absent (what `%{Attr}` gives).
    pub fn text(&self, a: Attr) -> String {
        self.get(a).map(|v| v.text).unwrap_or_default()
    }

    pub fn int(&self, a: Attr) -> Option<u32> {
        self.get(a).and_then(|v| v.int)
    }
}

/// An attribute value copied out of the server.
#[derive(Debug, Clone)]
pub struct Value {
    /// As `%{Attr}` prints it: strings verbatim, enumerated integers by
    /// name, addresses in text form.
    pub text: String,
    /// The raw number for integer and date attributes.
    pub int: Option<u32>,
}

impl Value {
    fn from_vp(vp: *mut sys::VALUE_PAIR) -> Option<Value> {
        if vp.is_null() {
            return None;
        }
        // SAFETY: vp is a live pair of the current request; its da is set,
        // and the union member read matches the da's type.
        unsafe {
            let da = &*(*vp).da;
            let len = (*vp).length;
            match da.type_ {
                sys::PW_TYPE_STRING => {
                    let p = (*vp).data.strvalue;
                    let bytes = if p.is_null() {
                        &[][..]
                    } else {
                        std::slice::from_raw_parts(p.cast::<u8>(), len)
                    };
                    Some(Value {
                        text: String::from_utf8_lossy(bytes).into_owned(),
                        int: None,
                    })
                }
                t => {
                    let int = matches!(t, sys::PW_TYPE_INTEGER | sys::PW_TYPE_DATE)
                        .then(|| (*vp).data.integer);
                    // Escaped text can be four times the value, plus quotes;
                    // most values (numbers, addresses) fit on the stack.
                    let need = len * 4 + 128;
                    let mut small = [0 as c_char; 256];
                    let mut large = Vec::new();
                    let buf: &mut [c_char] = if need <= small.len() {
                        &mut small
                    } else {
                        large.resize(need, 0 as c_char);
                        &mut large
                    };
                    sys::vp_prints_value(buf.as_mut_ptr(), buf.len(), vp, 0);
                    let text = CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned();
                    Some(Value { text, int })
                }
            }
        }
    }
}

/// An owned list of pairs not yet handed to the server.
pub struct PairList(*mut sys::VALUE_PAIR);

impl PairList {
    fn take(mut self) -> *mut sys::VALUE_PAIR {
        std::mem::replace(&mut self.0, ptr::null_mut())
    }
}

impl Drop for PairList {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: we own the list (it was never handed to the server).
            unsafe { sys::fr_pair_list_free(&mut self.0) }
        }
    }
}

fn token(op: Op) -> sys::FR_TOKEN {
    match op {
        Op::Eq => sys::T_OP_EQ,
        Op::Set => sys::T_OP_SET,
        Op::Add => sys::T_OP_ADD,
        Op::Sub => sys::T_OP_SUB,
        Op::Prepend => sys::T_OP_PREPEND,
        Op::CmpEq => sys::T_OP_CMP_EQ,
        Op::Ne => sys::T_OP_NE,
        Op::Lt => sys::T_OP_LT,
        Op::Le => sys::T_OP_LE,
        Op::Gt => sys::T_OP_GT,
        Op::Ge => sys::T_OP_GE,
        Op::RegEq => sys::T_OP_REG_EQ,
        Op::RegNe => sys::T_OP_REG_NE,
        Op::CmpTrue => sys::T_OP_CMP_TRUE,
        Op::CmpFalse => sys::T_OP_CMP_FALSE,
    }
}

/// The core's authorize algorithm running on FreeRADIUS' own pair
/// functions: the same parsing, comparison and merging rlm_sql uses.
pub struct FrEngine<'a> {
    req: &'a Request,
    dict: &'a Dict,
}

impl PairEngine for FrEngine<'_> {
    type List = PairList;

    fn build(&mut self, rows: &[AttrRow], kind: ListKind) -> Result<PairList, String> {
        // Check items live in the request's context, reply items in the
        // reply packet's, as sql_getvpdata allocates them.
        let ctx: *mut std::ffi::c_void = match kind {
            ListKind::Check => self.req.ptr.cast(),
            ListKind::Reply => self.req.reply_packet().cast(),
        };
        let mut list = PairList(ptr::null_mut());
        for row in rows {
            let op = row
                .op()
                .map_err(|e| format!("{e} for attribute {}", row.attribute))?;
            let attr = CString::new(row.attribute.as_str())
                .map_err(|_| format!("attribute name {:?} contains NUL", row.attribute))?;
            // The new pair is owned by `list` (freed with it on every error).
            // SAFETY: ctx is the live request or reply packet.
            unsafe {
                let vp =
                    sys::fr_pair_make(ctx, ptr::null_mut(), attr.as_ptr(), ptr::null(), token(op));
                if vp.is_null() {
                    return Err(format!(
                        "failed to create the pair {}: {}",
                        row.attribute,
                        fr_strerror()
                    ));
                }
                let rc = match row.value() {
                    RowValue::Literal(v) => {
                        let c = cstring(&v);
                        sys::fr_pair_value_from_str(vp, c.as_ptr(), c.as_bytes().len())
                    }
                    RowValue::Xlat(x) => {
                        let c = cstring(&x);
                        sys::fr_pair_mark_xlat(vp, c.as_ptr())
                    }
                };
                if rc < 0 {
                    let mut one = vp;
                    let e = fr_strerror();
                    sys::fr_pair_list_free(&mut one);
                    return Err(format!("error parsing value of {}: {e}", row.attribute));
                }
                sys::fr_pair_add(&mut list.0, vp);
            }
        }
        Ok(list)
    }

    fn compare(&mut self, check: &PairList) -> bool {
        // SAFETY: live request; paircompare reads both lists and may add
        // to the reply list (registered comparisons do), as in rlm_sql.
        unsafe {
            let r = self.req.ptr;
            let reply = self.req.reply_packet();
            sys::paircompare(r, (*(*r).packet).vps, check.0, &mut (*reply).vps) == 0
        }
    }

    fn merge_control(&mut self, check: PairList) {
        // SAFETY: radius_pairmove takes ownership of the list.
        unsafe {
            let r = self.req.ptr;
            sys::radius_pairmove(r, &mut (*r).config, check.take(), true);
        }
    }

    fn merge_reply(&mut self, reply: PairList) {
        // SAFETY: radius_pairmove takes ownership of the list.
        unsafe {
            let r = self.req.ptr;
            sys::radius_pairmove(r, &mut (*self.req.reply_packet()).vps, reply.take(), true);
        }
    }

    fn fall_through(&self, reply: &PairList) -> FallThrough {
        // SAFETY: reply.0 is an owned, well-formed list (or null).
        let vp = unsafe {
            sys::fr_pair_find_by_da(reply.0, self.dict.da(Attr::FallThrough), sys::TAG_ANY as i8)
        };
        if vp.is_null() {
            return FallThrough::Default;
        }
        // SAFETY: Fall-Through is an integer attribute.
        if unsafe { (*vp).data.integer } != 0 {
            FallThrough::Yes
        } else {
            FallThrough::No
        }
    }

    fn user_profile(&self) -> Option<String> {
        self.req
            .control(self.dict, Attr::UserProfile)
            .map(|v| v.text)
    }

    fn debug(&mut self, msg: &str) {
        self.req.debug(msg);
    }

    fn control(&self, name: &str) -> Option<String> {
        self.req.control_named(name).map(|v| v.text)
    }

    fn set_control(&mut self, name: &str, value: &str) -> Result<(), String> {
        let name =
            CString::new(name).map_err(|_| format!("attribute name {name:?} contains NUL"))?;
        self.req.set_control(&name, value)
    }

    fn reply(&self, name: &str) -> Option<String> {
        self.req.reply_named(name).map(|v| v.text)
    }

    fn set_reply(&mut self, name: &str, value: &str) -> Result<(), String> {
        let name =
            CString::new(name).map_err(|_| format!("attribute name {name:?} contains NUL"))?;
        self.req.set_reply(&name, value)
    }
}

/// The highest SSL ex_data index FreeRADIUS uses without allocating it
/// (`FR_TLS_EX_INDEX_FIX_CERT_ORDER` in freeradius/tls.h: 10..=17).
const FREERADIUS_SSL_EX_INDEX_MAX: std::ffi::c_int = 17;

/// Takes every SSL ex_data index up to FreeRADIUS's fixed ones before the
/// core's TLS to PostgreSQL (the openssl crate) allocates its own: an index
/// the crate registers comes with a free callback that OpenSSL runs on every
/// SSL object, radiusd's EAP sessions included, and on one of FreeRADIUS's
/// indices it would free radiusd's REQUEST or configuration as the crate's
/// data (radiusd died at the end of each PEAP/TTLS session). The indices
/// taken have no callbacks. Once per process.
pub(crate) fn reserve_freeradius_ssl_ex_indices() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| loop {
        let idx = {
            // SAFETY: allocates an ex_data index with no callbacks and no
            // argument pointer; thread-safe in OpenSSL >= 1.1.
            unsafe { openssl_sys::SSL_get_ex_new_index(0, std::ptr::null_mut(), None, None, None) }
        };
        if !(0..=FREERADIUS_SSL_EX_INDEX_MAX).contains(&idx) {
            break;
        }
    });
}
