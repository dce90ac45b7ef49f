//! End-to-end scenarios: the real `rapport` binary, started as users start it, with
//! stores in temporary directories and HTTP over loopback.

mod crash_import;
mod harness;
mod serve;
