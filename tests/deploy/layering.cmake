# The runtime's include path holds kernels/, core/ and runtime/ only: a runtime source that
# includes a training header does not compile. cmake -DCXX=... -DINCS="a|b|c" -DWORK=dir -P this
# compiles three one-line sources with exactly those include directories: runtime/engine.h must
# compile (control), train/export.h and layers/model.h must fail as "No such file".
string(REPLACE "|" ";" _incs "${INCS}")
set(_flags -std=c++20 -fsyntax-only)
foreach(_i ${_incs})
  list(APPEND _flags -I${_i})
endforeach()
file(MAKE_DIRECTORY ${WORK})
foreach(_case "runtime/engine.h;0" "train/export.h;1" "layers/model.h;1")
  list(GET _case 0 _hdr)
  list(GET _case 1 _must_fail)
  set(_src ${WORK}/probe.cpp)
  file(WRITE ${_src} "#include \"${_hdr}\"\nint main() { return 0; }\n")
  execute_process(COMMAND ${CXX} ${_flags} ${_src} RESULT_VARIABLE _rc ERROR_VARIABLE _err
                  OUTPUT_QUIET)
  if(_must_fail AND (_rc EQUAL 0 OR NOT _err MATCHES "No such file"))
    message(FATAL_ERROR "a runtime file including \"${_hdr}\" compiled (rc ${_rc}): ${_err}")
  elseif(NOT _must_fail AND NOT _rc EQUAL 0)
    message(FATAL_ERROR "control: \"${_hdr}\" does not compile with the runtime's includes: ${_err}")
  endif()
  message(STATUS "${_hdr}: rc ${_rc} (as expected)")
endforeach()
