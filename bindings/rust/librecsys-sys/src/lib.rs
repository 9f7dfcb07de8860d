//! Raw declarations of the librecsys C API (include/librecsys/recsys.h).
//!
//! `generated.rs` is written by `bindings/python/gen_bindings.py` from the
//! header, and the Python test suite checks that it is current, so every
//! public function, constant and type is here. Use the `librecsys` crate for
//! a safe interface.
#![allow(non_camel_case_types, non_upper_case_globals, unused_imports)]

mod generated;
pub use generated::*;

/// `RECSYS_CHECK_VERSION()`: does the loaded library serve this header?
pub fn check_version() -> recsys_status {
    unsafe { recsys_check_version(RECSYS_VERSION_NUMBER) }
}
