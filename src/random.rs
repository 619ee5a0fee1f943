//! Random bytes for generated UUIDs and MAC addresses.

/// Fills `buffer` from the kernel's random source (getrandom(2), which
/// needs no file descriptor and is fast enough to call per definition).
pub fn fill(buffer: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < buffer.len() {
        let rest = &mut buffer[filled..];
        // SAFETY: the pointer and length describe `rest`, a live, writable
        // slice; getrandom writes at most that many bytes into it.
        let written = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if written < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() != std::io::ErrorKind::Interrupted {
                return Err(error);
            }
            continue;
        }
        filled += written as usize;
    }
    Ok(())
}
