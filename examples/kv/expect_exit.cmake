# cmake -DCMD=<program> -DARG=<argument> -DEXPECT=<exit code> -P expect_exit.cmake
# Runs one command and passes only when it exits with the expected code (CTest alone can
# only expect 0, or "anything but 0" through WILL_FAIL, which would also accept a crash).
execute_process(COMMAND ${CMD} ${ARG} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}${err}")
if(NOT rc STREQUAL "${EXPECT}")
  message(FATAL_ERROR "${CMD} ${ARG}: exit ${rc}, expected ${EXPECT}")
endif()
