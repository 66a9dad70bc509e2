//! Accounting into the stock `radacct` table with the semantics of
//! FreeRADIUS 3.2's PostgreSQL queries: per status type a list of statements
//! tried in order until one changes a row (rlm_sql's `acct_redundant`).

/// Acct-Status-Type values that write to radacct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

impl AcctRecord {
    /// Gigawords folded into the 64-bit counter, as the stock queries do.
    pub fn input_total(&self) -> i64 {
        ((self.input_gigawords as i64) << 32) + self.input_octets as i64
    }

    pub fn output_total(&self) -> i64 {
        ((self.output_gigawords as i64) << 32) + self.output_octets as i64
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

/// The parameters every statement sees, typed once in a CTE so that each
/// statement can use whichever it needs.
const PARAMS: &str = "WITH p AS (SELECT \
    $1::text AS sid, $2::text AS uid, $3::text AS username, \
    NULLIF($4::text, '') AS realm, $5::text AS nas, NULLIF($6::text, '') AS portid, \
    $7::text AS porttype, $8::bigint AS ts, $9::bigint AS stime, $10::text AS authentic, \
    $11::text AS ci, $12::bigint AS inoct, $13::bigint AS outoct, $14::text AS called, \
    $15::text AS calling, $16::text AS cause, $17::text AS service, $18::text AS proto, \
    NULLIF($19::text, '')::inet AS fip, NULLIF($20::text, '')::inet AS fip6, \
    NULLIF($21::text, '')::inet AS fpfx, NULLIF($22::text, '') AS fifid, \
    NULLIF($23::text, '')::inet AS dpfx) ";

const COLUMNS: &str = "(acctsessionid, acctuniqueid, username, realm, nasipaddress, nasportid, \
    nasporttype, acctstarttime, acctupdatetime, acctstoptime, acctsessiontime, acctauthentic, \
    connectinfo_start, connectinfo_stop, acctinputoctets, acctoutputoctets, calledstationid, \
    callingstationid, acctterminatecause, servicetype, framedprotocol, framedipaddress, \
    framedipv6address, framedipv6prefix, framedinterfaceid, delegatedipv6prefix)";

const FRAMED_SET: &str = "framedipaddress = p.fip, framedipv6address = p.fip6, \
    framedipv6prefix = p.fpfx, framedinterfaceid = p.fifid, delegatedipv6prefix = p.dpfx";

/// The statements for one status type, in the order they are tried.
pub fn statements(status: AcctStatus) -> Vec<String> {
    match status {
        AcctStatus::Start => vec![
            format!(
                "{PARAMS}INSERT INTO radacct AS r {COLUMNS} SELECT p.sid, p.uid, p.username, \
                 p.realm, p.nas::inet, p.portid, p.porttype, to_timestamp(p.ts), \
                 to_timestamp(p.ts), NULL, 0, p.authentic, p.ci, NULL, 0, 0, p.called, \
                 p.calling, NULL, p.service, p.proto, p.fip, p.fip6, p.fpfx, p.fifid, p.dpfx \
                 FROM p ON CONFLICT (acctuniqueid) DO UPDATE SET \
                 acctstarttime = EXCLUDED.acctstarttime, acctupdatetime = EXCLUDED.acctupdatetime, \
                 connectinfo_start = EXCLUDED.connectinfo_start WHERE r.acctstoptime IS NULL"
            ),
            format!(
                "{PARAMS}UPDATE radacct SET acctstarttime = to_timestamp(p.ts), \
                 acctupdatetime = to_timestamp(p.ts), connectinfo_start = p.ci \
                 FROM p WHERE acctuniqueid = p.uid"
            ),
        ],
        AcctStatus::InterimUpdate => vec![
            format!(
                "{PARAMS}UPDATE radacct SET {FRAMED_SET}, acctsessiontime = p.stime, \
                 acctinterval = (p.ts - EXTRACT(EPOCH FROM COALESCE(acctupdatetime, acctstarttime))), \
                 acctupdatetime = to_timestamp(p.ts), acctinputoctets = p.inoct, \
                 acctoutputoctets = p.outoct FROM p \
                 WHERE acctuniqueid = p.uid AND acctstoptime IS NULL"
            ),
            format!(
                "{PARAMS}INSERT INTO radacct {COLUMNS} SELECT p.sid, p.uid, p.username, \
                 p.realm, p.nas::inet, p.portid, p.porttype, to_timestamp(p.ts), \
                 to_timestamp(p.ts), NULL, p.stime, p.authentic, p.ci, NULL, p.inoct, p.outoct, \
                 p.called, p.calling, NULL, p.service, p.proto, p.fip, p.fip6, p.fpfx, p.fifid, \
                 p.dpfx FROM p ON CONFLICT (acctuniqueid) DO NOTHING"
            ),
        ],
        AcctStatus::Stop => {
            let stop_set = format!(
                "acctstoptime = to_timestamp(p.ts), acctupdatetime = to_timestamp(p.ts), \
                 acctsessiontime = COALESCE(p.stime, p.ts - EXTRACT(EPOCH FROM acctstarttime)), \
                 acctinputoctets = p.inoct, acctoutputoctets = p.outoct, \
                 acctterminatecause = p.cause, {FRAMED_SET}, connectinfo_stop = p.ci"
            );
            vec![
                format!(
                    "{PARAMS}UPDATE radacct SET {stop_set} FROM p \
                     WHERE acctuniqueid = p.uid AND acctstoptime IS NULL"
                ),
                format!(
                    "{PARAMS}INSERT INTO radacct {COLUMNS} SELECT p.sid, p.uid, p.username, \
                     p.realm, p.nas::inet, p.portid, p.porttype, \
                     to_timestamp(p.ts - COALESCE(p.stime, 0)), to_timestamp(p.ts), \
                     to_timestamp(p.ts), p.stime, p.authentic, p.ci, NULL, p.inoct, p.outoct, \
                     p.called, p.calling, p.cause, p.service, p.proto, p.fip, p.fip6, p.fpfx, \
                     p.fifid, p.dpfx FROM p ON CONFLICT (acctuniqueid) DO NOTHING"
                ),
                format!("{PARAMS}UPDATE radacct SET {stop_set} FROM p WHERE acctuniqueid = p.uid"),
            ]
        }
        AcctStatus::AccountingOn | AcctStatus::AccountingOff => vec![format!(
            "{PARAMS}UPDATE radacct SET acctstoptime = to_timestamp(p.ts), \
             acctupdatetime = to_timestamp(p.ts), \
             acctsessiontime = (p.ts - EXTRACT(EPOCH FROM acctstarttime)), \
             acctterminatecause = COALESCE(NULLIF(p.cause, ''), 'NAS-Reboot') FROM p \
             WHERE acctstoptime IS NULL AND nasipaddress = p.nas::inet \
             AND acctstarttime <= to_timestamp(p.ts)"
        )],
        AcctStatus::Other(_) => vec![],
    }
}

/// Accounting-On/Off answer `ok` even when no session was open.
pub fn empty_is_ok(status: AcctStatus) -> bool {
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
    fn status_codes() {
        assert_eq!(AcctStatus::from_code(1), AcctStatus::Start);
        assert_eq!(AcctStatus::from_code(3), AcctStatus::InterimUpdate);
        assert_eq!(AcctStatus::from_code(8), AcctStatus::AccountingOff);
        assert_eq!(AcctStatus::from_code(15), AcctStatus::Other(15));
        assert!(statements(AcctStatus::Other(15)).is_empty());
        assert_eq!(statements(AcctStatus::Stop).len(), 3);
    }
}
