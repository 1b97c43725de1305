# Warning flags from STYLE.md (habit 15). RR_WERROR turns them into errors (CI sets it).
include_guard(GLOBAL)
option(RR_WERROR "Treat warnings as errors" OFF)

set(RR_C_WARNINGS
  -Wall -Wextra -Wpedantic -Wconversion -Wshadow -Wstrict-prototypes
  -Wmissing-prototypes -Wno-sign-conversion)
set(RR_CXX_WARNINGS -Wall -Wextra -Wshadow)
if(RR_WERROR)
  list(APPEND RR_C_WARNINGS -Werror)
  list(APPEND RR_CXX_WARNINGS -Werror)
endif()

# rr_target_warnings(<target>): our own code gets the full set.
function(rr_target_warnings target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:C>:${RR_C_WARNINGS}>
    $<$<COMPILE_LANGUAGE:CXX>:${RR_CXX_WARNINGS}>)
endfunction()
