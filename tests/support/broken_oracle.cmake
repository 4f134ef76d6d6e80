# cmake -DTEST_BIN=<test_autograd> -DFIXTURE=<dir with a broken torch.py> -P broken_oracle.cmake
# With torch made unimportable, the PyTorch parity test must report "skipped" (exit 77) on a
# developer machine and FAIL under CI=true: a missing oracle never passes silently in CI.
set(_case "DoReFa quantizers match an independent PyTorch implementation")
set(ENV{PYTHONPATH} "${FIXTURE}")
set(ENV{BFCN_SKIP_LOG} "")
unset(ENV{CI})
execute_process(COMMAND ${TEST_BIN} ${_case} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 77 OR NOT out MATCHES "BFCN-SKIPPED: .*PyTorch")
  message(FATAL_ERROR "without CI, a broken oracle should skip with exit 77, got ${rc}:\n${out}")
endif()
set(ENV{CI} "true")
execute_process(COMMAND ${TEST_BIN} ${_case} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(rc EQUAL 0 OR rc EQUAL 77 OR NOT out MATCHES "CI=true: a missing dependency must not skip")
  message(FATAL_ERROR "under CI=true, a broken oracle should fail the test, got ${rc}:\n${out}")
endif()
message(STATUS "broken oracle: skipped (77) off CI, failed (${rc}) under CI=true")
