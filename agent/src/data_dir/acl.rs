//! A protected DACL from SDDL on a directory (Windows): `ConvertStringSecurityDescriptorTo
//! SecurityDescriptorW`, then `SetFileSecurityW` with `PROTECTED_DACL_SECURITY_INFORMATION`
//! so nothing is inherited from the parent, and `LocalFree` of the descriptor.

// The Win32 security API has no safe wrapper in the crates this workspace uses; the pointers
// are a NUL-terminated UTF-16 copy owned here and a descriptor the system allocated and we free.
#![allow(unsafe_code)]

use std::os::windows::ffi::OsStrExt as _;
use std::path::Path;
use std::ptr;

use windows_sys::Win32::Foundation::{LocalFree, HLOCAL};
use windows_sys::Win32::Security::Authorization::{
    ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{
    SetFileSecurityW, DACL_SECURITY_INFORMATION, PROTECTED_DACL_SECURITY_INFORMATION,
    PSECURITY_DESCRIPTOR,
};

/// Sets the DACL described by `sddl` on `dir`, protected from inheritance.
pub(super) fn set(dir: &Path, sddl: &str) -> std::io::Result<()> {
    let sddl: Vec<u16> = sddl.encode_utf16().chain([0]).collect();
    let path: Vec<u16> = dir.as_os_str().encode_wide().chain([0]).collect();
    let mut descriptor: PSECURITY_DESCRIPTOR = ptr::null_mut();
    // SAFETY: sddl is NUL-terminated; descriptor receives a LocalAlloc'd buffer.
    let ok = unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.as_ptr(),
            SDDL_REVISION_1,
            &mut descriptor,
            ptr::null_mut(),
        )
    };
    if ok == 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: path is NUL-terminated; descriptor is the valid one converted above.
    let ok = unsafe {
        SetFileSecurityW(
            path.as_ptr(),
            DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
            descriptor,
        )
    };
    let result = if ok == 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    };
    // SAFETY: descriptor was allocated by the conversion and is not used after this.
    unsafe { LocalFree(descriptor as HLOCAL) };
    result
}
