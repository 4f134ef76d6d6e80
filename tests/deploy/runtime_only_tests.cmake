# Tests of a -DBFCN_RUNTIME_ONLY=ON build (included by the top-level CMakeLists.txt): the kernel,
# tests of tests/kernels and the format and engine tests of tests/runtime that need no training code, plus the C API test, as one
# Catch2 executable test_runtime_only. Catch2 is a test dependency only: without it the library
# still builds and installs, and configure says the tests were left out.
add_test(NAME runtime_only:layering
         COMMAND ${CMAKE_COMMAND} -DCXX=${CMAKE_CXX_COMPILER} -DWORK=${CMAKE_BINARY_DIR}/layering
                 "-DINCS=$<JOIN:$<TARGET_PROPERTY:bfcn_runtime,INCLUDE_DIRECTORIES>;$<TARGET_PROPERTY:bfcn_kernels,INTERFACE_INCLUDE_DIRECTORIES>;$<TARGET_PROPERTY:bfcn_core,INTERFACE_INCLUDE_DIRECTORIES>,|>"
                 -P ${CMAKE_SOURCE_DIR}/tests/deploy/layering.cmake)
find_package(Catch2 2 QUIET)
if(NOT Catch2_FOUND)
  message(STATUS "runtime-only: Catch2 not found, tests not built (apt-get install catch2)")
  return()
endif()
include(Catch)
set(_dir ${CMAKE_SOURCE_DIR}/tests)
add_executable(test_runtime_only
  ${_dir}/kernels/bitconv_test.cpp ${_dir}/kernels/conv_stem_test.cpp
  ${_dir}/kernels/conv_stem_int8_test.cpp
  ${_dir}/kernels/act_pack_test.cpp ${_dir}/runtime/engine_fusion_test.cpp
  ${_dir}/runtime/format_test.cpp ${_dir}/deploy/capi_test.cpp
  ${_dir}/support/test_support.cpp ${_dir}/support/test_main.cpp)
target_link_libraries(test_runtime_only PRIVATE bfcn_runtime Catch2::Catch2 bfcn_warnings)
target_include_directories(test_runtime_only PRIVATE ${CMAKE_SOURCE_DIR}  # "tests/support/..."
                                                    ${CMAKE_SOURCE_DIR}/runtime/include)
target_compile_definitions(test_runtime_only PRIVATE
  BFCN_SOURCE_DIR="${CMAKE_SOURCE_DIR}" BFCN_SHARED_DIR="${CMAKE_SOURCE_DIR}/../shared"
  BFCN_BINARY_DIR="${CMAKE_BINARY_DIR}")
catch_discover_tests(test_runtime_only TEST_PREFIX "runtime_only:" DISCOVERY_TIMEOUT 60
                     PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=2" SKIP_RETURN_CODE 77)
