# Compiles rtl/tb/tb_qs_pe.v with Icarus (Verilog-2005 mode) and runs it;
# passes when the bench prints PASS.
# Usage: cmake -DIVERILOG=iverilog -DVVP=vvp -DRTL_DIR=rtl -DWORK_DIR=dir -P run_iverilog.cmake
set(_out ${WORK_DIR}/tb_qs_pe.vvp)
execute_process(COMMAND ${IVERILOG} -g2005 -Wall -I${RTL_DIR} -o ${_out} ${RTL_DIR}/tb/tb_qs_pe.v ${RTL_DIR}/qs_pe.v
                RESULT_VARIABLE _rc OUTPUT_VARIABLE _log ERROR_VARIABLE _log)
if(_rc)
  message(FATAL_ERROR "iverilog failed:\n${_log}")
endif()
execute_process(COMMAND ${VVP} -n ${_out} RESULT_VARIABLE _rc OUTPUT_VARIABLE _log ERROR_VARIABLE _log)
message("${_log}")
if(_rc OR NOT _log MATCHES "PASS" OR _log MATCHES "FAIL")
  message(FATAL_ERROR "tb_qs_pe did not pass")
endif()
