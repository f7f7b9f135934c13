//! check perf|datascale tests.
