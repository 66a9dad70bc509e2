//! Routes the core's `log` records to radiusd's log.

use crate::ffi::radlog;
use crate::sys;

struct RadLog;

impl log::Log for RadLog {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        // The database driver's own debug chatter (every statement) is not
        // what an operator reading `radiusd -X` needs.
        metadata.level() <= log::max_level()
            && (metadata.target().starts_with("radius_core")
                || metadata.target().starts_with("rlm_rust")
                || metadata.level() <= log::Level::Warn)
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Error => sys::L_ERR,
            log::Level::Warn => sys::L_WARN,
            log::Level::Info => sys::L_INFO,
            log::Level::Debug | log::Level::Trace => sys::L_DBG,
        };
        radlog(level, &format!("rlm_rust: {}", record.args()));
    }

    fn flush(&self) {}
}

static LOGGER: RadLog = RadLog;

/// Installs the logger once per process; debug records only when radiusd
/// runs with -X.
pub fn install() {
    if log::set_logger(&LOGGER).is_ok() {
        // SAFETY: rad_debug_lvl is a plain global set from the command line
        // before modules are loaded.
        let debug = unsafe { sys::rad_debug_lvl } > 0;
        log::set_max_level(if debug {
            log::LevelFilter::Debug
        } else {
            log::LevelFilter::Info
        });
    }
}
