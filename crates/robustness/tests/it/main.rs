//! The robustness suite's tests, one binary (`cargo test -p <crate> --test it`), one module per
//! concern; shared helpers live in their own modules.

mod checkers;
mod robustness;
mod watch_checker;
