//! make-mirror tests (see mirror_* tests).
