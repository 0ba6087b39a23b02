//! This machine's host name, the default name a station enrolls under: the kernel's host name
//! on Linux (`/proc/sys/kernel/hostname`, what gethostname(2) returns), the computer's DNS
//! host name on Windows. Not `$HOSTNAME`: a shell variable that systemd, sudo and Windows
//! services do not set.

/// The name used when the system gives none.
pub const FALLBACK: &str = "station";

/// The host name, trimmed; [`FALLBACK`] when the system has none.
pub fn name() -> String {
    system_name()
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| FALLBACK.to_owned())
}

#[cfg(unix)]
fn system_name() -> Option<String> {
    if let Ok(name) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        return Some(name);
    }
    // Other unixes: uname -n (POSIX) prints the same node name.
    let out = std::process::Command::new("uname")
        .arg("-n")
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(windows)]
// SAFETY of the block below: GetComputerNameExW writes at most `len` UTF-16 units into the
// buffer it is given and sets `len` to the count written; the buffer outlives the call.
#[allow(unsafe_code)]
fn system_name() -> Option<String> {
    use windows_sys::Win32::System::SystemInformation::{
        ComputerNamePhysicalDnsHostname, GetComputerNameExW,
    };
    let mut buf = [0u16; 256];
    let mut len = buf.len() as u32;
    // SAFETY: see above.
    let ok =
        unsafe { GetComputerNameExW(ComputerNamePhysicalDnsHostname, buf.as_mut_ptr(), &mut len) };
    (ok != 0).then(|| String::from_utf16_lossy(&buf[..(len as usize).min(buf.len())]))
}

#[cfg(not(any(unix, windows)))]
fn system_name() -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn is_the_system_name_not_the_shell_variable() {
        let name = super::name();
        assert!(!name.is_empty());
        #[cfg(target_os = "linux")]
        {
            let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("procfs");
            assert_eq!(name, kernel.trim());
        }
    }
}
