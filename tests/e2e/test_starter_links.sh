# What the installed setuid starter is made of (issue 12, HACKING.md): code
# from src/lib, src/sif, src/runtime and src/starter only, linked against
# libcap and json-c (libseccomp if it ever needs it); none of the front
# end's heavy libraries; not the seccomp JSON compiler (src/policy); and the
# only JSON it parses is the administrator's capability.json
# (src/runtime/caps.c).  tests/run.sh runs this file on every `make check`,
# whatever TESTS says.  Read with binutils from the binary itself, so it
# holds whatever the Makefile says.
S=$CAPSA_PREFIX/libexec/capsa/starter

needed=$(readelf -d "$S" 2> /dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p')
if [ -z "$needed" ]; then
    fail "starter: readable ELF with NEEDED entries" "readelf -d $S shows none"
fi
closure=$(ldd "$S" 2> /dev/null | awk '{ print $1 }')
expect_match "starter: ldd lists the libraries it loads" '^libc\.so' "$closure"
for lib in libcrypto libssl libcurl libarchive libcryptsetup libfuse; do
    expect_eq "starter: $lib is not linked" "" "$(printf '%s\n' "$needed" | grep -E "^$lib[^.]*\.so" | paste -sd' ')"
    expect_eq "starter: $lib is not loaded through another library" "" \
        "$(printf '%s\n' "$closure" | grep -E "^$lib[^.]*\.so" | paste -sd' ')"
done
# Anything beyond this list is new privileged code to review first.
allowed='^(libc|libcap|libjson-c|libseccomp|ld-linux-[a-z0-9_-]+|libasan|libubsan|libm|libgcc_s|libstdc\+\+)\.so'
expect_eq "starter: links only libc, libcap, json-c (and libseccomp, sanitizer runtimes)" "" \
    "$(printf '%s\n' "$needed" | grep -vE "$allowed" | paste -sd' ')"

# The seccomp JSON compiler: its symbols, the libseccomp calls that build
# a filter, and the profile keywords it recognises.
if nm "$S" 2> /dev/null | grep -qE ' T (main|capsa_container_run)$'; then
    expect_eq "starter: no capsa_seccomp_compile* symbol" "" \
        "$(nm "$S" | awk '$3 ~ /^capsa_seccomp_compile/ { print $3 }' | paste -sd' ')"
else
    skip "starter: no capsa_seccomp_compile* symbol" "the installed starter has no symbol table (stripped)"
fi
expect_eq "starter: imports no libseccomp filter-building call" "" \
    "$(nm -D --undefined-only "$S" | awk '{ print $NF }' | sed 's/@.*//' \
        | grep -E '^seccomp_(init|reset|rule_add|export_|syscall_resolve_name|arch_add|merge|load)' | paste -sd' ')"
expect_eq "starter: contains none of the profile keywords (defaultAction, SCMP_ACT_, errnoRet)" "0" \
    "$(grep -acE 'defaultAction|SCMP_ACT_|errnoRet' "$S")"

# With debug information (make check installs unstripped binaries): the
# source files compiled into it, and where it calls a JSON parser.
cus=$(readelf --debug-dump=info --dwarf-depth=1 "$S" 2> /dev/null | grep -A12 'DW_TAG_compile_unit' \
    | sed -n 's/.*DW_AT_name *:.* \([^ ]*\)$/\1/p' | grep -oE 'src/[^ ]+\.c$' | sort -u)
if printf '%s\n' "$cus" | grep -qx src/starter/starter.c; then
    expect_eq "starter: compiled only from src/lib, src/sif, src/runtime, src/starter" "" \
        "$(printf '%s\n' "$cus" | grep -vE '^src/(lib|sif|runtime|starter)/' | paste -sd' ')"
    # Every call or tail call into json-c's parsers, by source file.
    sites=$(objdump -d --no-show-raw-insn "$S" \
        | sed -nE 's/^ *([0-9a-f]+):\s+(call|jmp)\s+[0-9a-f]+ <(json_tokener_[a-z_]+|json_object_from_f[a-z_]*)@plt>.*/\1/p')
    files=$(for a in $sites; do addr2line -e "$S" "0x$a"; done | sed 's/:.*//' | grep -oE 'src/.*' | sort -u)
    if [ -n "$sites" ]; then
        expect_eq "starter: JSON parsed only in src/runtime/caps.c (capability.json)" "src/runtime/caps.c" \
            "$(printf '%s\n' "$files" | paste -sd' ')"
    else
        pass "starter: JSON parsed only in src/runtime/caps.c (capability.json): it parses none"
    fi
else
    skip "starter: compiled only from src/lib, src/sif, src/runtime, src/starter" "no debug information in $S"
    skip "starter: JSON parsed only in src/runtime/caps.c (capability.json)" "no debug information in $S"
fi
