//! jemalloc's statistics text (`malloc_stats_print`), for `replica.dump-jemalloc-stats`. The
//! crate's only foreign call: jemalloc gives its statistics through this C callback alone.

/// The statistics jemalloc prints with `opts` (its option letters); `None` in a build
/// without jemalloc.
#[cfg(feature = "jemalloc")]
pub fn stats(opts: &str) -> Option<String> {
    use std::ffi::{c_char, c_void, CStr, CString};

    unsafe extern "C" fn write_cb(opaque: *mut c_void, msg: *const c_char) {
        if opaque.is_null() || msg.is_null() {
            return;
        }
        // SAFETY: `opaque` is the `String` passed to malloc_stats_print below, alive and not
        // otherwise borrowed during the call; `msg` is a NUL-terminated string jemalloc keeps
        // valid for the duration of the callback.
        let (out, text) = unsafe { (&mut *(opaque as *mut String), CStr::from_ptr(msg)) };
        out.push_str(&text.to_string_lossy());
    }

    let opts = CString::new(opts).ok()?;
    let mut out = String::new();
    // SAFETY: the callback matches jemalloc's `write_cb` signature, the opaque pointer is a
    // valid `*mut String` for the call, and `opts` is a NUL-terminated string.
    unsafe {
        tikv_jemalloc_sys::malloc_stats_print(
            Some(write_cb),
            &mut out as *mut String as *mut c_void,
            opts.as_ptr(),
        );
    }
    Some(out)
}

#[cfg(not(feature = "jemalloc"))]
pub fn stats(_opts: &str) -> Option<String> {
    None
}

#[cfg(all(test, feature = "jemalloc"))]
mod tests {
    #[test]
    fn prints_jemallocs_statistics() {
        let text = super::stats("gmdablxe").expect("jemalloc");
        assert!(
            text.contains("Allocated:") || text.contains("allocated"),
            "{text}"
        );
    }
}
