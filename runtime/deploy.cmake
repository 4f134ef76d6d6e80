# The deployable runtime (docs/deploy.md): the C API (runtime/include/bfcn/bfcn.h, runtime/c_api.cpp)
# with kernels/ + core/ + runtime/, as one shared and one static library built from the objects of
# bfcn_kernels, bfcn_core and bfcn_runtime (no second compile). The shared library exports the
# bfcn_* C functions only (a version script hides everything else, libstdc++ and OpenMP stay
# dynamic). `cmake --install` puts both, the headers, a CMake package (find_package(bfcn_runtime),
# targets bfcn::runtime and bfcn::runtime_static) and bfcn_runtime.pc into the prefix.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(_deploy_objs $<TARGET_OBJECTS:bfcn_runtime> $<TARGET_OBJECTS:bfcn_core>
                 $<TARGET_OBJECTS:bfcn_kernels>)
set(_deploy_dir ${CMAKE_BINARY_DIR}/deploy)

add_library(bfcn_runtime_shared SHARED ${_deploy_objs})
target_link_libraries(bfcn_runtime_shared PRIVATE OpenMP::OpenMP_CXX)
target_link_options(bfcn_runtime_shared PRIVATE
                    -Wl,--version-script=${CMAKE_SOURCE_DIR}/runtime/bfcn_exports.map)
set_property(TARGET bfcn_runtime_shared APPEND PROPERTY LINK_DEPENDS
             ${CMAKE_SOURCE_DIR}/runtime/bfcn_exports.map)
add_library(bfcn_runtime_static STATIC ${_deploy_objs})
# Installed, the static library names its runtime libraries directly (a C-only consumer has no
# OpenMP::OpenMP_CXX target): GCC's OpenMP, the C++ standard library, libm.
target_link_libraries(bfcn_runtime_static INTERFACE $<BUILD_INTERFACE:OpenMP::OpenMP_CXX>
                                                    $<INSTALL_INTERFACE:gomp;stdc++;m>)
foreach(_t bfcn_runtime_shared bfcn_runtime_static)
  target_include_directories(${_t} INTERFACE
    $<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}/runtime/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  set_target_properties(${_t} PROPERTIES OUTPUT_NAME bfcn_runtime LINKER_LANGUAGE CXX
                        LIBRARY_OUTPUT_DIRECTORY ${_deploy_dir} ARCHIVE_OUTPUT_DIRECTORY ${_deploy_dir})
endforeach()
set_target_properties(bfcn_runtime_shared PROPERTIES EXPORT_NAME runtime VERSION ${PROJECT_VERSION}
                                                     SOVERSION ${PROJECT_VERSION_MAJOR})
set_target_properties(bfcn_runtime_static PROPERTIES EXPORT_NAME runtime_static)

install(TARGETS bfcn_runtime_shared bfcn_runtime_static EXPORT bfcn_runtimeTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${CMAKE_SOURCE_DIR}/runtime/include/bfcn DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT bfcn_runtimeTargets NAMESPACE bfcn::
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/bfcn_runtime)
file(WRITE ${_deploy_dir}/bfcn_runtimeConfig.cmake
     "include(\${CMAKE_CURRENT_LIST_DIR}/bfcn_runtimeTargets.cmake)\n")
write_basic_package_version_file(${_deploy_dir}/bfcn_runtimeConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
# Relocatable: the .pc names its prefix relative to its own folder (cmake --install --prefix ...).
file(RELATIVE_PATH BFCN_PC_TO_PREFIX /p/${CMAKE_INSTALL_LIBDIR}/pkgconfig /p)
configure_file(${CMAKE_SOURCE_DIR}/runtime/bfcn_runtime.pc.in ${_deploy_dir}/bfcn_runtime.pc @ONLY)
install(FILES ${_deploy_dir}/bfcn_runtimeConfig.cmake ${_deploy_dir}/bfcn_runtimeConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/bfcn_runtime)
install(FILES ${_deploy_dir}/bfcn_runtime.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
target_compile_definitions(bfcn_runtime PRIVATE BFCN_RUNTIME_VERSION="${PROJECT_VERSION}")
