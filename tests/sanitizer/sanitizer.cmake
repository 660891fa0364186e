# Sanitized builds (ALEXNET_SANITIZE): every test runs with the suppressions of the libraries' own
# leaks (lsan.supp), and whatever runs MPI_Init also with ASAN_OPTIONS=fast_unwind_on_malloc=0:
# Open MPI's leaks are matched by library, and frame-pointer stacks stop at the first library
# built without frame pointers.
# - GoogleTest executables: alexnet_sanitizer_emulator(TARGET), before gtest_discover_tests, runs
#   them under `cmake -E env ...` (CROSSCOMPILING_EMULATOR), for the tests and for the build-time
#   --gtest_list_tests run as well, whose leak report at exit would fail the build.
# - add_test() tests (scripts, mpirun): ENVIRONMENT_MODIFICATION, set at the end of the directory
#   for whichever line added them.
set(ALEXNET_LSAN_OPTIONS "suppressions=${CMAKE_CURRENT_LIST_DIR}/lsan.supp:print_suppressions=0")
set(ALEXNET_MPI_ASAN_OPTIONS "fast_unwind_on_malloc=0")

function(alexnet_sanitizer_emulator target)
  if(ALEXNET_SANITIZE STREQUAL "")
    return()
  endif()
  get_target_property(sources ${target} SOURCES)
  set(env "LSAN_OPTIONS=${ALEXNET_LSAN_OPTIONS}")
  if(sources MATCHES "mpi_test_main")
    list(APPEND env "ASAN_OPTIONS=${ALEXNET_MPI_ASAN_OPTIONS}")
  endif()
  set_property(TARGET ${target} PROPERTY CROSSCOMPILING_EMULATOR ${CMAKE_COMMAND} -E env ${env})
endfunction()

if(NOT ALEXNET_SANITIZE STREQUAL "")
  function(alexnet_sanitizer_plain_tests)
    get_property(tests DIRECTORY PROPERTY TESTS)
    set_property(TEST ${tests} APPEND PROPERTY ENVIRONMENT_MODIFICATION
                 "LSAN_OPTIONS=set:${ALEXNET_LSAN_OPTIONS}"
                 "ASAN_OPTIONS=set:${ALEXNET_MPI_ASAN_OPTIONS}")
  endfunction()
  cmake_language(DEFER CALL alexnet_sanitizer_plain_tests)
endif()
