/* Defaults for the ASan+UBSan build (make SAN=1).  The starter clears its
 * environment and runs setuid, so ASAN_OPTIONS cannot reach it: the
 * defaults are compiled in.  LeakSanitizer cannot work in a non-dumpable
 * setuid process and would only report memory still held at exit; leaks
 * are checked by the unit tests and fuzzers instead. */
#if defined(__SANITIZE_ADDRESS__)
const char *__asan_default_options (void);
const char *
__asan_default_options (void)
{
    return "detect_leaks=0:exitcode=99";
}
#else
/* ISO C forbids an empty translation unit. */
typedef int capsa_sanitizer_unused;
#endif
