# verilator --lint-only -Wall over the parameter sets that change which logic
# exists (each dataflow, gate on/off, wrap/saturate, odd shapes and widths).
# Any warning fails: Verilator exits non-zero on warnings unless -Wno-fatal.
# Usage: cmake -DVERILATOR=verilator -DRTL_DIR=rtl -P lint.cmake
set(_sets
  "-GDATAFLOW=0 -GGATE=0 -GSATURATE=0"
  "-GDATAFLOW=0 -GGATE=1 -GSATURATE=1"
  "-GDATAFLOW=1 -GGATE=0 -GSATURATE=1"
  "-GDATAFLOW=1 -GGATE=1 -GSATURATE=0"
  "-GDATAFLOW=2 -GGATE=0 -GSATURATE=0"
  "-GDATAFLOW=2 -GGATE=1 -GSATURATE=1"
  "-GDATAFLOW=0 -GROWS=1 -GCOLS=1 -GACC_W=8 -GOP_W=9 -GWPB=1 -GSHIFT_W=1"
  "-GDATAFLOW=1 -GROWS=1 -GCOLS=8 -GACC_W=32 -GWEST_W=8 -GNORTH_W=2"
  "-GDATAFLOW=2 -GROWS=8 -GCOLS=1 -GACC_W=12 -GWPB=3 -GSHIFT_W=3"
  "-GDATAFLOW=1 -GGATE=1 -GSATURATE=1 -GLOOKAHEAD=1"
  "-GDATAFLOW=1 -GGATE=0 -GSATURATE=0 -GLOOKAHEAD=2 -GROWS=3 -GCOLS=5"
  "-GDATAFLOW=1 -GGATE=1 -GSATURATE=0 -GLOOKAHEAD=7"
  # ARRAY_STYLE = 1 (one loop over the PE state) with the word ports
  "-GARRAY_STYLE=1 -GOBS=1 -GDATAFLOW=0 -GGATE=1 -GSATURATE=1"
  "-GARRAY_STYLE=1 -GOBS=1 -GDATAFLOW=1 -GGATE=0 -GSATURATE=0 -GACC_W=32"
  "-GARRAY_STYLE=1 -GOBS=0 -GDATAFLOW=2 -GGATE=1 -GSATURATE=0 -GROWS=1 -GCOLS=1"
  "-GARRAY_STYLE=1 -GOBS=1 -GDATAFLOW=1 -GGATE=1 -GSATURATE=1 -GLOOKAHEAD=2 -GROWS=3 -GCOLS=5"
  "-GARRAY_STYLE=0 -GOBS=1 -GDATAFLOW=0 -GGATE=0 -GSATURATE=0")
set(_failed 0)
foreach(_s ${_sets})
  separate_arguments(_args UNIX_COMMAND "${_s}")
  execute_process(
    COMMAND ${VERILATOR} --lint-only -Wall -I${RTL_DIR} --top-module qs_pe_array ${_args}
            ${RTL_DIR}/qs_pe_array.v ${RTL_DIR}/qs_pe.v
    RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
  if(_rc OR NOT _out STREQUAL "")
    message("lint FAILED for ${_s}:\n${_out}")
    set(_failed 1)
  else()
    message("lint clean: ${_s}")
  endif()
endforeach()
# The PE on its own, as the area script synthesizes it.
foreach(_df 0 1 2)
  execute_process(
    COMMAND ${VERILATOR} --lint-only -Wall -I${RTL_DIR} --top-module qs_pe -GDATAFLOW=${_df} -GXW=8 -GYW=2
            ${RTL_DIR}/qs_pe.v
    RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
  if(_rc OR NOT _out STREQUAL "")
    message("lint FAILED for qs_pe DATAFLOW=${_df}:\n${_out}")
    set(_failed 1)
  endif()
endforeach()
if(_failed)
  message(FATAL_ERROR "verilator lint found warnings")
endif()
