/* Windows-under-Wine only (nox -s windows-smoke), never shipped.
 *
 * Rust's standard library (1.78 and later) takes random bytes from
 * bcryptprimitives.dll!ProcessPrng, which Wine 8 lacks: tokenizers and tiktoken then fail
 * with "DLL load failed". This bcryptprimitives.dll provides it over RtlGenRandom. */
#include <windows.h>
#include <ntsecapi.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T size) {
    while (size > 0) {
        ULONG chunk = size > 0x10000000 ? 0x10000000 : (ULONG)size;
        if (!RtlGenRandom(data, chunk)) return FALSE;
        data += chunk;
        size -= chunk;
    }
    return TRUE;
}
