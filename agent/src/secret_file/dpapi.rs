//! DPAPI at machine scope (Windows): `CryptProtectData` / `CryptUnprotectData` with
//! `CRYPTPROTECT_LOCAL_MACHINE | CRYPTPROTECT_UI_FORBIDDEN` and sealprint's entropy.
//!
//! The output buffers DPAPI allocates are copied (the plaintext into a `Zeroizing` buffer),
//! wiped where they held a secret, and released with `LocalFree`.

// The one way to call DPAPI is its C API; every pointer below is either a slice this
// function owns for the duration of the call or a buffer DPAPI allocated and we free.
#![allow(unsafe_code)]

use std::ptr;

use windows_sys::Win32::Foundation::{LocalFree, HLOCAL};
use windows_sys::Win32::Security::Cryptography::{
    CryptProtectData, CryptUnprotectData, CRYPTPROTECT_LOCAL_MACHINE, CRYPTPROTECT_UI_FORBIDDEN,
    CRYPT_INTEGER_BLOB,
};
use zeroize::{Zeroize, Zeroizing};

use super::{SealError, DPAPI_DESCRIPTION, DPAPI_ENTROPY};

fn blob(bytes: &[u8]) -> Result<CRYPT_INTEGER_BLOB, SealError> {
    Ok(CRYPT_INTEGER_BLOB {
        cbData: u32::try_from(bytes.len()).map_err(|_| SealError::Dpapi {
            operation: "seal",
            detail: "input too large".into(),
        })?,
        pbData: bytes.as_ptr().cast_mut(),
    })
}

fn last_error(operation: &'static str) -> SealError {
    SealError::Dpapi {
        operation,
        detail: std::io::Error::last_os_error().to_string(),
    }
}

/// Copies DPAPI's output out and frees it; wipes it first when `secret`.
fn take(out: CRYPT_INTEGER_BLOB, secret: bool) -> Zeroizing<Vec<u8>> {
    // SAFETY: on success DPAPI set pbData to a LocalAlloc'd buffer of cbData bytes.
    let copied = unsafe {
        let slice = std::slice::from_raw_parts_mut(out.pbData, out.cbData as usize);
        let copied = Zeroizing::new(slice.to_vec());
        if secret {
            slice.zeroize();
        }
        LocalFree(out.pbData as HLOCAL);
        copied
    };
    copied
}

/// Seals `secret` to this machine.
pub(super) fn protect(secret: &[u8]) -> Result<Vec<u8>, SealError> {
    let input = blob(secret)?;
    let entropy = blob(DPAPI_ENTROPY)?;
    let description: Vec<u16> = DPAPI_DESCRIPTION.encode_utf16().chain([0]).collect();
    let mut out = CRYPT_INTEGER_BLOB {
        cbData: 0,
        pbData: ptr::null_mut(),
    };
    // SAFETY: input, entropy and description outlive the call; out receives a DPAPI buffer.
    let ok = unsafe {
        CryptProtectData(
            &input,
            description.as_ptr(),
            &entropy,
            ptr::null(),
            ptr::null(),
            CRYPTPROTECT_LOCAL_MACHINE | CRYPTPROTECT_UI_FORBIDDEN,
            &mut out,
        )
    };
    if ok == 0 {
        return Err(last_error("seal"));
    }
    Ok(take(out, false).to_vec())
}

/// Opens a body sealed by [`protect`] on this machine.
pub(super) fn unprotect(sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let input = blob(sealed)?;
    let entropy = blob(DPAPI_ENTROPY)?;
    let mut out = CRYPT_INTEGER_BLOB {
        cbData: 0,
        pbData: ptr::null_mut(),
    };
    // SAFETY: input and entropy outlive the call; out receives a DPAPI buffer.
    let ok = unsafe {
        CryptUnprotectData(
            &input,
            ptr::null_mut(),
            &entropy,
            ptr::null(),
            ptr::null(),
            CRYPTPROTECT_UI_FORBIDDEN,
            &mut out,
        )
    };
    if ok == 0 {
        return Err(last_error("open"));
    }
    Ok(take(out, true))
}
