/* Linux side of Windows-under-Wine only (nox -s windows-smoke, put in LD_PRELOAD for wine64).
 *
 * Linux lets a process use AMX tiles (Sapphire Rapids and later, which onnxruntime's int8
 * kernels use) only after arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA); Windows needs
 * no such request, so a Windows program under Wine dies with an illegal instruction. A Wine
 * artefact, not a CPU to block: real Windows runs the same int8 kernels. */
#include <sys/syscall.h>
#include <unistd.h>

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

__attribute__((constructor)) static void request_amx_permission(void) {
    syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA); /* refused on CPUs without AMX: harmless */
}
