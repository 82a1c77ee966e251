# `cmake --install build --prefix P`: the command, libqsim (shared + static),
# the header, pkg-config and CMake package files, presets and tech tables,
# GTKWave views, the Python package and scripts, the docs (docs/api.md,
# "Installed files", lists where each goes).
include(CMakePackageConfigHelpers)

set(QSIM_DATADIR ${CMAKE_INSTALL_DATADIR}/qsim)

install(TARGETS qsim RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS qsim_shared qsim_static EXPORT qsimTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        PUBLIC_HEADER DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/qsim)
install(EXPORT qsimTargets NAMESPACE qsim:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/qsim)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/qsimConfig.cmake.in
  ${PROJECT_BINARY_DIR}/qsimConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/qsim)
# same major version = same API (QSIM_API_VERSION follows the soname)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/qsimConfigVersion.cmake COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/qsimConfig.cmake ${PROJECT_BINARY_DIR}/qsimConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/qsim)

# pkg-config: relative to the .pc file, so a moved prefix still works
file(RELATIVE_PATH QSIM_PC_TO_PREFIX /p/${CMAKE_INSTALL_LIBDIR}/pkgconfig /p)
configure_file(${PROJECT_SOURCE_DIR}/cmake/qsim.pc.in ${PROJECT_BINARY_DIR}/qsim.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/qsim.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# presets keep their layout: a .cfg's "table = ../tech/default45.tech" resolves
install(DIRECTORY ${PROJECT_SOURCE_DIR}/models/arch ${PROJECT_SOURCE_DIR}/models/tech DESTINATION ${QSIM_DATADIR})
install(FILES ${PROJECT_SOURCE_DIR}/traces/accelerator.gtkw ${PROJECT_SOURCE_DIR}/traces/pe_array.gtkw
        DESTINATION ${QSIM_DATADIR}/gtkwave)
# scripts: qsim import looks for onnx_import.py in <prefix>/share/qsim (cli/main.c)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/scripts/ DESTINATION ${QSIM_DATADIR}
        USE_SOURCE_PERMISSIONS
        FILES_MATCHING PATTERN "*.py" PATTERN "dse" PATTERN "report" PATTERN "*.toml"
        PATTERN "__pycache__" EXCLUDE PATTERN "bench" EXCLUDE)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR}
        PATTERN "studies" EXCLUDE)
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES ${PROJECT_SOURCE_DIR}/examples/qsim_example.c ${PROJECT_SOURCE_DIR}/examples/CMakeLists.txt
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
