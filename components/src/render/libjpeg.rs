//! libjpeg's error handling, shared by the decoder and the encoder.

use std::panic::{AssertUnwindSafe, catch_unwind};

/// libjpeg reports fatal errors by unwinding (mozjpeg's error manager); turn them, and I/O
/// errors, into messages.
pub(super) fn guard<T>(f: impl FnOnce() -> std::io::Result<T>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(panic) => Err(panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "the JPEG data is corrupt".to_owned())),
    }
}
