/*
 * Test-only stand-in for Windows' bcryptprimitives.dll, for running the agent under Wine.
 *
 * Rust's standard library (1.78 and later) gets its random bytes from ProcessPrng in
 * bcryptprimitives.dll, which Debian's Wine 8 does not provide: without this DLL in the Wine
 * prefix's system32 the agent stops at load (status c0000135). This one exports ProcessPrng
 * over RtlGenRandom (advapi32's SystemFunction036), which Wine does provide.
 *
 * Built by the Wine tests (sealprint_testkit::wine) with x86_64-w64-mingw32-gcc; never shipped.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
