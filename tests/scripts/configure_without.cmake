# cmake -DSRC=<repo> -DHIDE=dnnl|OpenCL -DWORK=<dir> -P configure_without.cmake
# Configures the project with find_package(${HIDE}) disabled and checks that configure succeeds,
# that bench/ is skipped with a line naming the package to install, and that bfcn is still a target.
file(REMOVE_RECURSE ${WORK})
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SRC} -B ${WORK} -DBFCN_BUILD_BENCH=ON
                        -DBFCN_BUILD_TESTS=OFF -DCMAKE_DISABLE_FIND_PACKAGE_${HIDE}=ON
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "configure without ${HIDE} failed (${rc}):\n${out}\n${err}")
endif()
if(NOT out MATCHES "bench/ skipped: [^\n]*apt-get install [^\n]*(libdnnl-dev|ocl-icd-opencl-dev)")
  message(FATAL_ERROR "configure without ${HIDE} did not say bench/ was skipped and how to enable it:\n${out}")
endif()
if(NOT EXISTS ${WORK}/CMakeFiles/bfcn.dir OR EXISTS ${WORK}/bench/CMakeFiles/bfcn-bench.dir)
  message(FATAL_ERROR "without ${HIDE}: expected the bfcn target and no bfcn-bench target in ${WORK}")
endif()
file(REMOVE_RECURSE ${WORK})
message(STATUS "configure without ${HIDE}: ok, bench/ skipped")
