//! Accounting into the stock `radacct` table with the semantics of
//! FreeRADIUS 3.2's PostgreSQL queries: per status type a list of statements
//! tried in order until one changes a row (rlm_sql's `acct_redundant`).

use std::borrow::Cow;

use crate::postauth::{is_storable, make_storable};

/// Acct-Status-Type values that write to radacct.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AcctStatus {
    Start,
    Stop,
    InterimUpdate,
    AccountingOn,
    AccountingOff,
    /// Any other type (Failed, Tunnel-*, vendor values): nothing to store.
    Other(u32),
}

impl AcctStatus {
    pub fn from_code(code: u32) -> Self {
        match code {
            1 => AcctStatus::Start,
            2 => AcctStatus::Stop,
            3 => AcctStatus::InterimUpdate,
            7 => AcctStatus::AccountingOn,
            8 => AcctStatus::AccountingOff,
            n => AcctStatus::Other(n),
        }
    }
}

/// Everything one accounting request contributes to radacct, already
/// printed the way FreeRADIUS prints attribute values (`Ethernet`,
/// `User-Request`, `192.0.2.1`). Empty strings mean "attribute absent".
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AcctRecord {
    pub session_id: String,
    pub unique_id: String,
    pub username: String,
    pub realm: String,
    /// NAS-IPv6-Address, else NAS-IP-Address.
    pub nas_ip: String,
    /// NAS-Port-Id, else NAS-Port.
    pub nas_port_id: String,
    pub nas_port_type: String,
    /// Event-Timestamp, else the time the request arrived (epoch seconds).
    pub event_time: i64,
    pub session_time: Option<i64>,
    pub authentic: String,
    pub connect_info: String,
    pub input_octets: u32,
    pub input_gigawords: u32,
    pub output_octets: u32,
    pub output_gigawords: u32,
    pub called_station_id: String,
    pub calling_station_id: String,
    pub terminate_cause: String,
    pub service_type: String,
    pub framed_protocol: String,
    pub framed_ip_address: String,
    pub framed_ipv6_address: String,
    pub framed_ipv6_prefix: String,
    pub framed_interface_id: String,
    pub delegated_ipv6_prefix: String,
}

/// Every text field of `$rec`, a `&AcctRecord` or a `&mut AcctRecord`, in
/// the statements' order. Destructured without `..`, so that a field added
/// to the record cannot be left out.
macro_rules! text_fields {
    ($rec:expr) => {{
        let AcctRecord {
            session_id,
            unique_id,
            username,
            realm,
            nas_ip,
            nas_port_id,
            nas_port_type,
            event_time: _,
            session_time: _,
            authentic,
            connect_info,
            input_octets: _,
            input_gigawords: _,
            output_octets: _,
            output_gigawords: _,
            called_station_id,
            calling_station_id,
            terminate_cause,
            service_type,
            framed_protocol,
            framed_ip_address,
            framed_ipv6_address,
            framed_ipv6_prefix,
            framed_interface_id,
            delegated_ipv6_prefix,
        } = $rec;
        [
            session_id,
            unique_id,
            username,
            realm,
            nas_ip,
            nas_port_id,
            nas_port_type,
            authentic,
            connect_info,
            called_station_id,
            calling_station_id,
            terminate_cause,
            service_type,
            framed_protocol,
            framed_ip_address,
            framed_ipv6_address,
            framed_ipv6_prefix,
            framed_interface_id,
            delegated_ipv6_prefix,
        ]
    }};
}

impl AcctRecord {
    /// Gigawords folded into the 64-bit counter, as the stock queries do.
    pub fn input_total(&self) -> i64 {
        ((self.input_gigawords as i64) << 32) + self.input_octets as i64
    }

    pub fn output_total(&self) -> i64 {
        ((self.output_gigawords as i64) << 32) + self.output_octets as i64
    }

    /// This record with every text field made storable by
    /// [`crate::postauth::storable_text`] (NUL escaped as `\000`, long values
    /// cut); borrowed when nothing needed it. The writers apply it to every
    /// record before they key anything on `unique_id`, so no caller can
    /// forget it and a record is matched with the row it wrote.
    pub fn storable(&self) -> Cow<'_, AcctRecord> {
        if self.text_fields().into_iter().all(|s| is_storable(s)) {
            return Cow::Borrowed(self);
        }
        Cow::Owned(self.clone().into_storable())
    }

    /// [`AcctRecord::storable`] for a record the caller owns.
    pub fn into_storable(mut self) -> AcctRecord {
        for s in self.text_fields_mut() {
            make_storable(s);
        }
        self
    }

    fn text_fields(&self) -> [&String; 19] {
        text_fields!(self)
    }

    fn text_fields_mut(&mut self) -> [&mut String; 19] {
        text_fields!(self)
    }
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcctOutcome {
    /// A statement changed a row.
    Written,
    /// Nothing to change (a duplicate, a late Interim after Stop, a status
    /// type that stores nothing); rlm_sql answers `noop`.
    Unchanged,
}

/// The records of a batch, passed as one array per column (in the order of
/// [`AcctRecord`]'s fields; octets already folded with their gigawords) and
/// turned back into rows, typed once, so that each statement can use
/// whichever column it needs. A batch never holds the same unique id twice
/// (the caller splits it into rounds), so every statement touches each
/// radacct row at most once.
macro_rules! params {
    () => {
        "WITH p AS (SELECT sid, uid, username, NULLIF(realm, '') AS realm, nas, \
         NULLIF(portid, '') AS portid, porttype, ts, stime, authentic, ci, inoct, outoct, \
         called, calling, cause, service, proto, NULLIF(fip, '')::inet AS fip, \
         NULLIF(fip6, '')::inet AS fip6, NULLIF(fpfx, '')::inet AS fpfx, \
         NULLIF(fifid, '') AS fifid, NULLIF(dpfx, '')::inet AS dpfx \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
         $7::text[], $8::int8[], $9::int8[], $10::text[], $11::text[], $12::int8[], $13::int8[], \
         $14::text[], $15::text[], $16::text[], $17::text[], $18::text[], $19::text[], \
         $20::text[], $21::text[], $22::text[], $23::text[]) \
         AS u(sid, uid, username, realm, nas, portid, porttype, ts, stime, authentic, ci, \
         inoct, outoct, called, calling, cause, service, proto, fip, fip6, fpfx, fifid, dpfx)) "
    };
}

macro_rules! columns {
    () => {
        "(acctsessionid, acctuniqueid, username, realm, nasipaddress, nasportid, \
         nasporttype, acctstarttime, acctupdatetime, acctstoptime, acctsessiontime, acctauthentic, \
         connectinfo_start, connectinfo_stop, acctinputoctets, acctoutputoctets, calledstationid, \
         callingstationid, acctterminatecause, servicetype, framedprotocol, framedipaddress, \
         framedipv6address, framedipv6prefix, framedinterfaceid, delegatedipv6prefix) "
    };
}

/// Interim-Update and Stop both carry the session's framed addresses.
macro_rules! framed_set {
    () => {
        "framedipaddress = EXCLUDED.framedipaddress, \
         framedipv6address = EXCLUDED.framedipv6address, \
         framedipv6prefix = EXCLUDED.framedipv6prefix, \
         framedinterfaceid = EXCLUDED.framedinterfaceid, \
         delegatedipv6prefix = EXCLUDED.delegatedipv6prefix, "
    };
}

/// One upsert per status type, keyed on radacct's unique index on
/// `acctuniqueid`: each folds the chain of stock queries tried in order
/// (rlm_sql's `acct_redundant`) into one statement with the same result.
/// An INSERT ... SELECT with ON CONFLICT has no join for the planner to
/// choose, so the cached generic plan is always a probe of that index; a
/// batch UPDATE ... FROM joined to radacct was re-planned for every batch
/// because a generic join plan made on "empty" statistics scans radacct.
/// Each returns the unique id of every row it inserted or changed.
///
/// Start: insert, or on a duplicate move the start time
/// (`accounting_start_query` and its `_alt`).
const START: &str = concat!(
    params!(),
    "INSERT INTO radacct AS r ",
    columns!(),
    "SELECT p.sid, p.uid, p.username, p.realm, p.nas::inet, p.portid, p.porttype, \
     to_timestamp(p.ts), to_timestamp(p.ts), NULL, 0, p.authentic, p.ci, NULL, 0, 0, \
     p.called, p.calling, NULL, p.service, p.proto, p.fip, p.fip6, p.fpfx, p.fifid, p.dpfx \
     FROM p ON CONFLICT (acctuniqueid) DO UPDATE SET \
     acctstarttime = EXCLUDED.acctstarttime, acctupdatetime = EXCLUDED.acctupdatetime, \
     connectinfo_start = EXCLUDED.connectinfo_start \
     RETURNING r.acctuniqueid"
);

/// Interim-Update: update an open session, insert a missing one, leave a
/// closed one alone (no row returned: `noop`).
const INTERIM: &str = concat!(
    params!(),
    "INSERT INTO radacct AS r ",
    columns!(),
    "SELECT p.sid, p.uid, p.username, p.realm, p.nas::inet, p.portid, p.porttype, \
     to_timestamp(p.ts), to_timestamp(p.ts), NULL, p.stime, p.authentic, p.ci, NULL, \
     p.inoct, p.outoct, p.called, p.calling, NULL, p.service, p.proto, p.fip, p.fip6, \
     p.fpfx, p.fifid, p.dpfx FROM p ON CONFLICT (acctuniqueid) DO UPDATE SET ",
    framed_set!(),
    "acctsessiontime = EXCLUDED.acctsessiontime, \
     acctinterval = EXTRACT(EPOCH FROM EXCLUDED.acctupdatetime) \
     - EXTRACT(EPOCH FROM COALESCE(r.acctupdatetime, r.acctstarttime)), \
     acctupdatetime = EXCLUDED.acctupdatetime, \
     acctinputoctets = EXCLUDED.acctinputoctets, \
     acctoutputoctets = EXCLUDED.acctoutputoctets \
     WHERE r.acctstoptime IS NULL RETURNING r.acctuniqueid"
);

/// Stop: close the session, insert it closed when it is missing, and close
/// it again when it already is (the stock `_alt` query does).
const STOP: &str = concat!(
    params!(),
    "INSERT INTO radacct AS r ",
    columns!(),
    "SELECT p.sid, p.uid, p.username, p.realm, p.nas::inet, p.portid, p.porttype, \
     to_timestamp(p.ts - COALESCE(p.stime, 0)), to_timestamp(p.ts), to_timestamp(p.ts), \
     p.stime, p.authentic, p.ci, NULL, p.inoct, p.outoct, p.called, p.calling, p.cause, \
     p.service, p.proto, p.fip, p.fip6, p.fpfx, p.fifid, p.dpfx \
     FROM p ON CONFLICT (acctuniqueid) DO UPDATE SET \
     acctstoptime = EXCLUDED.acctstoptime, acctupdatetime = EXCLUDED.acctupdatetime, \
     acctsessiontime = COALESCE(EXCLUDED.acctsessiontime, \
     EXTRACT(EPOCH FROM EXCLUDED.acctstoptime) - EXTRACT(EPOCH FROM r.acctstarttime)), \
     acctinputoctets = EXCLUDED.acctinputoctets, \
     acctoutputoctets = EXCLUDED.acctoutputoctets, \
     acctterminatecause = EXCLUDED.acctterminatecause, ",
    framed_set!(),
    "connectinfo_stop = EXCLUDED.connectinfo_start \
     RETURNING r.acctuniqueid"
);

/// Accounting-On/Off: closes every open session of one NAS. Its
/// parameters are the NAS address, the event time and the terminate cause;
/// it changes rows of other unique ids, so it runs for one record at a
/// time, between the batches of the records before and after it.
pub const NAS_RESET: &str = "UPDATE radacct SET acctstoptime = to_timestamp($2::int8), \
     acctupdatetime = to_timestamp($2::int8), \
     acctsessiontime = ($2::int8 - EXTRACT(EPOCH FROM acctstarttime)), \
     acctterminatecause = COALESCE(NULLIF($3::text, ''), 'NAS-Reboot') \
     WHERE acctstoptime IS NULL AND nasipaddress = $1::text::inet \
     AND acctstarttime <= to_timestamp($2::int8)";

/// The upsert for one status type, taking the 23 column arrays described
/// at `params!` above; for any number of records with distinct unique ids.
/// None for Accounting-On/Off (see [`is_nas_wide`] and [`NAS_RESET`]) and
/// for types that store nothing.
pub fn statement(status: AcctStatus) -> Option<&'static str> {
    match status {
        AcctStatus::Start => Some(START),
        AcctStatus::InterimUpdate => Some(INTERIM),
        AcctStatus::Stop => Some(STOP),
        AcctStatus::AccountingOn | AcctStatus::AccountingOff | AcctStatus::Other(_) => None,
    }
}

/// Whether a request of this type writes anything.
pub fn stores(status: AcctStatus) -> bool {
    !matches!(status, AcctStatus::Other(_))
}

/// Accounting-On/Off change every open session of a NAS, not the row of
/// their own unique id: they are applied one record at a time, in order
/// with the others.
pub fn is_nas_wide(status: AcctStatus) -> bool {
    matches!(status, AcctStatus::AccountingOn | AcctStatus::AccountingOff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gigawords_fold_into_64_bits() {
        let r = AcctRecord {
            input_octets: 5,
            input_gigawords: 2,
            output_octets: u32::MAX,
            output_gigawords: 1,
            ..Default::default()
        };
        assert_eq!(r.input_total(), (2i64 << 32) + 5);
        assert_eq!(r.output_total(), (1i64 << 32) + u32::MAX as i64);
    }

    #[test]
    fn every_text_field_is_made_storable() {
        let clean = AcctRecord {
            session_id: "s1".into(),
            unique_id: "u1".into(),
            username: "DOMAIN\\alice".into(),
            nas_ip: "192.0.2.1".into(),
            input_octets: 7,
            ..Default::default()
        };
        assert!(matches!(clean.storable(), Cow::Borrowed(_)));
        let mut hostile = clean.clone();
        for (k, s) in hostile.text_fields_mut().into_iter().enumerate() {
            *s = format!("f{k}\0");
        }
        let r = hostile.storable().into_owned();
        for (k, s) in r.text_fields().into_iter().enumerate() {
            assert_eq!(*s, format!("f{k}\\000"), "text field {k}");
        }
        assert_eq!(r.input_octets, 7);
        let long = AcctRecord {
            username: "a".repeat(5000),
            ..clean
        };
        let r = long.storable();
        assert_eq!(r.username.len(), crate::postauth::MAX_TEXT_BYTES);
        assert_eq!(r.unique_id, "u1");
    }

    #[test]
    fn status_codes() {
        assert_eq!(AcctStatus::from_code(1), AcctStatus::Start);
        assert_eq!(AcctStatus::from_code(3), AcctStatus::InterimUpdate);
        assert_eq!(AcctStatus::from_code(8), AcctStatus::AccountingOff);
        assert_eq!(AcctStatus::from_code(15), AcctStatus::Other(15));
        assert!(!stores(AcctStatus::Other(15)));
        assert!(statement(AcctStatus::Other(15)).is_none());
        assert!(stores(AcctStatus::AccountingOn));
        assert!(statement(AcctStatus::AccountingOn).is_none());
    }
}
