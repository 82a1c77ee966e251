# Runs one co-simulation variant with --fst, converts the dump with fst2vcd
# and checks that the array's ports and a PE's registers are in it.
# Also checks that traces/pe_array.gtkw is what the harness writes for this
# variant and that every signal it shows is in the dump.
# Usage: cmake -DCOSIM=qs_cosim -DFST2VCD=fst2vcd -DWORK_DIR=dir -DGTKW_REF=traces/pe_array.gtkw
#        -P check_fst.cmake
set(_fst ${WORK_DIR}/cosim_fst_test.fst)
set(_gtkw ${WORK_DIR}/cosim_fst_test.gtkw)
file(REMOVE ${_fst} ${_gtkw})
execute_process(COMMAND ${COSIM} --variant ws_s8g --seed 1 --cycles 2000 --fst ${_fst} --gtkw ${_gtkw}
                RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
if(_rc)
  message(FATAL_ERROR "qs_cosim --fst failed (${_rc}):\n${_out}")
endif()
if(NOT EXISTS ${_fst})
  message(FATAL_ERROR "qs_cosim did not write ${_fst}")
endif()
execute_process(COMMAND ${FST2VCD} ${_fst} RESULT_VARIABLE _rc OUTPUT_VARIABLE _vcd ERROR_VARIABLE _err)
if(_rc)
  message(FATAL_ERROR "fst2vcd failed (${_rc}): ${_err}")
endif()
# Header: scopes and variables. Each needed signal must be declared...
foreach(_sig clk rst load clear west west_valid north north_valid south south_valid
             acc_flat stat_flat active_cnt gated_cnt ovf_cnt x_r y_r acc_r)
  if(NOT _vcd MATCHES "\\$var [a-z]+ [0-9]+ [^ ]+ ${_sig}[ \\[]")
    message(FATAL_ERROR "signal ${_sig} is missing from the FST")
  endif()
endforeach()
foreach(_scope qs_pe_array pe)
  if(NOT _vcd MATCHES "\\$scope module ${_scope} \\$end")
    message(FATAL_ERROR "scope ${_scope} is missing from the FST")
  endif()
endforeach()
# ...and the dump must cover the run: 2000 clocks plus resets, 10 units each.
string(REGEX MATCHALL "\n#[0-9]+" _times "${_vcd}")
list(LENGTH _times _n)
list(GET _times -1 _last)
string(REGEX REPLACE "[^0-9]" "" _last "${_last}")
if(_n LESS 2000 OR _last LESS 20000)
  message(FATAL_ERROR "FST has ${_n} time steps, last at ${_last}: too short")
endif()
message("FST ok: ${_n} time steps up to ${_last}")

# The committed GTKWave view must match this variant's dump.
file(READ ${_gtkw} _new)
file(READ ${GTKW_REF} _ref)
if(NOT _new STREQUAL _ref)
  message(FATAL_ERROR "${GTKW_REF} is out of date; regenerate it with:\n"
                      "  qs_cosim --variant ws_s8g --cycles 0 --gtkw traces/pe_array.gtkw")
endif()
string(REGEX MATCHALL "\n(\\+{[^}]*} )?TOP\\.[^\n]+" _shown "${_ref}")
foreach(_line ${_shown})
  string(REGEX REPLACE ".*\\.([A-Za-z_0-9]+)(\\[[0-9]+:0\\])?$" "\\1" _leaf "${_line}")
  if(NOT _vcd MATCHES "\\$var [a-z]+ [0-9]+ [^ ]+ ${_leaf}[ \\[]")
    message(FATAL_ERROR "the GTKWave view shows ${_leaf}, which is not in the dump")
  endif()
endforeach()
list(LENGTH _shown _ns)
message("GTKWave view ok: ${_ns} signals, all in the dump")
