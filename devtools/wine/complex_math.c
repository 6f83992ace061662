/* Windows-under-Wine only (nox -s windows-smoke), never shipped.
 *
 * numpy's .pyd files import the C99 complex functions from api-ms-win-crt-math-l1-1-0.dll,
 * which Wine 8 maps to a ucrtbase.dll where they are stubs ("unimplemented function
 * ucrtbase.dll.crealf"). This DLL implements them with MSVC's calling convention, where a
 * complex value is a struct of two floating-point numbers (_Fcomplex, _Dcomplex, _Lcomplex
 * with long double = double), and forwards every other import to ucrtbase (see the .def the
 * session writes). The session renames numpy's import to this DLL's name. */
#include <complex.h>
#include <math.h>

typedef struct { float re, im; } msvc_fcomplex;
typedef struct { double re, im; } msvc_dcomplex;

/* GCC's builtin: mingw's complex.h has no CMPLX/CMPLXF. */
static float complex from_f(msvc_fcomplex z) { return __builtin_complex(z.re, z.im); }
static double complex from_d(msvc_dcomplex z) { return __builtin_complex(z.re, z.im); }
static msvc_fcomplex to_f(float complex z) { msvc_fcomplex r = {crealf(z), cimagf(z)}; return r; }
static msvc_dcomplex to_d(double complex z) { msvc_dcomplex r = {creal(z), cimag(z)}; return r; }

/* complex -> real: float, double and long double (= double) forms */
#define TO_REAL(name)                                                              \
    float shim_##name##f(msvc_fcomplex z) { return name##f(from_f(z)); }           \
    double shim_##name(msvc_dcomplex z) { return name(from_d(z)); }                \
    double shim_##name##l(msvc_dcomplex z) { return name(from_d(z)); }

/* complex -> complex */
#define TO_COMPLEX(name)                                                                   \
    msvc_fcomplex shim_##name##f(msvc_fcomplex z) { return to_f(name##f(from_f(z))); }     \
    msvc_dcomplex shim_##name(msvc_dcomplex z) { return to_d(name(from_d(z))); }           \
    msvc_dcomplex shim_##name##l(msvc_dcomplex z) { return to_d(name(from_d(z))); }

TO_REAL(cabs) TO_REAL(carg) TO_REAL(creal) TO_REAL(cimag)
TO_COMPLEX(cacos) TO_COMPLEX(cacosh) TO_COMPLEX(casin) TO_COMPLEX(casinh) TO_COMPLEX(catan)
TO_COMPLEX(catanh) TO_COMPLEX(ccos) TO_COMPLEX(ccosh) TO_COMPLEX(cexp) TO_COMPLEX(clog)
TO_COMPLEX(conj) TO_COMPLEX(cproj) TO_COMPLEX(csin) TO_COMPLEX(csinh) TO_COMPLEX(csqrt)
TO_COMPLEX(ctan) TO_COMPLEX(ctanh)

msvc_fcomplex shim_cpowf(msvc_fcomplex a, msvc_fcomplex b) { return to_f(cpowf(from_f(a), from_f(b))); }
msvc_dcomplex shim_cpow(msvc_dcomplex a, msvc_dcomplex b) { return to_d(cpow(from_d(a), from_d(b))); }
msvc_dcomplex shim_cpowl(msvc_dcomplex a, msvc_dcomplex b) { return to_d(cpow(from_d(a), from_d(b))); }
